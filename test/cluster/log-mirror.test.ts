// Every node serves its consoles from its replica of the shared log (response/log-mirror.ts): two nodes' incident
// services write one log on a real PostgreSQL 15 (started by this file on a private port and data directory), two
// replicas on SQLite files of their own follow it. Each replica holds the log as committed — the same seqs, events and
// projection — hands each event on once, in seq order, whichever node wrote it; catches up after its LISTEN connection
// is killed and after a restart, without handing anything on twice; and the node's own synchronous reads (the consoles'
// stream and the API read these) answer from it.
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { openStore, type Store } from '../../core/db.js';
import { Bus } from '../../core/bus.js';
import { loadConfig } from '../../core/config.js';
import { createLogger } from '../../core/logger.js';
import type { AlarmAction, AlarmSource } from '../../core/contracts.js';
import { systemClock } from '../../response/clock.js';
import { createNetwork } from '../../response/network.js';
import { createIncidentService, type CommittedEvent, type IncidentServiceOf } from '../../response/incidents.js';
import { mirrorLog, type LogMirror } from '../../response/log-mirror.js';
import { createPgIncidentStore, type PgIncidentStore } from '../../response/store/pg.js';
import { createSqliteIncidentStore } from '../../response/store/sqlite.js';
import { useStoreEngines } from '../helpers/postgres.js';

// band 18: no other test file's (grep `band:` and `BAND =` under test/)
const env = useStoreEngines({ name: 'log-mirror', band: 18 });
const log = createLogger('silent');
const locals: Store[] = [];
afterAll(() => { for (const l of locals) l.close(); });

const UNITS = ['g1', 'g2'];
const FOLLOWER = 'eldergate-log-mirror';

/** a node's SQLite file (the replica, and the network it knows) */
function localFile(name: string): Store {
  const s = openStore(join(env.dir, `${name}.db`));
  locals.push(s);
  return s;
}

function networkOn(local: Store) {
  const network = createNetwork({ store: local, log, clock: systemClock });
  if (network.listUnits().length === 0) {
    network.createUnit({ id: 'd1', name: 'District', tier: 'district' });
    for (const id of UNITS) network.createUnit({ id, name: id, tier: 'grid', parentId: 'd1' });
  }
  return network;
}

/** a node's writer: its incident service on the shared log */
function writer(pool: pg.Pool, name: string): IncidentServiceOf<'async'> {
  const local = localFile(`writer-${name}`);
  const network = networkOn(local);
  const incidentStore = createPgIncidentStore({ pool, knownUnitIds: () => UNITS });
  return createIncidentService({ store: local, bus: new Bus(), config: loadConfig({}, {}), log, clock: systemClock, network, incidentStore, isTestDevice: () => false });
}

interface Replica { mirror: LogMirror; local: Store; handed: CommittedEvent[] }

function replica(url: string, source: PgIncidentStore, local: Store): Replica {
  const handed: CommittedEvent[] = [];
  const mirror = mirrorLog({
    source, sqlite: local.sqlite,
    connect: () => new pg.Client({ connectionString: url, application_name: FOLLOWER }),
    onApplied: (events) => { handed.push(...events); },
    log, pollMs: 60_000, // notifications and reconnects only: the poll is the safety net, not what is tested here
  });
  return { mirror, local, handed };
}

const src = (deviceId: string, unitId: string): AlarmSource => ({ deviceId, residentId: null, unitId, stamps: { received: Date.now() } });
const sos: AlarmAction = { action: 'raise', type: 'sos', priority: 'P1', rule: 'sos' };

/** what both sides must agree on: the log as PostgreSQL holds it, and each incident's projection */
async function expectSame(pool: pg.Pool, r: Replica): Promise<void> {
  const { rows } = await pool.query('SELECT seq, incident_id, type, at, actor, unit_id, data FROM incident_events ORDER BY seq');
  const local = createSqliteIncidentStore(r.local.sqlite);
  const mine = local.eventsAfter(0, 100_000);
  expect(mine.map((e) => [e.seq, e.incidentId, e.type, e.at, e.actor, e.unitId, e.data]))
    .toEqual(rows.map((e) => [Number(e.seq), e.incident_id, e.type, Number(e.at), e.actor, e.unit_id, e.data]));
  const pgStore = createPgIncidentStore({ pool, knownUnitIds: () => UNITS });
  for (const id of new Set(rows.map((e) => e.incident_id as string))) expect(local.get(id)).toEqual(await pgStore.get(id));
  expect(local.head()).toBe(await pgStore.head());
}

describe('each node\'s replica of the shared incident log', () => {
  it('two nodes writing, two replicas following: the same log and incidents, every event handed on once, in order, also after LISTEN is killed', async () => {
    const { url, pool } = await env.pgs().fresh('mirror', 8);
    const source = createPgIncidentStore({ pool, knownUnitIds: () => UNITS });
    const replicas = [replica(url, source, localFile('replica-a')), replica(url, source, localFile('replica-b'))];
    try {
      await expect.poll(async () => (await pool.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND query ILIKE 'LISTEN%'`, [FOLLOWER])).rows[0].n, { timeout: 10_000 }).toBe(2);
      const nodes = [writer(pool, 'a'), writer(pool, 'b')];
      // both nodes at once: alarms for 10 devices each, then people's actions on half of them
      const opened = await Promise.all(nodes.flatMap((n, i) => Array.from({ length: 10 }, (_, d) => n.applyAlarm(sos, src(`n${i}-d${d}`, UNITS[d % 2]!)))));
      await Promise.all(opened.slice(0, 10).map(([e], k) => nodes[k % 2]!.act(e!.incidentId, { type: 'acknowledge' }, { id: 'u1', username: 'op1' })));
      // the replicas' LISTEN connections killed: what is committed meanwhile is read once they are back
      await pool.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', [FOLLOWER]);
      await Promise.all(opened.slice(10).map(([e]) => nodes[0]!.act(e!.incidentId, { type: 'note', text: 'called the daughter' }, { id: 'u2' })));
      await Promise.all(opened.slice(0, 5).map(([e]) => nodes[1]!.act(e!.incidentId, { type: 'resolve', outcome: 'false alarm' }, { id: 'u1' })));
      const head = await source.head();
      expect(head).toBe(20 + 10 + 10 + 5);
      for (const r of replicas) {
        await r.mirror.reach(head);
        expect(r.handed.map((e) => e.seq)).toEqual(Array.from({ length: head }, (_, i) => i + 1));
        await expectSame(pool, r);
      }
      // the node's own reads, as the consoles' stream and the API make them, synchronous, from its replica
      const local = createIncidentService({
        store: replicas[0]!.local, bus: new Bus(), config: loadConfig({}, {}), log, clock: systemClock, network: networkOn(replicas[0]!.local),
      });
      expect(local.head()).toBe(head);
      const active = local.active({ scope: null, after: null, limit: 100 });
      expect(active.head).toBe(head);
      expect(active.items.length).toBe(15);
      expect(local.get(opened[0]![0]!.incidentId)).toMatchObject({ status: 'resolved', outcome: 'false alarm' });
      expect(local.eventsAfter(40, { scope: 'g1' }).every((e) => e.unitId === 'g1')).toBe(true);
    } finally {
      await Promise.all(replicas.map((r) => r.mirror.close()));
    }
  });

  it('a replica restarted on its file resumes from its head: only what it had not applied is handed on', async () => {
    const { url, pool } = await env.pgs().fresh('mirror_restart', 6);
    const source = createPgIncidentStore({ pool, knownUnitIds: () => UNITS });
    const node = writer(pool, 'r');
    const file = localFile('replica-restart');
    const first = replica(url, source, file);
    for (let d = 0; d < 5; d++) await node.applyAlarm(sos, src(`r-d${d}`, 'g1'));
    await first.mirror.reach(5);
    await first.mirror.close();
    // written while the node was down
    for (let d = 5; d < 8; d++) await node.applyAlarm(sos, src(`r-d${d}`, 'g2'));
    const second = replica(url, source, file);
    try {
      await second.mirror.reach(8);
      expect(first.handed.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
      expect(second.handed.map((e) => e.seq)).toEqual([6, 7, 8]);
      await expectSame(pool, second);
    } finally {
      await second.mirror.close();
    }
  });

  it('an event for an incident this replica pruned (its own retention): the incident taken from the log, the replica goes on', async () => {
    const { url, pool } = await env.pgs().fresh('mirror_pruned', 6);
    const source = createPgIncidentStore({ pool, knownUnitIds: () => UNITS });
    const node = writer(pool, 'p');
    const r = replica(url, source, localFile('replica-pruned'));
    try {
      const [opened] = await node.applyAlarm(sos, src('p-d0', 'g1'));
      await node.act(opened!.incidentId, { type: 'acknowledge' }, { id: 'u1' });
      await node.act(opened!.incidentId, { type: 'resolve', outcome: 'helped' }, { id: 'u1' });
      await r.mirror.reach(3);
      // the replica's retention took the closed incident away
      r.local.sqlite.prepare('DELETE FROM incidents WHERE id = ?').run(opened!.incidentId);
      // a note on the closed incident (allowed), then a new alarm: both reach the replica
      await node.act(opened!.incidentId, { type: 'note', text: 'family informed' }, { id: 'u2' });
      const [next] = await node.applyAlarm(sos, src('p-d1', 'g2'));
      await r.mirror.reach(next!.seq);
      expect(r.handed.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
      expect(createSqliteIncidentStore(r.local.sqlite).get(opened!.incidentId)).toEqual(await source.get(opened!.incidentId));
    } finally {
      await r.mirror.close();
    }
  });
});
