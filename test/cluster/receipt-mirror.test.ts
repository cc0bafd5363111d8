// Every node holds every node's push and delivery receipts (response/receipt-mirror.ts): two nodes write receipts to a
// real PostgreSQL 15 (started by this file on a private port and data directory), each node's SQLite file follows the
// receipts' log after its replica of the incident log. Both files end with the receipts and the `pushed`/`delivered`
// stamps PostgreSQL holds — the cluster's first of each, whichever node's console brought it — also when the nodes
// write the same receipts at once, when the LISTEN connections are killed, when a receipt comes before its incident's
// opening reached the file, and after a restart.
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
import { createIncidentService, type IncidentServiceOf } from '../../response/incidents.js';
import type { IncidentReceipt } from '../../response/events.js';
import { mirrorLog, type LogMirror } from '../../response/log-mirror.js';
import { mirrorReceipts, type ReceiptMirror } from '../../response/receipt-mirror.js';
import { createPgReceiptStore } from '../../response/receipt-store-pg.js';
import { createSqliteReceiptStore } from '../../response/receipt-store.js';
import { createPgIncidentStore, migratePg, type PgIncidentStore } from '../../response/store/pg.js';
import { createSqliteIncidentStore } from '../../response/store/sqlite.js';
import { useStoreEngines } from '../helpers/postgres.js';

// band 29: no other test file's (grep `band:` and `BAND =` under test/)
const env = useStoreEngines({ name: 'receipt-mirror', band: 29 });
const log = createLogger('silent');
const locals: Store[] = [];
afterAll(() => { for (const l of locals) l.close(); });

const UNITS = ['g1', 'g2'];
const FOLLOWER = 'eldergate-receipt-mirror-test';

function localFile(name: string): Store {
  const s = openStore(join(env.dir, `${name}.db`));
  locals.push(s);
  return s;
}

function writer(pool: pg.Pool, name: string): IncidentServiceOf<'async'> {
  const local = localFile(`writer-${name}`);
  const network = createNetwork({ store: local, log, clock: systemClock });
  network.createUnit({ id: 'd1', name: 'District', tier: 'district' });
  for (const id of UNITS) network.createUnit({ id, name: id, tier: 'grid', parentId: 'd1' });
  const incidentStore = createPgIncidentStore({ pool, knownUnitIds: () => UNITS });
  return createIncidentService({ store: local, bus: new Bus(), config: loadConfig({}, {}), log, clock: systemClock, network, incidentStore, isTestDevice: () => false });
}

interface Node { log: LogMirror; receipts: ReceiptMirror; local: Store }

/** a node's two replicas on its file, wired as eldergate.ts wires them */
function node(url: string, pool: pg.Pool, source: PgIncidentStore, local: Store, opts: { logPaused?: () => boolean } = {}): Node {
  let receipts: ReceiptMirror | null = null;
  const logMirror = mirrorLog({
    source, sqlite: local.sqlite,
    connect: () => new pg.Client({ connectionString: url, application_name: `${FOLLOWER}-log` }),
    onApplied: () => { receipts?.poke(); },
    log, pollMs: 60_000,
  });
  receipts = mirrorReceipts({
    source: createPgReceiptStore(pool), sqlite: local.sqlite,
    connect: () => new pg.Client({ connectionString: url, application_name: FOLLOWER }),
    logHead: () => (opts.logPaused?.() ? 0 : logMirror.head()),
    log, pollMs: 60_000, pageSize: 7,
  });
  return { log: logMirror, receipts, local };
}

const src = (deviceId: string, unitId: string): AlarmSource => ({ deviceId, residentId: null, unitId, stamps: { received: Date.now() } });
const sos: AlarmAction = { action: 'raise', type: 'sos', priority: 'P1', rule: 'sos' };
const pushed = (incidentId: string, seq: number, at: number): IncidentReceipt => ({ incidentId, kind: 'pushed', seq, at, userId: null, username: null });
const delivered = (incidentId: string, seq: number, at: number, userId: string): IncidentReceipt =>
  ({ incidentId, kind: 'delivered', seq, at, userId, username: userId });

/** the node's file holds the receipts and the incidents' stamps PostgreSQL holds */
async function expectSame(pool: pg.Pool, n: Node, incidentIds: readonly string[]): Promise<void> {
  const pgReceipts = createPgReceiptStore(pool);
  const pgIncidents = createPgIncidentStore({ pool, knownUnitIds: () => UNITS });
  const local = createSqliteReceiptStore(n.local.sqlite);
  const incidents = createSqliteIncidentStore(n.local.sqlite);
  for (const id of incidentIds) {
    expect(local.of(id)).toEqual(await pgReceipts.of(id));
    expect(incidents.get(id)?.stamps).toEqual((await pgIncidents.get(id))?.stamps);
  }
}

describe('each node\'s replica of every node\'s push and delivery receipts', () => {
  it('two nodes writing receipts for the same incidents at once: both files hold what PostgreSQL holds, stamps the cluster\'s first, also after LISTEN is killed', async () => {
    const { url, pool } = await env.pgs().fresh('receipts_two', 8);
    const source = createPgIncidentStore({ pool, knownUnitIds: () => UNITS });
    const nodes = [node(url, pool, source, localFile('node-a')), node(url, pool, source, localFile('node-b'))];
    try {
      await expect.poll(async () => (await pool.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND query ILIKE 'LISTEN%'`, [FOLLOWER])).rows[0].n, { timeout: 10_000 }).toBe(2);
      const w = writer(pool, 'w');
      const opened = await Promise.all(Array.from({ length: 12 }, (_, d) => w.applyAlarm(sos, src(`d${d}`, UNITS[d % 2]!))));
      const ids = opened.map(([e]) => e!.incidentId);
      const seqOf = new Map(opened.map(([e]) => [e!.incidentId, e!.seq]));
      const t0 = Date.now();
      // each node's consoles push every incident and their users confirm: the same receipts from both, in opposite
      // orders, at once (a push stored once, each user's delivery once)
      const batchOf = (side: number): IncidentReceipt[] => {
        const out = ids.flatMap((id, k) => [pushed(id, seqOf.get(id)!, t0 + side + k), delivered(id, seqOf.get(id)!, t0 + 5 + k, `u${k % 3}`), delivered(id, seqOf.get(id)!, t0 + 7 + side, `side${side}`)]);
        return side ? out.reverse() : out;
      };
      const stores = [createPgReceiptStore(pool), createPgReceiptStore(pool)];
      const [a, b] = await Promise.all([stores[0]!.append(batchOf(0)), stores[1]!.append(batchOf(1))]);
      expect(a.written + b.written).toBe(12 + 12 + 24);
      // the LISTEN connections killed: later receipts are read once they are back
      await pool.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', [FOLLOWER]);
      const late = await stores[1]!.append(ids.map((id) => delivered(id, seqOf.get(id)!, t0 + 100, 'late')));
      expect(late.written).toBe(12);
      for (const n of nodes) {
        await n.receipts.reach(late.head);
        await expectSame(pool, n, ids);
      }
      // every incident has both stamps, and they are the same on both files
      const [one, two] = nodes.map((n) => ids.map((id) => createSqliteIncidentStore(n.local.sqlite).get(id)!.stamps));
      expect(one!.every((s) => s.pushed !== undefined && s.delivered !== undefined)).toBe(true);
      expect(one).toEqual(two);
      // and a later event on an incident keeps its stamps, on both files and in PostgreSQL
      const [ack] = await w.act(ids[0]!, { type: 'acknowledge' }, { id: 'u1', username: 'op1' }).then((r) => r.events);
      for (const n of nodes) {
        await n.log.reach(ack!.seq);
        await expectSame(pool, n, ids);
        expect(createSqliteIncidentStore(n.local.sqlite).get(ids[0]!)!.stamps).toMatchObject({ pushed: one![0]!.pushed, delivered: one![0]!.delivered });
      }
    } finally {
      await Promise.all(nodes.flatMap((n) => [n.receipts.close(), n.log.close()]));
    }
  });

  it('a receipt whose incident this file does not hold yet waits for it, then stamps it', async () => {
    const { url, pool } = await env.pgs().fresh('receipts_wait', 6);
    const source = createPgIncidentStore({ pool, knownUnitIds: () => UNITS });
    let paused = true;
    const n = node(url, pool, source, localFile('node-wait'), { logPaused: () => paused });
    try {
      const w = writer(pool, 'wait');
      const [opened] = await w.applyAlarm(sos, src('w-d0', 'g1'));
      await n.log.reach(opened!.seq);
      const store = createPgReceiptStore(pool);
      const { head } = await store.append([pushed(opened!.incidentId, opened!.seq, Date.now())]);
      // the log replica "behind" the receipt: it is not applied, the file's head stays
      await new Promise((r) => setTimeout(r, 300));
      await expect(n.receipts.reach(head, 300)).rejects.toThrow(/did not reach/);
      expect(createSqliteReceiptStore(n.local.sqlite).of(opened!.incidentId)).toEqual([]);
      // the log replica moves on: the receipt applies, and stamps the incident
      paused = false;
      const [next] = await w.applyAlarm(sos, src('w-d1', 'g2'));
      await n.log.reach(next!.seq);
      await n.receipts.reach(head);
      await expectSame(pool, n, [opened!.incidentId]);
      expect(createSqliteIncidentStore(n.local.sqlite).get(opened!.incidentId)!.stamps.pushed).toBeDefined();
    } finally {
      await n.receipts.close();
      await n.log.close();
    }
  });

  it('a node restarted on its file resumes from its receipts\' head', async () => {
    const { url, pool } = await env.pgs().fresh('receipts_restart', 6);
    const source = createPgIncidentStore({ pool, knownUnitIds: () => UNITS });
    const w = writer(pool, 'restart');
    const opened = await Promise.all(Array.from({ length: 4 }, (_, d) => w.applyAlarm(sos, src(`r-d${d}`, 'g1'))));
    const ids = opened.map(([e]) => e!.incidentId);
    const file = localFile('node-restart');
    const store = createPgReceiptStore(pool);
    const first = node(url, pool, source, file);
    await first.log.reach(await source.head());
    const a = await store.append(opened.map(([e]) => pushed(e!.incidentId, e!.seq, Date.now())));
    await first.receipts.reach(a.head);
    await first.receipts.close();
    await first.log.close();
    // written while the node was down
    const b = await store.append(opened.map(([e]) => delivered(e!.incidentId, e!.seq, Date.now(), 'u9')));
    // the head is kept in the file: the restarted replica starts there
    expect(file.sqlite.prepare('SELECT head FROM receipt_replica').get()).toEqual({ head: a.head });
    const second = node(url, pool, source, file);
    try {
      await second.receipts.reach(b.head);
      await expectSame(pool, second, ids);
      expect(createSqliteReceiptStore(file.sqlite).of(ids[0]!).map((r) => r.kind)).toEqual(['pushed', 'delivered']);
    } finally {
      await second.receipts.close();
      await second.log.close();
    }
  });

  it('a database an older release left with receipts: after the migration they keep their order (rseq from their ids), the head after them, and a replica reads them all', async () => {
    const { url, pool } = await env.pgs().fresh('receipts_upgrade', 6, { before: '0006' });
    const w = writer(pool, 'upgrade');
    // the incidents are written by today's writer, which also writes a column that release did not have (an unknown
    // account's, migration 0009): there for the writing, gone again before the migration, as that release left them
    await pool.query('ALTER TABLE incidents ADD COLUMN account text');
    const opened = await Promise.all(Array.from({ length: 3 }, (_, d) => w.applyAlarm(sos, src(`u-d${d}`, 'g1'))));
    await pool.query('ALTER TABLE incidents DROP COLUMN account');
    // receipts as the older release wrote them (no rseq), with their stamps
    for (const [e] of opened) {
      const at = Date.now();
      await pool.query('INSERT INTO incident_receipts (incident_id, kind, seq, at, user_id, username) VALUES ($1, $2, $3, $4, NULL, NULL)', [e!.incidentId, 'pushed', e!.seq, at]);
      await pool.query("UPDATE incidents SET stamps = stamps || jsonb_build_object('pushed', $2::bigint) WHERE id = $1", [e!.incidentId, at]);
    }
    await migratePg(pool);
    const { rows } = await pool.query('SELECT id, rseq FROM incident_receipts ORDER BY id');
    expect(rows.map((r) => Number(r.rseq))).toEqual(rows.map((r) => Number(r.id)));
    const store = createPgReceiptStore(pool);
    expect(await store.head()).toBe(Math.max(...rows.map((r) => Number(r.id))));
    // a new batch numbered after them
    const next = await store.append(opened.map(([e]) => delivered(e!.incidentId, e!.seq, Date.now(), 'u1')));
    expect(next.head).toBe(Math.max(...rows.map((r) => Number(r.id))) + 3);
    const source = createPgIncidentStore({ pool, knownUnitIds: () => UNITS });
    const n = node(url, pool, source, localFile('node-upgrade'));
    try {
      await n.log.reach(await source.head());
      await n.receipts.reach(next.head);
      await expectSame(pool, n, opened.map(([e]) => e!.incidentId));
      expect(createSqliteReceiptStore(n.local.sqlite).of(opened[0]![0]!.incidentId).map((r) => r.kind)).toEqual(['pushed', 'delivered']);
    } finally {
      await n.receipts.close();
      await n.log.close();
    }
  });

  it('receipts committed while the replica reads: none stepped over (the read goes up to the head it was sent with, not the one heard meanwhile)', async () => {
    const { url, pool } = await env.pgs().fresh('receipts_race', 6);
    const source = createPgIncidentStore({ pool, knownUnitIds: () => UNITS });
    const w = writer(pool, 'race');
    const opened = await Promise.all(Array.from({ length: 6 }, (_, d) => w.applyAlarm(sos, src(`race-d${d}`, 'g1'))));
    const ids = opened.map(([e]) => e!.incidentId);
    const real = createPgReceiptStore(pool);
    await real.append(opened.slice(0, 3).map(([e]) => pushed(e!.incidentId, e!.seq, Date.now())));
    // the replica's first read: while it is out, three more receipts are committed (and notified)
    let first = true;
    const slow: Pick<typeof real, 'head' | 'after'> = {
      head: () => real.head(),
      async after(rseq, upTo, limit) {
        const rows = await real.after(rseq, upTo, limit);
        if (first) {
          first = false;
          await real.append(opened.slice(3).map(([e]) => pushed(e!.incidentId, e!.seq, Date.now())));
          await new Promise((r) => setTimeout(r, 300));
        }
        return rows;
      },
    };
    const local = localFile('node-race');
    let receipts: ReceiptMirror | null = null;
    const logMirror = mirrorLog({ source, sqlite: local.sqlite, connect: () => new pg.Client({ connectionString: url }), onApplied: () => receipts?.poke(), log, pollMs: 60_000 });
    try {
      await logMirror.reach(await source.head());
      receipts = mirrorReceipts({ source: slow, sqlite: local.sqlite, connect: () => new pg.Client({ connectionString: url }), logHead: () => logMirror.head(), log, pollMs: 60_000 });
      await receipts.reach(await real.head());
      await expectSame(pool, { log: logMirror, receipts, local }, ids);
      expect(ids.every((id) => createSqliteReceiptStore(local.sqlite).of(id).length === 1)).toBe(true);
    } finally {
      await receipts?.close();
      await logMirror.close();
    }
  });

  it('a receipt batch stamping incidents a writer\'s transaction holds waits for it: no deadlock, both commit', async () => {
    const { pool } = await env.pgs().fresh('receipts_deadlock', 6);
    const w = writer(pool, 'deadlock');
    const [[a], [b]] = await Promise.all([w.applyAlarm(sos, src('dl-a', 'g1')), w.applyAlarm(sos, src('dl-b', 'g1'))]);
    const [first, second] = [a!, b!].sort((x, y) => (x.incidentId < y.incidentId ? -1 : 1));
    // a writer's transaction: the log's head, then the incidents in the order its observations came (the second first)
    const tx = await pool.connect();
    try {
      await tx.query('BEGIN');
      await tx.query('SELECT seq FROM incident_log_head WHERE id = 1 FOR UPDATE');
      await tx.query('SELECT id FROM incidents WHERE id = $1 FOR UPDATE', [second!.incidentId]);
      // meanwhile a console's batch stamps both (in id order: the first, then the second)
      const batch = createPgReceiptStore(pool).append([pushed(first!.incidentId, first!.seq, Date.now()), pushed(second!.incidentId, second!.seq, Date.now())]);
      await new Promise((r) => setTimeout(r, 300));
      // the writer takes the first: the batch must not be holding it
      await tx.query('SET LOCAL lock_timeout = 5000');
      await tx.query('SELECT id FROM incidents WHERE id = $1 FOR UPDATE', [first!.incidentId]);
      await tx.query('COMMIT');
      expect((await batch).written).toBe(2);
    } finally {
      tx.release();
    }
    const stamps = (await pool.query('SELECT stamps FROM incidents WHERE id = ANY($1)', [[first!.incidentId, second!.incidentId]])).rows;
    expect(stamps.every((r) => r.stamps.pushed !== undefined)).toBe(true);
  });
});
