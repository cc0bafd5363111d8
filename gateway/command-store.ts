// The command area's storage, behind one narrow interface: the commands to devices (gateway/commands.ts) from the
// moment they are stored to the device's answer or their expiry. Two implementations keep the same contract
// (test/cluster/command-store-contract.test.ts runs one suite against both), as the other areas do:
// - SQLite (below): the one-node default, synchronous;
// - PostgreSQL (gateway/command-store-pg.ts): cluster mode's shared store, asynchronous.
// State moves one way: pending → sent → acked | failed, or pending | sent → expired; an answer or an expiry never
// moves a command that has already ended. An answer's error is the device's text (through storedText); `params` are
// given back as they were written, keys in their order.
import type Database from 'better-sqlite3';
import type { Ret, StoreMode } from '../response/store/types.js';
import { storedText } from '../core/stored-text.js';

export type CommandStatus = 'pending' | 'sent' | 'acked' | 'failed' | 'expired';

export interface CommandRow {
  id: string;
  deviceId: string;
  type: string;
  params: Record<string, unknown>;
  incidentId: string | null;
  status: CommandStatus;
  attempts: number;
  createdAt: number;
  sentAt: number | null;
  ackedAt: number | null;
  expiresAt: number;
  error: string | null;
}

export interface NewCommand {
  id: string;
  deviceId: string;
  type: string;
  params: Record<string, unknown>;
  incidentId: string | null;
  createdAt: number;
  expiresAt: number;
}

export interface CommandStore<M extends StoreMode> {
  readonly mode: M;
  /** store a pending command; `once`: a command of this id stored already is left as it is (no error) */
  insert(c: NewCommand, once: boolean): Ret<M, void>;
  get(id: string): Ret<M, CommandRow | undefined>;
  /** the device's newest commands first */
  list(deviceId: string, limit: number): Ret<M, CommandRow[]>;
  /** what is still to go to the device (pending or sent, not expired at `now`), in the order stored */
  pendingFor(deviceId: string, now: number): Ret<M, CommandRow[]>;
  /** one more attempt handed to the broker at `at` (a pending one becomes sent); how many rows moved (0 or 1) */
  markSent(id: string, at: number): Ret<M, number>;
  /** the device's answer: acked or failed, if it is the device's command and still pending or sent; 0 or 1 */
  answer(deviceId: string, id: string, ok: boolean, at: number, error: string | null): Ret<M, number>;
  /** commands past their expiry at `now` that were still pending or sent become expired; how many */
  expire(now: number): Ret<M, number>;
}

function toRow(r: Record<string, unknown>): CommandRow {
  return {
    id: r.id as string,
    deviceId: r.device_id as string,
    type: r.type as string,
    params: JSON.parse((r.params as string) || '{}'),
    incidentId: (r.incident_id as string | null) ?? null,
    status: r.status as CommandStatus,
    attempts: r.attempts as number,
    createdAt: r.created_at as number,
    sentAt: (r.sent_at as number | null) ?? null,
    ackedAt: (r.acked_at as number | null) ?? null,
    expiresAt: r.expires_at as number,
    error: (r.error as string | null) ?? null,
  };
}

export function createSqliteCommandStore(sqlite: Database.Database): CommandStore<'sync'> {
  const columns = `(id, device_id, type, params, incident_id, status, attempts, created_at, expires_at)
    values (?, ?, ?, ?, ?, 'pending', 0, ?, ?)`;
  const insert = sqlite.prepare(`insert into commands ${columns}`);
  const insertOnce = sqlite.prepare(`insert or ignore into commands ${columns}`);
  const markSent = sqlite.prepare(`update commands set status = case when status = 'pending' then 'sent' else status end,
    attempts = attempts + 1, sent_at = ? where id = ?`);
  // rowid: the order stored, among commands stored in the same millisecond
  const pendingFor = sqlite.prepare(`select * from commands where device_id = ? and status in ('pending', 'sent') and expires_at > ?
    order by created_at, rowid`);
  const byId = sqlite.prepare('select * from commands where id = ?');
  const list = sqlite.prepare('select * from commands where device_id = ? order by created_at desc, rowid desc limit ?');
  const answer = sqlite.prepare(`update commands set status = ?, acked_at = ?, error = ? where id = ? and device_id = ? and status in ('pending', 'sent')`);
  const expire = sqlite.prepare(`update commands set status = 'expired' where status in ('pending', 'sent') and expires_at <= ?`);
  return {
    mode: 'sync',
    insert(c, once) {
      (once ? insertOnce : insert).run(c.id, c.deviceId, c.type, JSON.stringify(c.params), c.incidentId, c.createdAt, c.expiresAt);
    },
    get(id) {
      const row = byId.get(id) as Record<string, unknown> | undefined;
      return row && toRow(row);
    },
    list: (deviceId, limit) => (list.all(deviceId, limit) as Record<string, unknown>[]).map(toRow),
    pendingFor: (deviceId, now) => (pendingFor.all(deviceId, now) as Record<string, unknown>[]).map(toRow),
    markSent: (id, at) => markSent.run(at, id).changes,
    answer: (deviceId, id, ok, at, error) => answer.run(ok ? 'acked' : 'failed', at, storedText(error), id, deviceId).changes,
    expire: (now) => expire.run(now).changes,
  };
}
