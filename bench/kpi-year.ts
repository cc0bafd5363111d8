// A year of KPIs (GET /api/kpis) over a city's incidents, computed in place on the calling thread (what the route did
// before) and in the KPI thread (response/kpi-reports.ts, what it does now), with the calling thread's longest stall
// meanwhile: the stall is what every socket of the gateway (alarms among them) waits.
//   npm run bench:kpi-year -- [incidents, default 300000]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { openStore } from '../core/db.js';
import { createLogger } from '../core/logger.js';
import { loadConfig } from '../core/config.js';
import { createSqliteKpiStore } from '../response/kpi-store.js';
import { computeKpis } from '../response/kpis.js';
import { createKpiReports } from '../response/kpi-reports.js';

const N = Number(process.argv[2] ?? 300_000);
const dir = mkdtempSync(join(tmpdir(), 'eldergate-kpi-'));
const file = join(dir, 'eldergate.db');
const store = openStore(file);
const ins = store.sqlite.prepare(`INSERT INTO incidents (id, device_id, type, priority, status, opened_at, last_at, stamps, last_seq)
  VALUES (?, ?, 'offline', ?, 'resolved', ?, ?, ?, 1)`);
const now = Date.now();
store.sqlite.transaction(() => {
  for (let i = 0; i < N; i++) {
    const at = now - 1000 - Math.floor(Math.random() * 360 * 86_400_000);
    ins.run(`inc_${i}`, `cp-${i % 5000}`, ['P1', 'P2', 'P3'][i % 3], at, at + 60_000,
      JSON.stringify({ opened: at, acknowledged: at + 30_000, dispatched: at + 60_000, onSite: at + 900_000, resolved: at + 1_800_000 }));
  }
})();
const budgets = loadConfig({}).budgets;
const query = { from: now - 365 * 86_400_000, to: now, now };

async function measure(what: string, run: () => Promise<unknown>): Promise<void> {
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  const t0 = performance.now();
  await run();
  const ms = performance.now() - t0;
  // a stall is recorded when the late tick runs: give it the chance
  await new Promise((r) => setTimeout(r, 20));
  h.disable();
  console.log(`${what.padEnd(26)} ${ms.toFixed(0).padStart(6)} ms to answer; the calling thread's longest stall ${(h.max / 1e6).toFixed(0)} ms`);
}

console.log(`${N} incidents over 360 days; a report for 365 days (731 shifts of 12 h)`);
const reports = createKpiReports({ file, budgets, log: createLogger('silent') });
for (let k = 0; k < 3; k++) {
  await measure('in place (before)', async () => { await new Promise((r) => setTimeout(r, 5)); computeKpis(createSqliteKpiStore(store.sqlite), budgets, query); });
  await measure('in the KPI thread (now)', () => reports.run(query));
}
await reports.close();
store.close();
rmSync(dir, { recursive: true, force: true });
