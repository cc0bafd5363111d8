// The single writer: every observation, from any transport, passes here. Alarms and events are group-committed on
// the next turn of the event loop with synchronous=FULL, and only then is their promise resolved (PUBACK, Contact ID
// ACK). Telemetry is batched. One device's observations are processed strictly in arrival order: when an urgent
// observation arrives, that device's pending telemetry is written first, in the same transaction.
//
// Promises this module keeps:
// - Resolved means durable. A telemetry batch commits with synchronous=NORMAL (no fsync: a batch of heartbeats sent at
//   QoS 0 was never promised more), but one that anybody waits on (QoS 1) or that produced incident events is synced
//   (fdatasync of the WAL) before a promise resolves or an event is published. So nothing reaches a console before it
//   is durable, and an event's seq (its rowid) can never be handed out again after a power cut.
// - Shed is never acknowledged: QoS 1 telemetry that finds the queue full waits for room (bounded) and beyond that is
//   refused with OverloadError; only fire-and-forget (QoS 0) telemetry is shed, and counted.
// - A failed commit takes memory back with it: rule memory and timers (onRollback hooks), device states and their
//   dirty set (DeviceStates.begin/rollback), the heartbeat history below; and nothing of the batch is acknowledged.
// - Heartbeats are state, not rows: a heartbeat (and a repeated battery/signal reading, a Last Will) is folded into
//   the device's state and seen by the rules like any observation, but kept as a row only on change or once per
//   ingest.heartbeatHistoryMs per device.
import { closeSync, fdatasyncSync, openSync } from 'node:fs';
import type Database from 'better-sqlite3';
import type { Logger } from '../core/logger.js';
import type { Config } from '../core/config.js';
import type { Metrics } from '../core/metrics.js';
import {
  EARLIER_NOT_STORED, POSSIBLE_REPLAY, isLifeSafety, type IncidentEvent, type IngestResult, type Observation, type ObservationSink,
} from '../core/contracts.js';
import type { DeviceStates } from './device-state.js';
import { isPostgresUnavailable, isStorageError, type StorageHealth } from '../core/storage-health.js';
import { writerWants } from '../core/write-turn.js';
import type { PriorObservation, RejectRow } from './observation-store.js';
import { io, runAsync, runSync, type Step } from '../response/store/run.js';
import { isStep, sqliteIngestScope, type IngestScope } from './ingest-scope.js';
import { CommitJournal, CountSeries, type CountSlot } from './commit-journal.js';
import type { PgIngestBatches } from './ingest-scope-pg.js';
import type { WalRestartGate } from './writer/wal-restart.js';

/**
 * A processing step run for each new (non-duplicate) observation inside the write transaction, in order
 * (rules → incidents, command acks, …). It returns incident events to publish once the transaction is durable.
 */
/**
 * Thrown by a step when an alarm an observation raised could not be written (or, for a life-safety observation, when
 * it could not be turned into an incident): the observation is not kept and not acknowledged, so the device resends.
 */
export class AlarmNotRecordedError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AlarmNotRecordedError';
  }
}

/**
 * QoS 1 telemetry refused because the writer is overloaded (the queue is full and so is the line waiting for room, or
 * memory is under pressure). Nothing was stored: the transport must NOT acknowledge it (no PUBACK — the MQTT broker
 * fails the publish, which drops the connection, and the device resends it after reconnecting).
 */
export class OverloadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OverloadError';
  }
}

/** A state-only observation's row differs enough from the last row kept to be kept (battery %, signal units). */
const BATTERY_HYSTERESIS = 2;
const SIGNAL_HYSTERESIS = 3;
/**
 * Device-state rows a telemetry slice writes at least, however short it was cut (so that they always move on). An
 * alarm's commit writes only its own devices' rows: until 2026-12-04 it wrote up to 32 of whatever was owed, which at
 * 10k msg/s of heartbeats was 32 rows more in every SOS's fsynced commit (bench/analysis.md).
 */
const MIN_STATE_ROWS = 32;
/**
 * A telemetry transaction stops taking rows after this long and commits; the rest stay at the head of the queue.
 * An alarm that arrives meanwhile waits at most about this long for the writer (the next turn is the alarm's).
 */
export const TELEMETRY_SLICE_MS = 5;
/**
 * A backlog of telemetry is written in slices back to back for at most this long in one turn of the writer's loop; an
 * alarm on its way (alarmWaiting) or queued ends the turn at once. What else waits for the writer (a person's action,
 * a timer, the registry) waits at most about this long.
 */
export const TELEMETRY_TURN_MS = 25;
/** A telemetry slice stops this long after it began when an alarm is on its way to the writer (alarmWaiting). */
export const ALARM_CUT_MS = 1;
/**
 * PostgreSQL: rows per telemetry batch at most. A batch is not cut in time slices there (what is cut would go back
 * behind an alarm of the same device already chained after it), so an alarm waits for at most one batch this big.
 */
export const PG_TELEMETRY_BATCH_ROWS = 100;
/**
 * ingest.telemetryFlushMs when it is not set: one node's SQLite, where the writer's telemetry turns are kept short (an
 * SOS arriving during one waits for it: at 200 ms, P1 p99 at 5k msg/s was 7.7-10.9 ms against 4.6-5.7 at 20 ms,
 * bench/analysis.md); and PostgreSQL, where a batch does not hold up the writer's thread and each is a durable commit
 * (and, beside a stream of alarms, one telemetry batch per this interval goes between them).
 */
export const TELEMETRY_FLUSH_MS = 20;
export const PG_TELEMETRY_FLUSH_MS = 200;

/** a reading that moved by at least `h` since the row kept (or has none to compare with) */
const changed = (a: number | undefined, b: number | undefined, h: number) => a !== undefined && (b === undefined || Math.abs(a - b) >= h);

/** A heartbeat's fields name something besides its readings (battery, signal, mains). */
function hasFieldBeyondReadings(fields: Record<string, unknown>): boolean {
  for (const k in fields) if (k !== 'battery' && k !== 'signal' && k !== 'mains') return true;
  return false;
}

/** What the last heartbeat-like row kept for a device said. */
interface KeptRow {
  at: number;
  battery?: number;
  signal?: number;
  mains?: boolean;
  /** the rest of the payload, as stored */
  other: string;
}

export interface IngestStep {
  name: string;
  /**
   * sees the device's state as it was before this observation (the observation is folded in after all steps);
   * observationId is 0 for an observation kept as state only (a heartbeat with nothing new)
   */
  run(obs: Observation, observationId: number, stamps: Record<string, number>, scope: IngestScope): StepOut;
  /** after the observation was folded into the device's state (state patches a rule asked for) */
  after?(obs: Observation): void;
  /**
   * The step that turns observations into incidents (rules → incidents): if it fails in any way on a life-safety
   * observation, that observation is not kept and not acknowledged (a failure of another step is logged only).
   */
  raisesIncidents?: boolean;
}

/** What a step or task gives back: its incident events, or a step to run through the batch's scope that gives them. */
export type StepOut = IncidentEvent[] | void | Step<IncidentEvent[] | void>;

/** Work for one device that must run in its order with its observations (a rule timer that came due). */
export type DeviceTask = (scope: IngestScope) => StepOut;

interface Pending {
  obs: Observation;
  /** arrival order, across the queues: a device's telemetry goes ahead of its alarm only if it came before it */
  n?: number;
  task?: DeviceTask;
  resolve?: (r: IngestResult) => void;
  reject?: (err: Error) => void;
}

export type { RejectRow } from './observation-store.js';

export interface IngestOptions {
  /** the one-node store: the writer's SQLite connection (synchronous batches) */
  sqlite?: Database.Database;
  /**
   * or cluster mode's shared store: PostgreSQL (gateway/ingest-scope-pg.ts), one asynchronous transaction per batch,
   * batches committed one after another in the order they were formed; `states` then comes from its loadStates()
   */
  pg?: PgIngestBatches;
  states: DeviceStates;
  config: Config['ingest'];
  log: Logger;
  metrics: Metrics;
  /** called after each commit with the incident events that became durable */
  onCommitted: (events: IncidentEvent[]) => void;
  /**
   * A repeat of a life-safety observation's key is dropped as a resend only when it comes on the same session or
   * within this long of the original, and the original's incident is still open; otherwise it is raised again and
   * flagged possible-replay. Default RESEND_WINDOW_MS.
   */
  resendWindowMs?: number;
  /** told of every failed and successful commit: a storage fault flips /readyz and raises the storage incident */
  storage?: Pick<StorageHealth, 'failed' | 'succeeded'>;
  /**
   * An alarm is on its way to this writer and not yet taken in (the writer thread's shared counter): a telemetry slice
   * stops at the next observation and commits, and the next slice waits for the alarm, instead of the alarm waiting
   * for up to two slices and their commits (at 5k msg/s an SOS waited up to 30 ms here).
   */
  alarmWaiting?: () => boolean;
  /**
   * SQLite: the checkpointer thread's request for a pause in telemetry, so that it can copy the whole WAL back and the
   * log start again from its beginning (gateway/writer/wal-restart.ts). Alarms are never held by it.
   */
  walRestart?: Pick<WalRestartGate, 'wanted' | 'held' | 'hold'>;
  /**
   * Told whenever the telemetry queue becomes full (QoS 0 telemetry would be shed here) and when it no longer is: the
   * writer thread's shared flag, by which the main thread sheds QoS 0 telemetry before handing it over.
   */
  queueFull?: (full: boolean) => void;
}

/** How long after the original a repeat of its key can still be a transport resend (reconnect back-off included). */
export const RESEND_WINDOW_MS = 120_000;

/** The stored observation a new one repeats. */
type PriorRow = PriorObservation;

export class Ingest implements ObservationSink {
  private urgent: Pending[] = [];
  private telemetry: Pending[] = [];
  /** QoS 1 telemetry that found the queue full, waiting for room in arrival order (bounded by telemetryWaitersLimit) */
  private parked: Pending[] = [];
  private rejects: RejectRow[] = [];
  /** per device: the last heartbeat-like row kept (downsampling), and the key of the last one kept as state only */
  private readonly keptRows = new Map<string, KeptRow>();
  private readonly stateKeys = new Map<string, string>();
  /** whether the last commit worked: a backlog of device-state rows is only retried on its own while it does */
  private lastCommitOk = true;
  private readonly pendingTelemetryByDevice = new Map<string, number>();
  private urgentScheduled = false;
  /** a commit of this task handed incident events on (SQLite: the writer thread posts them when the task ends) */
  private published = false;
  /** flushAll is writing everything: no pause for the checkpointer */
  private flushingAll = false;
  private telemetryTimer: NodeJS.Timeout | null = null;
  /** when telemetryTimer fires (performance.now()): a timer set for state rows owed later gives way to a sooner one */
  private telemetryTimerDue = 0;
  private flushSoon = false;
  private steps: IngestStep[] = [];
  private closed = false;
  /** memory pressure: telemetry is shed until it passes (alarms never are) */
  private pressure = false;
  /** what the batch reads and writes through (gateway/ingest-scope.ts): SQLite's, on this connection (null: PostgreSQL) */
  private readonly scope: IngestScope<'sync'>;
  /** PostgreSQL: the batches formed and not yet settled, one after another */
  private commits: Promise<void> = Promise.resolve();
  /** the next arrival number (Pending.n) */
  private arrivals = 0;
  /** PostgreSQL: when the last telemetry batch was formed (telemetry is not starved by a stream of alarms) */
  private lastTelemetryBatchAt = 0;
  /** PostgreSQL: batches formed and not yet settled (one at a time: the next is formed when it settles) */
  private pgInFlight = 0;
  private readonly resendWindowMs: number;
  /** ingest.telemetryFlushMs, or its default for the store (TELEMETRY_FLUSH_MS, PG_TELEMETRY_FLUSH_MS) */
  private readonly flushMs: number;
  /**
   * Sessions that have delivered a new observation: a client replays what was unacknowledged first, in order, on a
   * new connection [MQTT-4.4.0-1, MQTT-4.6.0-1], so after a session's first new message nothing of it is a resend.
   */
  private readonly freshSessions = new Set<string>();
  /**
   * what the batch being written owes to memory outside the database: undo actions for a rollback (rule memory,
   * timers), counters and actions for its commit (gateway/commit-journal.ts)
   */
  private readonly journal = new CommitJournal();
  /** the counters moved per observation, by series */
  private readonly series: {
    stored: CountSeries<'source' | 'class' | 'result'>;
    duplicate: CountSeries<'source' | 'class' | 'key'>;
    replay: CountSeries<'source' | 'key'>;
  };
  private rejectsSincePrune = 0;
  private readonly log: Logger;

  constructor(private readonly o: IngestOptions) {
    this.log = o.log.child({ module: 'ingest' });
    this.resendWindowMs = o.resendWindowMs ?? RESEND_WINDOW_MS;
    this.flushMs = o.config.telemetryFlushMs ?? (o.pg ? PG_TELEMETRY_FLUSH_MS : TELEMETRY_FLUSH_MS);
    this.series = {
      // (source, class, result): stored, state, duplicate
      stored: new CountSeries(o.metrics.ingested, (source, cls, result) => ({ source, class: cls, result })),
      duplicate: new CountSeries(o.metrics.duplicates, (source, cls, key) => ({ source, class: cls, key })),
      replay: new CountSeries(o.metrics.replays, (source, key) => ({ source, key })),
    };
    if ((o.sqlite === undefined) === (o.pg === undefined)) throw new Error('ingest: give it either a SQLite connection or PostgreSQL batches');
    const db = o.sqlite;
    // (PostgreSQL: every use of these is on the synchronous path, which a PostgreSQL ingest never takes)
    this.scope = db ? sqliteIngestScope(db) : (null as never);
    // called inside the batch's transaction, a better-sqlite3 transaction function is a SAVEPOINT
    this.processInSavepoint = db
      ? db.transaction((obs: Observation, events: IncidentEvent[]) => runSync(this.processOne(obs, events, true, this.scope)))
      : () => { throw new Error('no SQLite connection'); };
  }

  /** the SQLite connection (the synchronous path only) */
  private get db(): Database.Database {
    return this.o.sqlite!;
  }

  /**
   * While an observation or task is being written: run `fn` if its writes are rolled back (its alarm failed, or the
   * whole batch did), so that state kept in memory — rule memory, timers — never moves ahead of the database.
   */
  onRollback(fn: () => void): void;
  /** `fn(arg)` on rollback: what runs for every message passes its argument instead of making a closure */
  onRollback<T>(fn: (arg: T) => void, arg: T): void;
  onRollback<T>(fn: (arg?: T) => void, arg?: T): void {
    this.journal.onRollback(fn, arg);
  }

  /**
   * While an observation or task is being written: run `fn` once its batch has committed — never if its writes are
   * rolled back. What leaves the writer (a command's answer for the incident's timeline) must not leave before the
   * commit: a PostgreSQL batch commits later than its statements run, and may run again (commitBatchPg).
   */
  whenCommitted(fn: () => void): void {
    this.journal.whenCommitted(fn);
  }

  /**
   * A counter moved once the batch commits: a batch that fails, or runs again (PostgreSQL), counts what it stored once.
   * (Refusals, `not-recorded`, are counted at once: they are what happened, committed or not.)
   */
  private counted(slot: CountSlot): void {
    this.journal.count(slot);
  }

  private runCommitHooks(): void {
    this.journal.settle((err) => this.log.error({ err }, 'a step after a commit failed'));
  }

  private runUndo(from: number): void {
    this.journal.rollBack(from, (err) => this.log.error({ err }, 'undoing in-memory state after a rollback failed'));
  }

  /** Steps are set once at start-up, in order. */
  use(step: IngestStep): void {
    this.steps.push(step);
  }

  /** Durable before the promise resolves. Life-safety events and device events take this path. */
  submit(obs: Observation): Promise<IngestResult> {
    if (this.closed) return Promise.reject(new Error('ingest is closed: the gateway is shutting down'));
    return new Promise((resolve, reject) => {
      this.urgent.push({ obs, resolve, reject, n: this.arrivals++ });
      if (!this.urgentScheduled) {
        this.urgentScheduled = true;
        setImmediate(() => this.flushUrgent());
      }
    });
  }

  /** Run `task` inside the next urgent transaction, after everything already queued for that device. */
  enqueueTask(deviceId: string, task: DeviceTask): void {
    if (this.closed) return;
    this.urgent.push({ obs: { deviceId, type: 'supervision', receivedAt: Date.now(), source: 'gateway' }, task, n: this.arrivals++ });
    if (!this.urgentScheduled) {
      this.urgentScheduled = true;
      setImmediate(() => this.flushUrgent());
    }
  }

  /**
   * Telemetry: batched. With `wait` (QoS 1) the promise resolves only once the observation is durable; without it,
   * fire and forget.
   *
   * Contract with the transports under overload (queue at ingest.telemetryQueueLimit): without `wait` the observation
   * is shed and counted (eldergate_telemetry_shed_total). With `wait` it is never shed silently: it waits for room,
   * unacknowledged; beyond ingest.telemetryWaitersLimit waiting (or under memory pressure) the promise rejects with
   * OverloadError — not stored, so no PUBACK. Any rejection means "not stored": never acknowledge it. Alarms are never
   * shed (a life-safety observation takes submit()).
   */
  submitTelemetry(obs: Observation, wait: boolean): Promise<IngestResult> | undefined {
    if (this.closed) return wait ? Promise.reject(new Error('ingest is closed')) : undefined;
    if (isLifeSafety(obs.type)) return this.submit(obs);
    if (this.full) {
      if (!wait) {
        this.o.metrics.shed.inc({ where: 'queue' });
        return undefined;
      }
      if (this.pressure || this.parked.length >= this.o.config.telemetryWaitersLimit) {
        this.o.metrics.refused.inc({ stage: 'ingest', reason: 'overload' });
        return Promise.reject(new OverloadError(this.pressure
          ? 'the gateway is under memory pressure: telemetry is not accepted now, send it again later'
          : `the telemetry queue is full and ${this.parked.length} messages already wait for room: not stored, send it again later`));
      }
      this.countPending(obs.deviceId, 1);
      return new Promise((resolve, reject) => this.parked.push({ obs, resolve, reject, n: this.arrivals++ }));
    }
    this.countPending(obs.deviceId, 1);
    let p: Promise<IngestResult> | undefined;
    if (wait) {
      p = new Promise((resolve, reject) => this.telemetry.push({ obs, resolve, reject, n: this.arrivals++ }));
    } else {
      this.telemetry.push({ obs, n: this.arrivals++ });
    }
    if (this.telemetry.length >= this.o.config.telemetryQueueLimit) this.sayQueue();
    this.scheduleTelemetry();
    return p;
  }

  /** QoS 0 telemetry is shed, QoS 1 waits for room; waiting ones go first: nothing overtakes them while they wait */
  private get full(): boolean {
    return this.pressure || this.parked.length > 0 || this.telemetry.length >= this.o.config.telemetryQueueLimit;
  }

  private saidFull = false;
  /**
   * Tell the main thread (queueFull) when the queue became full or no longer is. Called wherever the queue grows to
   * its bound or shrinks, and on memory pressure: a flag left saying "full" would shed every QoS 0 reading before it
   * reached this thread, so each way out of a full queue (a slice written, alarms reordered, room admitted, pressure
   * gone) says so.
   */
  private sayQueue(): void {
    const full = this.full;
    if (full === this.saidFull) return;
    this.saidFull = full;
    this.o.queueFull?.(full);
  }

  private scheduleTelemetry(): void {
    if (this.telemetry.length >= this.o.config.telemetryBatchRows) {
      if (!this.flushSoon) {
        this.flushSoon = true;
        setImmediate(() => {
          this.flushSoon = false;
          if (!this.closed) this.flushTelemetry();
        });
      }
    } else {
      this.armTelemetryTimer(this.flushMs);
    }
  }

  /** the next slice in `ms`, unless one is set sooner (one timer, never two) */
  private armTelemetryTimer(ms: number): void {
    const due = performance.now() + ms;
    if (this.telemetryTimer) {
      if (this.telemetryTimerDue <= due) return;
      clearTimeout(this.telemetryTimer);
    }
    this.telemetryTimerDue = due;
    this.telemetryTimer = setTimeout(() => this.flushTelemetry(), ms);
  }

  /** telemetry of a device queued (or waiting for room) and not yet written */
  private countPending(deviceId: string, by: number): void {
    // kept at 0, not deleted: a long-lived Map whose entries come and go hundreds of times a second leaves a dead table
    // in the old generation at each resize (core/dirty-set.ts); one entry per device is a bounded set
    this.pendingTelemetryByDevice.set(deviceId, Math.max(0, (this.pendingTelemetryByDevice.get(deviceId) ?? 0) + by));
  }

  /** room in the queue goes to the waiting, in their order */
  private admitParked(): void {
    const room = this.o.config.telemetryQueueLimit - this.telemetry.length;
    if (room > 0 && this.parked.length > 0) for (const p of this.parked.splice(0, room)) this.telemetry.push(p);
    // every path that takes from the queue comes through here after it
    this.sayQueue();
  }

  /** A refused frame from an authenticated device: kept raw (bounded) for diagnosis, written with the next batch. */
  recordReject(row: Omit<RejectRow, 'raw'> & { raw: Buffer | string }): void {
    if (this.closed) return;
    const raw = typeof row.raw === 'string' ? row.raw : row.raw.toString('utf8');
    this.rejects.push({ ...row, raw: raw.slice(0, this.o.config.rejectRawBytes) });
    this.armTelemetryTimer(this.flushMs);
  }

  private flushUrgent(): void {
    this.urgentScheduled = false;
    // PostgreSQL: while a batch commits, what comes gathers for the next one, formed when that commit is done (group
    // commit: one transaction for everything that came meanwhile, not one per turn of the loop waiting in line)
    if (this.o.pg && this.pgInFlight > 0) return;
    const batch = this.urgent;
    this.urgent = [];
    if (batch.length === 0) return;
    // a device's telemetry that came before its first alarm here goes first, so its observations stay in arrival
    // order (what came after the alarm stays queued, and is written after it)
    const before: Pending[] = [];
    // (every entry of both queues is counted in pendingTelemetryByDevice: some device has a count above 0 exactly when
    // one of them holds something)
    if (this.telemetry.length > 0 || this.parked.length > 0) {
      /** per device with telemetry waiting: the arrival of its first alarm in this batch */
      const firstAlarm = new Map<string, number>();
      for (const p of batch) {
        if ((this.pendingTelemetryByDevice.get(p.obs.deviceId) ?? 0) > 0 && !firstAlarm.has(p.obs.deviceId)) firstAlarm.set(p.obs.deviceId, p.n ?? Infinity);
      }
      if (firstAlarm.size > 0) {
        // queued first, then those waiting for room: arrival order
        for (const queue of ['telemetry', 'parked'] as const) {
          const keep: Pending[] = [];
          for (const p of this[queue]) {
            const upTo = firstAlarm.get(p.obs.deviceId);
            if (upTo !== undefined && (p.n ?? -1) < upTo) {
              before.push(p);
              this.countPending(p.obs.deviceId, -1);
            } else {
              keep.push(p);
            }
          }
          this[queue] = keep;
        }
        this.admitParked();
      }
    }
    this.commit(before.length ? before.concat(batch) : batch, 'urgent');
  }

  /**
   * `mayWait`: an alarm on its way is let in first (once; flushAll and a deferred flush do not wait). `afterAlarms`:
   * this task follows one that wrote alarms queued ahead of the slices.
   */
  private flushTelemetry(mayWait = true, afterAlarms = false): void {
    if (this.telemetryTimer) {
      clearTimeout(this.telemetryTimer);
      this.telemetryTimer = null;
    }
    if (this.o.pg) return this.flushTelemetryPg();
    if (mayWait && this.o.alarmWaiting?.() === true) {
      // it is on this thread's port, read before immediates run: this slice goes after it
      return this.flushTelemetryNextTask(false);
    }
    // the checkpointer's pause: no slice starts until it lets go (alarms still go, through their own immediate)
    if (!this.flushingAll && this.o.walRestart && (this.o.walRestart.held || this.o.walRestart.wanted())) {
      if (this.urgent.length > 0) this.flushUrgent();
      if (!this.o.walRestart.held) {
        void this.o.walRestart.hold().then(() => {
          if (!this.closed) this.flushTelemetry(false);
        });
      }
      return;
    }
    // An alarm that came while this slice waited for its turn goes first (its own immediate finds nothing left), alone
    // in its task: the writer thread posts its answers (the PUBACK, the incident for the consoles) when the task ends.
    // Written on in the same task, a turn's budget of slices (up to TELEMETRY_TURN_MS) held up the answer of an alarm
    // already durable. The slices go on in the next task; if alarms came again by then, they go first again and one
    // slice follows them in their task (so that a stream of alarms never stops telemetry, and waits for one slice).
    let turnEnds = performance.now() + TELEMETRY_TURN_MS;
    if (this.urgent.length > 0) {
      this.flushUrgent();
      if (!afterAlarms) return this.flushTelemetryNextTask(true);
      turnEnds = 0;
    }
    let cut = 0;
    this.published = false;
    for (;;) {
      // read in place: only what the slice reached leaves the queue (a cut batch put back in front of a long queue
      // copied all of it, every slice)
      const batch = this.telemetry.slice(0, this.o.config.telemetryBatchRows);
      // device-state rows owed (heartbeats are state; a reconnect storm dirties thousands) go out with the next batches
      const stateOwed = this.lastCommitOk && this.stateRowsDue();
      const taken = batch.length;
      cut = taken > 0 || this.rejects.length > 0 || stateOwed ? this.commit(batch, 'telemetry') : 0;
      const done = taken - cut;
      for (let i = 0; i < done; i++) this.countPending(this.telemetry[i]!.obs.deviceId, -1);
      this.telemetry.splice(0, done);
      this.admitParked();
      const backlog = cut > 0 || this.telemetry.length >= this.o.config.telemetryBatchRows;
      // a slice that raised or changed an incident (a safe-zone exit from a position) ends the turn too: its events
      // reach the consoles when this task ends
      if (!backlog || !this.lastCommitOk || this.closed || this.urgent.length > 0 || this.o.alarmWaiting?.() === true ||
        this.published || performance.now() > turnEnds || this.o.walRestart?.wanted() === true) break;
    }
    // a commit in the loop may have set a timer for state rows still owed (whenCommitted): one timer, never two
    if (this.telemetryTimer) {
      clearTimeout(this.telemetryTimer);
      this.telemetryTimer = null;
    }
    if (!this.closed && (this.telemetry.length > 0 || this.rejects.length > 0)) {
      // a backlog goes on at the next turn (after any alarm that came meanwhile)
      this.armTelemetryTimer(cut > 0 || this.telemetry.length >= this.o.config.telemetryBatchRows ? 0 : this.flushMs);
    } else {
      this.afterCommit();
    }
  }

  /** device-state rows due now (write-behind: gateway/device-state.ts), or any owed while everything is written */
  private stateRowsDue(): boolean {
    return this.flushingAll ? this.o.states.dirtyCount() > 0 : this.o.states.nextDueInMs() === 0;
  }

  /**
   * One transaction for the whole batch, durable before anyone is told: an urgent batch commits with
   * synchronous=FULL; a telemetry batch with NORMAL, then — if anyone waits on it or it produced incident events — an
   * fdatasync of the WAL before promises resolve and events are published (a batch of QoS 0 heartbeats pays none).
   */
  private commit(batch: Pending[], queue: 'urgent' | 'telemetry'): number {
    if (this.o.pg) {
      void this.commitLater(batch, queue);
      return 0;
    }
    // bulk writers on the main thread let this commit in first (core/write-turn.ts)
    writerWants(true);
    try {
      return this.commitBatch(batch, queue);
    } finally {
      writerWants(false);
    }
  }

  /** What a batch collects as it is written (both engines), and the refusals it takes to write with it. */
  private beginBatch(size: number) {
    const rejects = this.rejects;
    this.rejects = [];
    return {
      started: performance.now(),
      results: new Array<IngestResult>(size),
      failures: new Array<Error | undefined>(size),
      events: [] as IncidentEvent[],
      rejects,
      /** devices with an ordered observation not stored in this batch: their later ordered ones are not stored either */
      held: new HeldDevices(),
    };
  }

  private commitBatch(batch: Pending[], queue: 'urgent' | 'telemetry'): number {
    const { started, results, failures, events, rejects, held } = this.beginBatch(batch.length);
    // Telemetry batches commit with NORMAL: in WAL mode such a commit survives a crash of the process and is lost only
    // with the machine's power; the sync that promises need is added below, only where one is needed.
    const relaxed = queue === 'telemetry';
    if (relaxed) this.db.pragma('synchronous = NORMAL');
    // telemetry is written in time slices: what is left when the slice is over goes back to the head of the queue
    const sliceEnd = relaxed ? started + TELEMETRY_SLICE_MS : Infinity;
    // and sooner when an alarm is on its way: after ALARM_CUT_MS (a flood of alarms must not cut telemetry into commits
    // of a row each)
    const alarmCut = relaxed ? started + ALARM_CUT_MS : Infinity;
    /** state rows stop where the slice stopped: for an alarm on its way, at once (after MIN_STATE_ROWS) */
    let stateRowsUntil = sliceEnd;
    let cut: Pending[] = [];
    this.o.states.begin();
    try {
      this.db.transaction(() => {
        for (let i = 0; i < batch.length; i++) {
          const t = performance.now();
          if (i > 0 && (t > sliceEnd || (t > alarmCut && this.o.alarmWaiting?.() === true))) {
            cut = batch.splice(i);
            if (t <= sliceEnd) stateRowsUntil = t;
            break;
          }
          const p = batch[i]!;
          const waits = held.waits(p.obs);
          if (waits) {
            failures[i] = waits;
            continue;
          }
          const mark = this.journal.mark;
          if (p.task) {
            try {
              const out = runSync(stepEvents(p.task(this.scope)));
              if (out) for (const e of out) events.push(e);
            } catch (err) {
              this.log.error({ err, deviceId: p.obs.deviceId }, 'device task failed');
              this.runUndo(mark);
              this.abortIfRolledBack(err);
            }
            results[i] = { status: 'stored', observationId: 0 };
            continue;
          }
          // each observation in its own savepoint: one that fails is rolled back alone, the batch goes on
          const own: IncidentEvent[] = [];
          try {
            // only a life-safety observation can be refused by a step (AlarmNotRecordedError): the savepoint's two
            // statements are not spent on every heartbeat
            // (a lone life-safety raise writes its incident in this savepoint without one of its own: gateway/alarms.ts
            // passes joinCaller only for life-safety observations, which always come through here)
            results[i] = isLifeSafety(p.obs.type) ? this.processInSavepoint(p.obs, own) : runSync(this.processOne(p.obs, own, false, this.scope));
            for (const e of own) events.push(e);
          } catch (err) {
            failures[i] = err as Error;
            held.notStored(p.obs);
            this.runUndo(mark);
            this.abortIfRolledBack(err);
          }
        }
        if (rejects.length) this.scope.rows.insertRejects(rejects);
        // an alarm's commit: its own devices' rows; a slice's: what is owed, up to the slice's end (at least
        // MIN_STATE_ROWS each, so they always move on; afterCommit() sets a slice for what is still owed)
        if (queue === 'urgent') this.o.states.flushDevices(batch.map((p) => p.obs.deviceId), Date.now());
        else this.o.states.flushDirty(Date.now(), this.o.config.telemetryBatchRows, stateRowsUntil, MIN_STATE_ROWS, this.flushingAll);
        // IMMEDIATE: the main thread writes the same file on its own connection (people's actions, the registry); the
        // write lock is taken before the first read, so the batch waits its turn instead of failing on a stale snapshot
      }).immediate();
    } catch (err) {
      if (relaxed) this.db.pragma('synchronous = FULL');
      this.failBatch(batch, queue, err);
      return cut.length;
    }
    this.journal.committed();
    this.o.states.commit();
    this.lastCommitOk = true;
    if (relaxed) {
      this.db.pragma('synchronous = FULL');
      if (events.length > 0 || batch.some((p) => p.resolve !== undefined)) {
        try {
          this.syncWal();
        } catch (err) {
          // committed, but not known to be on disk: nobody is told it is stored (devices resend; dedup answers them)
          // and its incident events are not pushed — a console must not show what a power cut could take back
          this.o.storage?.failed('ingest', err);
          this.log.fatal({ err, rows: batch.length, events: events.map((e) => e.seq) },
            'syncing a telemetry commit failed: not acknowledged; its incident events reach consoles only when they reload');
          for (const p of batch) p.reject?.(err as Error);
          this.afterCommit();
          return cut.length;
        }
      }
    }
    if (rejects.length) {
      this.rejectsSincePrune += rejects.length;
      if (this.rejectsSincePrune > 500) {
        this.rejectsSincePrune = 0;
        this.scope.rows.pruneRejects(this.o.config.rejectsKept);
      }
    }
    this.settle(batch, queue, { results, failures, events, started });
    return cut.length;
  }

  /** Nothing of this batch is durable: memory goes back, and every waiting transport is told, so nothing is ACKed. */
  private failBatch(batch: Pending[], queue: 'urgent' | 'telemetry', err: unknown): void {
    this.lastCommitOk = false;
    this.runUndo(0);
    this.journal.forgetOwed();
    this.o.states.rollback();
    this.o.storage?.failed('ingest', err);
    this.log.error({ err, rows: batch.length, queue }, 'write failed: the batch is not acknowledged and will be resent by devices');
    for (const p of batch) p.reject?.(err as Error);
    this.afterCommit();
  }

  /** The batch is durable: each waiting transport gets its answer, the incident events go out. */
  private settle(batch: Pending[], queue: 'urgent' | 'telemetry', b: {
    results: IngestResult[]; failures: (Error | undefined)[]; events: IncidentEvent[]; started: number;
  }): void {
    const { results, failures, events, started } = b;
    this.runCommitHooks();
    // an observation refused by the storage (its savepoint failed on a full disk) is a storage fault too
    const storageFailure = failures.find((f) => f !== undefined && (isStorageError(f) || isStorageError(f.cause)));
    if (storageFailure) this.o.storage?.failed('ingest', isStorageError(storageFailure) ? storageFailure : storageFailure.cause);
    else this.o.storage?.succeeded();
    const commitMs = performance.now() - started;
    this.o.metrics.stage.observe({ stage: queue === 'urgent' ? 'commit_urgent' : 'commit_telemetry' }, commitMs / 1000);
    this.o.metrics.batchRows.observe({ queue }, batch.length);
    for (let i = 0; i < batch.length; i++) {
      const f = failures[i];
      if (f) batch[i]!.reject?.(f);
      else batch[i]!.resolve?.(results[i]!);
    }
    if (events.length) {
      this.published = true;
      try {
        this.o.onCommitted(events);
      } catch (err) {
        this.log.error({ err }, 'publishing committed incident events failed');
      }
    }
    this.afterCommit();
  }

  /** the telemetry flush goes on in a task of its own (after whatever the port and the immediates hold now) */
  private flushTelemetryNextTask(afterAlarms: boolean): void {
    setImmediate(() => {
      if (!this.closed) this.flushTelemetry(false, afterAlarms);
    });
  }

  /** PostgreSQL: commit `batch` after every batch formed before it (never rejects: failures are the batch's) */
  private commitLater(batch: Pending[], queue: 'urgent' | 'telemetry'): Promise<void> {
    this.pgInFlight++;
    const commit = () => this.commitBatchPg(batch, queue).catch((err: unknown) => {
      // commitBatchPg settles its batch itself; this is a bug's last line, and the chain must go on: whoever still
      // waits is told it is not stored (a promise already settled ignores it)
      this.log.error({ err }, 'a PostgreSQL batch ended in an unexpected error');
      for (const p of batch) p.reject?.(err as Error);
    }).finally(() => {
      this.pgInFlight--;
      this.afterPgBatch();
    });
    const run = this.commits.then(commit, commit);
    this.commits = run;
    return run;
  }

  /**
   * The batch as one PostgreSQL transaction (gateway/ingest-scope-pg.ts); a commit is durable (synchronous_commit on),
   * so there is no relaxed telemetry commit to sync afterwards. No time slices: a batch is at most telemetryBatchRows.
   *
   * A statement that fails aborts a PostgreSQL transaction (SQLite's fails alone), so one observation may fail and the
   * batch go on only inside a savepoint — two more round trips each, a third of a heartbeat's. So, as SQLite spends
   * savepoints only where a step can refuse: the batch first runs with savepoints for life-safety observations and
   * device tasks only; should a statement fail outside them, that transaction is rolled back, memory with it, and the
   * same batch runs again at once with every observation in its own savepoint (`careful`), so a message PostgreSQL
   * refuses fails alone and cannot hold its batch back for ever.
   */
  private async commitBatchPg(batch: Pending[], queue: 'urgent' | 'telemetry', careful = false): Promise<void> {
    const { started, results, failures, events, rejects, held } = this.beginBatch(batch.length);
    this.o.states.begin();
    try {
      await this.o.pg!.batch(async (s) => {
        // the rules ask each device's open incidents: one query for the batch's devices, not one per observation
        await s.prefetchOpenIncidents(batch.map((p) => p.obs.deviceId));
        for (let i = 0; i < batch.length; i++) {
          const p = batch[i]!;
          const waits = held.waits(p.obs);
          if (waits) {
            failures[i] = waits;
            continue;
          }
          const mark = this.journal.mark;
          const own: IncidentEvent[] = [];
          try {
            if (p.task) {
              const task = p.task;
              try {
                const out = await s.savepoint(() => stepEvents(task(s)));
                if (out) for (const e of out) own.push(e);
              } catch (err) {
                this.log.error({ err, deviceId: p.obs.deviceId }, 'device task failed');
                this.runUndo(mark);
                this.abortIfRolledBack(err, s);
              }
              results[i] = { status: 'stored', observationId: 0 };
            } else if (careful || isLifeSafety(p.obs.type)) {
              results[i] = await s.savepoint(() => this.processOne(p.obs, own, true, s));
            } else {
              results[i] = await runAsync(this.processOne(p.obs, own, false, s));
            }
            for (const e of own) events.push(e);
          } catch (err) {
            failures[i] = err as Error;
            held.notStored(p.obs);
            this.runUndo(mark);
            this.abortIfRolledBack(err, s);
          }
        }
        if (rejects.length) {
          await s.rows.insertRejects(rejects);
          this.rejectsSincePrune += rejects.length;
          if (this.rejectsSincePrune > 500) {
            this.rejectsSincePrune = 0;
            await s.rows.pruneRejects(this.o.config.rejectsKept);
          }
        }
        const rows = queue === 'urgent' ? this.o.states.takeDevices(batch.map((p) => p.obs.deviceId), Date.now())
          : this.o.states.takeDirty(Date.now(), this.o.config.telemetryBatchRows);
        if (rows.length > 0) await s.writeStates(rows);
      });
    } catch (err) {
      const unavailable = causes(err).some((e) => isStorageError(e) || isPostgresUnavailable(e));
      if (!careful && !unavailable && !this.closed) {
        // nothing of it was committed: memory back to before it, its refusals queued again, and the batch again
        this.runUndo(0);
        this.journal.forgetOwed();
        this.o.states.rollback();
        this.rejects = rejects.concat(this.rejects);
        this.o.metrics.pgBatchesAgain.inc();
        this.log.warn({ err, rows: batch.length, queue }, 'a statement failed outside any savepoint: the batch runs again, each observation in its own savepoint');
        return this.commitBatchPg(batch, queue, true);
      }
      this.failBatch(batch, queue, err);
      return;
    }
    this.journal.committed();
    this.o.states.commit();
    this.lastCommitOk = true;
    this.settle(batch, queue, { results, failures, events, started });
  }

  /** PostgreSQL: one telemetry batch at a time (the queue, not a chain of commits, is what fills under load) */
  /**
   * `besideAlarms`: alarms wait, but telemetry has waited a whole flush interval: one telemetry batch goes first,
   * without the devices that have an alarm waiting (their readings stay behind their alarm, in arrival order), so a
   * stream of alarms cannot starve telemetry into shedding; an alarm waits for at most one such batch per interval.
   */
  private flushTelemetryPg(besideAlarms = false): void {
    // one batch at a time: the one in flight forms the next when it settles (alarms first)
    if (this.pgInFlight > 0 || this.closed) return;
    if (this.urgent.length > 0 && !besideAlarms) return this.flushUrgent();
    const rows = Math.min(this.o.config.telemetryBatchRows, PG_TELEMETRY_BATCH_ROWS);
    let batch: Pending[];
    if (this.urgent.length > 0) {
      const alarmed = new Set(this.urgent.map((p) => p.obs.deviceId));
      const keep: Pending[] = [];
      batch = [];
      for (const p of this.telemetry) (batch.length < rows && !alarmed.has(p.obs.deviceId) ? batch : keep).push(p);
      this.telemetry = keep;
    } else {
      batch = this.telemetry.splice(0, rows);
    }
    for (const p of batch) this.countPending(p.obs.deviceId, -1);
    this.admitParked();
    if (batch.length === 0 && this.rejects.length === 0 && !(this.lastCommitOk && this.o.states.dirtyCount() > 0)) {
      if (this.urgent.length > 0) this.flushUrgent();
      return;
    }
    this.lastTelemetryBatchAt = performance.now();
    void this.commitLater(batch, 'telemetry');
  }

  /** PostgreSQL: a batch settled; the next is formed now: what gathered of alarms at once, telemetry on its timer */
  private afterPgBatch(): void {
    if (this.pgInFlight > 0 || this.closed) return;
    if (this.urgent.length > 0) {
      const starved = this.telemetry.length > 0 && performance.now() - this.lastTelemetryBatchAt >= this.flushMs;
      return starved ? this.flushTelemetryPg(true) : this.flushUrgent();
    }
    const full = this.telemetry.length >= Math.min(this.o.config.telemetryBatchRows, PG_TELEMETRY_BATCH_ROWS);
    // a full queue goes at once, even if a flush was set for later (afterCommit's, for rows owed)
    if (this.telemetryTimer && !full) return;
    if (this.telemetryTimer) clearTimeout(this.telemetryTimer);
    this.telemetryTimer = null;
    if (full || this.telemetry.length > 0 || this.rejects.length > 0 || (this.lastCommitOk && this.o.states.dirtyCount() > 0)) {
      this.armTelemetryTimer(full ? 0 : this.flushMs);
    }
  }

  /** Everything queued now, written; resolves once it is settled (PostgreSQL; SQLite: flushAll). */
  async drain(): Promise<void> {
    if (!this.o.pg) return this.flushAll();
    for (let rounds = 0; rounds < 1000; rounds++) {
      this.flushUrgent();
      if (this.telemetryTimer) {
        clearTimeout(this.telemetryTimer);
        this.telemetryTimer = null;
      }
      this.flushTelemetryPg();
      // a batch settling forms the next of what gathered meanwhile: wait until none is left in flight
      while (this.pgInFlight > 0) await this.commits;
      await this.commits;
      const owed = this.lastCommitOk && this.o.states.dirtyCount() > 0;
      if (this.urgent.length === 0 && this.telemetry.length === 0 && this.parked.length === 0 && this.rejects.length === 0 && !owed) break;
      if (!this.lastCommitOk && this.urgent.length === 0 && this.telemetry.length === 0 && this.parked.length === 0) break;
    }
    if (this.telemetryTimer) {
      clearTimeout(this.telemetryTimer);
      this.telemetryTimer = null;
    }
  }

  /** device-state rows still owed after a commit get one of their own when they are due (not on the alarm path) */
  private afterCommit(): void {
    if (!this.lastCommitOk || this.closed) return;
    const dueIn = this.o.states.nextDueInMs();
    if (dueIn !== null) this.armTelemetryTimer(Math.max(this.flushMs, dueIn));
  }

  /**
   * SQLite rolls the whole transaction back by itself on some errors (a full disk, an I/O error). Whatever the batch
   * did before is then gone although it ran without error: the batch must fail as a whole — carrying on would run the
   * rest in autocommit and acknowledge, publish and remember what is not in the database.
   */
  private abortIfRolledBack(err: unknown, scope: IngestScope = this.scope): void {
    if (scope.usable()) return;
    throw new Error(`the write transaction was rolled back (${err instanceof Error ? err.message : String(err)}): the whole batch fails`, { cause: err });
  }

  /**
   * Make what was committed with synchronous=NORMAL durable: fdatasync of the WAL file (every frame committed so far
   * is in it, or was checkpointed into the database file with a sync — a checkpoint syncs the WAL first). A sync on
   * any descriptor of a file flushes all of it.
   */
  private syncWal(): void {
    if (this.db.memory) return;
    const started = performance.now();
    let fd: number;
    try {
      fd = openSync(`${this.db.name}-wal`, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      // no WAL (not in WAL mode): the commit went to the database file itself
      fd = openSync(this.db.name, 'r');
    }
    try {
      fdatasyncSync(fd);
    } finally {
      closeSync(fd);
    }
    this.o.metrics.stage.observe({ stage: 'sync_telemetry' }, (performance.now() - started) / 1000);
  }

  /** processOne inside a SAVEPOINT (a better-sqlite3 transaction function called inside the batch's transaction) */
  private readonly processInSavepoint: (obs: Observation, events: IncidentEvent[]) => IngestResult;

  /**
   * Dedup, insert, steps. `inSavepoint`: the caller rolls everything back if this throws; otherwise (telemetry) an
   * observation whose alarm could not be written is deleted here, so it is neither kept nor acknowledged.
   */
  private processOne(input: Observation, events: IncidentEvent[], inSavepoint: boolean, s: IngestScope): Step<IngestResult> {
    const lifeSafety = isLifeSafety(input.type);
    const fields = dataOf(input);
    // a heartbeat folded into state is never serialised: most of a fleet's messages take that path (and only the
    // state path's generator is made for it, not the row path's, the larger of the two)
    if (!lifeSafety && !this.keepsRow(input, fields)) return this.processStateOnly(input, events, s);
    return this.processRow(input, fields, lifeSafety, events, inSavepoint, s);
  }

  private *processRow(
    input: Observation, fields: Record<string, unknown>, lifeSafety: boolean, events: IncidentEvent[], inSavepoint: boolean, s: IngestScope,
  ): Step<IngestResult> {
    let obs = input;
    const { type, deviceId, seq, deviceTs, receivedAt, source } = obs;
    const data = JSON.stringify(fields);
    // the session is kept where dedup will ask for it: life-safety rows and rows without a key
    const keyed = seq !== undefined && deviceTs !== undefined;
    const keepSession = lifeSafety || !keyed;
    let replayOf: PriorRow | undefined;
    if (!keyed && obs.packetId !== undefined && obs.session !== undefined) {
      const prior = yield* io(s.rows.findKeyless(deviceId, obs.packetId));
      if (prior && this.isKeylessResend(obs, prior, data)) {
        if (!lifeSafety || (yield* this.incidentOpen(prior, s))) return this.dropDuplicate(obs, prior, 'packet-id');
        replayOf = prior;
      }
    }
    const insert = (flags: readonly string[] | undefined, generation: number) => s.rows.insert({
      deviceId, type, seq: seq ?? null, deviceTs: deviceTs ?? null, receivedAt, source, lifeSafety, data,
      flags: flags?.length ? JSON.stringify(flags) : null,
      session: keepSession ? obs.session ?? null : null, packetId: keepSession ? obs.packetId ?? null : null, generation,
    });
    if (replayOf) obs = flagReplay(obs);
    let observationId = yield* io(insert(obs.flags, 0));
    // 0: the key is stored already (only a keyed row can collide: rows without seq and time never do)
    if (observationId === 0) {
      const prior = (yield* io(s.rows.findKeyed(deviceId, seq!, deviceTs!, lifeSafety)))!;
      if (!lifeSafety || (yield* this.isKeyedResend(obs, prior, s))) return this.dropDuplicate(obs, prior, 'seq-ts');
      // Same (seq, ts) but not a plausible resend of an alarm someone is handling — a terminal whose clock and counter
      // reset repeats old keys: a cry for help is never dropped on its key alone. Kept as the key's next generation.
      replayOf = prior;
      obs = flagReplay(obs);
      observationId = yield* io(insert(obs.flags, prior.generation + 1));
    }
    if (replayOf) {
      this.counted(this.series.replay.at(source, keyed ? 'seq-ts' : 'packet-id'));
      this.log.warn(
        { deviceId, type, seq, deviceTs, packetId: obs.packetId, repeats: replayOf.id, repeatsIncident: replayOf.incidentId },
        'a life-safety observation repeats a stored key but is not a plausible resend: raised and flagged possible-replay (check the terminal\'s clock)',
      );
    }
    if (obs.session !== undefined) this.markFresh(obs.session);
    const stamps: Record<string, number> = { received: receivedAt };
    if (deviceTs !== undefined) stamps.deviceTs = deviceTs;
    const from = events.length;
    for (const step of this.steps) {
      // A failing step is logged and the others still run: a bug in one rule must not hold back an alarm.
      try {
        const ran = step.run(obs, observationId, stamps, s);
        // a step answers with a value when it writes nothing (no generator per step and message on the common path)
        const out = isStep<IncidentEvent[] | void>(ran) ? yield* ran : ran;
        if (out) for (const e of out) events.push(e);
      } catch (err) {
        this.log.error({ err, step: step.name, deviceId, type }, 'ingest step failed');
        // An alarm that could not be written must not be acknowledged as if it had: the observation is undone and
        // the device, with no PUBACK, resends it. For a life-safety observation any failure of the step that makes
        // incidents counts: it may not have become one.
        if (err instanceof AlarmNotRecordedError || (lifeSafety && step.raisesIncidents)) {
          if (!inSavepoint && observationId && s.usable()) yield* io(s.rows.remove(observationId));
          this.o.metrics.ingested.inc({ source, class: lifeSafety ? 'alarm' : 'other', result: 'not-recorded' });
          throw err instanceof AlarmNotRecordedError
            ? err
            : new AlarmNotRecordedError(`${type} from ${deviceId}: the ${step.name} step failed, no incident is certain`, { cause: err });
        }
      }
    }
    if (lifeSafety) {
      // which incident it opened or joined: a later repeat of its key asks whether that one is still open
      for (let i = from; i < events.length; i++) {
        const e = events[i]!;
        if ((e.type === 'opened' || e.type === 'joined') && e.data.observationId === observationId) {
          yield* io(s.rows.setIncident(observationId, e.incidentId));
          break;
        }
      }
    }
    this.o.states.apply(obs);
    for (const step of this.steps) {
      try {
        step.after?.(obs);
      } catch (err) {
        this.log.error({ err, step: step.name, deviceId, type }, 'ingest step (after) failed');
      }
    }
    this.counted(this.series.stored.at(source, lifeSafety ? 'alarm' : 'other', 'stored'));
    return { status: 'stored', observationId };
  }

  /**
   * Whether this observation is kept as a row. Heartbeat-like ones (heartbeat, battery, signal) are kept when they
   * say something new — battery, signal or mains changed beyond a small hysteresis, or another field changed — or
   * when the device's last kept row is ingest.heartbeatHistoryMs old; a Last Will / status never (it is state, and
   * the supervision rule's memory). Registers its own undo: a rolled-back row is not "the last kept".
   */
  private keepsRow(obs: Observation, fields: Record<string, unknown>): boolean {
    const every = this.o.config.heartbeatHistoryMs;
    if (every <= 0) return true;
    // the readings as locals, not an object: this runs for every heartbeat a fleet sends
    let battery: number | undefined;
    let signal: number | undefined;
    let mains: boolean | undefined;
    let other = '';
    switch (obs.type) {
      case 'status':
        return false;
      case 'heartbeat': {
        battery = obs.battery;
        signal = obs.signal;
        mains = obs.mains;
        // the rest of a heartbeat, serialised only when there is a rest (a fleet's heartbeats have none)
        if (hasFieldBeyondReadings(fields)) {
          const { battery: _b, signal: _s, mains: _m, ...rest } = fields;
          other = JSON.stringify(rest);
        }
        break;
      }
      case 'battery':
        battery = obs.level;
        break;
      case 'signal':
        signal = obs.level;
        break;
      default:
        return true;
    }
    const prev = this.keptRows.get(obs.deviceId);
    const keep = prev === undefined || obs.receivedAt - prev.at >= every || prev.other !== other ||
      changed(battery, prev.battery, BATTERY_HYSTERESIS) || changed(signal, prev.signal, SIGNAL_HYSTERESIS) ||
      (mains !== undefined && mains !== prev.mains);
    if (!keep) return false;
    // what this row says, and for what it does not say, what the row before said
    const next: KeptRow = {
      at: obs.receivedAt, other, battery: battery ?? prev?.battery, signal: signal ?? prev?.signal, mains: mains ?? prev?.mains,
    };
    this.keptRows.set(obs.deviceId, next);
    this.onRollback(() => {
      if (prev) this.keptRows.set(obs.deviceId, prev);
      else this.keptRows.delete(obs.deviceId);
    });
    return true;
  }

  /**
   * An observation kept as state only: the rules see it as any other (supervision resets its timer on a heartbeat,
   * counts a Last Will), the device's state takes it in (last seen, battery…, flushed with the state's rows), no row.
   * A resend of the last one (same seq and device time, or a DUP of the same packet id on the session) is dropped
   * as a duplicate, as the row's unique key would have.
   */
  private *processStateOnly(obs: Observation, events: IncidentEvent[], s: IngestScope): Step<IngestResult> {
    const { deviceId, seq, deviceTs, source } = obs;
    const key = seq !== undefined && deviceTs !== undefined ? `k:${seq}:${deviceTs}`
      : obs.packetId !== undefined && obs.session !== undefined ? `p:${obs.session}:${obs.packetId}` : undefined;
    const lastKey = this.stateKeys.get(deviceId);
    if (key !== undefined && key === lastKey && (key.startsWith('k:') || obs.redelivered === true)) {
      this.counted(this.series.stored.at(source, 'other', 'duplicate'));
      this.counted(this.series.duplicate.at(source, 'other', key.startsWith('k:') ? 'seq-ts' : 'packet-id'));
      return { status: 'duplicate', observationId: 0 };
    }
    if (key !== undefined) {
      this.stateKeys.set(deviceId, key);
      this.onRollback(() => {
        if (lastKey === undefined) this.stateKeys.delete(deviceId);
        else this.stateKeys.set(deviceId, lastKey);
      });
    }
    if (obs.session !== undefined) this.markFresh(obs.session);
    const stamps: Record<string, number> = { received: obs.receivedAt };
    if (deviceTs !== undefined) stamps.deviceTs = deviceTs;
    for (const step of this.steps) {
      try {
        const ran = step.run(obs, 0, stamps, s);
        const out = isStep<IncidentEvent[] | void>(ran) ? yield* ran : ran;
        if (out) for (const e of out) events.push(e);
      } catch (err) {
        this.log.error({ err, step: step.name, deviceId, type: obs.type }, 'ingest step failed');
        // an alarm it raised (offline cleared, mains lost) could not be written: not acknowledged, comes again
        if (err instanceof AlarmNotRecordedError) {
          this.o.metrics.ingested.inc({ source, class: 'other', result: 'not-recorded' });
          throw err;
        }
      }
    }
    this.o.states.apply(obs);
    for (const step of this.steps) {
      try {
        step.after?.(obs);
      } catch (err) {
        this.log.error({ err, step: step.name, deviceId, type: obs.type }, 'ingest step (after) failed');
      }
    }
    this.counted(this.series.stored.at(source, 'other', 'state'));
    return { status: 'stored', observationId: 0 };
  }

  /**
   * A keyless envelope (no ts/seq) with the packet id and content of a stored one is a resend when it is replayed
   * at the start of a later session, before that session sent anything new (arrival order), or when the sender
   * marked it DUP on the same session — and only within the resend window.
   */
  private isKeylessResend(obs: Observation, prior: PriorRow, data: string): boolean {
    if (prior.type !== obs.type || prior.data !== data || prior.session === null) return false;
    if (obs.receivedAt - prior.receivedAt > this.resendWindowMs) return false;
    if (prior.session === obs.session) return obs.redelivered === true;
    return !this.freshSessions.has(obs.session!);
  }

  /** A repeated (seq, ts) of a life-safety observation is a resend if it comes on the same session or soon after, and
   * its incident is still open (someone is on it). */
  private *isKeyedResend(obs: Observation, prior: PriorRow, s: IngestScope): Step<boolean> {
    const sameSession = obs.session !== undefined && obs.session === prior.session;
    const soon = Math.abs(obs.receivedAt - prior.receivedAt) <= this.resendWindowMs;
    return (sameSession || soon) && (yield* this.incidentOpen(prior, s));
  }

  private *incidentOpen(prior: PriorRow, s: IngestScope): Step<boolean> {
    if (prior.incidentId === null) return false;
    const status = yield* io(s.incidentStatus(prior.incidentId));
    return status !== undefined && status !== 'resolved' && status !== 'cancelled';
  }

  private dropDuplicate(obs: Observation, prior: PriorRow, key: 'seq-ts' | 'packet-id'): IngestResult {
    const cls = isLifeSafety(obs.type) ? 'alarm' : 'other';
    this.counted(this.series.stored.at(obs.source, cls, 'duplicate'));
    this.counted(this.series.duplicate.at(obs.source, cls, key));
    this.log.debug(
      {
        deviceId: obs.deviceId, type: obs.type, key,
        ...(key === 'seq-ts' ? { seq: obs.seq, deviceTs: obs.deviceTs } : { packetId: obs.packetId }),
        session: obs.session, duplicateOf: prior.id, incidentId: prior.incidentId,
      },
      'duplicate dropped: a resend of an observation already stored',
    );
    return { status: 'duplicate', observationId: prior.id };
  }

  private markFresh(session: string): void {
    if (this.freshSessions.has(session)) return;
    // bounded: a session is only asked about in its first moments (sets iterate in insertion order)
    if (this.freshSessions.size >= 200_000) {
      let n = 0;
      for (const s of this.freshSessions) {
        this.freshSessions.delete(s);
        if (++n >= 50_000) break;
      }
    }
    this.freshSessions.add(session);
    // a batch rolled back (run again, or resent by the device) must see the session as it was: a replay it holds is
    // still a replay
    this.onRollback(() => this.freshSessions.delete(session));
  }

  /** Write everything queued now (shutdown, tests). SQLite only: PostgreSQL's batches are awaited (drain). */
  flushAll(): void {
    if (this.o.pg) throw new Error('ingest over PostgreSQL: await drain() instead of flushAll()');
    this.flushUrgent();
    let rounds = 0;
    this.flushingAll = true;
    try {
      // device-state rows too, while commits succeed (bounded: a failing disk must not hold shutdown forever)
      while (this.telemetry.length > 0 || this.rejects.length > 0 || this.parked.length > 0 ||
        (this.lastCommitOk && this.o.states.dirtyCount() > 0 && rounds < 1000)) {
        rounds++;
        const before = this.telemetry.length + this.parked.length;
        this.flushTelemetry(false);
        // a failed batch is rejected and gone; waiting ones are admitted as room frees
        if (!this.lastCommitOk && before === 0 && this.rejects.length === 0) break;
      }
    } finally {
      this.flushingAll = false;
    }
    if (this.telemetryTimer) {
      clearTimeout(this.telemetryTimer);
      this.telemetryTimer = null;
    }
  }

  /** SQLite: write what is queued, then take no more. PostgreSQL: await drain() first; this only takes no more. */
  close(): void {
    if (!this.o.pg) this.flushAll();
    this.closed = true;
  }

  /**
   * Run `fn` where no batch is being written: at once on SQLite (a batch is one synchronous call), after the batch in
   * flight on PostgreSQL, before any batch formed later. What changes device states or rule memory outside a batch
   * (a connection's online flag, a registry change) goes through here, so a batch that fails rolls back only its own
   * changes, not ones made while it was awaiting its commit.
   */
  outsideBatch(fn: () => void): void {
    if (!this.o.pg) return fn();
    const run = () => {
      try {
        fn();
      } catch (err) {
        this.log.error({ err }, 'a change made between batches failed');
      }
    };
    this.commits = this.commits.then(run, run);
  }

  setPressure(on: boolean): void {
    if (on !== this.pressure) this.log.warn({ on }, on ? 'memory pressure: shedding telemetry until it passes' : 'memory pressure passed');
    this.pressure = on;
    this.sayQueue();
  }

  /** `waiting`: QoS 1 telemetry waiting for room in a full queue (not acknowledged yet) */
  queueDepth(): { urgent: number; telemetry: number; waiting: number } {
    return { urgent: this.urgent.length, telemetry: this.telemetry.length, waiting: this.parked.length };
  }
}

/** an observation's envelope: what dataOf leaves out */
const ENVELOPE: ReadonlySet<string> = new Set<keyof Observation>([
  'deviceId', 'type', 'seq', 'deviceTs', 'receivedAt', 'source', 'flags', 'session', 'packetId', 'redelivered', 'ordered',
]);

/**
 * The fields of an observation beyond the envelope, as stored, in the order the observation has them. A loop, not a
 * rest pattern with eleven exclusions: about half the cost, on every message the writer takes (a heartbeat, measured
 * alone on one pinned core: 0.10 against 0.20 µs).
 */
function dataOf(obs: Observation): Record<string, unknown> {
  const rest: Record<string, unknown> = {};
  const o = obs as unknown as Record<string, unknown>;
  for (const k in o) if (!ENVELOPE.has(k)) rest[k] = o[k];
  return rest;
}

function flagReplay(obs: Observation): Observation {
  return obs.flags?.includes(POSSIBLE_REPLAY) ? obs : { ...obs, flags: [...(obs.flags ?? []), POSSIBLE_REPLAY] };
}

/** A step's or task's answer as a step: a generator is run through the scope, a value passes as it is. */
function* stepEvents(out: StepOut): Step<IncidentEvent[] | void> {
  return isStep<IncidentEvent[] | void>(out) ? yield* out : out;
}

/** A batch's devices whose ordered observation was not stored: their later ordered ones wait for it (device order). */
class HeldDevices {
  private devices: Set<string> | null = null;

  notStored(obs: Observation): void {
    if (obs.ordered === true) (this.devices ??= new Set()).add(obs.deviceId);
  }

  /** the refusal for an ordered observation behind one not stored, or undefined */
  waits(obs: Observation): Error | undefined {
    if (this.devices === null || obs.ordered !== true || !this.devices.has(obs.deviceId)) return undefined;
    return Object.assign(new Error(`an earlier message of ${obs.deviceId} was not stored: this one waits for it, to be stored in the device's order`), { code: EARLIER_NOT_STORED });
  }
}

/** an error and its causes, outermost first (a few levels: the abort's wrapper, drizzle's, the driver's) */
function causes(err: unknown): unknown[] {
  const out: unknown[] = [];
  for (let e = err, i = 0; e !== undefined && e !== null && i < 8; e = (e as { cause?: unknown }).cause, i++) out.push(e);
  return out;
}
