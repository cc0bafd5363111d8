// One contract, two engines: the KPIs' reads (response/kpi-store.ts) on a real SQLite file with the committed
// migrations and on a real PostgreSQL 15 (Debian's, started by this file on a private port and data directory, with
// drizzle-pg/'s migrations). The same incidents and escalations are written to both by the same SQL; each engine's
// store must read the same rows back, and the report built on them (response/kpis.ts) must be the same, exactly.
import { describe, expect, it } from 'vitest';
import { createSqliteKpiStore, type KpiScope, type KpiStore } from '../../response/kpi-store.js';
import { createPgKpiStore } from '../../response/kpi-store-pg.js';
import { computeKpis, computeKpisAsync, type KpiReport } from '../../response/kpis.js';
import { loadConfig } from '../../core/config.js';
import type { StoreMode } from '../../response/store/types.js';
import { useStoreEngines } from '../helpers/postgres.js';

// band 14: no other test file's (grep `band:` and `BAND =` under test/)
const BAND = 14;
const env = useStoreEngines({ name: 'kpi-store', band: BAND });

const H = 3_600_000;
const T = Date.UTC(2026, 10, 2, 0, 0); // the period: one day from T
const UNITS = ['g1', 'g2']; // the network's units; 'g-gone' was deleted

type Seed = { id: string; unit: string | null; prio: 'P1' | 'P2' | 'P3'; status: string; test?: boolean; at: number; stamps: Record<string, number>; escalated?: number[] };
const SEED: Seed[] = [
  { id: 'a', unit: 'g1', prio: 'P1', status: 'resolved', at: T + 1 * H, stamps: { received: T + H, acknowledged: T + H + 30_000, onSite: T + H + 600_000, resolved: T + 2 * H } },
  { id: 'b', unit: 'g1', prio: 'P1', status: 'acknowledged', at: T + 9 * H, stamps: { acknowledged: T + 9 * H + 120_000 }, escalated: [T + 9 * H + 60_000, T + 9 * H + 90_000] },
  { id: 'c', unit: 'g2', prio: 'P2', status: 'open', at: T + 10 * H, stamps: {}, escalated: [T + 10 * H + 600_000] },
  { id: 'd', unit: null, prio: 'P1', status: 'cancelled', at: T + 21 * H, stamps: { cancelled: T + 21 * H + 20_000 } },
  { id: 'e', unit: 'g-gone', prio: 'P1', status: 'resolved', at: T + 22 * H, stamps: { acknowledged: T + 22 * H + 250_000, resolved: T + 23 * H } },
  // not counted: a test incident, and openings outside [T, T + 24 h) (one exactly at its end)
  { id: 't', unit: 'g1', prio: 'P1', status: 'open', test: true, at: T + 2 * H, stamps: {}, escalated: [T + 2 * H + 60_000] },
  { id: 'before', unit: 'g1', prio: 'P1', status: 'open', at: T - 1, stamps: {}, escalated: [T + 5 * H] },
  { id: 'end', unit: 'g1', prio: 'P1', status: 'open', at: T + 24 * H, stamps: {} },
];

/** the same statements for both engines */
function seedSql(): string[] {
  let seq = 0;
  const out: string[] = [];
  for (const s of SEED) {
    out.push(`INSERT INTO incidents (id, device_id, unit_id, type, priority, status, test, opened_at, last_at, last_seq, stamps)
      VALUES ('${s.id}', 'dev-${s.id}', ${s.unit ? `'${s.unit}'` : 'NULL'}, 'sos', '${s.prio}', '${s.status}', ${s.test ? 'TRUE' : 'FALSE'}, ${s.at}, ${s.at}, 1, '${JSON.stringify(s.stamps)}')`);
    out.push(`INSERT INTO incident_events (seq, incident_id, type, at, unit_id, data) VALUES (${++seq}, '${s.id}', 'opened', ${s.at}, ${s.unit ? `'${s.unit}'` : 'NULL'}, '{}')`);
    for (const at of s.escalated ?? []) {
      out.push(`INSERT INTO incident_events (seq, incident_id, type, at, unit_id, data) VALUES (${++seq}, '${s.id}', 'escalated', ${at}, ${s.unit ? `'${s.unit}'` : 'NULL'}, '{"level":1}')`);
    }
  }
  return out;
}

const budgets = loadConfig({}).budgets;
const SCOPES: [string, KpiScope][] = [
  ['everything', {}],
  ['P1 only', { priority: ['P1'] }],
  ['unit g1', { unitIds: ['g1'] }],
  ['unit g1 and the unplaced (no unit, a unit gone)', { unitIds: ['g1'], includeUnplaced: true }],
  ['no unit at all, with the unplaced', { unitIds: [], includeUnplaced: true }],
  ['no unit at all', { unitIds: [] }],
];

interface Engine { name: string; open(): Promise<{ store: KpiStore<StoreMode>; report(scope: KpiScope): Promise<KpiReport> }> }
const engines: Engine[] = [
  {
    name: 'SQLite',
    async open() {
      const db = env.sqlite().sqlite;
      db.exec('DELETE FROM incident_events; DELETE FROM incidents; DELETE FROM units');
      for (const u of UNITS) db.exec(`INSERT INTO units (id, name, tier, created_at) VALUES ('${u}', '${u}', 'grid', ${T})`);
      for (const q of seedSql()) db.exec(q);
      const store = createSqliteKpiStore(db);
      return { store, report: async (scope) => computeKpis(store, budgets, { from: T, to: T + 24 * H, now: T + 30 * H, ...scope }) };
    },
  },
  {
    name: 'PostgreSQL',
    async open() {
      const { pool } = await env.pgs().fresh('kpis', 2);
      for (const q of seedSql()) await pool.query(q);
      const store = createPgKpiStore({ pool, knownUnitIds: () => UNITS });
      return { store, report: (scope) => computeKpisAsync(store, budgets, { from: T, to: T + 24 * H, now: T + 30 * H, ...scope }) };
    },
  },
];

const reports = new Map<string, Map<string, KpiReport>>();

for (const engine of engines) {
  describe(`KPI store contract: ${engine.name}`, () => {
    it('reads the incidents opened in [from, to) and the escalations written in it, not tests, within each scope', async () => {
      const { store } = await engine.open();
      const ids = async (scope: KpiScope) => (await store.opened(T, T + 24 * H, scope)).map((r) => r.openedAt).sort((x, y) => x - y)
        .map((at) => SEED.find((s) => s.at === at && !s.test)!.id);
      expect(await ids({})).toEqual(['a', 'b', 'c', 'd', 'e']);
      expect(await ids({ priority: ['P1'] })).toEqual(['a', 'b', 'd', 'e']);
      expect(await ids({ priority: ['P2', 'P3'] })).toEqual(['c']);
      expect(await ids({ unitIds: ['g1'] })).toEqual(['a', 'b']);
      expect(await ids({ unitIds: ['g1'], includeUnplaced: true })).toEqual(['a', 'b', 'd', 'e']);
      expect(await ids({ unitIds: [], includeUnplaced: true })).toEqual(['d', 'e']);
      expect(await ids({ unitIds: [] })).toEqual([]);
      // a row as stored: its stamps as an object
      const [a] = await store.opened(T + H, T + H + 1, {});
      expect(a).toEqual({ priority: 'P1', status: 'resolved', openedAt: T + H, stamps: SEED[0]!.stamps });
      // escalations by when they were written (the one of an incident opened before the period counts: it is in it)
      expect([...await store.breaches(T, T + 24 * H, {})].sort()).toEqual([T + 5 * H, T + 9 * H + 60_000, T + 9 * H + 90_000, T + 10 * H + 600_000]);
      expect([...await store.breaches(T, T + 24 * H, { priority: ['P2'] })]).toEqual([T + 10 * H + 600_000]);
      expect([...await store.breaches(T, T + 24 * H, { unitIds: ['g2'] })]).toEqual([T + 10 * H + 600_000]);
      expect([...await store.breaches(T + 9 * H + 60_001, T + 10 * H, {})]).toEqual([T + 9 * H + 90_000]);
    });

    it('the report on them', async () => {
      const { report } = await engine.open();
      const mine = new Map<string, KpiReport>();
      for (const [name, scope] of SCOPES) mine.set(name, await report(scope));
      reports.set(engine.name, mine);
      const all = mine.get('everything')!;
      expect(all.total).toMatchObject({ incidents: 5, acknowledged: 3, breaches: 4 });
      // a acked in 30 s, b in 120 s, e in 250 s; c never (still waiting at `now`), d cancelled in 20 s (needed no answer)
      expect(all.total.ackWithin60s).toEqual({ count: 1, eligible: 4, share: 0.25 });
      expect(all.total.ackWithin180s).toEqual({ count: 2, eligible: 4, share: 0.5 });
      expect(all.shifts.length).toBeGreaterThanOrEqual(2);
    });
  });
}

describe('KPI store contract: both engines', () => {
  it('give the same report for every scope, to the millisecond', () => {
    const [sqlite, pgs] = [reports.get('SQLite'), reports.get('PostgreSQL')];
    expect(sqlite && pgs, 'both engines\' reports (the tests above)').toBeTruthy();
    for (const [name] of SCOPES) expect(pgs!.get(name), name).toEqual(sqlite!.get(name));
  });
});
