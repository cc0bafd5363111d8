// `npm run bench:pg-ingest`: what a device message costs the writer on PostgreSQL (cluster mode's store) against the
// one-node SQLite file, in one run: the basis of the scaling model's writer figures in docs/scale-out.md. Writes
// docs/benchmarks-pg-ingest.md and bench/results/pg-ingest.json.
//
// No broker: the messages enter where RabbitMQ's consumer hands them on (gateway/device-messages.ts, the handler
// rabbitmq.ts calls), to the real writer thread (gateway/writer), committing to a real PostgreSQL 15 (Debian's,
// ops/cluster/postgres.ts, fsync and synchronous_commit on) or to a SQLite file with the committed migrations. At most
// `--window` messages are awaited at once, as the consumer's prefetch keeps them. Two workloads:
// - telemetry: QoS 1 heartbeats of `--devices` devices in turn (stored, no incident);
// - alarms: SOS events, each from a device with no open incident (stored, an incident opened: the log, its head lock).
// Per message: this process's CPU (the handler, the writer thread; both engines' client side) and PostgreSQL's (all its
// processes), and messages/s. Everything under test — this process and PostgreSQL — is pinned to one core; the noise
// rule (bench/lib/sched.ts) judges each repetition, and noisy ones are run again, reported, never silently dropped.
//
// Options: --reps=N (clean repetitions per cell, default 3), --messages=N (per repetition, default 3000),
// --window=N (default 256), --devices=N (default 2000), --only=telemetry|alarms, --no-pin.
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { Bus } from '../core/bus.js';
import { loadConfig } from '../core/config.js';
import { openStore, type Store } from '../core/db.js';
import { createLogger } from '../core/logger.js';
import { createMetrics } from '../core/metrics.js';
import { serviceSecret } from '../core/secrets.js';
import { DeviceRegistry } from '../devices/registry.js';
import { SecretHasher } from '../devices/credentials.js';
import { createDeviceMessageHandler, type DeviceMessage } from '../gateway/device-messages.js';
import { TELEMETRY_FLUSH_MS } from '../gateway/ingest.js';
import { WriterThread } from '../gateway/writer/client.js';
import { startPostgres, missingPostgresPackages, serverPids } from '../ops/cluster/postgres.js';
import { portFree } from '../ops/cluster/processes.js';
import { migratePg } from '../response/store/pg.js';
import { LoadMeter, cpuPlan, describeRule, pinProcess, setCpuPlan, NOISE_RULE, type LoadConditions } from './lib/sched.js';
import { cpuSeconds, machineInfo, numberOption } from './lib/sys.js';
import { fmt, fmtSpread, spread } from './lib/stats.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = (name: string, def: number) => numberOption(args, name, def);
const REPS = opt('reps', 3);
const MESSAGES = opt('messages', 3000);
const WINDOW = opt('window', 256);
const DEVICES = opt('devices', 2000);
const MAX_EXTRA = 3;
/** --only=telemetry or --only=alarms: one workload (profiling one path) */
const ONLY = args.find((a) => a.startsWith('--only='))?.slice('--only='.length);
const WORKLOADS = (['telemetry', 'alarms'] as const).filter((w) => !ONLY || w === ONLY);
/** as bench/pg-log.ts: the system is several processes on one core, whose waits for each other are its own cost */
const RULE = { ...NOISE_RULE, maxSutWaitMsPerS: Number.POSITIVE_INFINITY };
const quiet = createLogger('silent');
const log = (m: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${m}\n`);

type Engine = 'sqlite' | 'postgres';
type Workload = 'telemetry' | 'alarms';
interface Rep { perS: number; usPerMsg: number; pgUsPerMsg: number | null; load: LoadConditions }
interface Cell { engine: Engine; workload: Workload; clean: Rep[]; discarded: Rep[] }

interface System {
  engine: Engine;
  handle: (m: DeviceMessage) => Promise<unknown> | undefined;
  deviceIds: string[];
  writer: WriterThread;
  store: Store;
}

async function system(engine: Engine, dir: string, postgres: Record<string, unknown> | null): Promise<System> {
  const dataDir = join(dir, engine);
  mkdirSync(dataDir, { recursive: true });
  const config = loadConfig({}, {
    dataDir, logLevel: 'silent',
    // (the writer thread never reaches RabbitMQ: the settings cluster mode asks for, pointing nowhere)
    ...(postgres ? { postgres, rabbitmq: { urls: ['amqp://127.0.0.1:1'], passwordFile: postgres.passwordFile, authPort: 1 } } : {}),
  });
  const store = openStore(join(dataDir, 'eldergate.db'));
  const registry = new DeviceRegistry(store.db, new SecretHasher(serviceSecret(store.db, 'device-secret-key')), new Bus());
  const deviceIds: string[] = [];
  for (let i = 0; i < DEVICES; i++) deviceIds.push(registry.provision({ kind: 'call-phone', serial: `PGI-${engine}-${i}` }).device.id);
  const metrics = createMetrics({ defaults: false });
  const writer = await WriterThread.start({
    config, log: quiet, metrics, registry,
    storage: { failed: (w, err) => log(`storage failed (${w}): ${(err as Error).message}`), succeeded: () => {} },
    onCommitted: () => {}, onCommandAcked: () => {},
  });
  const handle = createDeviceMessageHandler({
    config, registry, states: writer.states, ingest: writer, metrics,
    unreadable: { refused: () => undefined, tracked: () => 0, close: () => {} } as never,
    onUnreadable: (m, reason) => log(`unreadable: ${m.deviceId} ${reason}`),
  });
  return { engine, handle, deviceIds, writer, store };
}

const seqs = new Map<string, number>();
let alarmDevice = 0;
/** the workload's next message (alarms: each from the next device, which has no open incident) */
function message(s: System, workload: Workload, i: number): DeviceMessage {
  const deviceId = workload === 'telemetry' ? s.deviceIds[i % s.deviceIds.length]! : s.deviceIds[alarmDevice++ % s.deviceIds.length]!;
  const key = `${s.engine}/${deviceId}`;
  const seq = (seqs.get(key) ?? 0) + 1;
  seqs.set(key, seq);
  const now = Date.now();
  if (workload === 'telemetry') {
    return { deviceId, channel: 'telemetry', topic: `devices/${deviceId}/telemetry`, qos: 1, at: now, source: 'mqtt',
      payload: Buffer.from(`{"ts":${now},"seq":${seq},"type":"heartbeat","battery":${80 + (seq % 20)},"signal":-70}`) };
  }
  return { deviceId, channel: 'events', topic: `devices/${deviceId}/events`, qos: 1, at: now, source: 'mqtt',
    payload: Buffer.from(`{"ts":${now},"seq":${seq},"type":"sos"}`) };
}

/** `n` messages with at most WINDOW awaited at once; resolves when all are stored */
async function drive(s: System, workload: Workload, n: number): Promise<void> {
  let next = 0;
  let failed: unknown;
  const lane = async () => {
    while (next < n && failed === undefined) {
      const p = s.handle(message(s, workload, next++));
      if (p) await p.catch((err: unknown) => { failed ??= err; });
    }
  };
  await Promise.all(Array.from({ length: WINDOW }, lane));
  if (failed !== undefined) throw failed;
}

/** resolve every open incident, so the next alarm repetition opens new ones (outside the measurement) */
async function closeIncidents(s: System, pool: pg.Pool | null): Promise<void> {
  if (pool) await pool.query(`UPDATE incidents SET status = 'resolved' WHERE status <> 'resolved'`);
  else s.store.sqlite.prepare(`UPDATE incidents SET status = 'resolved' WHERE status <> 'resolved'`).run();
}

async function main(): Promise<void> {
  const missing = missingPostgresPackages();
  if (missing.length) throw new Error(`PostgreSQL is needed: apt-get install -y ${missing.join(' ')}`);
  const plan = cpuPlan(args.includes('--no-pin'));
  setCpuPlan(plan);
  const dir = mkdtempSync(join(tmpdir(), 'eldergate-bench-pg-ingest-'));
  chmodSync(dir, 0o711);
  let port = 26_632;
  while (!(await portFree(port))) port++;
  const server = await startPostgres({ dir: join(dir, 'pg'), port });
  const started = Date.now();
  const machine = machineInfo(root);
  const cells: Cell[] = [];
  const systems: System[] = [];
  try {
    pinProcess(process.pid, plan.sut);
    for (const pid of serverPids(server.pid)) pinProcess(pid, plan.sut);
    const admin = new pg.Pool({ connectionString: server.url, max: 2 });
    admin.on('error', () => undefined);
    await migratePg(admin);
    const version = (await admin.query<{ v: string }>('SELECT version() AS v')).rows[0]!.v;
    const postgres = { url: `postgres://127.0.0.1:${server.port}/${server.database}`, username: server.user, passwordFile: server.passwordFile };
    const sqlite = await system('sqlite', dir, null);
    const onPg = await system('postgres', dir, postgres);
    systems.push(sqlite, onPg);
    // warm-up, not counted: every device's first heartbeat (a first one is written as a row, later ones fold into the
    // device's state) and a few alarms; the writer's backends start with the pool: pinned with the rest
    for (const s of systems) {
      await drive(s, 'telemetry', DEVICES);
      await drive(s, 'alarms', 200);
    }
    for (const pid of serverPids(server.pid)) pinProcess(pid, plan.sut);
    for (const workload of WORKLOADS) {
      for (const s of systems) cells.push({ engine: s.engine, workload, clean: [], discarded: [] });
    }
    // the engines alternate within each round, so drift in the machine's conditions falls on both
    for (let round = 0; round < REPS + MAX_EXTRA; round++) {
      for (const cell of cells) {
        if (cell.clean.length >= REPS) continue;
        const s = systems.find((x) => x.engine === cell.engine)!;
        if (cell.workload === 'alarms') await closeIncidents(s, cell.engine === 'postgres' ? admin : null);
        const pgPids = serverPids(server.pid);
        const sutPids = [process.pid, ...pgPids];
        const meter = new LoadMeter(sutPids, null, plan, cpuSeconds);
        const cpu0 = process.cpuUsage();
        const pg0 = pgPids.reduce((a, p) => a + cpuSeconds(p), 0);
        const t0 = performance.now();
        await drive(s, cell.workload, MESSAGES);
        const s1 = (performance.now() - t0) / 1000;
        const cpu = process.cpuUsage(cpu0);
        const pgCpu = serverPids(server.pid).reduce((a, p) => a + cpuSeconds(p), 0) - pg0;
        const load = meter.read(RULE);
        const rep: Rep = {
          perS: MESSAGES / s1,
          usPerMsg: (cpu.user + cpu.system) / MESSAGES,
          pgUsPerMsg: cell.engine === 'postgres' ? (pgCpu * 1e6) / MESSAGES : null,
          load,
        };
        (load.noisy ? cell.discarded : cell.clean).push(rep);
        log(`${cell.engine} ${cell.workload}: ${fmt(rep.perS, 0)} msg/s, ${fmt(rep.usPerMsg, 0)} µs/msg here${rep.pgUsPerMsg !== null ? `, ${fmt(rep.pgUsPerMsg, 0)} µs/msg PostgreSQL` : ''}${load.noisy ? ` — noisy: ${load.why}` : ''}`);
      }
      if (cells.every((c) => c.clean.length >= REPS)) break;
    }
    await admin.end();
    report({ cells, version, machine, plan: plan.note ?? `system (this process and PostgreSQL) on core ${plan.sut}`, started });
  } finally {
    for (const s of systems) {
      await s.writer.close().catch(() => undefined);
      s.store.close();
    }
    await server.stop().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}

function report(r: { cells: Cell[]; version: string; machine: ReturnType<typeof machineInfo>; plan: string; started: number }): void {
  const of = (engine: Engine, workload: Workload) => r.cells.find((c) => c.engine === engine && c.workload === workload)!;
  const med = (c: Cell, f: (x: Rep) => number | null) => spread(c.clean.map(f).filter((x): x is number => x !== null));
  const rows: string[] = [];
  for (const workload of WORKLOADS) {
    const a = of('sqlite', workload);
    const b = of('postgres', workload);
    const ratio = (f: (x: Rep) => number) => med(b, f).median / med(a, f).median;
    rows.push(`| ${workload} | ${fmtSpread(med(a, (x) => x.perS), 0)} | ${fmtSpread(med(b, (x) => x.perS), 0)} | ${fmt(100 * ratio((x) => x.perS), 1)} % | `
      + `${fmtSpread(med(a, (x) => x.usPerMsg), 0)} | ${fmtSpread(med(b, (x) => x.usPerMsg), 0)} + ${fmtSpread(med(b, (x) => x.pgUsPerMsg), 0)} | `
      + `${a.clean.length}/${a.discarded.length}, ${b.clean.length}/${b.discarded.length} |`);
  }
  const discarded = r.cells.flatMap((c) => c.discarded.map((d) => `- ${c.engine} ${c.workload}: ${d.load.why}`));
  const md = `# What a device message costs the writer on PostgreSQL (\`npm run bench:pg-ingest\`)

Generated by bench/pg-ingest.ts on ${new Date(r.started).toISOString()} (${r.machine.commit ?? 'no commit'}${r.machine.dirty ? ', with uncommitted changes' : ''}).
${r.version.split(',')[0]}; ${r.machine.cores} vCPUs (${r.machine.cpu}); ${r.plan}. ${MESSAGES} messages per repetition, at most ${WINDOW} awaited at
once (the consumer's prefetch), ${DEVICES} devices. Messages enter where RabbitMQ's consumer hands them on (no broker);
each is stored by the real writer thread before it counts. Baseline: the same writer on the one-node SQLite file, in
the same run, repetitions alternating.

| workload | SQLite msg/s | PostgreSQL msg/s | PostgreSQL / SQLite | SQLite CPU µs/msg | PostgreSQL: eldergate + server CPU µs/msg | clean/discarded reps |
|---|---|---|---|---|---|---|
${rows.join('\n')}

Medians (min–max) of the clean repetitions. "eldergate" is this whole process (the handler and the writer thread); the
server's is every PostgreSQL process. Compare CPU per message; the telemetry rates compare the lanes' timing, not their
cost: with ${WINDOW} awaited at once, SQLite's QoS 1 telemetry waits for its flush timer (ingest.telemetryFlushMs, ${TELEMETRY_FLUSH_MS} ms)
while the PostgreSQL writer forms its next batch as soon as one settles. Noise rule: ${describeRule(RULE)}.
${discarded.length ? `\nDiscarded as noisy and run again:\n${discarded.join('\n')}\n` : '\nNo repetition was discarded.\n'}`;
  writeFileSync(join(root, 'docs', 'benchmarks-pg-ingest.md'), md);
  mkdirSync(join(root, 'bench', 'results'), { recursive: true });
  writeFileSync(join(root, 'bench', 'results', 'pg-ingest.json'), JSON.stringify({ ...r, messages: MESSAGES, window: WINDOW, devices: DEVICES }, null, 2));
  process.stdout.write(md);
}

main().then(() => process.exit(0), (err: unknown) => {
  console.error(err);
  process.exit(1);
});
