// Retention of the shared store (cluster mode on PostgreSQL): what PostgreSQL holds stops growing, by the same rules as
// a node's own file (core/retention.ts):
// - observations older than `retention.telemetryDays` are deleted, except those an incident still in the store points
//   at (observations.incident_id), or that an open incident's events name (data.observationId): an incident's
//   evidence lives as long as the incident;
// - notification claims (which node told people of an event) older than the same cutoff go too;
// - resolved and cancelled incidents whose last event is older than `retention.incidentsDays` are deleted with their
//   events and push/delivery receipts, a few at a time; an incident a writer holds at that moment (a note being added
//   to it) is skipped (FOR UPDATE SKIP LOCKED) and taken at the next pass. The log keeps its seqs: every replica follows
//   it by seq and a gap is nothing to it; each node's retention prunes its own replica by the same rule, and a node
//   that joins later never gets what was pruned;
// - in small transactions (`batchRows`, shrunk when one takes longer than ~20 ms), the writers' commits going between;
// - one node at a time: a pass takes a PostgreSQL advisory lock and a node that does not get it skips its turn (every
//   node runs the timer; whichever comes first prunes);
// Freed space is reused by PostgreSQL's autovacuum; the table stops growing at its steady-state size.
import type pg from 'pg';
import type { Logger } from './logger.js';
import { schedulePasses, type RetentionMetrics, type RetentionSettings } from './retention.js';

const DAY = 86_400_000;
const TARGET_MS = 20;
/** pg_try_advisory_lock key: "eldergate retention" (an arbitrary constant, apart from the migrations' lock) */
export const RETENTION_LOCK = 0x656c6472;
const OPEN = `('open', 'acknowledged', 'dispatched', 'on-site')`;
const CLOSED = `('resolved', 'cancelled')`;

export interface PgRetentionResult {
  observations: number;
  /** notification claims (response/notify-claims-pg.ts) older than the telemetry's retention */
  claims: number;
  /** closed incidents older than `incidentsDays`, with their events and receipts */
  incidents: number;
  incidentEvents: number;
  receipts: number;
  batches: number;
  ms: number;
  /** another node held the lock: this node skipped its turn */
  skipped: boolean;
  stopped: boolean;
}

export interface PgRetention {
  runNow(): Promise<PgRetentionResult>;
  close(): Promise<void>;
}

export function startPgRetention(d: {
  pool: pg.Pool;
  settings: RetentionSettings;
  log: Logger;
  now?: () => number;
  schedule?: boolean;
  metrics?: RetentionMetrics;
}): PgRetention {
  const { pool, settings, log } = d;
  const now = d.now ?? Date.now;
  let stopping = false;

  async function pass(): Promise<PgRetentionResult> {
    const started = performance.now();
    const r: PgRetentionResult = { observations: 0, claims: 0, incidents: 0, incidentEvents: 0, receipts: 0, batches: 0, ms: 0, skipped: false, stopped: false };
    const client = await pool.connect();
    try {
      const { rows } = await client.query<{ got: boolean }>('SELECT pg_try_advisory_lock($1) AS got', [RETENTION_LOCK]);
      if (!rows[0]!.got) return { ...r, skipped: true };
      try {
        const cutoff = now() - settings.telemetryDays * DAY;
        let limit = settings.batchRows;
        for (;;) {
          if (stopping) return { ...r, stopped: true };
          const t0 = performance.now();
          // oldest first through observations_received_idx; the protected ones are few (alarm observations)
          const res = await client.query(
            `DELETE FROM observations WHERE id IN (
               SELECT o.id FROM observations o
                WHERE o.received_at < $1
                  AND (o.incident_id IS NULL OR NOT EXISTS (SELECT 1 FROM incidents i WHERE i.id = o.incident_id))
                  AND o.id NOT IN (
                    SELECT (e.data->>'observationId')::bigint
                      FROM incidents i JOIN incident_events e ON e.incident_id = i.id
                     WHERE i.status IN ${OPEN} AND e.data ? 'observationId')
                ORDER BY o.received_at LIMIT $2)`,
            [cutoff, limit]);
          const n = res.rowCount ?? 0;
          r.batches++;
          r.observations += n;
          const ms = performance.now() - t0;
          if (ms > TARGET_MS && limit > 10) limit = Math.max(10, Math.floor(limit / 2));
          else if (ms < TARGET_MS / 2 && limit < settings.batchRows) limit = Math.min(settings.batchRows, limit * 2);
          if (n === 0) break;
          await new Promise<void>((res2) => setImmediate(res2));
        }
        // which node told people of an event: only needed while nodes may still hear it (a replica catching up), so
        // kept as long as telemetry; one statement (a few rows per alarm)
        r.claims = (await client.query('DELETE FROM notification_claims WHERE at < $1', [cutoff])).rowCount ?? 0;
        if (settings.incidentsDays > 0) {
          const stopped = await pruneIncidents(client, now() - settings.incidentsDays * DAY, Math.max(1, Math.floor(settings.batchRows / 10)), r);
          if (stopped) return { ...r, stopped: true };
        }
      } finally {
        await client.query('SELECT pg_advisory_unlock($1)', [RETENTION_LOCK]).catch(() => {});
      }
      r.ms = Math.round(performance.now() - started);
      return r;
    } finally {
      client.release();
    }
  }

  /** closed incidents older than `cutoff`, `per` a transaction (an incident carries a few dozen events); true if stopped */
  async function pruneIncidents(client: pg.PoolClient, cutoff: number, per: number, r: PgRetentionResult): Promise<boolean> {
    for (;;) {
      if (stopping) return true;
      r.batches++;
      await client.query('BEGIN');
      try {
        const { rows } = await client.query<{ id: string }>(
          `SELECT i.id FROM incidents i
            WHERE i.status IN ${CLOSED} AND i.last_at < $1
              AND (SELECT e.at FROM incident_events e WHERE e.incident_id = i.id ORDER BY e.seq DESC LIMIT 1) < $1
            ORDER BY i.last_at LIMIT $2
              FOR UPDATE OF i SKIP LOCKED`,
          [cutoff, per]);
        const ids = rows.map((x) => x.id);
        if (ids.length) {
          r.incidentEvents += (await client.query('DELETE FROM incident_events WHERE incident_id = ANY($1)', [ids])).rowCount ?? 0;
          r.receipts += (await client.query('DELETE FROM incident_receipts WHERE incident_id = ANY($1)', [ids])).rowCount ?? 0;
          r.incidents += (await client.query('DELETE FROM incidents WHERE id = ANY($1)', [ids])).rowCount ?? 0;
        }
        await client.query('COMMIT');
        if (ids.length < per) return false;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => {});
        throw err;
      }
      await new Promise<void>((res) => setImmediate(res));
    }
  }

  const passes = schedulePasses({
    pass, log, schedule: d.schedule !== false, intervalMs: settings.intervalMs, what: 'retention pass on the shared store',
    done: (r, seconds) => {
      if (r.observations || r.incidents) log.info({ ...r }, 'retention: old rows deleted from the shared store');
      if (d.metrics && !r.skipped) {
        d.metrics.retentionDeleted.inc({ table: 'observations' }, r.observations);
        d.metrics.retentionDeleted.inc({ table: 'incidents' }, r.incidents);
        d.metrics.retentionDeleted.inc({ table: 'incident_events' }, r.incidentEvents);
        d.metrics.retentionDuration.observe(seconds);
        d.metrics.retentionLastRun.set(Date.now() / 1000);
      }
    },
    failed: () => d.metrics?.retentionFailures.inc(),
  });
  return {
    runNow: passes.runNow,
    async close() {
      stopping = true;
      await passes.stop();
    },
  };
}
