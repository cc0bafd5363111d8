// DB growth per 1,000 terminals per day, and the steady-state size under retention (docs/operations.md "Retention").
// `npx tsx bench/retention-size.ts [terminals=1000] [heartbeatMin=15] [retentionDays=3] [days=8]`
// Heartbeats go through the real writer (gateway/ingest.ts) into a fresh database with the committed migrations, twice:
// "a row per heartbeat" (ingest.heartbeatHistoryMs = 0, how every heartbeat was stored before issue 10) and "state,
// rows downsampled" (the default: a heartbeat is folded into the device's state and kept as a row only on change
// or once an hour). Each simulated day is followed by a retention pass (core/retention.ts) at the end of that day.
// The terminals' readings: battery draining 1 point every 2 h (recharged to 100 each morning), signal jittering ±1
// with a 5 % chance per heartbeat of a jump of 6 (a cell change) — typical of the fleet's call phones and locators.
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../core/db.js';
import { createLogger } from '../core/logger.js';
import { createMetrics } from '../core/metrics.js';
import { startRetention } from '../core/retention.js';
import { DeviceStates } from '../gateway/device-state.js';
import { Ingest } from '../gateway/ingest.js';

const [terminals = 1000, heartbeatMin = 15, retentionDays = 3, days = 8] = process.argv.slice(2).map(Number);
const DAY = 86_400_000;
const perDay = Math.round((24 * 60) / heartbeatMin);
const t0 = Date.UTC(2026, 0, 1);

async function run(label: string, heartbeatHistoryMs: number): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'eg-size-'));
  const file = join(dir, 'eldergate.db');
  const store = openStore(file);
  const s = store.sqlite;
  const mb = () => {
    s.pragma('wal_checkpoint(TRUNCATE)');
    return statSync(file).size / 1e6;
  };
  // the terminals exist (device_state rows refer to them)
  const addDevice = s.prepare(`insert into devices (id, kind, serial, state, secret_hash, secret_rotated_at, power, config,
    created_at, updated_at) values (?, 'call-phone', ?, 'in-service', 'unused', ?, 'battery', '{}', ?, ?)`);
  s.transaction(() => { for (let d = 0; d < terminals; d++) addDevice.run(`cp-${d}`, `SN-${d}`, t0, t0, t0); })();
  let clock = t0;
  const log = createLogger(process.env.LOG_LEVEL ?? 'silent');
  const ingest = new Ingest({
    sqlite: s, states: new DeviceStates(s), log, metrics: createMetrics(), onCommitted: () => undefined,
    config: {
      maxPayloadBytes: 4096, telemetryFlushMs: 200, telemetryBatchRows: 500, telemetryQueueLimit: 10_000_000,
      telemetryWaitersLimit: 5000, rejectsKept: 10_000, rejectRawBytes: 2048, heartbeatHistoryMs, stateWriteBehindMs: 0, writerRestartHoldMs: 10_000, writerStallMs: 15_000, walSoftLimitMB: 32,
    },
  });
  const retention = startRetention({
    sqlite: s, log, now: () => clock, schedule: false,
    settings: { telemetryDays: retentionDays, incidentsDays: 0, intervalMs: 3600_000, batchRows: 500 },
  });
  const empty = mb();
  console.log(`${label}: ${terminals} terminals, a heartbeat every ${heartbeatMin} min (${perDay * terminals} heartbeats/day), ` +
    `retention ${retentionDays} days; empty DB ${empty.toFixed(2)} MB`);
  const signal = Array.from({ length: terminals }, (_, d) => -60 - (d % 30));
  let seq = 0;
  let rand = 1;
  const random = () => ((rand = (rand * 48271) % 2147483647) / 2147483647);
  let firstDayMb = 0;
  for (let day = 0; day < days; day++) {
    const rowsBefore = (s.prepare('select count(*) n from observations').get() as { n: number }).n;
    for (let k = 0; k < perDay; k++) {
      const at = t0 + day * DAY + Math.floor((k * DAY) / perDay);
      const battery = 100 - Math.floor((k * heartbeatMin) / 120);
      for (let d = 0; d < terminals; d++) {
        signal[d] = random() < 0.05 ? -60 - Math.floor(random() * 40) : signal[d]! + (random() < 0.5 ? -1 : 1) * (random() < 0.5 ? 1 : 0);
        ingest.submitTelemetry({
          deviceId: `cp-${d}`, type: 'heartbeat', seq: ++seq, deviceTs: at + 40, receivedAt: at, source: 'mqtt',
          session: `s-${d}`, packetId: (seq % 65535) + 1, battery: Math.max(5, battery - (d % 7)), signal: signal[d]!,
        } as never, false);
      }
      ingest.flushAll();
    }
    const rows = (s.prepare('select count(*) n from observations').get() as { n: number }).n - rowsBefore;
    const grown = mb();
    if (day === 0) firstDayMb = grown - empty;
    clock = t0 + (day + 1) * DAY;
    const r = await retention.runNow();
    const kept = (s.prepare('select count(*) n from observations').get() as { n: number }).n;
    console.log(`  day ${day + 1}: ${rows} heartbeat rows written, ${grown.toFixed(1)} MB after the day, pruned ${r.observations} rows ` +
      `(${r.ms} ms), ${kept} rows kept, file ${mb().toFixed(1)} MB`);
  }
  console.log(`  growth per ${terminals} terminals per day (day 1, before any pruning): ${firstDayMb.toFixed(2)} MB`);
  ingest.close();
  await retention.close();
  store.close();
  rmSync(dir, { recursive: true, force: true });
}

await run('a row per heartbeat (ingest.heartbeatHistoryMs = 0)', 0);
await run('state, rows downsampled (ingest.heartbeatHistoryMs = 1 h)', 3_600_000);
