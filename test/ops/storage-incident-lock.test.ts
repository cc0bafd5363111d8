// The storage incident is written by the main thread (the thread with the sockets), on its own connection, while the
// writer thread may hold the write lock — committing, or stuck on a failing disk. Waiting for the lock inside SQLite
// would hold the event loop for up to busy_timeout (5 s): no PUBACK, no console frame, no HTTP answer. The storage
// monitor's writes (the incident, the probe) are made only when the lock is free this moment, and tried again on its
// timer otherwise. Here another connection holds the lock (a real SQLite file, a real gateway in this process) while
// the storage is reported failing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { dbFile } from '../../core/db.js';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';

describe('the storage incident while another connection holds the write lock', () => {
  let t: TestGateway;
  beforeAll(async () => {
    t = await startTestGateway();
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('does not wait for the lock on the event loop; is written and resolved once the lock is free', { timeout: 60_000 }, async () => {
    const other = new Database(dbFile(t.dataDir));
    const list = async () => ((await t.api('GET', '/api/incidents?type=storage-failing')).body.items as { id: string; status: string }[]);
    try {
      other.exec('BEGIN IMMEDIATE');
      const fault = Object.assign(new Error('disk I/O error'), { code: 'SQLITE_IOERR' });
      const began = performance.now();
      t.gw.storage.failed('test', fault);
      const tookMs = performance.now() - began;
      // before: SQLite's busy handler slept here until busy_timeout (5 s) ran out, the event loop with it
      expect(tookMs).toBeLessThan(1000);
      expect((await fetch(`${t.http}/readyz`)).status).toBe(503);
      // reads go on meanwhile (WAL): nothing written yet
      expect(await list()).toEqual([]);
      // the lock is held over a few of the monitor's retries: still nothing written, the loop still answering
      await new Promise((r) => setTimeout(r, 2500));
      expect(await list()).toEqual([]);
      other.exec('COMMIT');
      // the probe succeeds at its next try: the incident is opened with the moment the fault began, and resolved
      const done = await waitFor(async () => (await list()).find((i) => i.status === 'resolved'), 'the storage incident written and resolved', 15_000, 100);
      expect(done).toBeDefined();
      expect((await fetch(`${t.http}/readyz`)).status).toBe(200);
    } finally {
      if (other.inTransaction) other.exec('ROLLBACK');
      other.close();
    }
  });
});
