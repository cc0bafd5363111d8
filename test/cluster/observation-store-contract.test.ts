// One contract, two engines: the observation area's storage (gateway/observation-store.ts), which holds the ingest's
// dedup, on a real SQLite file with the committed migrations and on a real PostgreSQL 15 (Debian's, started by this
// file on a private port and data directory, with drizzle-pg/'s migrations). Then what only PostgreSQL has to prove,
// since there several nodes write: one key inserted by two nodes at the same moment is stored once; and the per-class
// keys' migration (0007) on a database an older release left.
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { createSqliteObservationStore, type NewObservation, type ObservationStore, type RejectRow } from '../../gateway/observation-store.js';
import { createPgObservationStore, type PgObservationStore } from '../../gateway/observation-store-pg.js';
import type { StoreMode } from '../../response/store/types.js';
import { useStoreEngines } from '../helpers/postgres.js';
import { migratePg } from '../../response/store/pg.js';

// band 11: no other test file's (grep `band:` and freeBasePort under test/)
const BAND = 11;
const env = useStoreEngines({ name: 'observation-store', band: BAND });

// key order, spaces-free compact text and characters beyond ASCII: a store that re-serialises (jsonb) changes it
const DATA = '{"z":1,"a":[1,2],"名":"值","nested":{"b":true,"a":null}}';

const obs = (o: Partial<NewObservation> = {}): NewObservation => ({
  deviceId: 'dev-1', type: 'sos', seq: 7, deviceTs: 1_796_000_000_000, receivedAt: 1_796_000_000_100, source: 'mqtt',
  lifeSafety: true, data: DATA, flags: null, session: 'dev-1@1796000000000', packetId: 12, generation: 0, ...o,
});

const reject = (i: number, o: Partial<RejectRow> = {}): RejectRow => ({
  deviceId: 'dev-1', source: 'mqtt', topic: 'devices/dev-1/events', reason: `malformed JSON #${i}`, raw: `{"type":"s${i}`, at: i, ...o,
});

interface Engine {
  name: string;
  open(): Promise<ObservationStore<StoreMode>>;
  /** these writes (made at once, in order) in one transaction that then fails */
  writeAndFail(store: ObservationStore<StoreMode>, writes: (s: ObservationStore<StoreMode>) => unknown[]): Promise<void>;
  /** rows of the engine's own tables, read behind the store's back */
  rows(query: string): Promise<Record<string, unknown>[]>;
}

let pool: pg.Pool;
const engines: Engine[] = [
  {
    name: 'SQLite',
    async open() {
      env.sqlite().sqlite.exec('DELETE FROM observations; DELETE FROM rejects');
      return createSqliteObservationStore(env.sqlite().sqlite);
    },
    async writeAndFail(store, writes) {
      expect(() => env.sqlite().sqlite.transaction(() => {
        writes(store);
        throw new Error('the batch failed after its rows were written');
      })()).toThrow(/the batch failed/);
    },
    async rows(query) {
      return env.sqlite().sqlite.prepare(query).all() as Record<string, unknown>[];
    },
  },
  {
    name: 'PostgreSQL',
    async open() {
      pool = (await env.pgs().fresh('observations', 4)).pool;
      return createPgObservationStore(pool);
    },
    async writeAndFail(store, writes) {
      await expect((store as PgObservationStore).transaction(async (tx) => {
        // one connection: node-postgres runs them in the order given
        await Promise.all(writes(tx));
        throw new Error('the batch failed after its rows were written');
      })).rejects.toThrow(/the batch failed/);
    },
    async rows(query) {
      return (await pool.query(query)).rows;
    },
  },
];

for (const engine of engines) {
  describe(`observation store contract: ${engine.name}`, () => {
    it('a key is stored once: its resend writes nothing (0); its next generation is a row of its own', async () => {
      const s = await engine.open();
      const first = await s.insert(obs());
      expect(first).toBeGreaterThan(0);
      expect(await s.insert(obs({ receivedAt: 1_796_000_009_000, data: '{}' }))).toBe(0);
      const other = await s.insert(obs({ seq: 8 }));
      expect(other).toBeGreaterThan(first);
      expect(await s.findKeyed('dev-1', 7, 1_796_000_000_000, true)).toEqual({
        id: first, session: 'dev-1@1796000000000', receivedAt: 1_796_000_000_100, generation: 0, incidentId: null, type: 'sos', data: DATA,
      });
      const replay = await s.insert(obs({ generation: 1, data: '{"replay":true}', flags: '["possible-replay"]' }));
      expect(replay).toBeGreaterThan(other);
      expect(await s.findKeyed('dev-1', 7, 1_796_000_000_000, true)).toMatchObject({ id: replay, generation: 1, data: '{"replay":true}' });
      // the same key of another device is another key
      expect(await s.insert(obs({ deviceId: 'dev-2' }))).toBeGreaterThan(0);
      expect(await s.findKeyed('dev-1', 7, 1, true)).toBeUndefined();
      expect((await engine.rows(`SELECT count(*) AS n FROM observations`))[0]!.n).toEqual(engine.name === 'SQLite' ? 4 : '4');
    });

    it('a key is unique within its class: an alarm never collides with a technical row of the same key, nor the reverse', async () => {
      const s = await engine.open();
      const alarm = await s.insert(obs());
      // a terminal that numbers its alarms and its reports apart: the report with the alarm's key is a row of its own
      const report = await s.insert(obs({ type: 'battery', lifeSafety: false, data: '{"level":20}' }));
      expect(alarm).toBeGreaterThan(0);
      expect(report).toBeGreaterThan(alarm);
      expect(await s.insert(obs({ type: 'battery', lifeSafety: false, data: '{"level":20}' }))).toBe(0);
      expect(await s.insert(obs())).toBe(0);
      expect(await s.findKeyed('dev-1', 7, 1_796_000_000_000, true)).toMatchObject({ id: alarm, type: 'sos' });
      expect(await s.findKeyed('dev-1', 7, 1_796_000_000_000, false)).toMatchObject({ id: report, type: 'battery' });
    });

    it('rows without a key never collide; the newest with a packet id is found, not a keyed one nor another device\'s', async () => {
      const s = await engine.open();
      const a = await s.insert(obs({ seq: null, deviceTs: null, packetId: 5, data: '{"n":1}' }));
      const b = await s.insert(obs({ seq: null, deviceTs: null, packetId: 5, data: '{"n":2}' }));
      expect(a).toBeGreaterThan(0);
      expect(b).toBeGreaterThan(a);
      await s.insert(obs({ seq: 99, packetId: 5 }));
      await s.insert(obs({ deviceId: 'dev-2', seq: null, deviceTs: null, packetId: 5 }));
      expect(await s.findKeyless('dev-1', 5)).toMatchObject({ id: b, data: '{"n":2}' });
      expect(await s.findKeyless('dev-1', 6)).toBeUndefined();
    });

    it('an incident is set on its observation, a row taken back is gone, and a failed transaction leaves nothing', async () => {
      const s = await engine.open();
      const id = await s.insert(obs());
      await s.setIncident(id, 'inc-1');
      expect(await s.findKeyed('dev-1', 7, 1_796_000_000_000, true)).toMatchObject({ id, incidentId: 'inc-1' });
      await s.remove(id);
      expect(await s.findKeyed('dev-1', 7, 1_796_000_000_000, true)).toBeUndefined();
      await engine.writeAndFail(s, (tx) => [tx.insert(obs({ seq: 20 })), tx.insertRejects([reject(1)])]);
      expect(await s.findKeyed('dev-1', 20, 1_796_000_000_000, true)).toBeUndefined();
      expect(await engine.rows('SELECT id FROM rejects')).toEqual([]);
    });

    it('refusals: a NUL a client sent is kept as ␀, and pruning keeps the newest', async () => {
      const s = await engine.open();
      await s.insertRejects([reject(0, { raw: '{"type":"sos"\u0000junk', topic: 'devices/x\u0000/events', deviceId: null })]);
      await s.insertRejects(Array.from({ length: 9 }, (_, i) => reject(i + 1)));
      const [nul] = await engine.rows('SELECT raw, topic, device_id FROM rejects WHERE at = 0');
      expect(nul).toEqual({ raw: '{"type":"sos"␀junk', topic: 'devices/x␀/events', device_id: null });
      await s.pruneRejects(3);
      const left = await engine.rows('SELECT reason FROM rejects ORDER BY id');
      expect(left.map((r) => r.reason)).toEqual(['malformed JSON #7', 'malformed JSON #8', 'malformed JSON #9']);
    });
  });
}

describe('observation store: several nodes on one PostgreSQL', () => {
  it('one key inserted by two nodes at the same moment is stored once: one gets its id, the other 0', async () => {
    const { url } = await env.pgs().fresh('observation_race');
    const nodes = [0, 1].map(() => createPgObservationStore(env.pgs().track(new pg.Pool({ connectionString: url, max: 2 }))));
    for (let round = 0; round < 50; round++) {
      const ids = await Promise.all(nodes.map((n) => n.insert(obs({ seq: round }))));
      expect(ids.filter((id) => id > 0)).toHaveLength(1);
    }
    const check = env.pgs().track(new pg.Pool({ connectionString: url, max: 1 }));
    expect((await check.query('SELECT count(*)::int AS n FROM observations')).rows[0].n).toBe(50);
  });
});

describe('observation store: migration 0007 on a PostgreSQL an older release left', () => {
  it('keeps every row, and the old keys (and a replay\'s generation) still collide in their class', async () => {
    const { pool: old } = await env.pgs().fresh('observations_upgrade', 2, { before: '0007' });
    const row = `INSERT INTO observations (device_id, type, seq, device_ts, received_at, source, life_safety, data, generation)
      VALUES ($1, $2, $3, $4, $5, 'mqtt', $6, '{}', $7)`;
    await old.query(row, ['d1', 'sos', 1, 100, 1, true, 0]);
    await old.query(row, ['d1', 'sos', 1, 100, 2, true, 1]);
    await old.query(row, ['d1', 'battery', 2, 200, 3, false, 0]);
    await old.query(row, ['d1', 'fall', null, null, 4, true, 0]);
    await migratePg(old);
    expect((await old.query('SELECT count(*)::int AS n FROM observations')).rows[0].n).toBe(4);
    const names = (await old.query(`SELECT indexname FROM pg_indexes WHERE tablename = 'observations' AND indexname <> 'observations_pkey' ORDER BY indexname`))
      .rows.map((r: { indexname: string }) => r.indexname);
    expect(names).toEqual(['observations_alarm_key_uq', 'observations_keyless_idx', 'observations_other_device_idx',
      'observations_other_key_uq', 'observations_received_idx']);
    const s = createPgObservationStore(old);
    const key = { deviceId: 'd1', seq: 1, deviceTs: 100, receivedAt: 9, data: '{}', session: null, packetId: null };
    expect(await s.insert(obs(key))).toBe(0);
    expect(await s.insert(obs({ ...key, generation: 1 }))).toBe(0);
    expect(await s.insert(obs({ ...key, type: 'battery', seq: 2, deviceTs: 200, lifeSafety: false }))).toBe(0);
    expect(await s.findKeyed('d1', 1, 100, true)).toMatchObject({ generation: 1, type: 'sos' });
    expect(await s.findKeyed('d1', 2, 200, false)).toMatchObject({ type: 'battery' });
    expect(await s.insert(obs({ ...key, generation: 2 }))).toBeGreaterThan(0);
  });
});
