// What the main thread and the writer thread say to each other (gateway/writer/client.ts ↔ worker.ts). The main
// thread keeps every socket; the writer thread owns the device domain (state, rules, incidents raised by devices)
// and the write transactions that make it durable. Messages on one port keep their order, so a device's
// observations, its online changes and the registry changes before them reach the writer in the order they happened.
import type { Config } from '../../core/config.js';
import type { AlarmAction, AlarmSource, DeviceCommandType, IncidentEvent, Observation } from '../../core/contracts.js';
import type { RegistryReplication } from '../../devices/registry.js';
import type { LiveState, Supervision } from '../device-state.js';
import type { CommandRow } from '../commands.js';
import type { RejectRow } from '../ingest.js';
import type { Actor, EscalationStep, IncidentAction, InfoEventType } from '../../response/incidents.js';
import type { IncidentReceipt } from '../../response/events.js';
import { EldergateError } from '../../core/errors.js';

/**
 * A write of the incident log asked for by the main thread (a person's action, an escalation, a note of a
 * notification): run by the writer, the log's one writer, so the main thread never waits for SQLite's write lock.
 */
export type IncidentCall =
  | { method: 'act'; incidentId: string; action: IncidentAction; actor: Actor }
  | { method: 'escalate'; incidentId: string; steps: EscalationStep[] }
  | { method: 'resolveBySystem'; incidentId: string; outcome: string; data?: { rule?: string } }
  | { method: 'move'; incidentId: string; to: { unitId: string | null; above: readonly string[] }; reason: string }
  | { method: 'followUp'; incidentId: string; dueAt: number; opts?: { catchUp?: boolean } }
  | { method: 'record'; incidentId: string; type: InfoEventType; data: unknown; actor: string | null }
  /** a system alarm raised by the main thread (a dead-lettered message; cluster mode on PostgreSQL, where the log is the writer's) */
  | { method: 'applyAlarm'; action: AlarmAction; source: AlarmSource };

/** A write of the commands table asked for by the main thread (a person's command, the broker's hand-over, expiry). */
export type CommandCall =
  | { method: 'create'; deviceId: string; type: DeviceCommandType; params: Record<string, unknown>; incidentId?: string; ttlMs?: number; id?: string }
  | { method: 'sent'; commandId: string; at: number }
  | { method: 'expire'; now: number };

export interface WriterInit {
  config: Config;
  /** the main thread's log level (the writer's lines are sent to the main thread's logger) */
  logLevel: string;
  /** core/write-turn.ts: the flag by which the writer says it wants the write lock */
  turn: SharedArrayBuffer;
  /**
   * Four Int32s, shared memory, so each is current however busy the other thread is:
   * [TAKEN] messages the writer has taken off its port, added to as it takes them (the main thread bounds what it posted
   * and the writer has not taken); [ALARMS_ON_THE_WAY] alarms ('submit') the main thread posted and the writer has not
   * handed to its ingest yet: while there is one, a telemetry slice stops early and the next one waits, so the alarm is read sooner;
   * [TELEMETRY_FULL] 1 while the writer's telemetry queue is full (it would shed QoS 0 telemetry), set and cleared by
   * the writer as the queue changes: the main thread then sheds QoS 0 telemetry before handing it over, so that a flood
   * costs the writer — the thread that is the bottleneck under it — nothing for what it would only drop;
   * [HANDLED] messages the writer has handled, added to after each: one message of the main thread's can carry several
   * writes that each wait for the lock, and the stall watch (client.ts) takes this as a word from the writer.
   */
  taken: SharedArrayBuffer;
  /** the WAL's restart, agreed with the checkpointer thread (gateway/writer/wal-restart.ts) */
  walRestart: SharedArrayBuffer;
}

/** the slots of WriterInit.taken */
export const TAKEN = 0;
export const ALARMS_ON_THE_WAY = 1;
export const TELEMETRY_FULL = 2;
export const HANDLED = 3;
export const TAKEN_SLOTS = 4;

/** main → writer */
export type ToWriter =
  | { op: 'submit'; id: number; obs: Observation }
  | { op: 'telemetry'; id?: number; obs: Observation; wait: boolean }
  | { op: 'reject'; row: Omit<RejectRow, 'raw'> & { raw: string } }
  /** `restore`: a new writer thread told who is still connected (their last-seen time is not moved) */
  | { op: 'online'; deviceId: string; online: boolean; at: number; restore: boolean }
  | { op: 'unreadable'; deviceId: string; reason: string; at: number }
  | { op: 'clear-flags'; deviceId: string }
  | { op: 'registry'; change: RegistryReplication }
  | { op: 'pressure'; on: boolean }
  /** at most READ_SLICE ids a message: one large read would hold the writer, and an alarm posted behind it */
  | { op: 'states'; id: number; deviceIds: string[] }
  /** the ids of every device the writer holds a state for */
  | { op: 'state-ids'; id: number }
  /** which of these devices (at most READ_SLICE) are in this supervision state: their ids, in the order given */
  | { op: 'match-supervision'; id: number; deviceIds: string[]; supervision: Supervision }
  | { op: 'incident'; id: number; call: IncidentCall }
  | { op: 'command'; id: number; call: CommandCall }
  /** push and delivery receipts of the consoles, batched on the main thread (response/receipts.ts), best-effort */
  | { op: 'receipts'; id: number; batch: IncidentReceipt[] }
  | { op: 'flush'; id: number }
  | { op: 'metrics'; id: number }
  | { op: 'close'; id: number };

export interface WriterStats {
  urgent: number;
  telemetry: number;
  waiting: number;
}

/** writer → main */
export type FromWriter =
  | { op: 'ready'; restored: { devices: number; timers: number }; /** its Linux thread id (null where /proc says none) */ tid: number | null }
  | { op: 'result'; id: number; ok: true; value: unknown }
  | { op: 'result'; id: number; ok: false; error: WireError }
  /** incident events committed and durable: published to the consoles by the main thread */
  | { op: 'committed'; events: IncidentEvent[] }
  /** a device answered a command that belongs to an incident (recorded on the incident by the main thread) */
  | { op: 'command-acked'; cmd: CommandRow; at: number }
  | { op: 'storage'; ok: true }
  | { op: 'storage'; ok: false; writer: string; error: WireError; at: number }
  | { op: 'stats'; stats: WriterStats }
  | { op: 'log'; line: string }
  | { op: 'fatal'; error: WireError };

/** An error as it crosses threads: its class (by name), message and SQLite code survive, so do causes. */
export interface WireError {
  name: string;
  message: string;
  code?: string;
  stack?: string;
  cause?: WireError;
  /** a ConfigError's problems (rules declared as data are checked as the writer builds its engine) */
  problems?: string[];
  /** an EldergateError's HTTP status and details (a 409 with the incident's state, a 404, a 400 naming the field) */
  status?: number;
  details?: unknown;
}

export type StatesReply = [string, LiveState | null][];

export function toWire(err: unknown, depth = 0): WireError {
  if (!(err instanceof Error)) return { name: 'Error', message: String(err) };
  const code = (err as { code?: unknown }).code;
  return {
    name: err.name,
    message: err.message,
    ...(typeof code === 'string' ? { code } : {}),
    ...(err.stack ? { stack: err.stack } : {}),
    ...(Array.isArray((err as { problems?: unknown }).problems) ? { problems: (err as unknown as { problems: string[] }).problems } : {}),
    ...(err instanceof EldergateError ? { status: err.status, ...(err.details !== undefined ? { details: err.details } : {}) } : {}),
    ...(err.cause !== undefined && depth < 3 ? { cause: toWire(err.cause, depth + 1) } : {}),
  };
}
