// The audit log in PostgreSQL (node-postgres through drizzle): cluster mode's shared store, where the actions of
// every node land in one log. The contract is core/audit-store.ts's. Newest first is by id (a sequence): across nodes
// that is the order the entries were appended in, within a few milliseconds of commit order.
import type pg from 'pg';
import { and, count, desc, eq, gte, lt, or, sql, type SQL } from 'drizzle-orm';
import { pgAuditLog } from './pg-schema.js';
import { onPool, type PgExecutor, type Transactional } from './pg-bind.js';
import { auditConditions, storedAuditRow, type AuditStore } from './audit-store.js';

export type PgAuditStore = Transactional<AuditStore<'async'>>;

function bound(t: PgExecutor): AuditStore<'async'> {
  return {
    mode: 'async',
    async append(row) {
      const r = storedAuditRow(row);
      // the details as the JSON text they are (a value given to a json column would be serialised again)
      await t.insert(pgAuditLog).values({ ...r, details: sql`${r.details}::json` });
    },
    async query(q) {
      const c = auditConditions(q);
      const where: SQL[] = [];
      if (c.actor !== undefined) where.push(or(eq(pgAuditLog.actor, c.actor), eq(pgAuditLog.actorId, c.actor))!);
      if (c.action?.prefix !== undefined) where.push(sql`substr(${pgAuditLog.action}, 1, ${c.action.prefix.length}) = ${c.action.prefix}`);
      if (c.action?.exact !== undefined) where.push(eq(pgAuditLog.action, c.action.exact));
      if (c.target?.type !== undefined) where.push(eq(pgAuditLog.targetType, c.target.type));
      if (c.target) where.push(eq(pgAuditLog.targetId, c.target.id));
      if (c.from !== undefined) where.push(gte(pgAuditLog.at, c.from));
      if (c.to !== undefined) where.push(lt(pgAuditLog.at, c.to));
      const w = where.length ? and(...where) : undefined;
      const [items, [total]] = await Promise.all([
        t.select().from(pgAuditLog).where(w).orderBy(desc(pgAuditLog.id)).limit(q.limit).offset(q.offset),
        t.select({ n: count() }).from(pgAuditLog).where(w),
      ]);
      return { items, total: total!.n };
    },
  };
}

export function createPgAuditStore(pool: pg.Pool): PgAuditStore {
  return onPool(pool, bound);
}
