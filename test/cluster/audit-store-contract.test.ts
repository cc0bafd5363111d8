// One contract, two engines: the audit log's storage (core/audit-store.ts) on a real SQLite file with the committed
// migrations and on a real PostgreSQL 15 (Debian's, started by this file on a private port and data directory, with
// drizzle-pg/'s migrations): entries as written, the filters and their totals, newest first, and a log the database
// itself keeps append-only. Then what only PostgreSQL has to prove: two nodes appending at once lose nothing.
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { createSqliteAuditStore, type AuditRow, type AuditStore } from '../../core/audit-store.js';
import { createPgAuditStore } from '../../core/audit-store-pg.js';
import type { StoreMode } from '../../response/store/types.js';
import { fails, useStoreEngines } from '../helpers/postgres.js';
import { openStore, type Store } from '../../core/db.js';
import { join } from 'node:path';

// band 16: no other test file's (grep `band:` and `BAND =` under test/)
const BAND = 16;
const env = useStoreEngines({ name: 'audit-store', band: BAND });
let files = 0;
const opened: Store[] = [];
afterAll(() => { for (const s of opened) s.close(); });

const T = 1_796_000_000_000;
const row = (i: number, o: Partial<AuditRow> = {}): AuditRow => ({
  at: T + i, actorId: 'u-ana', actor: 'ana', role: 'admin', ip: '127.0.0.1', action: 'device.provision',
  targetType: 'device', targetId: `d-${i}`, details: JSON.stringify({ serial: `CP-${i}`, b: 1, a: 2 }), ...o,
});

interface Engine {
  name: string;
  open(): Promise<{ store: AuditStore<StoreMode>; change(sql: string): Promise<unknown> }>;
}
const engines: Engine[] = [
  {
    name: 'SQLite',
    async open() {
      // a fresh file with the committed migrations each time (the log refuses DELETE); closed with the file's engines
      const store = openStore(join(env.dir, `audit-${++files}.db`));
      opened.push(store);
      return { store: createSqliteAuditStore(store.sqlite), change: async (q) => store.sqlite.exec(q) };
    },
  },
  {
    name: 'PostgreSQL',
    async open() {
      const { pool } = await env.pgs().fresh('audit', 4);
      return { store: createPgAuditStore(pool), change: (q) => pool.query(q) };
    },
  },
];

for (const engine of engines) {
  describe(`audit store contract: ${engine.name}`, () => {
    it('keeps an entry as written (details in their key order), newest first, with the total', async () => {
      const { store } = await engine.open();
      for (let i = 1; i <= 5; i++) await store.append(row(i));
      await store.append(row(6, { role: null, ip: null, details: '{}' }));
      const page = await store.query({ limit: 2, offset: 1 });
      expect(page.total).toBe(6);
      expect(page.items.map((e) => e.targetId)).toEqual(['d-5', 'd-4']);
      const [e5] = page.items;
      expect(e5).toEqual({ id: expect.any(Number), ...row(5), details: { serial: 'CP-5', b: 1, a: 2 } });
      expect(Object.keys(e5!.details)).toEqual(['serial', 'b', 'a']);
      expect((await store.query({ limit: 1, offset: 0 })).items[0]).toMatchObject({ role: null, ip: null, details: {} });
    });

    it('filters by actor (name or id), action (exact or a prefix), target (id or type:id) and period', async () => {
      const { store } = await engine.open();
      await store.append(row(1));
      await store.append(row(2, { action: 'device.suspend', targetId: 'd-1' }));
      await store.append(row(3, { actor: 'bo', actorId: 'u-bo', action: 'incident.acknowledge', targetType: 'incident', targetId: 'd-1' }));
      await store.append(row(4, { action: 'devices.x' }));
      const ids = async (q: Parameters<typeof store.query>[0]) => {
        const r = await store.query(q);
        return { at: r.items.map((e) => e.at - T), total: r.total };
      };
      const all = { limit: 10, offset: 0 };
      expect(await ids({ ...all, actor: 'bo' })).toEqual({ at: [3], total: 1 });
      expect(await ids({ ...all, actor: 'u-ana' })).toEqual({ at: [4, 2, 1], total: 3 });
      expect(await ids({ ...all, action: 'device.' })).toEqual({ at: [2, 1], total: 2 });
      expect(await ids({ ...all, action: 'device.suspend' })).toEqual({ at: [2], total: 1 });
      expect(await ids({ ...all, action: 'device' })).toEqual({ at: [], total: 0 });
      expect(await ids({ ...all, target: 'd-1' })).toEqual({ at: [3, 2, 1], total: 3 });
      expect(await ids({ ...all, target: 'device:d-1' })).toEqual({ at: [2, 1], total: 2 });
      expect(await ids({ ...all, from: T + 2, to: T + 4 })).toEqual({ at: [3, 2], total: 2 });
      expect(await ids({ limit: 1, offset: 0, actor: 'ana', from: T + 1 })).toEqual({ at: [4], total: 3 });
    });

    it('text a client chose with a NUL is kept with it shown as ␀, also in details; a filter with one finds it', async () => {
      const { store } = await engine.open();
      await store.append(row(1, { targetId: 'd-\u0000x', details: JSON.stringify({ serial: 'CP-\u0000' }) }));
      const [e] = (await store.query({ limit: 1, offset: 0, target: 'd-\u0000x' })).items;
      expect(e).toMatchObject({ targetId: 'd-␀x' });
      expect(e!.details).toEqual({ serial: 'CP-\u0000' });
    });

    it('is append-only: the database refuses to change or delete an entry', async () => {
      const { store, change } = await engine.open();
      await store.append(row(1));
      expect((await fails(() => change(`UPDATE audit_log SET actor = 'mallory'`))).message).toMatch(/append-only/);
      expect((await fails(() => change('DELETE FROM audit_log'))).message).toMatch(/append-only/);
      expect((await store.query({ limit: 10, offset: 0 })).items).toEqual([expect.objectContaining({ actor: 'ana' })]);
    });
  });
}

describe('audit store, PostgreSQL only: several nodes', () => {
  it('TRUNCATE is refused too', async () => {
    const { pool } = await env.pgs().fresh('audit_truncate', 2);
    await createPgAuditStore(pool).append(row(1));
    await expect(pool.query('TRUNCATE audit_log')).rejects.toThrow(/append-only/);
    expect((await pool.query('SELECT count(*)::int AS n FROM audit_log')).rows[0].n).toBe(1);
  });

  it('two nodes appending 200 entries each at once: all 400 kept, each node\'s in its order', async () => {
    const { pool, url } = await env.pgs().fresh('audit_nodes', 4);
    const [a, b] = [createPgAuditStore(pool), createPgAuditStore(env.pgs().track(new pg.Pool({ connectionString: url, max: 4 })))];
    await Promise.all([a, b].map(async (s, n) => {
      for (let i = 0; i < 200; i++) await s.append(row(i, { actorId: `node-${n}` }));
    }));
    for (const n of [0, 1]) {
      const r = await a.query({ limit: 500, offset: 0, actor: `node-${n}` });
      expect(r.total).toBe(200);
      expect(r.items.map((e) => e.at - T)).toEqual(Array.from({ length: 200 }, (_, i) => 199 - i));
    }
  });
});
