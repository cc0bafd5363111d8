// The audit log's one way in and its query. Append-only: there is no update or delete here, and the database refuses
// both (triggers in migration 0003). Entries never carry secrets: keys that look like one are dropped before writing.
//
//   audit.record({ actor: auditActor(req), action: 'user.disable', target: { type: 'user', id }, details: { reason } })
//
import { writeWhenFree } from './db.js';
import type { Logger } from './logger.js';
import type Database from 'better-sqlite3';
import { createSqliteAuditStore, type AuditEntry, type AuditFilter, type AuditRow, type AuditStore } from './audit-store.js';

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

export type { AuditEntry } from './audit-store.js';
/** what the API filters the log by (core/audit-store.ts) */
export type AuditQuery = AuditFilter;

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

/** entries waiting for the shared store at most (beyond: written to the log whole, as a failed write is) */
const MAX_IN_FLIGHT = 10_000;

export class Audit {
  /** where the entries are kept (core/audit-store.ts) */
  private readonly store: AuditStore<'sync'>;
  private readonly sqlite: Database.Database;
  /** cluster mode on PostgreSQL: every node's entries in one log (core/audit-store-pg.ts), read by any admin on any node */
  private readonly shared: AuditStore<'async'> | null;
  private readonly log: Pick<Logger, 'error'> | null;
  private inFlight = 0;

  constructor(sqlite: Database.Database, shared?: { store: AuditStore<'async'>; log: Pick<Logger, 'error'> }) {
    this.sqlite = sqlite;
    this.store = createSqliteAuditStore(sqlite);
    this.shared = shared?.store ?? null;
    this.log = shared?.log ?? null;
  }

  private row(e: AuditInput): AuditRow {
    let details = JSON.stringify(scrub(e.details ?? {}));
    if (details.length > MAX_DETAILS_BYTES) details = JSON.stringify({ truncated: true, bytes: details.length });
    return {
      at: e.at ?? Date.now(), actorId: e.actor.id, actor: e.actor.username, role: e.actor.role ?? null, ip: e.actor.ip ?? null,
      action: e.action, targetType: e.target.type, targetId: e.target.id, details,
    };
  }

  /** into the shared store; an entry it cannot take goes to the log whole (the action is done, the person not told otherwise) */
  private async toShared(row: AuditRow, log: Pick<Logger, 'error'>): Promise<void> {
    if (this.inFlight >= MAX_IN_FLIGHT) {
      log.error({ audit: row }, 'too many audit entries wait for the shared store: this one is here instead');
      return;
    }
    this.inFlight++;
    try {
      await this.shared!.append(row);
    } catch (err) {
      log.error({ err, audit: row }, 'the audit entry of an action already recorded could not be written to the shared store: it is here instead');
    } finally {
      this.inFlight--;
    }
  }

  /**
   * Append one entry. Synchronous, one short row: call it right after the action succeeded (inside the action's
   * transaction when there is one, so that an action and its entry commit together). In cluster mode on PostgreSQL
   * the entry goes to the shared store on its own, just after.
   */
  record(e: AuditInput): void {
    const row = this.row(e);
    if (this.shared) {
      void this.toShared(row, this.log!);
      return;
    }
    this.store.append(row);
  }

  /**
   * Append the entry of an action already committed (by the writer thread, or by the main thread before this), in a
   * transaction of its own taken without holding the event loop while another connection has the lock (core/db.ts
   * writeWhenFree). Dated now, not when the lock came. Never throws: the action is done, and the person is not told
   * otherwise; an entry that cannot be written goes to the log whole.
   */
  async append(entry: AuditInput, log: Pick<Logger, 'error'>): Promise<void> {
    const e = { ...entry, at: entry.at ?? Date.now() };
    if (this.shared) return this.toShared(this.row(e), log);
    try {
      await writeWhenFree(this.sqlite, () => this.record(e));
    } catch (err) {
      log.error({ err, audit: { ...e, details: scrub(e.details ?? {}) } }, 'the audit entry of an action already recorded could not be written: it is here instead');
    }
  }

  query(q: AuditQuery): { items: AuditEntry[]; total: number } | Promise<{ items: AuditEntry[]; total: number }> {
    return this.shared ? this.shared.query(q) : this.store.query(q);
  }

  /** Every entry about one target, oldest first (an incident's export). */
  async forTarget(type: string, id: string, limit = 1000): Promise<AuditEntry[]> {
    return (await this.query({ target: `${type}:${id}`, limit, offset: 0 })).items.reverse();
  }
}
