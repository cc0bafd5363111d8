// The single writer: every observation, from any transport, passes here. Alarms and events are group-committed on
// the next turn of the event loop with synchronous=FULL, and only then is their promise resolved (PUBACK, Contact ID
// ACK). Telemetry is batched. One device's observations are processed strictly in arrival order: when an urgent
// observation arrives, that device's pending telemetry is written first, in the same transaction.
import type Database from 'better-sqlite3';
import type { Logger } from '../core/logger.js';
import type { Config } from '../core/config.js';
import type { Metrics } from '../core/metrics.js';
import {
  isLifeSafety, type IncidentEvent, type IngestResult, type Observation, type ObservationSink,
} from '../core/contracts.js';
import type { DeviceStates } from './device-state.js';

/**
 * A processing step run for each new (non-duplicate) observation inside the write transaction, in order
 * (rules → incidents, command acks, …). It returns incident events to publish once the transaction is durable.
 */
/** Thrown by a step when a life-safety observation could not be turned into an incident: the observation is not kept. */
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
  private readonly findObs: Database.Statement;
  private readonly insertReject: Database.Statement;
  private readonly pruneRejects: Database.Statement;
  private rejectsSincePrune = 0;
  private readonly log: Logger;

  constructor(private readonly o: IngestOptions) {
    this.log = o.log.child({ module: 'ingest' });
    const db = o.sqlite;
    this.insertObs = db.prepare(`insert into observations (device_id, type, seq, device_ts, received_at, source, life_safety, data, flags)
      values (?, ?, ?, ?, ?, ?, ?, ?, ?) on conflict do nothing`);
    this.findObs = db.prepare('select id from observations where device_id = ? and seq = ? and device_ts = ?').pluck();
    this.insertReject = db.prepare('insert into rejects (device_id, source, topic, reason, raw, at) values (?, ?, ?, ?, ?, ?)');
    this.pruneRejects = db.prepare('delete from rejects where id <= (select max(id) from rejects) - ?');
    // called inside the batch's transaction, a better-sqlite3 transaction function is a SAVEPOINT
    this.processInSavepoint = db.transaction((obs: Observation, events: IncidentEvent[]) => this.processOne(obs, events));
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
          if (p.task) {
            try {
              const out = p.task();
              if (out) for (const e of out) events.push(e);
            } catch (err) {
              this.log.error({ err, deviceId: p.obs.deviceId }, 'device task failed');
            }
            results[i] = { status: 'stored', observationId: 0 };
            continue;
          }
          // each observation in its own savepoint: one that fails is rolled back alone, the batch goes on
          const own: IncidentEvent[] = [];
          try {
            // only a life-safety observation can be refused by a step (AlarmNotRecordedError): the savepoint's two
            // statements are not spent on every heartbeat
            results[i] = isLifeSafety(p.obs.type) ? this.processInSavepoint(p.obs, own) : this.processOne(p.obs, own);
            for (const e of own) events.push(e);
          } catch (err) {
            failures[i] = err as Error;
          }
        }
        for (const r of rejects) this.insertReject.run(r.deviceId, r.source, r.topic, r.reason, r.raw, r.at);
        this.o.states.flushDirty(Date.now());
      })();
    } catch (err) {
      if (relaxed) this.o.sqlite.pragma('synchronous = FULL');
      // Nothing of this batch is durable: every waiting transport is told, so no device gets an ACK for it.
      this.log.error({ err, rows: batch.length, queue }, 'write failed: the batch is not acknowledged and will be resent by devices');
      for (const p of batch) p.reject?.(err as Error);
      return;
    }
    if (relaxed) this.o.sqlite.pragma('synchronous = FULL');
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

  private processOne(obs: Observation, events: IncidentEvent[]): IngestResult {
    const { type, deviceId, seq, deviceTs, receivedAt, source, flags } = obs;
    const data = dataOf(obs);
    const info = this.insertObs.run(
      deviceId, type, seq ?? null, deviceTs ?? null, receivedAt, source, isLifeSafety(type) ? 1 : 0,
      JSON.stringify(data), flags?.length ? JSON.stringify(flags) : null,
    );
    if (info.changes === 0) {
      const id = this.findObs.get(deviceId, seq, deviceTs) as number;
      this.o.metrics.ingested.inc({ source, class: isLifeSafety(type) ? 'alarm' : 'other', result: 'duplicate' });
      return { status: 'duplicate', observationId: id };
    }
    const observationId = Number(info.lastInsertRowid);
    const stamps: Record<string, number> = { received: receivedAt };
    if (deviceTs !== undefined) stamps.deviceTs = deviceTs;
    for (const step of this.steps) {
      // A failing step is logged and the others still run: a bug in one rule must not hold back an alarm.
      try {
        const out = step.run(obs, observationId, stamps);
        if (out) for (const e of out) events.push(e);
      } catch (err) {
        this.log.error({ err, step: step.name, deviceId, type }, 'ingest step failed');
        // An alarm that could not become an incident must not be acknowledged as if it had: its savepoint is rolled
        // back and the device, with no PUBACK, resends it.
        if (err instanceof AlarmNotRecordedError) throw err;
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
    this.o.metrics.ingested.inc({ source, class: isLifeSafety(type) ? 'alarm' : 'other', result: 'stored' });
    return { status: 'stored', observationId };
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
  const { deviceId: _d, type: _t, seq: _s, deviceTs: _ts, receivedAt: _r, source: _src, flags: _f, ...rest } = obs as Observation & Record<string, unknown>;
  return rest;
}
