// Commands to devices over MQTT `devices/{id}/commands` (QoS 1): stored first, sent when the device is connected,
// re-sent when it reconnects (aedes' own queue is in memory only), tracked until the device answers on
// `devices/{id}/commands/ack` or the command expires.
import { createHash } from 'node:crypto';
import type Database from 'better-sqlite3';
import type { Logger } from '../core/logger.js';
import { topics, type DeviceCommand, type DeviceCommandType, type IncidentEvent, type Observation } from '../core/contracts.js';
import { newId } from '../devices/credentials.js';
import { NotFoundError } from '../core/errors.js';
import { andThen, settle } from '../core/maybe.js';
import type { StoreMode } from '../response/store/types.js';
import { createSqliteCommandStore, type CommandRow, type CommandStore } from './command-store.js';
import type { IngestScope } from './ingest-scope.js';
import { io, type Step } from '../response/store/run.js';

export type { CommandRow } from './command-store.js';

export interface CommandTransport {
  isConnected(deviceId: string): boolean;
  publishToDevice(deviceId: string, topic: string, payload: object): Promise<void>;
}

const DEFAULT_TTL_MS = 24 * 3600_000;

export interface CreateOptions {
  incidentId?: string;
  ttlMs?: number;
  /** the command's id, for a command stored at most once (onceId) */
  id?: string;
}

/** A command id derived from what the command is for (`acknowledge-alarm:<incident>`): the same thing, the same id. */
export function onceId(what: string): string {
  return `c_${createHash('sha256').update(what).digest('base64url').slice(0, 12).replace(/[-_]/g, 'x')}`;
}

/**
 * Where the commands table is written. On the main thread: through the writer thread (gateway/writer/client.ts
 * `commandWritesVia`), so the event loop that serves the alarm path never waits for SQLite's write lock; each promise
 * settles once the write is durable. Without it (the writer thread itself, tests of this module): here, at once.
 */
export interface CommandWrites {
  create(deviceId: string, type: DeviceCommandType, params: Record<string, unknown>, opts: CreateOptions): Promise<CommandRow>;
  sent(commandId: string, at: number): Promise<unknown>;
  expire(now: number): Promise<number>;
}

export class Commands {
  private transport: CommandTransport | null = null;
  /**
   * the command area's store (gateway/command-store.ts): SQLite on this connection, or PostgreSQL (cluster mode's
   * shared store), whose reads and writes here return promises
   */
  private readonly rows: CommandStore<StoreMode>;
  private readonly log: Logger;
  /** incident events to append when an acknowledgement links to an incident (set by the incident service) */
  onAcked: ((cmd: CommandRow, at: number) => IncidentEvent[]) | null = null;

  constructor(source: Database.Database | CommandStore<StoreMode>, log: Logger, private readonly writes?: CommandWrites) {
    this.log = log.child({ module: 'commands' });
    this.rows = 'mode' in source ? source : createSqliteCommandStore(source);
  }

  attach(transport: CommandTransport): void {
    this.transport = transport;
  }

  /**
   * Store a command durably; resolves with it once stored (then `send` it). `id`: a command stored once however often
   * it is asked for (see `onceId`) — safe to ask again after "this may or may not have been recorded".
   */
  async create(deviceId: string, type: DeviceCommandType, params: Record<string, unknown> = {}, opts: CreateOptions = {}): Promise<CommandRow> {
    return this.writes ? this.writes.create(deviceId, type, params, opts) : this.insertNow(deviceId, type, params, opts);
  }

  /** the write itself, on this connection (the writer thread's, or a test's) */
  insertNow(deviceId: string, type: DeviceCommandType, params: Record<string, unknown>, opts: CreateOptions): CommandRow | Promise<CommandRow> {
    const now = Date.now();
    const id = opts.id ?? newId('c');
    const inserted = this.rows.insert({ id, deviceId, type, params, incidentId: opts.incidentId ?? null, createdAt: now, expiresAt: now + (opts.ttlMs ?? DEFAULT_TTL_MS) }, Boolean(opts.id));
    return inserted instanceof Promise ? inserted.then(() => this.get(id)) : this.get(id);
  }

  markSentNow(commandId: string, at: number): number | Promise<number> {
    return this.rows.markSent(commandId, at);
  }

  get(id: string): CommandRow | Promise<CommandRow> {
    return andThen(this.rows.get(id), (row) => {
      if (!row) throw new NotFoundError('command', id);
      return row;
    });
  }

  list(deviceId: string, limit = 50): CommandRow[] | Promise<CommandRow[]> {
    return this.rows.list(deviceId, limit);
  }

  /**
   * Send a stored command now if its device is connected (after the transaction that stored it committed).
   * Resolves false when it was not sent because the device is offline: it waits for the device to reconnect.
   */
  async send(id: string): Promise<boolean> {
    const cmd = await this.get(id);
    if (cmd.status !== 'pending' && cmd.status !== 'sent') return true;
    return this.publish(cmd);
  }

  /** A device (re)connected: everything still pending goes out again, in order. */
  resend(deviceId: string): void {
    settle(() => this.rows.pendingFor(deviceId, Date.now()), (rows) => { for (const row of rows) this.publish(row); },
      (err) => this.log.warn({ err, deviceId }, 'reading the commands still to send failed; they go when the device next connects'));
  }

  private publish(cmd: CommandRow): boolean {
    if (!this.transport?.isConnected(cmd.deviceId)) return false;
    const message: DeviceCommand = {
      id: cmd.id, type: cmd.type as DeviceCommandType, ts: Date.now(),
      ...(cmd.incidentId ? { incidentId: cmd.incidentId } : {}),
      ...(Object.keys(cmd.params).length ? { params: cmd.params } : {}),
    };
    this.transport.publishToDevice(cmd.deviceId, topics.commands(cmd.deviceId), message).then(
      async () => {
        if (this.writes) await this.writes.sent(cmd.id, Date.now());
        else this.markSentNow(cmd.id, Date.now());
      },
      (err: Error) => this.log.warn({ err, deviceId: cmd.deviceId, commandId: cmd.id }, 'command not handed to the broker; it stays pending'),
    ).catch((err: unknown) => this.log.warn({ err, deviceId: cmd.deviceId, commandId: cmd.id }, 'a command handed to the broker was not marked sent; it stays pending and goes again on reconnect'));
    return true;
  }

  /** Ingest step: a device's answer on commands/ack. Runs inside the ingest transaction. */
  step = {
    name: 'command-acks',
    // most observations are not answers: no generator for them
    run: (obs: Observation, _id: number, _stamps: Record<string, number>, s: IngestScope) => (obs.type === 'command-ack' ? this.answered(obs, s) : undefined),
  };

  /** through the batch's scope: its commands store is on the batch's transaction (SQLite or PostgreSQL) */
  private *answered(obs: Observation, s: IngestScope): Step<IncidentEvent[] | void> {
    if (obs.type !== 'command-ack') return;
    if ((yield* io(s.commands.answer(obs.deviceId, obs.commandId, obs.ok, obs.receivedAt, obs.error ?? null))) === 0) return;
    const cmd = yield* io(s.commands.get(obs.commandId));
    if (!cmd) throw new NotFoundError('command', obs.commandId);
    return this.onAcked?.(cmd, obs.receivedAt);
  }

  /** Commands past their expiry are marked expired; resolves with how many. */
  async expireDue(now = Date.now()): Promise<number> {
    return this.writes ? this.writes.expire(now) : this.expireNow(now);
  }

  expireNow(now: number): number | Promise<number> {
    return this.rows.expire(now);
  }
}
