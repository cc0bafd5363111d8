// The KPIs' reads in PostgreSQL (node-postgres through drizzle): cluster mode's shared store. The contract is
// response/kpi-store.ts's. The network's units are not in PostgreSQL yet: "a unit that is gone" is judged against
// the units the node knows (`knownUnitIds`), as the incident store's scopes are (response/store/pg.ts).
import type pg from 'pg';
import { drizzle } from 'drizzle-orm/node-postgres';
import { and, eq, gte, inArray, isNull, lt, notInArray, or, type SQL } from 'drizzle-orm';
import { pgIncidentEvents, pgIncidents } from './store/pg-schema.js';
import type { KpiScope, KpiStore } from './kpi-store.js';

export function createPgKpiStore(opts: { pool: pg.Pool; knownUnitIds: () => readonly string[] }): KpiStore<'async'> {
  const db = drizzle(opts.pool);
  const scoped = (scope: KpiScope): SQL[] => {
    const where: SQL[] = [eq(pgIncidents.test, false)];
    if (scope.priority?.length) where.push(inArray(pgIncidents.priority, [...scope.priority]));
    if (scope.unitIds) {
      const mine = inArray(pgIncidents.unitId, [...scope.unitIds]);
      where.push(scope.includeUnplaced ? or(mine, isNull(pgIncidents.unitId), notInArray(pgIncidents.unitId, [...opts.knownUnitIds()]))! : mine);
    }
    return where;
  };
  return {
    mode: 'async',
    async opened(from, to, scope) {
      return db.select({ priority: pgIncidents.priority, status: pgIncidents.status, openedAt: pgIncidents.openedAt, stamps: pgIncidents.stamps })
        .from(pgIncidents)
        .where(and(gte(pgIncidents.openedAt, from), lt(pgIncidents.openedAt, to), ...scoped(scope)));
    },
    async breaches(from, to, scope) {
      const rows = await db.select({ at: pgIncidentEvents.at }).from(pgIncidentEvents)
        .innerJoin(pgIncidents, eq(pgIncidents.id, pgIncidentEvents.incidentId))
        .where(and(eq(pgIncidentEvents.type, 'escalated'), gte(pgIncidentEvents.at, from), lt(pgIncidentEvents.at, to), ...scoped(scope)));
      return rows.map((r) => r.at);
    },
  };
}
