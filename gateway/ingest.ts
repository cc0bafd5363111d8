// The single writer: every observation, from any transport, passes here. Alarms and events are group-committed on
// the next turn of the event loop with synchronous=FULL, and only then is their promise resolved (PUBACK, Contact ID
// ACK). Telemetry is batched. One device's observations are processed strictly in arrival order: when an urgent
// observation arrives, that device's pending telemetry is written first, in the same transaction.
import type Database from 'better-sqlite3';
import type { Logger } from '../core/logger.js';
import type { Config } from '../core/config.js';
import type { Metrics } from '../core/metrics.js';
import {
  POSSIBLE_REPLAY, isLifeSafety, type IncidentEvent, type IngestResult, type Observation, type ObservationSink,
} from '../core/contracts.js';
import type { DeviceStates } from './device-state.js';
import { isStorageError, type StorageHealth } from '../core/storage-health.js';

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

export interface IngestStep {
  name: string;
  /** sees the device's state as it was before this observation (the observation is folded in after all steps) */
  run(obs: Observation, observationId: number, stamps: Record<string, number>): IncidentEvent[] | void;
  /** after the observation was folded into the device's state (state patches a rule asked for) */
  after?(obs: Observation): void;
  /**
   * The step that turns observations into incidents (rules → incidents): if it fails in any way on a life-safety
   * observation, that observation is not kept and not acknowledged (a failure of another step is logged only).
   */
  raisesIncidents?: boolean;
}

/** Work for one device that must run in its order with its observations (a rule timer that came due). */
export type DeviceTask = () => IncidentEvent[] | void;

interface Pending {
  obs: Observation;
  task?: DeviceTask;
  resolve?: (r: IngestResult) => void;
  reject?: (err: Error) => void;
}

interface RejectRow {
  deviceId: string | null;
  source: string;
  topic: string | null;
  reason: string;
  raw: string;
  at: number;
}

export interface IngestOptions {
  sqlite: Database.Database;
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
}

/** How long after the original a repeat of its key can still be a transport resend (reconnect back-off included). */
export const RESEND_WINDOW_MS = 120_000;

/** The stored observation a new one repeats. */
interface PriorRow {
  id: number;
  session: string | null;
  receivedAt: number;
  generation: number;
  incidentId: string | null;
  type: string;
  data: string;
}

export class Ingest implements ObservationSink {
  private urgent: Pending[] = [];
  private telemetry: Pending[] = [];
  private rejects: RejectRow[] = [];
  private readonly pendingTelemetryByDevice = new Map<string, number>();
  private urgentScheduled = false;
  private telemetryTimer: NodeJS.Timeout | null = null;
  private steps: IngestStep[] = [];
  private closed = false;
  /** memory pressure: telemetry is shed until it passes (alarms never are) */
  private pressure = false;
  private readonly insertObs: Database.Statement;
  private readonly findKeyed: Database.Statement;
  private readonly findKeyless: Database.Statement;
  private readonly incidentStatus: Database.Statement;
  private readonly setIncident: Database.Statement;
  private readonly deleteObs: Database.Statement;
  private readonly resendWindowMs: number;
  /**
   * Sessions that have delivered a new observation: a client replays what was unacknowledged first, in order, on a
   * new connection [MQTT-4.4.0-1, MQTT-4.6.0-1], so after a session's first new message nothing of it is a resend.
   */
  private readonly freshSessions = new Set<string>();
  /** undo actions for memory outside the database (rule memory, timers), registered while a batch is written */
  private undoHooks: (() => void)[] = [];
  private readonly insertReject: Database.Statement;
  private readonly pruneRejects: Database.Statement;
  private rejectsSincePrune = 0;
  private readonly log: Logger;

  constructor(private readonly o: IngestOptions) {
    this.log = o.log.child({ module: 'ingest' });
    const db = o.sqlite;
    this.resendWindowMs = o.resendWindowMs ?? RESEND_WINDOW_MS;
    this.insertObs = db.prepare(`insert into observations (device_id, type, seq, device_ts, received_at, source, life_safety, data, flags,
      session, packet_id, generation) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) on conflict do nothing`);
    const prior = `select id, session, received_at as receivedAt, generation, incident_id as incidentId, type, data from observations`;
    this.findKeyed = db.prepare(`${prior} where device_id = ? and seq = ? and device_ts = ? order by generation desc limit 1`);
    // the partial index observations_keyless_idx: only rows without a dedup key that came with a packet id
    this.findKeyless = db.prepare(`${prior} where device_id = ? and seq is null and packet_id = ? order by id desc limit 1`);
    this.incidentStatus = db.prepare('select status from incidents where id = ?').pluck();
    this.setIncident = db.prepare('update observations set incident_id = ? where id = ?');
    this.deleteObs = db.prepare('delete from observations where id = ?');
    this.insertReject = db.prepare('insert into rejects (device_id, source, topic, reason, raw, at) values (?, ?, ?, ?, ?, ?)');
    this.pruneRejects = db.prepare('delete from rejects where id <= (select max(id) from rejects) - ?');
    // called inside the batch's transaction, a better-sqlite3 transaction function is a SAVEPOINT
    this.processInSavepoint = db.transaction((obs: Observation, events: IncidentEvent[]) => this.processOne(obs, events, true));
  }

  /**
   * While an observation or task is being written: run `fn` if its writes are rolled back (its alarm failed, or the
   * whole batch did), so that state kept in memory — rule memory, timers — never moves ahead of the database.
   */
  onRollback(fn: () => void): void {
    this.undoHooks.push(fn);
  }

  private runUndo(from: number): void {
    const hooks = this.undoHooks.splice(from);
    for (let i = hooks.length - 1; i >= 0; i--) {
      try {
        hooks[i]!();
      } catch (err) {
        this.log.error({ err }, 'undoing in-memory state after a rollback failed');
      }
    }
  }

  /** Steps are set once at start-up, in order. */
  use(step: IngestStep): void {
    this.steps.push(step);
  }

  /** Durable before the promise resolves. Life-safety events and device events take this path. */
  submit(obs: Observation): Promise<IngestResult> {
    if (this.closed) return Promise.reject(new Error('ingest is closed: the gateway is shutting down'));
    return new Promise((resolve, reject) => {
      this.urgent.push({ obs, resolve, reject });
      if (!this.urgentScheduled) {
        this.urgentScheduled = true;
        setImmediate(() => this.flushUrgent());
      }
    });
  }

  /** Run `task` inside the next urgent transaction, after everything already queued for that device. */
  enqueueTask(deviceId: string, task: DeviceTask): void {
    if (this.closed) return;
    this.urgent.push({ obs: { deviceId, type: 'supervision', receivedAt: Date.now(), source: 'gateway' }, task });
    if (!this.urgentScheduled) {
      this.urgentScheduled = true;
      setImmediate(() => this.flushUrgent());
    }
  }

  /**
   * Telemetry: batched. With `wait` the promise resolves once the batch is durable (QoS 1 telemetry); without it,
   * fire and forget. Under overload telemetry is shed (counted) — alarms never are.
   */
  submitTelemetry(obs: Observation, wait: boolean): Promise<IngestResult> | undefined {
    if (this.closed) return wait ? Promise.reject(new Error('ingest is closed')) : undefined;
    if (isLifeSafety(obs.type)) return this.submit(obs);
    if (this.pressure || this.telemetry.length >= this.o.config.telemetryQueueLimit) {
      this.o.metrics.shed.inc();
      return wait ? Promise.resolve({ status: 'duplicate', observationId: 0 }) : undefined;
    }
    this.pendingTelemetryByDevice.set(obs.deviceId, (this.pendingTelemetryByDevice.get(obs.deviceId) ?? 0) + 1);
    let p: Promise<IngestResult> | undefined;
    if (wait) {
      p = new Promise((resolve, reject) => this.telemetry.push({ obs, resolve, reject }));
    } else {
      this.telemetry.push({ obs });
    }
    if (this.telemetry.length >= this.o.config.telemetryBatchRows) {
      setImmediate(() => this.flushTelemetry());
    } else if (!this.telemetryTimer) {
      this.telemetryTimer = setTimeout(() => this.flushTelemetry(), this.o.config.telemetryFlushMs);
    }
    return p;
  }

  /** A refused frame from an authenticated device: kept raw (bounded) for diagnosis, written with the next batch. */
  recordReject(row: Omit<RejectRow, 'raw'> & { raw: Buffer | string }): void {
    const raw = typeof row.raw === 'string' ? row.raw : row.raw.toString('utf8');
    this.rejects.push({ ...row, raw: raw.slice(0, this.o.config.rejectRawBytes) });
    if (!this.telemetryTimer) this.telemetryTimer = setTimeout(() => this.flushTelemetry(), this.o.config.telemetryFlushMs);
  }

  private flushUrgent(): void {
    this.urgentScheduled = false;
    const batch = this.urgent;
    this.urgent = [];
    if (batch.length === 0) return;
    // a device's earlier telemetry goes first, so its observations stay in arrival order
    const before: Pending[] = [];
    if (this.pendingTelemetryByDevice.size > 0 && this.telemetry.length > 0) {
      const urgentDevices = new Set<string>();
      for (const p of batch) if (this.pendingTelemetryByDevice.has(p.obs.deviceId)) urgentDevices.add(p.obs.deviceId);
      if (urgentDevices.size > 0) {
        const keep: Pending[] = [];
        for (const p of this.telemetry) (urgentDevices.has(p.obs.deviceId) ? before : keep).push(p);
        this.telemetry = keep;
        for (const id of urgentDevices) this.pendingTelemetryByDevice.delete(id);
      }
    }
    this.commit(before.length ? before.concat(batch) : batch, 'urgent');
  }

  private flushTelemetry(): void {
    if (this.telemetryTimer) {
      clearTimeout(this.telemetryTimer);
      this.telemetryTimer = null;
    }
    const batch = this.telemetry.splice(0, this.o.config.telemetryBatchRows);
    for (const p of batch) {
      const n = (this.pendingTelemetryByDevice.get(p.obs.deviceId) ?? 1) - 1;
      if (n <= 0) this.pendingTelemetryByDevice.delete(p.obs.deviceId);
      else this.pendingTelemetryByDevice.set(p.obs.deviceId, n);
    }
    if (batch.length > 0 || this.rejects.length > 0) this.commit(batch, 'telemetry');
    if (this.telemetry.length > 0 || this.rejects.length > 0) {
      this.telemetryTimer = setTimeout(() => this.flushTelemetry(), this.telemetry.length >= this.o.config.telemetryBatchRows ? 0 : this.o.config.telemetryFlushMs);
    }
  }

  /** One transaction, one fsync, for the whole batch. */
  private commit(batch: Pending[], queue: 'urgent' | 'telemetry'): void {
    const started = performance.now();
    const results: IngestResult[] = new Array(batch.length);
    const failures: (Error | undefined)[] = new Array(batch.length);
    const events: IncidentEvent[] = [];
    const rejects = this.rejects;
    this.rejects = [];
    // Alarms and events: synchronous=FULL (fsync at every commit). Telemetry batches: NORMAL — in WAL mode a commit
    // survives a crash of the process and is lost only with the machine's power, and a heartbeat the device sent
    // at QoS 0 was never promised more; skipping that fsync keeps the event loop free for the next alarm.
    const relaxed = queue === 'telemetry';
    if (relaxed) this.o.sqlite.pragma('synchronous = NORMAL');
    try {
      this.o.sqlite.transaction(() => {
        for (let i = 0; i < batch.length; i++) {
          const p = batch[i]!;
          const mark = this.undoHooks.length;
          if (p.task) {
            try {
              const out = p.task();
              if (out) for (const e of out) events.push(e);
            } catch (err) {
              this.log.error({ err, deviceId: p.obs.deviceId }, 'device task failed');
              this.runUndo(mark);
            }
            results[i] = { status: 'stored', observationId: 0 };
            continue;
          }
          // each observation in its own savepoint: one that fails is rolled back alone, the batch goes on
          const own: IncidentEvent[] = [];
          try {
            // only a life-safety observation can be refused by a step (AlarmNotRecordedError): the savepoint's two
            // statements are not spent on every heartbeat
            results[i] = isLifeSafety(p.obs.type) ? this.processInSavepoint(p.obs, own) : this.processOne(p.obs, own, false);
            for (const e of own) events.push(e);
          } catch (err) {
            failures[i] = err as Error;
            this.runUndo(mark);
          }
        }
        for (const r of rejects) this.insertReject.run(r.deviceId, r.source, r.topic, r.reason, r.raw, r.at);
        this.o.states.flushDirty(Date.now());
      })();
    } catch (err) {
      if (relaxed) this.o.sqlite.pragma('synchronous = FULL');
      this.runUndo(0);
      this.o.storage?.failed('ingest', err);
      // Nothing of this batch is durable: every waiting transport is told, so no device gets an ACK for it.
      this.log.error({ err, rows: batch.length, queue }, 'write failed: the batch is not acknowledged and will be resent by devices');
      for (const p of batch) p.reject?.(err as Error);
      return;
    }
    this.undoHooks.length = 0;
    if (relaxed) this.o.sqlite.pragma('synchronous = FULL');
    // an observation refused by the storage (its savepoint failed on a full disk) is a storage fault too
    const storageFailure = failures.find((f) => f !== undefined && (isStorageError(f) || isStorageError(f.cause)));
    if (storageFailure) this.o.storage?.failed('ingest', isStorageError(storageFailure) ? storageFailure : storageFailure.cause);
    else this.o.storage?.succeeded();
    const commitMs = performance.now() - started;
    this.o.metrics.stage.observe({ stage: queue === 'urgent' ? 'commit_urgent' : 'commit_telemetry' }, commitMs / 1000);
    this.o.metrics.batchRows.observe({ queue }, batch.length);
    if (rejects.length) {
      this.rejectsSincePrune += rejects.length;
      if (this.rejectsSincePrune > 500) {
        this.rejectsSincePrune = 0;
        this.pruneRejects.run(this.o.config.rejectsKept);
      }
    }
    for (let i = 0; i < batch.length; i++) {
      const f = failures[i];
      if (f) batch[i]!.reject?.(f);
      else batch[i]!.resolve?.(results[i]!);
    }
    if (events.length) {
      try {
        this.o.onCommitted(events);
      } catch (err) {
        this.log.error({ err }, 'publishing committed incident events failed');
      }
    }
  }

  /** processOne inside a SAVEPOINT (a better-sqlite3 transaction function called inside the batch's transaction) */
  private readonly processInSavepoint: (obs: Observation, events: IncidentEvent[]) => IngestResult;

  /**
   * Dedup, insert, steps. `inSavepoint`: the caller rolls everything back if this throws; otherwise (telemetry) an
   * observation whose alarm could not be written is deleted here, so it is neither kept nor acknowledged.
   */
  private processOne(input: Observation, events: IncidentEvent[], inSavepoint: boolean): IngestResult {
    let obs = input;
    const { type, deviceId, seq, deviceTs, receivedAt, source } = obs;
    const lifeSafety = isLifeSafety(type);
    const data = JSON.stringify(dataOf(obs));
    // the session is kept where dedup will ask for it: life-safety rows and rows without a key
    const keyed = seq !== undefined && deviceTs !== undefined;
    const keepSession = lifeSafety || !keyed;
    let replayOf: PriorRow | undefined;
    if (!keyed && obs.packetId !== undefined && obs.session !== undefined) {
      const prior = this.findKeyless.get(deviceId, obs.packetId) as PriorRow | undefined;
      if (prior && this.isKeylessResend(obs, prior, data)) {
        if (!lifeSafety || this.incidentOpen(prior)) return this.dropDuplicate(obs, prior, 'packet-id');
        replayOf = prior;
      }
    }
    const insert = (flags: readonly string[] | undefined, generation: number) => this.insertObs.run(
      deviceId, type, seq ?? null, deviceTs ?? null, receivedAt, source, lifeSafety ? 1 : 0, data,
      flags?.length ? JSON.stringify(flags) : null,
      keepSession ? obs.session ?? null : null, keepSession ? obs.packetId ?? null : null, generation,
    );
    if (replayOf) obs = flagReplay(obs);
    let info = insert(obs.flags, 0);
    if (info.changes === 0) {
      const prior = this.findKeyed.get(deviceId, seq, deviceTs) as PriorRow;
      if (!lifeSafety || this.isKeyedResend(obs, prior)) return this.dropDuplicate(obs, prior, 'seq-ts');
      // Same (seq, ts) but not a plausible resend of an alarm someone is handling — a terminal whose clock and counter
      // reset repeats old keys: a cry for help is never dropped on its key alone. Kept as the key's next generation.
      replayOf = prior;
      obs = flagReplay(obs);
      info = insert(obs.flags, prior.generation + 1);
    }
    if (replayOf) {
      this.o.metrics.replays.inc({ source, key: keyed ? 'seq-ts' : 'packet-id' });
      this.log.warn(
        { deviceId, type, seq, deviceTs, packetId: obs.packetId, repeats: replayOf.id, repeatsIncident: replayOf.incidentId },
        'a life-safety observation repeats a stored key but is not a plausible resend: raised and flagged possible-replay (check the terminal\'s clock)',
      );
    }
    if (obs.session !== undefined) this.markFresh(obs.session);
    const observationId = Number(info.lastInsertRowid);
    const stamps: Record<string, number> = { received: receivedAt };
    if (deviceTs !== undefined) stamps.deviceTs = deviceTs;
    const from = events.length;
    for (const step of this.steps) {
      // A failing step is logged and the others still run: a bug in one rule must not hold back an alarm.
      try {
        const out = step.run(obs, observationId, stamps);
        if (out) for (const e of out) events.push(e);
      } catch (err) {
        this.log.error({ err, step: step.name, deviceId, type }, 'ingest step failed');
        // An alarm that could not be written must not be acknowledged as if it had: the observation is undone and
        // the device, with no PUBACK, resends it. For a life-safety observation any failure of the step that makes
        // incidents counts: it may not have become one.
        if (err instanceof AlarmNotRecordedError || (lifeSafety && step.raisesIncidents)) {
          if (!inSavepoint) this.deleteObs.run(observationId);
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
          this.setIncident.run(e.incidentId, observationId);
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
    this.o.metrics.ingested.inc({ source, class: lifeSafety ? 'alarm' : 'other', result: 'stored' });
    return { status: 'stored', observationId };
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
  private isKeyedResend(obs: Observation, prior: PriorRow): boolean {
    const sameSession = obs.session !== undefined && obs.session === prior.session;
    const soon = Math.abs(obs.receivedAt - prior.receivedAt) <= this.resendWindowMs;
    return (sameSession || soon) && this.incidentOpen(prior);
  }

  private incidentOpen(prior: PriorRow): boolean {
    if (prior.incidentId === null) return false;
    const status = this.incidentStatus.get(prior.incidentId) as string | undefined;
    return status !== undefined && status !== 'resolved' && status !== 'cancelled';
  }

  private dropDuplicate(obs: Observation, prior: PriorRow, key: 'seq-ts' | 'packet-id'): IngestResult {
    const cls = isLifeSafety(obs.type) ? 'alarm' : 'other';
    this.o.metrics.ingested.inc({ source: obs.source, class: cls, result: 'duplicate' });
    this.o.metrics.duplicates.inc({ source: obs.source, class: cls, key });
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
  }

  /** Write everything queued now (shutdown, tests). */
  flushAll(): void {
    this.flushUrgent();
    while (this.telemetry.length > 0 || this.rejects.length > 0) this.flushTelemetry();
    if (this.telemetryTimer) {
      clearTimeout(this.telemetryTimer);
      this.telemetryTimer = null;
    }
  }

  close(): void {
    this.flushAll();
    this.closed = true;
  }

  setPressure(on: boolean): void {
    if (on !== this.pressure) this.log.warn({ on }, on ? 'memory pressure: shedding telemetry until it passes' : 'memory pressure passed');
    this.pressure = on;
  }

  queueDepth(): { urgent: number; telemetry: number } {
    return { urgent: this.urgent.length, telemetry: this.telemetry.length };
  }
}

/** The fields of an observation beyond the envelope, as stored. */
function dataOf(obs: Observation): Record<string, unknown> {
  const {
    deviceId: _d, type: _t, seq: _s, deviceTs: _ts, receivedAt: _r, source: _src, flags: _f, session: _ss, packetId: _p,
    redelivered: _rd, ...rest
  } = obs as Observation & Record<string, unknown>;
  return rest;
}

function flagReplay(obs: Observation): Observation {
  return obs.flags?.includes(POSSIBLE_REPLAY) ? obs : { ...obs, flags: [...(obs.flags ?? []), POSSIBLE_REPLAY] };
}
