// Prometheus metrics (prom-client) on a registry of our own, passed down like the config: no global default registry.
// Names follow Prometheus' conventions (https://prometheus.io/docs/practices/naming/): base units (seconds, bytes),
// `_total` only on counters; the process and Node.js metrics keep their standard names (process_*, nodejs_*) so stock
// dashboards work. docs/operations.md § Monitoring lists them; docs/grafana-dashboard.json queries them.
import { readFileSync } from 'node:fs';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { sourceDir } from './paths.js';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

/** What is running: the package version, the git commit (GIT_COMMIT, else read from .git, else "unknown"), Node. */
export const BUILD = (() => {
  const root = pathToFileURL(join(sourceDir(import.meta.url), '..') + '/');
  const read = (rel: string) => { try { return readFileSync(new URL(rel, root), 'utf8').trim(); } catch { return undefined; } };
  const version = (JSON.parse(read('package.json') ?? '{}') as { version?: string }).version ?? 'unknown';
  let commit = process.env.GIT_COMMIT;
  if (!commit) {
    // a worktree's .git is a file naming its git directory, whose `commondir` holds the refs
    const dotGit = read('.git');
    const gitDir = dotGit?.startsWith('gitdir: ') ? new URL(`file://${dotGit.slice(8)}/`) : new URL('.git/', root);
    const at = (dir: URL, rel: string) => { try { return readFileSync(new URL(rel, dir), 'utf8').trim(); } catch { return undefined; } };
    const head = at(gitDir, 'HEAD');
    if (head?.startsWith('ref: ')) {
      const ref = head.slice(5);
      const common = at(gitDir, 'commondir');
      const refsDir = common ? new URL(common.replace(/\/?$/, '/'), gitDir) : gitDir;
      commit = at(refsDir, ref) ?? at(refsDir, 'packed-refs')?.split('\n').find((l) => l.endsWith(' ' + ref))?.split(' ')[0];
    } else commit = head;
  }
  return { version, commit: commit ? commit.slice(0, 12) : 'unknown', node: process.version };
})();


const LATENCY_BUCKETS = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60];

/**
 * `defaults: false` for the writer thread's registry: the process and Node.js metrics are the main thread's (the
 * writer's are merged into /metrics by gateway/writer/client.ts, and a process has one CPU and one resident set).
 */
export function createMetrics(opts: { defaults?: boolean } = {}) {
  const registry = new Registry();
  if (opts.defaults !== false) collectDefaultMetrics({ register: registry });
  // prom-client's three gauges named *_total (the sums of nodejs_active_{handles,requests,resources} by type) break
  // the convention that `_total` is a counter; `sum(nodejs_active_handles)` gives the same number
  for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) registry.removeSingleMetric(name);
  const m = {
    registry,
    ingested: new Counter({
      name: 'eldergate_observations_total', help: 'Observations accepted, by source and type class',
      labelNames: ['source', 'class', 'result'] as const, registers: [registry],
    }),
    refused: new Counter({
      name: 'eldergate_refused_total', help: 'Inputs refused, by where and why',
      labelNames: ['stage', 'reason'] as const, registers: [registry],
    }),
    duplicates: new Counter({
      name: 'eldergate_duplicates_dropped_total',
      help: 'Observations dropped as resends of one already stored, by source, type class and how they were recognised',
      labelNames: ['source', 'class', 'key'] as const, registers: [registry],
    }),
    replays: new Counter({
      name: 'eldergate_possible_replays_total',
      help: 'Life-safety observations that repeated a stored key but were raised anyway, flagged possible-replay',
      labelNames: ['source', 'key'] as const, registers: [registry],
    }),
    shed: new Counter({
      name: 'eldergate_telemetry_shed_total',
      help: 'Telemetry dropped under overload (alarms never are): where="hand-over" by the main thread before the writer took it, where="queue" at the writer\'s queue',
      labelNames: ['where'] as const, registers: [registry],
    }),
    stage: new Histogram({
      name: 'eldergate_stage_seconds', help: 'Latency of each stage of the alarm path',
      labelNames: ['stage'] as const, buckets: LATENCY_BUCKETS, registers: [registry],
    }),
    batchRows: new Histogram({
      name: 'eldergate_commit_rows', help: 'Rows per group commit', labelNames: ['queue'] as const,
      buckets: [1, 2, 5, 10, 50, 100, 500, 1000, 5000], registers: [registry],
    }),
    connected: new Gauge({ name: 'eldergate_devices_connected', help: 'Devices connected to the broker', registers: [registry] }),
    openIncidents: new Gauge({
      name: 'eldergate_incidents_open', help: 'Open incidents by priority', labelNames: ['priority'] as const, registers: [registry],
    }),
    breaches: new Gauge({
      // a gauge (set from the escalation's own count when scraped), so no `_total`; it only grows while the process runs
      name: 'eldergate_budget_breaches', help: 'Budget breaches (escalations) by priority since the process started',
      labelNames: ['priority'] as const, registers: [registry],
    }),
    queue: new Gauge({
      name: 'eldergate_ingest_queue', help: 'Observations waiting for the writer', labelNames: ['queue'] as const, registers: [registry],
    }),
    unreadableReports: new Counter({
      name: 'eldergate_unreadable_reports_total',
      help: 'Reports of refused frames written as "unreadable" observations (rate-bound per device), by result',
      labelNames: ['result'] as const, registers: [registry],
    }),
    connectionsRefused: new Counter({
      name: 'eldergate_connections_refused_total',
      help: 'Sockets closed at accept (or idle ones closed to make room) by listener and reason: limit, evicted-idle, per-address, backoff, per-user, accept-error, over-rate (an MQTT device that stayed over its publish rate, mqtt.publishOverRateCloseMs)',
      labelNames: ['listener', 'reason'] as const, registers: [registry],
    }),
    apiRefused: new Counter({
      name: 'eldergate_api_refused_total',
      help: 'API requests refused to keep the main thread for the alarm path (server/plugins/api-admission.ts), by reason: busy (http.apiQueue waiting), user-reads, user-writes (a user over http.apiReadsPerUserPerS / apiWritesPerUserPerS), user-rows (a page that would wait over 5 s for http.apiRowsPerUserPerS), rows (one that would wait over 5 s for all users together, http.apiRowsPerS)',
      labelNames: ['reason'] as const, registers: [registry],
    }),
    apiPaced: new Counter({
      name: 'eldergate_api_pages_paced_total',
      help: "List reads that waited for a budget of rows a second before they were answered, by budget: user (their user's, http.apiRowsPerUserPerS), all (all users', http.apiRowsPerS)",
      labelNames: ['budget'] as const, registers: [registry],
    }),
    publishesPaced: new Counter({
      name: 'eldergate_mqtt_publishes_paced_total',
      help: 'Publishes from a device beyond mqtt.publishRatePerS: processed, but its connection is read again (and they are acknowledged) only once it is back within its rate',
      registers: [registry],
    }),
    threads: new Gauge({
      // which Linux thread is which, for `top -H`, `perf` or `taskset -p` (the writer can be given a core of its own)
      name: 'eldergate_thread_info', help: 'The process\'s main and writer threads by Linux thread id (1 each)',
      labelNames: ['thread', 'tid'] as const, registers: [registry],
    }),
    connectionCap: new Gauge({
      name: 'eldergate_connection_cap', help: 'Sockets each listener admits (derived from the descriptor limit)',
      labelNames: ['listener'] as const, registers: [registry],
    }),
    logSuppressed: new Counter({
      name: 'eldergate_log_lines_suppressed_total', help: 'Repeated log lines counted instead of written, by kind',
      labelNames: ['kind'] as const, registers: [registry],
    }),
    memoryPressure: new Gauge({
      name: 'eldergate_memory_pressure', help: '1 while heap, resident or external memory is above its bound (telemetry is shed)',
      registers: [registry],
    }),
    internalErrors: new Counter({
      name: 'eldergate_internal_errors_total', help: 'Errors caught by a last-resort guard (timer, listener, process), by where',
      labelNames: ['where'] as const, registers: [registry],
    }),
    wsClients: new Gauge({ name: 'eldergate_consoles_connected', help: 'Consoles connected over WebSocket', registers: [registry] }),
    // receipts, not incident events (response/receipts.ts): counted here, written in batches, never streamed
    incidentPushes: new Counter({
      name: 'eldergate_incident_pushes_total', help: 'Incident openings written to a console socket (one per console)',
      registers: [registry],
    }),
    incidentDeliveries: new Counter({
      name: 'eldergate_incident_deliveries_total', help: 'Incident openings confirmed by a console (first per user and incident)',
      registers: [registry],
    }),
    storageHealthy: new Gauge({
      name: 'eldergate_storage_healthy', help: '1 while database writes succeed, 0 from a failed write until one succeeds again',
      registers: [registry],
    }),
    storageWriteFailures: new Counter({
      name: 'eldergate_storage_write_failures_total', help: 'Database writes that failed (disk full, I/O error, read-only), by writer',
      labelNames: ['writer'] as const, registers: [registry],
    }),
    httpDuration: new Histogram({
      name: 'http_request_duration_seconds', help: 'HTTP requests by method, route pattern and status code, and how long they took',
      labelNames: ['method', 'route', 'status_code'] as const,
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers: [registry],
    }),
    retentionDeleted: new Counter({
      name: 'eldergate_retention_deleted_rows_total', help: 'Rows deleted by retention (core/retention.ts), by table',
      labelNames: ['table'] as const, registers: [registry],
    }),
    retentionLastRun: new Gauge({
      name: 'eldergate_retention_last_run_timestamp_seconds', help: 'When the last retention pass ended (Unix time, seconds); 0 before the first',
      registers: [registry],
    }),
    retentionDuration: new Histogram({
      name: 'eldergate_retention_duration_seconds', help: 'How long retention passes took, batches and pauses between them included',
      buckets: [0.001, 0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900], registers: [registry],
    }),
    retentionFailures: new Counter({
      name: 'eldergate_retention_failures_total', help: 'Retention passes that failed (tried again at the next interval)', registers: [registry],
    }),
    // cluster mode (gateway/cluster/, docs/scale-out.md)
    rabbitLink: new Gauge({
      name: 'eldergate_rabbitmq_connected', help: 'Cluster mode: 1 while this node holds its AMQP connection to RabbitMQ', registers: [registry],
    }),
    pgBatchesAgain: new Counter({
      name: 'eldergate_pg_batches_again_total',
      help: 'Cluster mode on PostgreSQL: writer batches run again with every observation in its own savepoint, after a statement failed outside one (a message PostgreSQL refuses; it then fails alone)',
      registers: [registry],
    }),
    rabbitMessages: new Counter({
      name: 'eldergate_rabbitmq_messages_total',
      help: 'Cluster mode: device messages taken from RabbitMQ, by queue kind (partition, dead, unrouted) and result (acked, requeued, dead-lettered, refused; retry: not stored yet for a storage fault or overload, kept unacknowledged and tried again)',
      labelNames: ['queue', 'result'] as const, registers: [registry],
    }),
    rabbitRevocations: new Counter({
      name: 'eldergate_rabbitmq_revocations_total',
      help: 'Cluster mode: revoked devices whose MQTT connections were closed through RabbitMQ\'s management API, by result (closed, none, failed)',
      labelNames: ['result'] as const, registers: [registry],
    }),
    brokerAuth: new Counter({
      name: 'eldergate_rabbitmq_auth_total',
      help: 'Cluster mode: answers to RabbitMQ\'s HTTP auth backend, by request kind (user, vhost, resource, topic) and answer',
      labelNames: ['kind', 'result'] as const, registers: [registry],
    }),
    walFrames: new Gauge({
      name: 'eldergate_wal_frames', help: 'Frames in the SQLite write-ahead log, and how many of them the checkpointer has copied back (state=log|checkpointed)',
      labelNames: ['state'] as const, registers: [registry],
    }),
    walRestartWindows: new Counter({
      name: 'eldergate_wal_restart_windows_total',
      help: 'Pauses in telemetry the writer gave the checkpointer to copy the whole WAL back, so that the log starts again from its beginning (outcome=restarted|copied|incomplete); when few are restarted the WAL keeps growing: docs/operations.md',
      labelNames: ['outcome'] as const, registers: [registry],
    }),
    buildInfo: new Gauge({
      name: 'eldergate_build_info', help: 'Always 1; the labels say which eldergate, commit and Node.js are running',
      labelNames: ['version', 'commit', 'node'] as const, registers: [registry],
    }),
  };
  m.buildInfo.set(BUILD, 1);
  return m;
}

/** Gauges read from the domain when /metrics is scraped (cheaper than keeping them current on every event). */
export type MetricsRefresher = () => void;

export type Metrics = ReturnType<typeof createMetrics>;
