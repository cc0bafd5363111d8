// A person's writes made on the main thread (provisioning, residents, units and staff, users, the audit log, the
// answers kept for Idempotency-Key) take SQLite's write lock without holding the event loop (core/db.ts). Before,
// each waited inside SQLite (busy_timeout, up to 5 s) while another connection held the lock: no PUBACK, no console
// push, no HTTP answer meanwhile. Real gateway, real SQLite file; the lock is held by a third connection.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { dbFile, openStore, writeWhenFree, type Store } from '../../core/db.js';
import { holdWriteLock } from '../helpers/write-lock.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';

describe('a person\'s writes while another connection holds the write lock', () => {
  let t: TestGateway;
  beforeAll(async () => { t = await startTestGateway(); });
  afterAll(async () => t.stop());

  it('wait without stalling the main loop, and each lands once the lock is free, with its audit entry', async () => {
    const { id, secret } = await t.provision('call-phone');
    const phone = await t.connectDevice(id, secret);
    await phone.publishAsync(`devices/${id}/events`, JSON.stringify({ ts: Date.now(), seq: 1, type: 'sos' }), { qos: 1 });
    const inc = await waitFor(() => t.gw.store.sqlite.prepare('select id from incidents where device_id = ?').get(id) as { id: string } | undefined, 'the incident');
    const token = await t.token();
    // this process is the gateway's main thread: the lock's tick measures how long its loop stalled
    const lock = holdWriteLock(t.dataDir);
    try {
      const asked = {
        device: t.api('POST', '/api/devices', { kind: 'fall-sensor', serial: 'LOCKED-1' }),
        resident: t.api('POST', '/api/residents', { name: 'Li Wei', address: 'Wuchang, building 3' }),
        unit: t.api('POST', '/api/units', { name: 'Donghu district', tier: 'district' }),
        user: t.api('POST', '/api/users', { username: 'nurse.zhao', password: 'lantern-orchid-41', role: 'operator' }),
        patch: t.api('PATCH', `/api/devices/${id}`, { notes: 'by the bed' }),
        imported: t.api('POST', '/api/devices/import', 'serial,kind\nLOCKED-IMP-1,call-phone\nLOCKED-IMP-2,fall-sensor\n'),
        acknowledge: fetch(`${t.http}/api/incidents/${inc.id}/acknowledge`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'idempotency-key': 'ack-under-lock' } }),
      };
      // the lock is held for a second: a main loop waiting for it inside SQLite would stall that long (here, for
      // good: the connection holding it is this thread's)
      await new Promise((r) => setTimeout(r, 1000));
      expect((await fetch(`${t.http}/healthz`)).status).toBe(200);
      // while the lock was held
      expect(lock.longestGapMs).toBeLessThan(500);
      lock.release();
      const [device, resident, unit, user, patch, imported] = await Promise.all([asked.device, asked.resident, asked.unit, asked.user, asked.patch, asked.imported]);
      expect([device.status, resident.status, unit.status, user.status, patch.status, imported.status]).toEqual([201, 201, 201, 201, 200, 201]);
      expect((patch.body as { notes: string }).notes).toBe('by the bed');
      expect(t.gw.store.sqlite.prepare("select count(*) n from devices where serial like 'LOCKED-IMP-%'").get()).toEqual({ n: 2 });
      const ack = await asked.acknowledge;
      expect(ack.status).toBe(200);
      // each with its audit entry
      const actions = (t.gw.store.sqlite.prepare("select action from audit_log where action in ('device.provision', 'resident.create', 'unit.create', 'user.create', 'incident.acknowledge', 'device.update', 'device.import') and at >= ?").all(Date.now() - 60_000) as { action: string }[]).map((r) => r.action);
      expect(new Set(actions)).toEqual(new Set(['device.provision', 'resident.create', 'unit.create', 'user.create', 'incident.acknowledge', 'device.update', 'device.import']));
      // the answer kept for the key: asked again, it is replayed
      const again = await fetch(`${t.http}/api/incidents/${inc.id}/acknowledge`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'idempotency-key': 'ack-under-lock' } });
      expect(again.status).toBe(200);
      expect(again.headers.get('idempotent-replayed')).toBe('true');
    } finally {
      lock.close();
      phone.end(true);
    }
  });
});

describe('writeWhenFree', () => {
  let dir: string;
  let store: Store;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'eldergate-write-when-free-'));
    store = openStore(dbFile(dir));
    store.sqlite.exec('create table if not exists t (v text)');
  });
  beforeEach(() => { store.sqlite.exec('delete from t'); });
  afterAll(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const rows = () => (store.sqlite.prepare('select v from t order by rowid').all() as { v: string }[]).map((r) => r.v);

  it('refuses with a 503 saying nothing was written when the lock stays taken, and writes once it is free', async () => {
    const lock = holdWriteLock(dir);
    try {
      const err = await writeWhenFree(store.sqlite, () => store.sqlite.prepare("insert into t values ('late')").run(), 200).catch((e: unknown) => e);
      expect(err).toMatchObject({ status: 503, code: 'UNAVAILABLE', message: expect.stringMatching(/nothing was recorded; try again/) });
      const waiting = writeWhenFree(store.sqlite, () => store.sqlite.prepare("insert into t values ('after')").run(), 5000);
      await new Promise((r) => setTimeout(r, 100));
      expect(rows()).toEqual([]);
      lock.release();
      await waiting;
      expect(rows()).toEqual(['after']);
    } finally {
      lock.close();
    }
  });

  it('rolls back what the function wrote when it throws, and refuses a function that returns a promise', async () => {
    await expect(writeWhenFree(store.sqlite, () => {
      store.sqlite.prepare("insert into t values ('half')").run();
      throw new Error('bad input');
    })).rejects.toThrow('bad input');
    await expect(writeWhenFree(store.sqlite, (async () => undefined) as () => unknown)).rejects.toThrow(/synchronous/);
    expect(rows()).toEqual([]);
    expect(store.sqlite.inTransaction).toBe(false);
    // a transaction of its own inside (a savepoint) commits with it
    await writeWhenFree(store.sqlite, () => store.sqlite.transaction(() => store.sqlite.prepare("insert into t values ('nested')").run())());
    expect(rows()).toEqual(['nested']);
  });
});
