// A device's observations are indexed per class (migration 0010, devices/schema.ts): an alarm's row has one index
// entry keyed by device (its dedup key), the other rows two (their dedup key and (device, id)). Pinned here: the
// alarm path's dedup lookups and the per-device reads use those indexes, never a scan of the table; and, through the
// real gateway, a device's listing merges its alarms and its other rows newest first, with paging and a type filter,
// and a resend is still stored once in either class. And a file an older release wrote keeps every row through the
// migration, its keys still deduplicated.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { openStore } from '../../core/db.js';
import { useMigratedStore } from '../helpers/sqlite-plan.js';
import { keyedSql } from '../../gateway/observation-store.js';
import { deviceRowsSql } from '../../server/routes/observations.js';
import { FAULTS_SQL, LAST_COMM_SQL } from '../../gateway/adapters/link-state.js';
import { startTestGateway, publishAsync, type TestGateway } from '../helpers/gateway.js';
import { databaseBefore } from '../helpers/migrations.js';
import { createSqliteObservationStore, type NewObservation } from '../../gateway/observation-store.js';

describe('the query plans on the committed migrations', () => {
  const { planOf } = useMigratedStore('eldergate-obs-plan');

  it('a key is looked up in its own class\'s unique index', () => {
    expect(planOf(keyedSql(true), 'd', 1, 2)).toEqual(['SEARCH observations USING INDEX observations_alarm_key_uq (device_id=? AND seq=? AND device_ts=?)']);
    expect(planOf(keyedSql(false), 'd', 1, 2)).toEqual(['SEARCH observations USING INDEX observations_other_key_uq (device_id=? AND seq=? AND device_ts=?)']);
  });

  it('a device\'s listing reads its two indexes, with and without filters, and never scans the table', () => {
    for (const filter of [{ type: false, before: false }, { type: true, before: false }, { type: true, before: true }, { type: false, before: true }]) {
      const one = ['d', ...(filter.type ? ['sos'] : []), ...(filter.before ? [9] : []), 10];
      const plan = planOf(deviceRowsSql('sqlite', filter), ...one, ...one, 10);
      expect(plan).toContainEqual(expect.stringMatching(/^SEARCH observations USING INDEX observations_other_device_idx \(device_id=\?/));
      expect(plan).toContainEqual('SEARCH observations USING INDEX observations_alarm_key_uq (device_id=?)');
      expect(plan.filter((d) => /^SCAN observations/.test(d))).toEqual([]);
    }
  });

  it('the field adapters\' start-up reads go backwards through the device\'s technical rows', () => {
    expect(planOf(LAST_COMM_SQL, 'd')).toEqual(['SEARCH observations USING INDEX observations_other_device_idx (device_id=?)']);
    expect(planOf(FAULTS_SQL, 'd', 5)).toEqual(['SEARCH observations USING INDEX observations_other_device_idx (device_id=?)']);
  });
});

describe('migration 0010 on a file an older release wrote', () => {
  const dir = mkdtempSync(join(tmpdir(), 'eldergate-mig10-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps every row, and dedup goes on in each class as before', () => {
    const { db: old, file } = databaseBefore('0010', dir);
    const row = old.prepare(`INSERT INTO observations (device_id, type, seq, device_ts, received_at, source, life_safety, data, generation)
      VALUES (?, ?, ?, ?, ?, 'mqtt', ?, '{}', ?)`);
    row.run('d1', 'sos', 1, 100, 1, 1, 0);
    row.run('d1', 'sos', 1, 100, 2, 1, 1); // a possible replay: the key's next generation
    row.run('d1', 'battery', 2, 200, 3, 0, 0);
    row.run('d1', 'fall', null, null, 4, 1, 0);
    row.run('d2', 'sos', 1, 100, 5, 1, 0);
    old.close();

    const store = openStore(file);
    try {
      expect((store.sqlite.prepare('SELECT id, device_id, type FROM observations ORDER BY id').all() as unknown[]).length).toBe(5);
      const names = (store.sqlite.prepare(`SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'observations' ORDER BY name`)
        .all() as { name: string }[]).map((r) => r.name);
      expect(names).toEqual(['observations_alarm_key_uq', 'observations_keyless_idx', 'observations_other_device_idx',
        'observations_other_key_uq', 'observations_received_idx']);
      const rows = createSqliteObservationStore(store.sqlite);
      const o = (x: Partial<NewObservation>): NewObservation => ({
        deviceId: 'd1', type: 'sos', seq: 1, deviceTs: 100, receivedAt: 9, source: 'mqtt', lifeSafety: true, data: '{}',
        flags: null, session: null, packetId: null, generation: 0, ...x,
      });
      // the old rows' keys still collide in their class, and are found there
      expect(rows.insert(o({}))).toBe(0);
      expect(rows.insert(o({ generation: 1 }))).toBe(0);
      expect(rows.insert(o({ type: 'battery', seq: 2, deviceTs: 200, lifeSafety: false }))).toBe(0);
      expect(rows.findKeyed('d1', 1, 100, true)).toMatchObject({ generation: 1, type: 'sos' });
      expect(rows.findKeyed('d1', 2, 200, false)).toMatchObject({ type: 'battery' });
      expect(rows.insert(o({ generation: 2 }))).toBeGreaterThan(0);
    } finally {
      store.close();
    }
  });
});

describe('a device\'s alarms and other rows, through the gateway', () => {
  let t: TestGateway;
  let id: string;
  let c: MqttClient;
  const sent: { seq: number; type: string }[] = [];
  beforeAll(async () => {
    t = await startTestGateway();
    const dev = await t.provision('call-phone');
    id = dev.id;
    c = await t.connectDevice(dev.id, dev.secret);
    // alternating classes, each PUBACKed (so stored) before the next is sent: ids in this order
    for (let seq = 1; seq <= 12; seq++) {
      const type = seq % 3 === 0 ? 'sos' : 'power-lost';
      await publishAsync(c, `devices/${id}/events`, JSON.stringify({ ts: 1_796_000_000_000 + seq, seq, type }), 1);
      sent.push({ seq, type });
    }
  });
  afterAll(async () => {
    c?.end(true);
    await t?.stop();
  });

  const list = async (query: string) => {
    const r = await t.api('GET', `/api/observations?deviceId=${id}${query}`);
    expect(r.status).toBe(200);
    return r.body.items as { id: number; seq: number; type: string; lifeSafety: boolean }[];
  };

  it('lists both classes merged, newest first', async () => {
    const items = await list('');
    expect(items.map((o) => ({ seq: o.seq, type: o.type }))).toEqual([...sent].reverse());
    expect(items.filter((o) => o.lifeSafety).map((o) => o.type)).toEqual(['sos', 'sos', 'sos', 'sos']);
    expect(items.map((o) => o.id)).toEqual([...items.map((o) => o.id)].sort((a, b) => b - a));
  });

  it('pages back with before= across both classes, and filters by type', async () => {
    const seen: number[] = [];
    let before = '';
    for (;;) {
      const page = await list(`&limit=5${before}`);
      if (page.length === 0) break;
      expect(page.length).toBeLessThanOrEqual(5);
      seen.push(...page.map((o) => o.seq));
      before = `&before=${page[page.length - 1]!.id}`;
    }
    expect(seen).toEqual(sent.map((s) => s.seq).reverse());
    expect((await list('&type=sos')).map((o) => o.seq)).toEqual([12, 9, 6, 3]);
    expect((await list('&type=power-lost&limit=3')).map((o) => o.seq)).toEqual([11, 10, 8]);
  });

  it('a resend is stored once in either class', async () => {
    await publishAsync(c, `devices/${id}/events`, JSON.stringify({ ts: 1_796_000_000_012, seq: 12, type: 'sos' }), 1);
    await publishAsync(c, `devices/${id}/events`, JSON.stringify({ ts: 1_796_000_000_011, seq: 11, type: 'power-lost' }), 1);
    expect((await list('')).map((o) => o.seq)).toEqual(sent.map((s) => s.seq).reverse());
  });
});
