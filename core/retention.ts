// Retention (issue 13, docs/operations.md "Retention"): what the database holds stops growing.
//
// - observations (telemetry, heartbeats, alarms) older than `retention.telemetryDays` are deleted, except those an
//   incident still in the database points at (observations.incident_id), or that an open incident's events name
//   (data.observationId): an incident's evidence lives as long as the incident;
// - resolved and cancelled incidents whose last event is older than `retention.incidentsDays` are deleted with their
//   events (0 = never);
// - the audit log is never pruned here: it is append-only, guarded by triggers (docs/security.md);
// - `rejects` stays bounded by ingest as before (ingest.rejectsKept).
//
// Every transaction deletes at most `batchRows` rows and is shrunk further when one takes longer than ~5 ms; between
// two, the event loop is given back (setImmediate), so an SOS arriving mid-prune waits for at most one small batch.
// The database keeps auto_vacuum=NONE: freed pages go to SQLite's freelist and are reused by the next inserts, so
// the file stops growing at its steady-state size instead of shrinking (see docs/operations.md for the measurement).
import type Database from 'better-sqlite3';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';
import { yieldToWriter } from './write-turn.js';
import { withoutFsync } from './db.js';

/** What a pass reports to /metrics (docs/operations.md § Monitoring). */
export type RetentionMetrics = Pick<Metrics, 'retentionDeleted' | 'retentionLastRun' | 'retentionDuration' | 'retentionFailures'>;

export interface RetentionSettings {
  telemetryDays: number;
  incidentsDays: number;
  intervalMs: number;
  batchRows: number;
}

export interface RetentionResult {
  observations: number;
  incidents: number;
  incidentEvents: number;
  batches: number;
  ms: number;
  /** pages on SQLite's freelist after the pass: space the next inserts reuse */
  freePages: number;
  /** the pass was stopped by close() */
  stopped: boolean;
}

export interface Retention {
  /** one pass now (a pass already running is joined, not doubled) */
  runNow(): Promise<RetentionResult>;
  /** a pass is in progress */
  running(): boolean;
  /** stop the timer and the pass in progress after its current batch */
  close(): Promise<void>;
}

const DAY = 86_400_000;
/** a transaction longer than this shrinks the next batch: an alarm write never waits long behind one */
const TARGET_MS = 5;
const CLOSED = `('resolved', 'cancelled')`;
// listed, not `NOT IN CLOSED`, so that the few open incidents are found through their index, not by a scan of events
const OPEN = `('open', 'acknowledged', 'dispatched', 'on-site')`;

export function startRetention(d: {
  sqlite: Database.Database;
  settings: RetentionSettings;
  log: Logger;
  now?: () => number;
  /** run the first pass at once and then every intervalMs (false: only runNow, for tests) */
  schedule?: boolean;
  /** rows deleted per table, when the last pass ended and how long it took */
  metrics?: RetentionMetrics;
}): Retention {
  const { sqlite, settings, log } = d;
  const now = d.now ?? Date.now;
  const q = {
    closedIncidents: sqlite.prepare<[number, number, number], { id: string }>(
      `SELECT i.id FROM incidents i
        WHERE i.status IN ${CLOSED} AND i.last_at < ?
          AND (SELECT e.at FROM incident_events e WHERE e.incident_id = i.id ORDER BY e.seq DESC LIMIT 1) < ?
        LIMIT ?`,
    ),
    deleteEvents: sqlite.prepare<[string]>('DELETE FROM incident_events WHERE incident_id = ?'),
    // push and delivery receipts (response/receipts.ts) go with their incident
    deleteReceipts: sqlite.prepare<[string]>('DELETE FROM incident_receipts WHERE incident_id = ?'),
    deleteIncident: sqlite.prepare<[string]>('DELETE FROM incidents WHERE id = ?'),
    // oldest first through observations_received_idx; the protected ones are few (alarm observations)
    deleteObservations: sqlite.prepare<[number, number]>(
      `DELETE FROM observations WHERE id IN (
         SELECT o.id FROM observations o
          WHERE o.received_at < ?
            AND (o.incident_id IS NULL OR NOT EXISTS (SELECT 1 FROM incidents i WHERE i.id = o.incident_id))
            AND o.id NOT IN (
              SELECT CAST(json_extract(e.data, '$.observationId') AS INTEGER)
                FROM incidents i INDEXED BY incidents_status_prio_idx JOIN incident_events e ON e.incident_id = i.id
               WHERE i.status IN ${OPEN} AND json_extract(e.data, '$.observationId') IS NOT NULL)
          ORDER BY o.received_at LIMIT ?)`,
    ),
  };
  // between batches: a turn of the event loop, and the writer thread first if it wants the lock (core/write-turn.ts)
  const yieldLoop = async () => {
    await new Promise<void>((r) => setImmediate(r));
    await yieldToWriter();
  };

  let stopping = false;

  async function pass(): Promise<RetentionResult> {
    const started = performance.now();
    const r: RetentionResult = { observations: 0, incidents: 0, incidentEvents: 0, batches: 0, ms: 0, freePages: 0, stopped: false };
    let limit = settings.batchRows;
    /** one small transaction; returns the rows it deleted, and adapts the next batch's size to TARGET_MS */
    const batch = (fn: (limit: number) => number): number => {
      const t0 = performance.now();
      // without an fsync, as ingest does for telemetry: a delete lost with the machine's power is done again at the
      // next pass, and an fsync per small batch would cost more than the delete
      const n = withoutFsync(sqlite, () => sqlite.transaction(fn).immediate(limit));
      const ms = performance.now() - t0;
      r.batches++;
      if (ms > TARGET_MS && limit > 10) limit = Math.max(10, Math.floor(limit / 2));
      else if (ms < TARGET_MS / 2 && limit < settings.batchRows) limit = Math.min(settings.batchRows, limit * 2);
      return n;
    };

    if (settings.incidentsDays > 0) {
      const cutoff = now() - settings.incidentsDays * DAY;
      for (;;) {
        if (stopping) return { ...r, stopped: true };
        // an incident carries a few dozen events: a batch of incidents is a tenth of the row budget
        const n = batch((l) => {
          const ids = q.closedIncidents.all(cutoff, cutoff, Math.max(1, Math.floor(l / 10)));
          for (const { id } of ids) {
            r.incidentEvents += q.deleteEvents.run(id).changes;
            q.deleteReceipts.run(id);
            q.deleteIncident.run(id);
          }
          r.incidents += ids.length;
          return ids.length;
        });
        if (n === 0) break;
        await yieldLoop();
      }
    }

    const cutoff = now() - settings.telemetryDays * DAY;
    for (;;) {
      if (stopping) return { ...r, stopped: true };
      const n = batch((l) => q.deleteObservations.run(cutoff, l).changes);
      r.observations += n;
      if (n === 0) break;
      await yieldLoop();
    }
    r.freePages = Number(sqlite.pragma('freelist_count', { simple: true }));
    r.ms = Math.round(performance.now() - started);
    return r;
  }

  function record(r: RetentionResult, seconds: number) {
    const m = d.metrics;
    if (!m) return;
    // every pass is counted, a stopped one too: its batches are committed
    m.retentionDeleted.inc({ table: 'observations' }, r.observations);
    m.retentionDeleted.inc({ table: 'incidents' }, r.incidents);
    m.retentionDeleted.inc({ table: 'incident_events' }, r.incidentEvents);
    m.retentionDuration.observe(seconds);
    m.retentionLastRun.set(Date.now() / 1000);
  }

  const passes = schedulePasses({
    pass, log, schedule: d.schedule !== false, intervalMs: settings.intervalMs, what: 'retention pass',
    done: (r, seconds) => {
      if (r.observations || r.incidents) log.info({ ...r }, 'retention: old rows deleted');
      record(r, seconds);
    },
    failed: () => d.metrics?.retentionFailures.inc(),
  });

  return {
    runNow: passes.runNow,
    running: passes.running,
    async close() {
      stopping = true;
      await passes.stop();
    },
  };
}

/**
 * One pass at a time (asked for while one runs, the running one is joined), the first at once and then every
 * `intervalMs` when `schedule`; a failed pass is counted and logged and tried again at the next tick — it never ends
 * the process. `stop()` ends the timer and waits for the pass in progress (which checks its own stop flag).
 */
export function schedulePasses<R>(o: {
  pass: () => Promise<R>; log: Logger; schedule: boolean; intervalMs: number; what: string;
  done: (r: R, seconds: number) => void; failed: () => void;
}): { runNow(): Promise<R>; running(): boolean; stop(): Promise<void> } {
  let current: Promise<R> | null = null;
  let timer: NodeJS.Timeout | undefined;
  const runNow = (): Promise<R> => {
    const t0 = performance.now();
    current ??= o.pass()
      .then((r) => {
        o.done(r, (performance.now() - t0) / 1000);
        return r;
      }, (err: unknown) => {
        o.failed();
        throw err;
      })
      .finally(() => {
        current = null;
      });
    return current;
  };
  const tick = () => {
    runNow().catch((err) => o.log.error({ err }, `${o.what} failed; it runs again at its next interval`));
  };
  if (o.schedule) {
    setImmediate(tick);
    timer = setInterval(tick, o.intervalMs).unref();
  }
  return {
    runNow,
    running: () => current !== null,
    async stop() {
      clearInterval(timer);
      await current?.catch(() => undefined);
    },
  };
}
