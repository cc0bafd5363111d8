// The audit log's storage (core/audit.ts keeps what an entry may hold: no secrets, bounded details), behind one
// narrow interface with a SQLite implementation (here: the one-node default, synchronous) and a PostgreSQL one
// (audit-store-pg.ts: cluster mode, where the actions of every node land in one log). One contract for both
// (test/cluster/audit-store-contract.test.ts):
// - append-only: the database itself refuses to change or delete an entry (triggers in both);
// - an entry reads back as written, details with their keys in their order; text a client chose (a target id from a
//   URL) is kept with a NUL shown as ␀ (core/stored-text.ts), so neither engine refuses an entry the other keeps;
// - a query filters by actor (username or id), action (exact, or a prefix ending in '.'), target (id, or type:id) and
//   period [from, to), newest first (by the order appended), with the total of what matches.
import type Database from 'better-sqlite3';
import type { Ret, StoreMode } from '../response/store/types.js';
import { storedText } from './stored-text.js';

/** An entry to append: details already scrubbed and serialised by core/audit.ts. */
export interface AuditRow {
  at: number;
  actorId: string;
  actor: string;
  role: string | null;
  ip: string | null;
  action: string;
  targetType: string;
  targetId: string;
  /** JSON text of an object */
  details: string;
}

export interface AuditEntry extends Omit<AuditRow, 'details'> {
  id: number;
  details: Record<string, unknown>;
}

export interface AuditFilter {
  actor?: string | undefined;
  /** exact, or a prefix ending in '.': "device." matches every device action */
  action?: string | undefined;
  /** a target id, or "type:id" */
  target?: string | undefined;
  from?: number | undefined;
  to?: number | undefined;
  limit: number;
  offset: number;
}

export interface AuditStore<M extends StoreMode> {
  readonly mode: M;
  append(row: AuditRow): Ret<M, void>;
  query(q: AuditFilter): Ret<M, { items: AuditEntry[]; total: number }>;
}

/** the row as both engines store it: text a client chose with a NUL shown as ␀ */
export function storedAuditRow(r: AuditRow): AuditRow {
  return {
    ...r, actorId: storedText(r.actorId), actor: storedText(r.actor), role: storedText(r.role), ip: storedText(r.ip),
    action: storedText(r.action), targetType: storedText(r.targetType), targetId: storedText(r.targetId),
    // (details are JSON text: a NUL in them is the escape \u0000, which both engines keep as written)
  };
}

/** The filter's parts, engine-neutral: each condition with its values in order. */
export function auditConditions(q: AuditFilter): { actor?: string; action?: { exact?: string; prefix?: string }; target?: { type?: string; id: string }; from?: number; to?: number } {
  const out: ReturnType<typeof auditConditions> = {};
  if (q.actor) out.actor = storedText(q.actor);
  if (q.action) out.action = q.action.endsWith('.') ? { prefix: storedText(q.action) } : { exact: storedText(q.action) };
  if (q.target) {
    const i = q.target.indexOf(':');
    out.target = i > 0 ? { type: storedText(q.target.slice(0, i)), id: storedText(q.target.slice(i + 1)) } : { id: storedText(q.target) };
  }
  if (q.from !== undefined) out.from = q.from;
  if (q.to !== undefined) out.to = q.to;
  return out;
}

export function createSqliteAuditStore(sqlite: Database.Database): AuditStore<'sync'> {
  const insert = sqlite.prepare<[number, string, string, string | null, string | null, string, string, string, string]>(
    `INSERT INTO audit_log (at, actor_id, actor, role, ip, action, target_type, target_id, details) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  return {
    mode: 'sync',
    append(row) {
      const r = storedAuditRow(row);
      insert.run(r.at, r.actorId, r.actor, r.role, r.ip, r.action, r.targetType, r.targetId, r.details);
    },
    query(q) {
      const c = auditConditions(q);
      const where: string[] = [];
      const args: (string | number)[] = [];
      if (c.actor !== undefined) { where.push('(actor = ? OR actor_id = ?)'); args.push(c.actor, c.actor); }
      if (c.action?.prefix !== undefined) { where.push('substr(action, 1, ?) = ?'); args.push(c.action.prefix.length, c.action.prefix); }
      if (c.action?.exact !== undefined) { where.push('action = ?'); args.push(c.action.exact); }
      if (c.target?.type !== undefined) { where.push('target_type = ?'); args.push(c.target.type); }
      if (c.target) { where.push('target_id = ?'); args.push(c.target.id); }
      if (c.from !== undefined) { where.push('at >= ?'); args.push(c.from); }
      if (c.to !== undefined) { where.push('at < ?'); args.push(c.to); }
      const w = where.length ? `WHERE ${where.join(' AND ')}` : '';
      const rows = sqlite.prepare(
        `SELECT id, at, actor_id AS actorId, actor, role, ip, action, target_type AS targetType, target_id AS targetId, details
           FROM audit_log ${w} ORDER BY id DESC LIMIT ? OFFSET ?`,
      ).all(...args, q.limit, q.offset) as (Omit<AuditEntry, 'details'> & { details: string })[];
      const total = (sqlite.prepare(`SELECT count(*) AS n FROM audit_log ${w}`).get(...args) as { n: number }).n;
      return { items: rows.map((r) => ({ ...r, details: JSON.parse(r.details) as Record<string, unknown> })), total };
    },
  };
}
