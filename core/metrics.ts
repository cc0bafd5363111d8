// Prometheus metrics (prom-client) on a registry of our own, passed down like the config: no global default registry.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';


const LATENCY_BUCKETS = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60];

export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'eldergate_process_' });
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
    shed: new Counter({
      name: 'eldergate_telemetry_shed_total', help: 'Telemetry dropped under overload (alarms never are)', registers: [registry],
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
      name: 'eldergate_budget_breaches_total', help: 'Budget breaches (escalations) by priority since start',
      labelNames: ['priority'] as const, registers: [registry],
    }),
    queue: new Gauge({
      name: 'eldergate_ingest_queue', help: 'Observations waiting for the writer', labelNames: ['queue'] as const, registers: [registry],
    }),
    wsClients: new Gauge({ name: 'eldergate_consoles_connected', help: 'Consoles connected over WebSocket', registers: [registry] }),
  };
  return m;
}

/** Gauges read from the domain when /metrics is scraped (cheaper than keeping them current on every event). */
export type MetricsRefresher = () => void;

export type Metrics = ReturnType<typeof createMetrics>;
