// The ACK follows a durable row: a real SQLite file with the committed migrations, read back through a second
// connection at the moment the simulated receiver gets its ACK.
import { describe, it, expect, afterEach } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { openStore, type Store } from '../../core/db.js';
import { observations } from '../../devices/schema.js';
import { isLifeSafety, type IngestResult, type Observation, type ObservationSink } from '../../core/contracts.js';
import { startRig, type Rig } from './rig.js';

/** The simplest durable sink: one INSERT per observation (synchronous=FULL, so committed means on disk). */
function sqliteSink(store: Store): ObservationSink {
  return {
    async submit(obs: Observation): Promise<IngestResult> {
      const { deviceId, type, seq, deviceTs, receivedAt, source, flags, ...data } = obs;
      const row = store.db
        .insert(observations)
        .values({
          deviceId,
          type,
          seq: seq ?? null,
          deviceTs: deviceTs ?? null,
          receivedAt,
          source,
          lifeSafety: isLifeSafety(type),
          data: data as Record<string, unknown>,
          flags: flags ?? null,
        })
        .returning({ id: observations.id })
        .get();
      return { status: 'stored', observationId: row.id };
    },
  };
}

let rig: Rig | undefined;
let dir: string | undefined;
let store: Store | undefined;
let reader: Database.Database | undefined;
afterEach(async () => {
  await rig?.close();
  reader?.close();
  store?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
  rig = undefined;
  reader = undefined;
  store = undefined;
  dir = undefined;
});

describe('ACK after a durable row', () => {
  it('each ACK finds its row already committed; unknown codes are stored as unknown', async () => {
    dir = mkdtempSync(join(tmpdir(), 'eldergate-serial-db-'));
    const file = join(dir, 'eldergate.db');
    store = openStore(file);
    rig = await startRig(sqliteSink(store), { adapter: { reportHeartbeats: false } });
    reader = new Database(file, { readonly: true });
    const count = reader.prepare('SELECT count(*) AS n FROM observations');
    // read at the very moment the ACK reaches the receiver, through another connection
    const rowsAtAck: number[] = [];
    rig.sim.on('answer', (a) => {
      if (a.answer === 'ACK') rowsAtAck.push((count.get() as { n: number }).n);
    });

    expect((await rig.sim.sendEvent({ account: '1234', code: 101, zone: 12 })).delivered).toBe(true);
    expect((await rig.sim.sendEvent({ account: '1234', code: 999 })).delivered).toBe(true);
    expect((await rig.sim.sendEvent({ account: 'BEEF', code: 110 })).delivered).toBe(true);
    expect(rowsAtAck).toEqual([1, 2, 3]);

    const rows = reader
      .prepare('SELECT device_id, type, source, life_safety, data, flags FROM observations ORDER BY id')
      .all() as { device_id: string; type: string; source: string; life_safety: number; data: string; flags: string | null }[];
    expect(rows.map((r) => [r.device_id, r.type, r.life_safety, r.flags])).toEqual([
      ['phone-1234', 'sos', 1, null],
      ['phone-1234', 'unknown', 0, null],
      ['receiver-1', 'fire', 1, '["unknown-account"]'],
    ]);
    const unknown = JSON.parse(rows[1]!.data) as { code: string; detail: Record<string, unknown> };
    expect(unknown.code).toBe('999');
    expect(unknown.detail).toMatchObject({ code: '999', qualifier: 'E', account: '1234', raw: '5011 181234E99901001' });
  });
});
