// The KPIs' reads (response/kpis.ts) behind one narrow interface: the incidents opened in a period and the escalation
// steps written in it, both within a scope. A SQLite implementation (here: the one-node default, synchronous) and a
// PostgreSQL one (kpi-store-pg.ts: cluster mode); one contract for both (test/cluster/kpi-store-contract.test.ts):
// - test incidents never count;
// - a period is [from, to): an incident by its opening, an escalation by when it was written;
// - the scope: `priority` (any of them), `unitIds` (incidents of these units; an escalation by its incident's unit),
//   `includeUnplaced` (also incidents of no unit or of a unit no longer in the network).
import type { Database } from 'better-sqlite3';
import type { Priority } from '../core/contracts.js';
import type { Ret, StoreMode } from './store/types.js';

export interface KpiScope {
  priority?: readonly Priority[] | undefined;
  /** only incidents of these units (a scoped user's subtree); undefined: all */
  unitIds?: readonly string[] | undefined;
  /** with `unitIds`: also incidents of no unit, or of a unit that is gone */
  includeUnplaced?: boolean | undefined;
}

/** An incident as the KPIs read it. */
export interface KpiIncident {
  priority: Priority;
  status: string;
  openedAt: number;
  stamps: Record<string, number>;
}

export interface KpiStore<M extends StoreMode> {
  readonly mode: M;
  /** the incidents (not test) opened in [from, to) within the scope */
  opened(from: number, to: number, scope: KpiScope): Ret<M, KpiIncident[]>;
  /** when each escalation step (`escalated` event) of an incident (not test) within the scope was written, in [from, to) */
  breaches(from: number, to: number, scope: KpiScope): Ret<M, number[]>;
}

export function createSqliteKpiStore(sqlite: Database): KpiStore<'sync'> {
  /** the scope's conditions on an incidents table aliased `i`, with their arguments */
  const scoped = (scope: KpiScope): { where: string[]; args: unknown[] } => {
    const where: string[] = ['i.test = 0'];
    const args: unknown[] = [];
    if (scope.priority?.length) {
      where.push('i.priority IN (SELECT value FROM json_each(?))');
      args.push(JSON.stringify(scope.priority));
    }
    if (scope.unitIds) {
      where.push(`(i.unit_id IN (SELECT value FROM json_each(?))${scope.includeUnplaced ? ' OR i.unit_id IS NULL OR i.unit_id NOT IN (SELECT id FROM units)' : ''})`);
      args.push(JSON.stringify(scope.unitIds));
    }
    return { where, args };
  };
  return {
    mode: 'sync',
    opened(from, to, scope) {
      const { where, args } = scoped(scope);
      const rows = sqlite
        .prepare(`SELECT i.priority, i.status, i.opened_at, i.stamps FROM incidents i WHERE i.opened_at >= ? AND i.opened_at < ? AND ${where.join(' AND ')}`)
        .all(from, to, ...args) as { priority: Priority; status: string; opened_at: number; stamps: string }[];
      return rows.map((r) => ({ priority: r.priority, status: r.status, openedAt: r.opened_at, stamps: JSON.parse(r.stamps) as Record<string, number> }));
    },
    breaches(from, to, scope) {
      const { where, args } = scoped(scope);
      return (sqlite
        .prepare(`SELECT e.at AS at FROM incident_events e JOIN incidents i ON i.id = e.incident_id WHERE e.type = 'escalated' AND e.at >= ? AND e.at < ? AND ${where.join(' AND ')}`)
        .all(from, to, ...args) as { at: number }[]).map((r) => r.at);
    },
  };
}
