// The audit log's one way in and its query. Append-only: there is no update or delete here, and the database refuses
// both (triggers in migration 0003). Entries never carry secrets: keys that look like one are dropped before writing.
//
//   audit.record({ actor: auditActor(req), action: 'user.disable', target: { type: 'user', id }, details: { reason } })
//
import { writeWhenFree } from './db.js';
import type { Logger } from './logger.js';
import type Database from 'better-sqlite3';

/** Who did it: a user as the HTTP layer saw them, or the gateway itself. */
export interface AuditActor {
  id: string;
  username: string;
  role?: string | null;
  ip?: string | null;
}

export const SYSTEM_ACTOR: AuditActor = { id: 'system', username: 'system', role: null, ip: null };

export interface AuditInput {
  actor: AuditActor;
  /** dotted verb: device.provision, device.import, device.account, device.suspend, incident.acknowledge, user.create … */
  action: string;
  target: { type: string; id: string };
  details?: Record<string, unknown>;
  /** defaults to now */
  at?: number;
}

export interface AuditEntry {
  id: number;
  at: number;
  actorId: string;
  actor: string;
  role: string | null;
  ip: string | null;
  action: string;
  targetType: string;
  targetId: string;
  details: Record<string, unknown>;
}

export interface AuditQuery {
  actor?: string;
  /** exact, or a prefix ending in '.': "device." matches every device action */
  action?: string;
  /** a target id, or "type:id" */
  target?: string;
  from?: number;
  to?: number;
  limit: number;
  offset: number;
}

/** The actor of an HTTP request (structural: no Fastify import here). */
export function auditActor(req: { user?: { id: string; username: string; role?: string } | null; ip?: string }): AuditActor {
  return { id: req.user?.id ?? 'anonymous', username: req.user?.username ?? 'anonymous', role: req.user?.role ?? null, ip: req.ip ?? null };
}

const SECRET_KEY = /secret|password|passwd|token|hash|key$|^key|credential|authorization/i;
const MAX_DETAILS_BYTES = 8192;

/** A copy without secret-looking keys, bounded in depth and size. */
export function scrub(value: unknown, depth = 0): unknown {
  if (value === null || typeof value !== 'object') return typeof value === 'string' && value.length > 1000 ? value.slice(0, 1000) + '…' : value;
  if (depth > 4) return '[nested]';
  if (Array.isArray(value)) return value.slice(0, 50).map((v) => scrub(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if (SECRET_KEY.test(k)) continue;
    out[k] = scrub(v, depth + 1);
  }
  return out;
}

export class Audit {
  private readonly insert: Database.Statement;
  private readonly sqlite: Database.Database;

  constructor(sqlite: Database.Database) {
    this.sqlite = sqlite;
    this.insert = sqlite.prepare(
      `INSERT INTO audit_log (at, actor_id, actor, role, ip, action, target_type, target_id, details) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
  }

  /**
   * Append one entry. Synchronous, one short row: call it right after the action succeeded (inside the action's
   * transaction when there is one, so that an action and its entry commit together).
   */
  record(e: AuditInput): void {
    let details = JSON.stringify(scrub(e.details ?? {}));
    if (details.length > MAX_DETAILS_BYTES) details = JSON.stringify({ truncated: true, bytes: details.length });
    this.insert.run(e.at ?? Date.now(), e.actor.id, e.actor.username, e.actor.role ?? null, e.actor.ip ?? null, e.action, e.target.type, e.target.id, details);
  }

  /**
   * Append the entry of an action already committed (by the writer thread, or by the main thread before this), in a
   * transaction of its own taken without holding the event loop while another connection has the lock (core/db.ts
   * writeWhenFree). Dated now, not when the lock came. Never throws: the action is done, and the person is not told
   * otherwise; an entry that cannot be written goes to the log whole.
   */
  async append(entry: AuditInput, log: Pick<Logger, 'error'>): Promise<void> {
    const e = { ...entry, at: entry.at ?? Date.now() };
    try {
      await writeWhenFree(this.sqlite, () => this.record(e));
    } catch (err) {
      log.error({ err, audit: { ...e, details: scrub(e.details ?? {}) } }, 'the audit entry of an action already recorded could not be written: it is here instead');
    }
  }

  query(q: AuditQuery): { items: AuditEntry[]; total: number } {
    const where: string[] = [];
    const args: (string | number)[] = [];
    if (q.actor) { where.push('(actor = ? OR actor_id = ?)'); args.push(q.actor, q.actor); }
    if (q.action) {
      if (q.action.endsWith('.')) { where.push('substr(action, 1, ?) = ?'); args.push(q.action.length, q.action); }
      else { where.push('action = ?'); args.push(q.action); }
    }
    if (q.target) {
      const i = q.target.indexOf(':');
      if (i > 0) { where.push('target_type = ? AND target_id = ?'); args.push(q.target.slice(0, i), q.target.slice(i + 1)); }
      else { where.push('target_id = ?'); args.push(q.target); }
    }
    if (q.from !== undefined) { where.push('at >= ?'); args.push(q.from); }
    if (q.to !== undefined) { where.push('at < ?'); args.push(q.to); }
    const w = where.length ? `WHERE ${where.join(' AND ')}` : '';
    const rows = this.sqlite.prepare(
      `SELECT id, at, actor_id AS actorId, actor, role, ip, action, target_type AS targetType, target_id AS targetId, details
         FROM audit_log ${w} ORDER BY id DESC LIMIT ? OFFSET ?`,
    ).all(...args, q.limit, q.offset) as (Omit<AuditEntry, 'details'> & { details: string })[];
    const total = (this.sqlite.prepare(`SELECT count(*) AS n FROM audit_log ${w}`).get(...args) as { n: number }).n;
    return { items: rows.map((r) => ({ ...r, details: JSON.parse(r.details) as Record<string, unknown> })), total };
  }

  /** Every entry about one target, oldest first (an incident's export). */
  forTarget(type: string, id: string, limit = 1000): AuditEntry[] {
    return this.query({ target: `${type}:${id}`, limit, offset: 0 }).items.reverse();
  }
}
