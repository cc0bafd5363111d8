// `npm run bench:pg-log`: what the shared incident log costs on PostgreSQL (cluster mode's store, response/store/pg.ts),
// the measured basis of the scaling model in docs/scale-out.md. Writes docs/benchmarks-pg-log.md and
// bench/results/pg-log.json.
//
// A private PostgreSQL 15 (Debian's, ops/cluster/postgres.ts, fsync and synchronous_commit on) runs pinned to the
// system-under-test core with every one of its processes; this process, which plays 1 to 32 eldergate nodes (a pool
// of connections each), runs on the other core. Each transaction appends `batch` events the way a node's writer
// does (open an incident: read the device's open one, append `opened`, write the projection), so one transaction per
// batch of alarms. Beside it, in the same run and on the same server, the baseline: the same statements into copies of
// the tables with the seq from a plain sequence and no head row (neither gap-free nor in commit order); the ratio is
// what the gap-free, commit-ordered seq costs. Repetitions are judged by the harness's noise rule
// (bench/lib/sched.ts) and noisy ones run again, reported, never silently dropped.
//
// Options: --reps=N (clean repetitions wanted per cell, default 3), --seconds=S (per repetition, default 3),
// --no-pin.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { startPostgres, missingPostgresPackages, serverPids } from '../ops/cluster/postgres.js';
import { portFree } from '../ops/cluster/processes.js';
import { createPgIncidentStore, migratePg } from '../response/store/pg.js';
import type { IncidentStore } from '../response/store/types.js';
import type { IncidentEventBody } from '../response/events.js';
import { applyEvent } from '../response/projection.js';
import { io, runAsync } from '../response/store/run.js';
import { LoadMeter, cpuPlan, describeRule, pinProcess, setCpuPlan, NOISE_RULE, type LoadConditions } from './lib/sched.js';
import { cpuSeconds, machineInfo, numberOption } from './lib/sys.js';
import { fmt, fmtSpread, spread, summarize } from './lib/stats.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = (name: string, def: number) => numberOption(args, name, def);
const REPS = opt('reps', 3);
const SECONDS = opt('seconds', 3);
const MAX_EXTRA = 3;
/**
 * The harness's rule, but for a system of many processes: PostgreSQL runs one backend per writer, all on its one core,
 * so its run-queue wait is mostly its backends waiting for each other — its own cost, as the harness counts eldergate's
 * threads waiting for each other. Noise is other work on its core and steal.
 */
const RULE = { ...NOISE_RULE, maxSutWaitMsPerS: Number.POSITIVE_INFINITY };
const WRITERS = [1, 8, 32];
const BATCHES = [1, 20];

interface Rep { eventsPerS: number; commitsPerS: number; p50: number; p99: number; load: LoadConditions }
interface Cell { kind: 'log' | 'plain'; writers: number; batch: number; clean: Rep[]; discarded: Rep[] }

const log = (m: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${m}\n`);


let device = 0;
/** one transaction: `batch` alarms of different devices, each opening its incident, as a node's writer commits a turn */
function logTx(store: IncidentStore<'async'>, batch: number, at: number): Promise<unknown> {
  return store.transaction((t) => runAsync((function* () {
    for (let i = 0; i < batch; i++) {
      // numbered before the first await: writers interleave, and a run again (the store may retry) takes new ones
      const n = ++device;
      const deviceId = `dev-${n}`;
      const open = yield* io(t.openOf(deviceId, 'sos', false, null, null));
      if (open) continue;
      const incidentId = `inc-${n}`;
      const body = {
        type: 'opened',
        data: { deviceId, residentId: null, unitId: 'g1', tierUnitId: 'g1', type: 'sos', priority: 'P1', test: false, position: null,
          deadlineAt: at + 60_000, cancelWindowMs: null, rule: 'sos', stamps: { received: at } },
      } as IncidentEventBody;
      const event = yield* io(t.append({ incidentId, body, at, actor: null, unitId: 'g1' }));
      yield* io(t.saveProjection(applyEvent(null, event), true));
    }
  })()));
}

/**
 * The baseline: the same statements per event as the log's transaction — the device's open incident read for update,
 * the event inserted, the projection inserted — into copies of the tables, with the event's seq from a plain sequence
 * and no head row. What the log pays beyond it is the price of one gap-free, commit-ordered seq.
 */
async function plainTx(pool: pg.Pool, batch: number, at: number): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    for (let i = 0; i < batch; i++) {
      const n = ++device;
      const open = await client.query({ name: 'b_open', text: `SELECT * FROM bench_incidents WHERE device_id = $1 AND type = 'sos' AND test = false AND status NOT IN ('resolved', 'cancelled') ORDER BY opened_at DESC LIMIT 1 FOR UPDATE`, values: [`dev-${n}`] });
      if (open.rowCount) continue;
      const data = { deviceId: `dev-${n}`, residentId: null, unitId: 'g1', tierUnitId: 'g1', type: 'sos', priority: 'P1', test: false, position: null, deadlineAt: at + 60_000, cancelWindowMs: null, rule: 'sos', stamps: { received: at } };
      const ev = await client.query<{ seq: string }>({ name: 'b_event', text: `INSERT INTO bench_events (seq, incident_id, type, at, actor, unit_id, data) VALUES (nextval('bench_seq'), $1, 'opened', $2, NULL, 'g1', $3) RETURNING seq`, values: [`inc-${n}`, at, data] });
      await client.query({ name: 'b_incident', text: `INSERT INTO bench_incidents (id, device_id, resident_id, unit_id, tier_unit_id, escalation_level, type, priority, status, test, count, opened_at, last_at, deadline_at, position, stamps, assignee, outcome, last_seq)
        VALUES ($1, $2, NULL, 'g1', 'g1', 0, 'sos', 'P1', 'open', false, 1, $3, $3, $4, NULL, $5, NULL, NULL, $6)`, values: [`inc-${n}`, `dev-${n}`, at, at + 60_000, { received: at }, ev.rows[0]!.seq] });
    }
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}

async function main(): Promise<void> {
  const missing = missingPostgresPackages();
  if (missing.length) throw new Error(`PostgreSQL is needed: apt-get install -y ${missing.join(' ')}`);
  const plan = cpuPlan(args.includes('--no-pin'));
  setCpuPlan(plan);
  pinProcess(process.pid, plan.load);
  const dir = mkdtempSync(join(tmpdir(), 'eldergate-bench-pg-'));
  let port = 26_432;
  while (!(await portFree(port))) port++;
  const server = await startPostgres({ dir, port });
  const started = Date.now();
  const machine = machineInfo(root);
  const cells: Cell[] = [];
  try {
    for (const pid of serverPids(server.pid)) pinProcess(pid, plan.sut);
    const admin = new pg.Pool({ connectionString: server.url, max: 2 });
    await migratePg(admin);
    await admin.query(`CREATE TABLE IF NOT EXISTS bench_events (LIKE incident_events INCLUDING ALL);
      CREATE TABLE IF NOT EXISTS bench_incidents (LIKE incidents INCLUDING ALL); CREATE SEQUENCE IF NOT EXISTS bench_seq`);
    const version = (await admin.query<{ v: string }>('SELECT version() AS v')).rows[0]!.v;
    for (const kind of ['log', 'plain'] as const) {
      for (const writers of WRITERS) {
        for (const batch of BATCHES) {
          const cell: Cell = { kind, writers, batch, clean: [], discarded: [] };
          cells.push(cell);
          // one pool per simulated node, one connection each: a node's writer commits one transaction at a time
          const pools = Array.from({ length: writers }, () => new pg.Pool({ connectionString: server.url, max: 1 }));
          for (const pool of pools) pool.on('error', (err) => log(`a pooled connection was lost: ${err.message}`));
          const stores = pools.map((pool) => createPgIncidentStore({ pool, knownUnitIds: () => ['g1'] }));
          await Promise.all(pools.map((p) => p.query('SELECT 1')));
          const sut = serverPids(server.pid);
          for (let attempt = 0; cell.clean.length < REPS && attempt < REPS + MAX_EXTRA; attempt++) {
            let measuring = false;
            let stop = false;
            let commits = 0;
            const latencies: number[] = [];
            const loops = Array.from({ length: writers }, (_, w) => (async () => {
              while (!stop) {
                const t0 = performance.now();
                if (kind === 'log') await logTx(stores[w]!, batch, Date.now());
                else await plainTx(pools[w]!, batch, Date.now());
                if (measuring) {
                  commits++;
                  latencies.push(performance.now() - t0);
                }
              }
            })());
            await new Promise((r) => setTimeout(r, 500)); // warm-up, not counted
            measuring = true;
            const meter = new LoadMeter(sut, null, plan, cpuSeconds);
            const t0 = performance.now();
            await new Promise((r) => setTimeout(r, SECONDS * 1000));
            measuring = false;
            const s = (performance.now() - t0) / 1000;
            const load = meter.read(RULE);
            stop = true;
            await Promise.all(loops);
            const l = summarize(latencies);
            const rep: Rep = { eventsPerS: (commits * batch) / s, commitsPerS: commits / s, p50: l.p50, p99: l.p99, load };
            (load.noisy ? cell.discarded : cell.clean).push(rep);
            log(`${kind} writers=${writers} batch=${batch}: ${fmt(rep.eventsPerS)} events/s, ${fmt(rep.commitsPerS)} commits/s, p99 ${fmt(l.p99, 2)} ms${load.noisy ? ` — noisy (${load.why})` : ''}`);
          }
          await Promise.all(pools.map((p) => p.end()));
        }
      }
    }
    // the log's invariant still holds after all of it: seqs 1..head, no hole
    const check = (await admin.query<{ n: string; head: string; max: string }>(
      'SELECT count(*) AS n, (SELECT seq FROM incident_log_head) AS head, coalesce(max(seq), 0) AS max FROM incident_events')).rows[0]!;
    await admin.end();
    const report = render({ version, machine, plan, cells, check, tookS: (Date.now() - started) / 1000 });
    mkdirSync(join(root, 'bench', 'results'), { recursive: true });
    writeFileSync(join(root, 'bench', 'results', 'pg-log.json'), JSON.stringify({ version, machine, plan, cells, check }, null, 2));
    writeFileSync(join(root, 'docs', 'benchmarks-pg-log.md'), report);
    log('wrote docs/benchmarks-pg-log.md and bench/results/pg-log.json');
  } finally {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

function render(r: { version: string; machine: ReturnType<typeof machineInfo>; plan: ReturnType<typeof cpuPlan>; cells: Cell[]; check: { n: string; head: string; max: string }; tookS: number }): string {
  const med = (c: Cell, f: (x: Rep) => number) => spread(c.clean.map(f));
  const plainOf = (c: Cell) => r.cells.find((x) => x.kind === 'plain' && x.writers === c.writers && x.batch === c.batch);
  const rows = r.cells.filter((c) => c.kind === 'log').map((c) => {
    const p = plainOf(c);
    const ratio = p && c.clean.length && p.clean.length ? `${Math.round((100 * spread(c.clean.map((x) => x.eventsPerS)).median) / spread(p.clean.map((x) => x.eventsPerS)).median)} %` : 'n/a (no clean repetition of one of them)';
    return `| ${c.writers} | ${c.batch} | ${c.clean.length} (+${c.discarded.length} discarded) | ${fmtSpread(med(c, (x) => x.eventsPerS), 0)} | ${fmtSpread(med(c, (x) => x.commitsPerS), 0)} | ${fmtSpread(med(c, (x) => x.p50), 2)} | ${fmtSpread(med(c, (x) => x.p99), 2)} | ${p ? fmtSpread(med(p, (x) => x.eventsPerS), 0) : 'n/a'} | ${ratio} |`;
  });
  const cond = r.cells.flatMap((c) => [...c.clean.map((x) => [c, x, 'clean'] as const), ...c.discarded.map((x) => [c, x, 'discarded'] as const)]).map(([c, x, v]) =>
    `| ${c.kind} | ${c.writers} | ${c.batch} | ${v}${x.load.why ? `: ${x.load.why}` : ''} | ${x.load.sutWaitMsPerS.toFixed(0)} | ${x.load.sutCoreOtherPct?.toFixed(1) ?? 'n/a'} | ${x.load.stealPct.toFixed(1)} | ${x.load.pinnedAs ?? 'n/a'} |`);
  return `# Benchmark — the shared incident log on PostgreSQL

> Generated by \`npm run bench:pg-log\` (bench/pg-log.ts) — do not edit by hand; run it again.

|  |  |
|---|---|
| date | ${r.machine.date} (took ${Math.round(r.tookS)} s) |
| machine | ${r.machine.cpu}, ${r.machine.cores} cores, ${r.machine.ramGiB} GiB RAM, ${r.machine.os}; node ${r.machine.node}; commit ${r.machine.commit}${r.machine.dirty ? " (with uncommitted changes)" : ""} |
| PostgreSQL | ${r.version.split(' on ')[0]} — Debian's, started by the bench on a private port and directory; fsync on, synchronous_commit on, no standby |
| where things ran | ${r.plan.sut ? `PostgreSQL (every process) on core ${r.plan.sut}; the simulated nodes (this process) on core ${r.plan.load}` : `not pinned: ${r.plan.note}`} |
| repetitions | ${REPS} clean wanted per cell, ${SECONDS} s each after 0.5 s of warm-up, up to ${MAX_EXTRA} more to replace noisy ones |
| the log afterwards | ${r.check.n} events, head ${r.check.head}, highest seq ${r.check.max}: ${r.check.n === r.check.head && r.check.head === r.check.max ? 'gap-free' : '**NOT gap-free**'} |

Each "writer" is one simulated eldergate node with one connection, committing one transaction at a time, as a node's
writer does. A log transaction appends \`batch\` events, each the opening of an incident: read the device's open
incident (\`SELECT … FOR UPDATE\`), take the next seq from the head row, insert the event, insert the projection, and
write the new head and notify \`incident_log\` once at commit (response/store/pg.ts); the head row is locked first, so
write transactions run one at a time over the whole log. The baseline runs the same statements per event into copies
of the tables, with the seq from a plain PostgreSQL sequence and no head row (which is neither gap-free nor in commit
order: not a design we could use), on the same server in the same run: the ratio is what one global, gap-free,
commit-ordered seq costs. Latency is the whole transaction as the writer waits for it, BEGIN to COMMIT
returned (fsync included).

| writers | events per transaction | clean repetitions | events/s | commits/s | transaction p50 ms | p99 ms | baseline events/s (sequence, no head row) | log of baseline |
|---|---|---|---|---|---|---|---|---|
${rows.join('\n')}

**Noise.** ${describeRule(NOISE_RULE)} Here "the system" is PostgreSQL's processes, and its run-queue wait is not a reason to discard: with one backend per writer on one core, that wait is its backends queueing behind each other, its own cost (shown per repetition below).

**What this machine allows.** Two shared vCPUs: PostgreSQL has one core for all its backends, so 32 writers are 32
backends on one core and the figures are those of one core, not of a database server; the disk is a virtual one whose
fsync costs what it costs here. Compare the log with the baseline from the same run, not the absolute numbers with
another machine.

## Load conditions of each repetition

| kind | writers | batch | verdict | system's run-queue wait ms/s | other work on its core % | steal % | pinned as |
|---|---|---|---|---|---|---|---|
${cond.join('\n')}
`;
}

main().catch((err) => {
  process.stderr.write(`bench:pg-log failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exitCode = 1;
});
