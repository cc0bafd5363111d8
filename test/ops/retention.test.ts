// Retention (issue 13): old observations and long-closed incidents are deleted in small batches, on a real SQLite
// file with the committed migrations; what an open incident points at is kept; the audit log is never touched; and
// an SOS is acknowledged while a big prune is still running.
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore, type Store } from '../../core/db.js';
import { createLogger } from '../../core/logger.js';
import { startRetention, type RetentionSettings } from '../../core/retention.js';
import { publishAsync, startTestGateway, type TestGateway } from '../helpers/gateway.js';

const DAY = 86_400_000;
const NOW = Date.UTC(2026, 10, 30, 12);
const log = createLogger('silent');
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function freshStore(): Store {
  const dir = mkdtempSync(join(tmpdir(), 'eg-retention-'));
  dirs.push(dir);
  return openStore(join(dir, 'eldergate.db'));
}

function seed(store: Store) {
  const s = store.sqlite;
  const obs = s.prepare(`INSERT INTO observations (device_id, type, seq, device_ts, received_at, source, life_safety, data, incident_id)
    VALUES (?, ?, ?, ?, ?, 'mqtt', ?, '{}', ?)`);
  let seq = 0;
  const add = (type: string, ageDays: number, incidentId: string | null = null) =>
    Number(obs.run('dev-1', type, ++seq, NOW - ageDays * DAY, NOW - ageDays * DAY, type === 'sos' ? 1 : 0, incidentId).lastInsertRowid);
  const incident = s.prepare(`INSERT INTO incidents (id, device_id, type, priority, status, opened_at, last_at, last_seq)
    VALUES (?, 'dev-1', 'sos', 'P1', ?, ?, ?, 0)`);
  const event = s.prepare('INSERT INTO incident_events (incident_id, type, at, data) VALUES (?, ?, ?, ?)');
  const openIncident = (id: string, status: string, openedDays: number, closedDays: number | null, data = '{}') => {
    incident.run(id, status, NOW - openedDays * DAY, NOW - openedDays * DAY);
    event.run(id, 'opened', NOW - openedDays * DAY, data);
    if (closedDays !== null) event.run(id, status, NOW - closedDays * DAY, '{}');
  };
  let joined = 0;
  s.transaction(() => {
    for (let i = 0; i < 1200; i++) add('heartbeat', 100); // older than 90 days: go
    for (let i = 0; i < 50; i++) add('heartbeat', 10); // newer: stay
    // an incident still open 200 days on (a device in a cupboard): its SOS stays
    openIncident('inc-open', 'acknowledged', 200, null);
    add('sos', 200, 'inc-open');
    // an open incident whose event names an old observation (a joined press) without the column set
    joined = add('sos', 150);
    openIncident('inc-joined', 'open', 150, null, JSON.stringify({ observationId: joined }));
    // resolved 400 days ago: goes with its events (incidentsDays 365), and its observation with it
    openIncident('inc-old', 'resolved', 401, 400);
    add('sos', 401, 'inc-old');
    // its push and delivery receipts go with it; the recent incident's stay
    const receipt = s.prepare(`INSERT INTO incident_receipts (incident_id, kind, seq, at, user_id, username) VALUES (?, ?, 1, ?, ?, ?)`);
    receipt.run('inc-old', 'pushed', NOW - 401 * DAY, null, null);
    receipt.run('inc-old', 'delivered', NOW - 401 * DAY, 'u1', 'ada');
    // cancelled 100 days ago: too recent to go; its observation lives as long as it does
    openIncident('inc-recent', 'cancelled', 101, 100);
    add('sos', 101, 'inc-recent');
    s.prepare(`INSERT INTO audit_log (at, actor_id, actor, action, target_type, target_id) VALUES (?, 'system', 'system', 'test', 'x', 'y')`).run(NOW - 5000 * DAY);
  })();
  return { joined };
}

const settings = (over: Partial<RetentionSettings> = {}): RetentionSettings =>
  ({ telemetryDays: 90, incidentsDays: 365, intervalMs: 3600_000, batchRows: 100, ...over });
const count = (store: Store, sql: string, ...args: unknown[]) => (store.sqlite.prepare(sql).get(...args) as { n: number }).n;

describe('retention', () => {
  it('deletes observations older than telemetryDays and closed incidents older than incidentsDays, with their events', async () => {
    const store = freshStore();
    const { joined } = seed(store);
    const auditBefore = count(store, 'SELECT count(*) n FROM audit_log');
    const r = startRetention({ sqlite: store.sqlite, settings: settings(), log, now: () => NOW, schedule: false });
    const out = await r.runNow();

    expect(count(store, `SELECT count(*) n FROM observations WHERE type = 'heartbeat' AND received_at < ?`, NOW - 90 * DAY)).toBe(0);
    expect(count(store, `SELECT count(*) n FROM observations WHERE type = 'heartbeat'`)).toBe(50);
    // open incidents' observations, by column and by event, are kept
    expect(count(store, `SELECT count(*) n FROM observations WHERE incident_id = 'inc-open'`)).toBe(1);
    expect(count(store, 'SELECT count(*) n FROM observations WHERE id = ?', joined)).toBe(1);
    // resolved 400 days ago: gone with its events and its observation
    expect(count(store, `SELECT count(*) n FROM incidents WHERE id = 'inc-old'`)).toBe(0);
    expect(count(store, `SELECT count(*) n FROM incident_events WHERE incident_id = 'inc-old'`)).toBe(0);
    expect(count(store, `SELECT count(*) n FROM incident_receipts WHERE incident_id = 'inc-old'`)).toBe(0);
    expect(count(store, `SELECT count(*) n FROM observations WHERE incident_id = 'inc-old'`)).toBe(0);
    // cancelled 100 days ago: kept with its events and observation
    expect(count(store, `SELECT count(*) n FROM incident_events WHERE incident_id = 'inc-recent'`)).toBe(2);
    expect(count(store, `SELECT count(*) n FROM observations WHERE incident_id = 'inc-recent'`)).toBe(1);
    expect(count(store, `SELECT count(*) n FROM incidents`)).toBe(3);
    // the audit log is append-only: never pruned
    expect(count(store, 'SELECT count(*) n FROM audit_log')).toBe(auditBefore);
    expect(out).toMatchObject({ observations: 1201, incidents: 1, incidentEvents: 2, stopped: false });
    // in batches of at most batchRows
    expect(out.batches).toBeGreaterThanOrEqual(13);
    expect(out.freePages).toBeGreaterThan(0);
    await r.close();
    store.close();
  });

  it('incidentsDays 0 keeps closed incidents for ever (and their observations)', async () => {
    const store = freshStore();
    seed(store);
    const r = startRetention({ sqlite: store.sqlite, settings: settings({ incidentsDays: 0 }), log, now: () => NOW, schedule: false });
    const out = await r.runNow();
    expect(out.incidents).toBe(0);
    expect(count(store, `SELECT count(*) n FROM incidents WHERE id = 'inc-old'`)).toBe(1);
    expect(count(store, `SELECT count(*) n FROM incident_events WHERE incident_id = 'inc-old'`)).toBe(2);
    expect(count(store, `SELECT count(*) n FROM observations WHERE incident_id = 'inc-old'`)).toBe(1);
    expect(count(store, `SELECT count(*) n FROM observations WHERE type = 'heartbeat'`)).toBe(50);
    await r.close();
    store.close();
  });

  describe('while a big prune runs', () => {
    let t: TestGateway;
    afterAll(async () => t?.stop());

    it('an SOS is acknowledged (PUBACK) while the prune is still in progress, and is kept', async () => {
      t = await startTestGateway();
      const dev = await t.provision('call-phone');
      const client = await t.connectDevice(dev.id, dev.secret);
      const s = t.gw.store.sqlite;
      // 200,000 observations 100 days old (more than a day of heartbeats from 1,000 terminals)
      const ins = s.prepare(`INSERT INTO observations (device_id, type, seq, device_ts, received_at, source, life_safety, data)
        VALUES ('old-dev', 'heartbeat', ?, ?, ?, 'mqtt', 0, '{"battery":80,"signal":-70}')`);
      const old = Date.now() - 100 * DAY;
      s.transaction(() => { for (let i = 0; i < 200_000; i++) ins.run(i, old + i, old + i); })();

      const r = startRetention({ sqlite: s, settings: settings({ batchRows: 500 }), log, schedule: false });
      const pruning = r.runNow();
      // let the prune get going (a few batches) before the alarm arrives
      await new Promise((res) => setTimeout(res, 20));
      expect(r.running()).toBe(true);
      const runningAtPuback: boolean[] = [];
      client.on('packetreceive', (p) => { if (p.cmd === 'puback') runningAtPuback.push(r.running()); });
      await publishAsync(client, `devices/${dev.id}/events`, JSON.stringify({ ts: Date.now(), seq: 1, type: 'sos' }), 1);
      expect(runningAtPuback).toEqual([true]);

      const out = await pruning;
      expect(out.observations).toBe(200_000);
      expect(count(t.gw.store, `SELECT count(*) n FROM observations WHERE device_id = ? AND type = 'sos'`, dev.id)).toBe(1);
      client.end(true);
      await r.close();
    }, 120_000);
  });
});
