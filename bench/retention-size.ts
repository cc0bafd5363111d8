// DB growth per 1,000 terminals per day, and the steady-state size under retention (docs/operations.md "Retention").
// `npx tsx bench/retention-size.ts [terminals=1000] [heartbeatMin=15] [retentionDays=3] [days=8]`
// Heartbeat rows as ingest writes them (same columns and payload shape) into a fresh database with the committed
// migrations; each simulated day is followed by a retention pass (core/retention.ts) at the end of that day.
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../core/db.js';
import { createLogger } from '../core/logger.js';
import { startRetention } from '../core/retention.js';

const [terminals = 1000, heartbeatMin = 15, retentionDays = 3, days = 8] = process.argv.slice(2).map(Number);
const DAY = 86_400_000;
const dir = mkdtempSync(join(tmpdir(), 'eg-size-'));
const file = join(dir, 'eldergate.db');
const store = openStore(file);
const s = store.sqlite;
const mb = () => {
  s.pragma('wal_checkpoint(TRUNCATE)');
  return statSync(file).size / 1e6;
};
const insert = s.prepare(`insert into observations (device_id, type, seq, device_ts, received_at, source, life_safety, data, flags,
  session, packet_id, generation) values (?, 'heartbeat', ?, ?, ?, 'mqtt', 0, ?, null, ?, ?, 0) on conflict do nothing`);
const perDay = Math.round((24 * 60) / heartbeatMin);
const t0 = Date.UTC(2026, 0, 1);
let clock = t0;
const retention = startRetention({
  sqlite: s, log: createLogger('silent'), now: () => clock, schedule: false,
  settings: { telemetryDays: retentionDays, incidentsDays: 0, intervalMs: 3600_000, batchRows: 500 },
});
const empty = mb();
console.log(`${terminals} terminals, a heartbeat every ${heartbeatMin} min (${perDay * terminals} rows/day), retention ${retentionDays} days; empty DB ${empty.toFixed(2)} MB`);
let seq = 0;
for (let day = 0; day < days; day++) {
  s.transaction(() => {
    for (let k = 0; k < perDay; k++) {
      const at = t0 + day * DAY + Math.floor((k * DAY) / perDay);
      for (let d = 0; d < terminals; d++) {
        insert.run(`cp-${d}`, ++seq, at, at + 40, JSON.stringify({ battery: 60 + (d % 40), signal: -60 - (d % 30) }), `s-${d}`, (seq % 65535) + 1);
      }
    }
  })();
  const grown = mb();
  clock = t0 + (day + 1) * DAY;
  const r = await retention.runNow();
  const rows = (s.prepare('select count(*) n from observations').get() as { n: number }).n;
  console.log(`day ${day + 1}: ${grown.toFixed(1)} MB after inserting, pruned ${r.observations} rows in ${r.batches} batches (${r.ms} ms), ` +
    `${rows} rows kept, ${r.freePages} free pages, file ${mb().toFixed(1)} MB`);
}
await retention.close();
store.close();
rmSync(dir, { recursive: true, force: true });
