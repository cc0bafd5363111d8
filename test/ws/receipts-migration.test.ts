// Migration 0006 on a database written before it (issue 10): the `pushed` / `delivered` events leave the incident log
// for incident_receipts, keeping their times, users and stamps; their seqs become gaps. A console resuming from any
// seq — one inside a gap, the last one it saw even when that one was a receipt at the very end of the log — gets every
// event after it that exists, and a new event never reuses a removed seq. A real SQLite file at migration 0005, then a
// real gateway on it and real WebSocket consoles.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dbFile } from '../../core/db.js';
import { databaseBefore } from '../helpers/migrations.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { TestConsole, raise } from './helpers.js';

const T0 = 1_790_000_000_000;
const dir = mkdtempSync(join(tmpdir(), 'eldergate-mig6-'));

/** An incident row and its events as the release before 0006 wrote them (receipts as events, fsynced one by one). */
function writeOldLog(file: string): void {
  const { db } = databaseBefore('0006', dir, file);
  const opened = (deviceId: string) => JSON.stringify({
    deviceId, residentId: null, unitId: null, tierUnitId: null, type: 'sos', priority: 'P1', test: false, position: null,
    // no deadline: nothing escalates when the gateway starts on this file (a P1 of 2026 would be long overdue)
    deadlineAt: null, cancelWindowMs: null, rule: 'sos', stamps: { received: T0 - 5, durable: T0 },
  });
  const ev = db.prepare('INSERT INTO incident_events (seq, incident_id, type, at, actor, unit_id, data) VALUES (?, ?, ?, ?, ?, NULL, ?)');
  ev.run(1, 'inc_a', 'opened', T0, null, opened('dev-a'));
  ev.run(2, 'inc_a', 'pushed', T0 + 2, null, JSON.stringify({ seq: 1, stamps: { pushed: T0 + 2 } }));
  ev.run(3, 'inc_a', 'delivered', T0 + 9, 'u_ada', JSON.stringify({ seq: 1, username: 'ada', stamps: { delivered: T0 + 9 } }));
  ev.run(4, 'inc_a', 'delivered', T0 + 12, 'u_bo', JSON.stringify({ seq: 1, username: 'bo' }));
  ev.run(5, 'inc_a', 'acknowledged', T0 + 20, 'u_ada', JSON.stringify({ username: 'ada', stamps: { acknowledged: T0 + 20 }, ackMs: 20 }));
  ev.run(6, 'inc_a', 'delivered', T0 + 30, 'u_cy', JSON.stringify({ seq: 1, username: 'cy' }));
  ev.run(7, 'inc_b', 'opened', T0 + 40, null, opened('dev-b'));
  ev.run(8, 'inc_b', 'pushed', T0 + 41, null, JSON.stringify({ seq: 7, stamps: { pushed: T0 + 41 } }));
  const inc = db.prepare(
    `INSERT INTO incidents (id, device_id, resident_id, unit_id, tier_unit_id, escalation_level, type, priority, status, test, count,
       opened_at, last_at, deadline_at, position, stamps, assignee, outcome, last_seq)
     VALUES (?, ?, NULL, NULL, NULL, 0, 'sos', 'P1', ?, 0, 1, ?, ?, ?, NULL, ?, NULL, NULL, ?)`,
  );
  inc.run('inc_a', 'dev-a', 'acknowledged', T0, T0, null,
    JSON.stringify({ received: T0 - 5, durable: T0, pushed: T0 + 2, delivered: T0 + 9, acknowledged: T0 + 20 }), 6);
  inc.run('inc_b', 'dev-b', 'open', T0 + 40, T0 + 40, null,
    JSON.stringify({ received: T0 - 5, durable: T0, pushed: T0 + 41 }), 8);
  db.close();
}

describe('migration 0006: receipts leave the incident log; resuming by seq across the gaps', () => {
  let t: TestGateway;
  const dataDir = join(dir, 'data');
  let token: string;
  beforeAll(async () => {
    mkdirSync(dataDir, { recursive: true });
    writeOldLog(dbFile(dataDir));
    // the gateway migrates the file on open
    t = await startTestGateway({}, dataDir);
    token = await t.token();
  }, 60_000);
  afterAll(async () => {
    await t?.stop();
    rmSync(dir, { recursive: true, force: true });
    rmSync(`${dataDir}-keys`, { recursive: true, force: true });
  });

  it('moves every old receipt with its time, user and frame; the stamps stay; the log keeps only events', () => {
    const { incidents } = t.gw.response;
    const sqlite = t.gw.store.sqlite;
    expect(sqlite.prepare('SELECT seq, type FROM incident_events ORDER BY seq').all()).toEqual([
      { seq: 1, type: 'opened' }, { seq: 5, type: 'acknowledged' }, { seq: 7, type: 'opened' },
    ]);
    expect(incidents.receipts('inc_a').map((r) => [r.kind, r.seq, r.at, r.userId, r.username])).toEqual([
      ['pushed', 1, T0 + 2, null, null],
      ['delivered', 1, T0 + 9, 'u_ada', 'ada'],
      ['delivered', 1, T0 + 12, 'u_bo', 'bo'],
      ['delivered', 1, T0 + 30, 'u_cy', 'cy'],
    ]);
    expect(incidents.receipts('inc_b').map((r) => [r.kind, r.seq, r.at])).toEqual([['pushed', 7, T0 + 41]]);
    const a = incidents.get('inc_a')!;
    expect(a.stamps).toEqual({ received: T0 - 5, durable: T0, pushed: T0 + 2, delivered: T0 + 9, acknowledged: T0 + 20 });
    // an incident whose last event was a receipt now ends at its last event
    expect(a.lastSeq).toBe(5);
    expect(incidents.get('inc_b')!.lastSeq).toBe(7);
    // the projection is still the fold of the log (with the receipts' first push and delivery as those stamps)
    expect(incidents.rebuild('inc_a')).toEqual(a);
    expect(incidents.rebuild('inc_b')).toEqual(incidents.get('inc_b'));
    // the head is the highest seq ever given, not the highest left in the log
    expect(incidents.head()).toBe(8);
  });

  it('a console resuming from inside a gap, or from a removed last seq, gets every event after it that exists', async () => {
    const fromGap = await TestConsole.open(t, token);
    expect(fromGap.hello().head).toBe(8);
    fromGap.subscribe('all', 2);
    await fromGap.waitFor((f) => f.type === 'replayed', 'replayed');
    expect(fromGap.seqs).toEqual([5, 7]);

    // seq 8 was the last thing this console saw (a receipt, now gone): not "beyond the latest"
    const fromEnd = await TestConsole.open(t, token);
    fromEnd.subscribe('all', 8);
    const replayed = await fromEnd.waitFor((f) => f.type === 'replayed' || f.type === 'error', 'replayed');
    expect(replayed.type).toBe('replayed');
    expect(fromEnd.seqs).toEqual([]);

    const beyond = await TestConsole.open(t, token);
    beyond.subscribe('all', 9);
    expect((await beyond.waitFor((f) => f.type === 'error', 'error')).code).toBe('SINCE_BEYOND_LATEST');

    // a new event after the migration: seq 9, never a removed one; both live consoles get it
    const [e] = raise(t, 1, { device: 'after-migration' });
    expect(e!.seq).toBe(9);
    await fromEnd.waitForSeq(9);
    await fromGap.waitForSeq(9);
    expect(fromEnd.seqs).toEqual([9]);
    expect(fromGap.seqs).toEqual([5, 7, 9]);

    // the detail API shows the old deliveries by name
    const detail = await t.api('GET', '/api/incidents/inc_a');
    expect(detail.body.events.map((x: { type: string }) => x.type)).toEqual(['opened', 'acknowledged']);
    expect(detail.body.receipts.filter((r: { kind: string }) => r.kind === 'delivered').map((r: { username: string }) => r.username)).toEqual(['ada', 'bo', 'cy']);
    for (const c of [fromGap, fromEnd, beyond]) await c.close();
  });
});
