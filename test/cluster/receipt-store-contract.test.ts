// One contract, two engines: the receipts area's storage (response/receipt-store.ts) on a real SQLite file with the
// committed migrations and on a real PostgreSQL 15 (Debian's, started by this file on a private port and data
// directory, with drizzle-pg/'s migrations). Then what only PostgreSQL has to prove, since there the consoles of
// several nodes push and confirm the same incident: each receipt is stored once, each stamp set once.
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { createSqliteReceiptStore, type ReceiptStore } from '../../response/receipt-store.js';
import { createPgReceiptStore } from '../../response/receipt-store-pg.js';
import type { IncidentReceipt } from '../../response/events.js';
import type { StoreMode } from '../../response/store/types.js';
import { useStoreEngines } from '../helpers/postgres.js';

// band 13: no other test file's (grep `band:` and `BAND =` under test/)
const BAND = 13;
const env = useStoreEngines({ name: 'receipt-store', band: BAND });

const T = 1_796_000_000_000;
const pushed = (incidentId: string, at: number): IncidentReceipt => ({ incidentId, kind: 'pushed', seq: 7, at, userId: null, username: null });
const delivered = (incidentId: string, at: number, userId: string): IncidentReceipt =>
  ({ incidentId, kind: 'delivered', seq: 7, at, userId, username: `name-of-${userId}` });

/** an incident row, as the incident store would have written it, with the stamps given */
const incidentSql = (id: string, stamps: Record<string, number>) =>
  `INSERT INTO incidents (id, device_id, type, priority, status, opened_at, last_at, last_seq, stamps)
   VALUES ('${id}', 'dev-${id}', 'sos', 'P1', 'open', ${T}, ${T}, 1, '${JSON.stringify(stamps)}')`;

interface Opened {
  store: ReceiptStore<StoreMode>;
  stamps(id: string): Promise<Record<string, number>>;
  /** store an incident row now (one a receipt arrived before) */
  addIncident(id: string, stamps: Record<string, number>): Promise<void>;
  /** from now on the database refuses to stamp an incident as delivered (a fault in the second half of a batch) */
  refuseDeliveredStamps(): Promise<void>;
}
interface Engine {
  name: string;
  open(incidents: Record<string, Record<string, number>>): Promise<Opened>;
}

const engines: Engine[] = [
  {
    name: 'SQLite',
    async open(incidents) {
      const db = env.sqlite().sqlite;
      db.exec('DELETE FROM incident_receipts; DELETE FROM incidents');
      for (const [id, stamps] of Object.entries(incidents)) db.exec(incidentSql(id, stamps));
      db.exec('DROP TRIGGER IF EXISTS refuse_delivered_stamps');
      return {
        store: createSqliteReceiptStore(db),
        stamps: async (id) => JSON.parse((db.prepare('SELECT stamps FROM incidents WHERE id = ?').get(id) as { stamps: string }).stamps),
        addIncident: async (id, stamps) => void db.exec(incidentSql(id, stamps)),
        refuseDeliveredStamps: async () => void db.exec(`CREATE TRIGGER refuse_delivered_stamps BEFORE UPDATE OF stamps ON incidents
          WHEN json_extract(NEW.stamps, '$.delivered') IS NOT NULL BEGIN SELECT RAISE(ABORT, 'delivered stamps refused'); END`),
      };
    },
  },
  {
    name: 'PostgreSQL',
    async open(incidents) {
      const { pool } = await env.pgs().fresh('receipts', 4);
      for (const [id, stamps] of Object.entries(incidents)) await pool.query(incidentSql(id, stamps));
      return {
        store: createPgReceiptStore(pool),
        stamps: async (id) => (await pool.query('SELECT stamps FROM incidents WHERE id = $1', [id])).rows[0].stamps,
        addIncident: async (id, stamps) => void await pool.query(incidentSql(id, stamps)),
        refuseDeliveredStamps: async () => void await pool.query(`ALTER TABLE incidents ADD CONSTRAINT refuse_delivered_stamps CHECK (NOT stamps ? 'delivered')`),
      };
    },
  },
];

for (const engine of engines) {
  describe(`receipt store contract: ${engine.name}`, () => {
    it('stores one push per incident and one delivery per incident and user, whichever batch brings it; counts what was new', async () => {
      const { store } = await engine.open({ 'inc-1': { received: T }, 'inc-2': { received: T } });
      expect(await store.writeBatch([pushed('inc-1', T + 10), delivered('inc-1', T + 20, 'u1'), delivered('inc-1', T + 15, 'u2'), pushed('inc-2', T + 12)])).toBe(4);
      // again, and again inside one batch: nothing new
      expect(await store.writeBatch([pushed('inc-1', T + 30), delivered('inc-1', T + 31, 'u1'), delivered('inc-1', T + 40, 'u3'), delivered('inc-1', T + 41, 'u3')])).toBe(1);
      expect(await store.writeBatch([])).toBe(0);
      // oldest first; each as first written (a later push's time does not replace the first)
      expect(await store.of('inc-1')).toEqual([
        pushed('inc-1', T + 10), delivered('inc-1', T + 15, 'u2'), delivered('inc-1', T + 20, 'u1'), delivered('inc-1', T + 40, 'u3'),
      ]);
      expect(await store.of('inc-2')).toEqual([pushed('inc-2', T + 12)]);
      // of one millisecond: the push first, then by user — whatever order the batch had
      await store.writeBatch([delivered('inc-2', T + 50, 'u2'), delivered('inc-2', T + 12, 'u9'), delivered('inc-2', T + 12, 'u1')]);
      expect((await store.of('inc-2')).map((r) => `${r.kind}:${r.userId ?? '-'}@${r.at - T}`)).toEqual(['pushed:-@12', 'delivered:u1@12', 'delivered:u9@12', 'delivered:u2@50']);
      expect(await store.of('inc-none')).toEqual([]);
      expect(await store.firsts('inc-1')).toEqual({ pushed: T + 10, delivered: T + 15 });
      expect(await store.firsts('inc-2')).toEqual({ pushed: T + 12, delivered: T + 12 });
      expect(await store.firsts('inc-none')).toEqual({});
    });

    it('the first stored receipt of each kind stamps its incident; a stamp is never moved; an incident not stored gets none', async () => {
      const { store, stamps } = await engine.open({ 'inc-1': { received: T }, 'inc-2': { received: T, pushed: T + 1 } });
      await store.writeBatch([delivered('inc-1', T + 20, 'u1'), pushed('inc-1', T + 10), delivered('inc-1', T + 25, 'u2'), pushed('inc-2', T + 12), pushed('inc-unknown', T + 13)]);
      // in the batch's order: u1's delivery is the first of its kind (the clock of one console may run behind another's)
      expect(await stamps('inc-1')).toEqual({ received: T, pushed: T + 10, delivered: T + 20 });
      expect(await stamps('inc-2')).toEqual({ received: T, pushed: T + 1 });
      expect(await store.of('inc-unknown')).toEqual([pushed('inc-unknown', T + 13)]);
      await store.writeBatch([delivered('inc-1', T + 5, 'u9')]);
      expect(await stamps('inc-1')).toEqual({ received: T, pushed: T + 10, delivered: T + 20 });
      // a receipt not new (stored before its incident was) stamps nothing, even where the incident has no such stamp
      const again = await engine.open({});
      expect(await again.store.writeBatch([pushed('inc-3', T + 1)])).toBe(1);
      await again.addIncident('inc-3', { received: T });
      expect(await again.store.writeBatch([pushed('inc-3', T + 2)])).toBe(0);
      expect(await again.stamps('inc-3')).toEqual({ received: T });
    });

    it('a batch is one transaction: one receipt it cannot store leaves none of it, and no stamp', async () => {
      const { store, stamps } = await engine.open({ 'inc-1': { received: T } });
      // a value neither engine can store as a seq: the driver (SQLite) or the server (PostgreSQL) refuses it
      const broken = { ...pushed('inc-2', T + 2), seq: { not: 'a number' } } as unknown as IncidentReceipt;
      await expect(Promise.resolve().then(() => store.writeBatch([pushed('inc-1', T + 1), delivered('inc-1', T + 1, 'u1'), broken]))).rejects.toThrow();
      expect(await store.of('inc-1')).toEqual([]);
      expect(await stamps('inc-1')).toEqual({ received: T });
      // and the store is usable after it
      expect(await store.writeBatch([pushed('inc-1', T + 3)])).toBe(1);
      expect(await stamps('inc-1')).toEqual({ received: T, pushed: T + 3 });
    });

    it('a batch whose stamp cannot be written (its receipts already inserted) leaves none of its receipts', async () => {
      const o = await engine.open({ 'inc-1': { received: T }, 'inc-2': { received: T } });
      await o.refuseDeliveredStamps();
      await expect(Promise.resolve().then(() => o.store.writeBatch([pushed('inc-2', T + 1), delivered('inc-1', T + 2, 'u1')]))).rejects.toThrow();
      expect(await o.store.of('inc-1')).toEqual([]);
      expect(await o.store.of('inc-2')).toEqual([]);
      expect(await o.stamps('inc-2')).toEqual({ received: T });
    });
  });
}

describe('receipt store, PostgreSQL only: several nodes', () => {
  it('two nodes writing overlapping batches in opposite orders at once, 20 times: each receipt stored once, each stamp set once and kept', async () => {
    const { pool, url } = await env.pgs().fresh('receipts_nodes', 4);
    const other = env.pgs().track(new pg.Pool({ connectionString: url, max: 4 }));
    const [a, b] = [createPgReceiptStore(pool), createPgReceiptStore(other)];
    for (let round = 0; round < 20; round++) {
      const id = `inc-${round}`;
      await pool.query(incidentSql(id, { received: T }));
      // both nodes' consoles saw the opening and 200 users confirmed it, each node's batch in its own order (rows taken
      // in these orders could each wait for one the other inserted; the store takes them in one order. Here the two
      // statements rarely overlap: taking the order out did not make this test fail, so it proves "once", not that)
      const users = Array.from({ length: 200 }, (_, i) => `u${String(i).padStart(3, '0')}`);
      const fromA = [...users.map((u, i) => delivered(id, T + 20 + i, u)), pushed(id, T + 10)];
      const fromB = [...[...users].reverse().map((u, i) => delivered(id, T + 30 + i, u)), pushed(id, T + 11)];
      const [na, nb] = await Promise.all([a.writeBatch(fromA), b.writeBatch(fromB)]);
      expect(na + nb).toBe(201);
      const stored = await a.of(id);
      expect(stored.filter((r) => r.kind === 'pushed')).toHaveLength(1);
      expect(stored.filter((r) => r.kind === 'delivered').map((r) => r.userId).sort()).toEqual(users);
      const stamps = (await pool.query('SELECT stamps FROM incidents WHERE id = $1', [id])).rows[0].stamps as Record<string, number>;
      // the stamp is a receipt that was stored: the first of its kind in the batch that stored it
      expect(stored.some((r) => r.kind === 'pushed' && r.at === stamps.pushed)).toBe(true);
      expect(stored.some((r) => r.kind === 'delivered' && r.at === stamps.delivered)).toBe(true);
    }
  });

  it('transaction(): batches written at once inside one transaction commit together, or fail together', async () => {
    const { pool } = await env.pgs().fresh('receipts_tx_both', 2);
    for (const id of ['a1', 'a2']) await pool.query(incidentSql(id, { received: T }));
    const store = createPgReceiptStore(pool);
    const counts = await store.transaction((tx) => Promise.all([tx.writeBatch([pushed('a1', T + 1)]), tx.writeBatch([pushed('a2', T + 2), delivered('a2', T + 3, 'u1')])]));
    expect(counts).toEqual([1, 2]);
    expect((await store.of('a1')).length + (await store.of('a2')).length).toBe(3);
    // one of them failing, even where the caller goes on (allSettled): the transaction fails, neither batch is stored
    for (const id of ['b1', 'b2']) await pool.query(incidentSql(id, { received: T }));
    const broken = { ...pushed('b2', T + 2), seq: { not: 'a number' } } as unknown as IncidentReceipt;
    const first = [pushed('b1', T + 1)];
    // (the first batch answers 1, then the second fails; PostgreSQL would answer the COMMIT of the aborted transaction
    // with a ROLLBACK, no error)
    await expect(store.transaction((tx) => Promise.allSettled([tx.writeBatch(first).then(() => tx.writeBatch([broken]))]))).rejects.toThrow();
    const stored = [...await store.of('b1'), ...await store.of('b2')];
    expect(stored).toEqual([]);
  });

  it('transaction(): receipts written in a transaction that rolls back are not stored', async () => {
    const { pool } = await env.pgs().fresh('receipts_tx', 2);
    await pool.query(incidentSql('inc-1', { received: T }));
    const store = createPgReceiptStore(pool);
    await expect(store.transaction(async (tx) => {
      expect(await tx.writeBatch([pushed('inc-1', T + 1)])).toBe(1);
      throw new Error('the rest of the batch failed');
    })).rejects.toThrow('the rest of the batch failed');
    expect(await store.of('inc-1')).toEqual([]);
    expect((await pool.query('SELECT stamps FROM incidents WHERE id = $1', ['inc-1'])).rows[0].stamps).toEqual({ received: T });
  });
});
