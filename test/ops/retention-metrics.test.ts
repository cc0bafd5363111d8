// Retention on /metrics (issue 13 §3/§4 brief): a real gateway on a data directory seeded with old rows (the committed
// migrations, a real SQLite file); its start-up pass deletes them, and GET /metrics says how many per table, when the
// pass ended and how long it took.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { dbFile, openStore } from '../../core/db.js';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';

const DAY = 86_400_000;

/** one sample's value from the Prometheus text, or undefined */
function sample(text: string, name: string, labels = ''): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe('retention metrics', () => {
  const dir = mkdtempSync(join(tmpdir(), 'eg-retention-metrics-'));
  let t: TestGateway | undefined;
  afterAll(async () => {
    await t?.stop();
    rmSync(dir, { recursive: true, force: true });
    rmSync(`${dir}-keys`, { recursive: true, force: true });
  });

  it('rows deleted per table, the last run time and the duration, after a pass', async () => {
    // the database as a gateway would have left it: migrated, then 300 old observations and one long-closed incident
    const store = openStore(dbFile(dir));
    const now = Date.now();
    const old = now - 120 * DAY;
    store.sqlite.transaction(() => {
      const obs = store.sqlite.prepare(`INSERT INTO observations (device_id, type, seq, device_ts, received_at, source, life_safety, data)
        VALUES ('dev-old', 'heartbeat', ?, ?, ?, 'mqtt', 0, '{}')`);
      for (let i = 1; i <= 300; i++) obs.run(i, old, old);
      for (let i = 1; i <= 5; i++) obs.run(1000 + i, now, now); // recent: kept
      store.sqlite.prepare(`INSERT INTO incidents (id, device_id, type, priority, status, opened_at, last_at, last_seq)
        VALUES ('inc-old', 'dev-old', 'offline', 'P3', 'resolved', ?, ?, 0)`).run(old, old);
      const ev = store.sqlite.prepare(`INSERT INTO incident_events (incident_id, type, at, data) VALUES ('inc-old', ?, ?, '{}')`);
      ev.run('opened', old);
      ev.run('resolved', old);
    })();
    store.close();

    const startedAt = Date.now() / 1000;
    t = await startTestGateway({ retention: { telemetryDays: 90, incidentsDays: 30, intervalMs: 3_600_000, batchRows: 100 } }, dir);
    const text = await waitFor(async () => {
      const body = await (await fetch(`${t!.http}/metrics`)).text();
      return (sample(body, 'eldergate_retention_last_run_timestamp_seconds') ?? 0) > 0 ? body : null;
    }, 'a retention pass on /metrics', 30_000, 100);

    expect(sample(text, 'eldergate_retention_deleted_rows_total', '{table="observations"}')).toBe(300);
    expect(sample(text, 'eldergate_retention_deleted_rows_total', '{table="incidents"}')).toBe(1);
    expect(sample(text, 'eldergate_retention_deleted_rows_total', '{table="incident_events"}')).toBe(2);
    const last = sample(text, 'eldergate_retention_last_run_timestamp_seconds')!;
    expect(last).toBeGreaterThanOrEqual(Math.floor(startedAt));
    expect(last).toBeLessThanOrEqual(Date.now() / 1000 + 1);
    expect(sample(text, 'eldergate_retention_duration_seconds_count')).toBe(1);
    expect(sample(text, 'eldergate_retention_duration_seconds_sum')).toBeGreaterThan(0);
    expect(text).toMatch(/# TYPE eldergate_retention_deleted_rows_total counter/);
    expect(text).toMatch(/# TYPE eldergate_retention_last_run_timestamp_seconds gauge/);
    expect(text).toMatch(/# TYPE eldergate_retention_duration_seconds histogram/);
    // what the metric says is what happened
    const check = new Database(dbFile(dir), { readonly: true });
    try {
      expect(check.prepare(`SELECT count(*) n FROM observations WHERE device_id = 'dev-old'`).get()).toEqual({ n: 5 });
    } finally {
      check.close();
    }
  }, 60_000);
});
