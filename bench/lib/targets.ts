// The three systems side by side, started the same way for every figure: eldergate as an operator runs it
// (`npm start`: compiled, `node dist/main.js`), raw aedes with no hooks, and Mosquitto with a Node subscriber doing eldergate's job.
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Child, ROOT, nodeArgsFromEnv } from './ipc.js';
import { fakeCreds, parseImportCsv, type Cred } from './creds.js';
import { CpuMeter, freePort, sleep, waitFor } from './sys.js';
import type { Observer } from '../load/probe.js';
import { coresFor, currentCpuPlan, pinned, pinThread } from './sched.js';
import { COMPILED_MAIN, ensureBuilt } from './compiled.js';
import { NODE_FLAGS } from '../../core/node-flags.js';
import { pinEngines, startClusterEngines, type StartedEngines } from './cluster.js';

export type SystemName = 'eldergate' | 'raw-aedes' | 'mosquitto' | 'eldergate-cluster';

/** every system, in the order the report lists them */
export const SYSTEMS: SystemName[] = ['eldergate', 'eldergate-cluster', 'raw-aedes', 'mosquitto'];

export const SYSTEM_LABEL: Record<SystemName, string> = {
  eldergate: 'eldergate',
  'eldergate-cluster': 'eldergate-cluster (3 RabbitMQ + HAProxy + 1 eldergate)',
  'raw-aedes': 'raw aedes (no hooks)',
  mosquitto: 'Mosquitto + Node subscriber',
};

export interface Target {
  name: SystemName;
  mqtt: { host: string; port: number };
  /** processes whose CPU is the system's (Mosquitto: the broker and its subscriber; the cluster: all of its processes) */
  pids: number[];
  /**
   * the system's processes by part, where it has several worth telling apart (the cluster: eldergate, rabbitmq,
   * haproxy), or its threads ("<pid>/task/<tid>"; one-node eldergate: its main and writer threads)
   */
  parts?: Record<string, (number | string)[]>;
  /**
   * wait until what the system took in is processed (the cluster: RabbitMQ's queues drained by eldergate), so that
   * one repetition's backlog does not load the next; bounded, returns how long it took and what was left
   */
  settle?(timeoutMs: number): Promise<{ ms: number; left: number | null; purged: number }>;
  /**
   * the system runs many busy threads of its own on its one core (the cluster: 3 Erlang VMs, HAProxy, eldergate), so
   * its run-queue wait is mostly its own threads queueing behind each other: only other work's share of the core
   * (and the probe's wait, steal) can tell noise apart
   */
  ownWait?: boolean;
  /** how the system was set up beyond its defaults, for the report */
  notes?: string[];
  /** the Node process that answers `probe.stats` (the gateway; Mosquitto's subscriber) */
  node: Child;
  observer(): Observer;
  /** the last incident seq a console saw: the next console resumes there instead of replaying everything */
  noteSeq(seq: number, incidents: [string, string][]): void;
  provision(n: number, label: string): Promise<Cred[]>;
  /** messages taken in so far (eldergate: observations stored + telemetry shed; raw aedes: publishes; Mosquitto: rows stored) */
  counters(): Promise<{ ingested: number; shed: number; processed?: number }>;
  /**
   * bearer tokens for `n` more consoles, each its own operator where the system has users (eldergate: created
   * through POST /api/users, so every console's ack is its own user's delivery); absent where there is no console
   */
  consoleTokens?(n: number): Promise<string[]>;
  /** eldergate only: its HTTP API and an admin token (figure 6 imports through it) */
  api?: { http: string; token: string };
  close(): Promise<void>;
}

export interface StartOptions {
  /** extra node flags for the system's process (`--cpu-prof`, heap size) */
  nodeArgs?: string[];
  env?: Record<string, string>;
}

const ADMIN_PASSWORD = 'bench-' + randomBytes(12).toString('hex');

export async function startTarget(name: SystemName, o: StartOptions = {}): Promise<Target> {
  if (name === 'eldergate') return startEldergateChild(o);
  if (name === 'eldergate-cluster') return startEldergateCluster(o);
  if (name === 'raw-aedes') return startRawAedes(o);
  return startMosquitto(o);
}

/**
 * eldergate in cluster mode: RabbitMQ ×3 first, then the eldergate node (it declares the topology), then HAProxy's
 * MQTT frontend, then every engine process moved onto the system's core (bench/lib/cluster.ts).
 */
async function startEldergateCluster(o: StartOptions): Promise<Target> {
  const engines = await startClusterEngines();
  let t: Target;
  try {
    t = await startEldergateChild({ ...o, env: { ...engines.eldergateEnv, ...o.env } }, engines);
  } catch (err) {
    await engines.stop();
    throw err;
  }
  return t;
}

/** eldergate's main and writer threads by Linux thread id, as its /metrics names them (eldergate_thread_info) */
async function threadIds(http: string): Promise<{ main?: number; writer?: number }> {
  const text = await (await fetch(`${http}/metrics`)).text();
  const tid = (thread: string) => {
    const m = new RegExp(`^eldergate_thread_info\\{thread="${thread}",tid="(\\d+)"\\} 1$`, 'm').exec(text);
    return m ? Number(m[1]) : undefined;
  };
  const [main, writer] = [tid('main'), tid('writer')];
  return { ...(main ? { main } : {}), ...(writer ? { writer } : {}) };
}

/** --writer-core: eldergate's writer thread, named on /metrics (eldergate_thread_info), moved onto `cores` */
async function moveWriterThread(http: string, cores: string): Promise<void> {
  const { writer } = await threadIds(http);
  if (!writer) throw new Error('--writer-core: eldergate\'s /metrics names no writer thread (eldergate_thread_info{thread="writer"})');
  pinThread(writer, cores);
}

async function startEldergateChild(o: StartOptions, engines?: StartedEngines): Promise<Target> {
  let schedulers: string[] = [];
  const dataDir = mkdtempSync(join(tmpdir(), 'eldergate-bench-'));
  const [mqttPort, httpPort] = [await freePort(), await freePort()];
  // as an operator runs it: `npm start` runs the compiled dist/main.js (built here first when stale)
  ensureBuilt();
  const node = Child.spawn(COMPILED_MAIN, {
    name: 'eldergate',
    serves: false,
    role: 'sut',
    compiled: true,
    // BENCH_ELDERGATE_NODE_ARGS="--flag …": node flags for eldergate's process only, to try V8 settings against a run without
    // as npm start runs it: the V8 flags of core/node-flags.ts first
    nodeArgs: [...NODE_FLAGS, ...(o.nodeArgs ?? []), ...nodeArgsFromEnv('BENCH_ELDERGATE_NODE_ARGS')],
    env: {
      ELDERGATE_MQTT_PORT: String(mqttPort),
      ELDERGATE_HTTP_PORT: String(httpPort),
      ELDERGATE_MQTT_HOST: '127.0.0.1',
      ELDERGATE_HTTP_HOST: '127.0.0.1',
      ELDERGATE_DATA_DIR: dataDir,
      ELDERGATE_ADMIN_PASSWORD: ADMIN_PASSWORD,
      ELDERGATE_LOG_LEVEL: 'warn',
      // the generators play thousands of terminals with a few connections, each far above a terminal's publish rate:
      // the figures measure the pipeline, not the per-device pacing that holds back a flooding device (docs/security.md)
      ELDERGATE_MQTT_PUBLISH_RATE_PER_S: '0',
      ...o.env,
    },
  });
  const http = `http://127.0.0.1:${httpPort}`;
  try {
    await waitFor('eldergate /readyz', async () => {
      if (!node.alive) throw new Error(`eldergate exited before it was ready:\n${node.tail()}`);
      try {
        return (await fetch(`${http}/readyz`)).status === 200;
      } catch {
        return false;
      }
    }, 60_000, 100);
    if (engines) {
      await waitFor('eldergate to declare its RabbitMQ exchange', async () => {
        if (!node.alive) throw new Error(`eldergate exited before it declared its exchange:\n${node.tail()}`);
        return engines.exchangeDeclared();
      }, 120_000, 250);
      await engines.openMqtt();
      pinEngines(engines);
      schedulers = await engines.oneSchedulerEach();
    }
  } catch (err) {
    await node.stop(2000, 'SIGKILL');
    throw err;
  }
  const writerCores = currentCpuPlan().writer;
  if (writerCores && !engines) {
    try {
      await moveWriterThread(http, writerCores);
    } catch (err) {
      await node.stop(2000, 'SIGKILL');
      throw err;
    }
  }
  const login = await fetch(`${http}/api/auth/login`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password: ADMIN_PASSWORD }),
  });
  if (login.status !== 200) throw new Error(`bench could not log in to eldergate: ${login.status} ${await login.text()}`);
  const { token } = (await login.json()) as { token: string };
  let lastSeq = 0;
  let incidents: [string, string][] = [];
  let serials = 0;
  let consoles = 0;
  const run = randomBytes(3).toString('hex');
  async function counters() {
    const text = await (await fetch(`${http}/metrics`)).text();
    let ingested = 0;
    let shed = 0;
    // every observation the writer went through: stored as a row, folded into the device's state, or a duplicate
    let processed = 0;
    for (const line of text.split('\n')) {
      if (line.startsWith('eldergate_observations_total{')) {
        if (line.includes('result="stored"')) ingested += Number(line.split(' ').pop());
        if (/result="(stored|state|duplicate)"/.test(line)) processed += Number(line.split(' ').pop());
      } else if (line.startsWith('eldergate_telemetry_shed_total')) shed += Number(line.split(' ').pop());
    }
    return { ingested, shed, processed };
  }
  // one node: its main thread (sockets, decoding, the hand-over) and its writer thread (the domain and its commits)
  // apart, so figure 2 can say what each costs per message; the rest (the collector's helpers, the checkpointer, libuv)
  // is the system's CPU less both
  const tids = engines ? {} : await threadIds(http);
  const threads = tids.main && tids.writer ? { main: [`${node.pid}/task/${tids.main}`], writer: [`${node.pid}/task/${tids.writer}`] } : undefined;
  // the cluster's read again at each use (each repetition's meters): PostgreSQL forks a backend per connection as pools open them
  const processes = () => (engines ? { eldergate: [node.pid], ...engines.parts() } : undefined);
  return {
    name: engines ? 'eldergate-cluster' : 'eldergate',
    mqtt: { host: '127.0.0.1', port: engines ? engines.mqttPort : mqttPort },
    api: { http, token },
    get pids() {
      const p = processes();
      return p ? Object.values(p).flat() : [node.pid];
    },
    get parts() {
      return processes() ?? threads;
    },
    ...(engines ? {
      ownWait: true,
      notes: [`each Erlang VM set to one scheduler online and one dirty CPU scheduler after start, as on a one-core machine (what each had before, {schedulers, dirty CPU schedulers}: ${schedulers.join('; ')} — a VM booted under a one-core affinity already starts so)`],
      async settle(timeoutMs: number) {
        const t0 = Date.now();
        let left: number | null = null;
        // RabbitMQ's queue figures lag by its statistics interval (5 s): settled is queues empty and eldergate
        // storing nothing more for a whole second, twice in a row
        let still = 0;
        let stored = (await counters()).processed;
        while (Date.now() - t0 < timeoutMs) {
          await sleep(1000);
          left = await engines.queued();
          const now = (await counters()).processed;
          still = left === 0 && now === stored ? still + 1 : 0;
          stored = now;
          if (still >= 2) break;
        }
        // a backlog eldergate would take minutes to drain (a flood far above its rate) is dropped, and said
        const purged = still >= 2 ? 0 : await engines.purge();
        // and RabbitMQ is calm again (a purge of quorum queues, its Raft logs, keep it busy after the queues look
        // empty): under a quarter of a core over a second, for at most a minute more
        const calmUntil = Date.now() + 60_000;
        while (Date.now() < calmUntil) {
          const meter = new CpuMeter({ all: Object.values(processes()!).flat() });
          await sleep(1000);
          if (meter.read().all! < 25) break;
        }
        return { ms: Date.now() - t0, left, purged };
      },
    } : {}),
    node,
    observer: () => ({ kind: 'ws', url: `ws://127.0.0.1:${httpPort}/ws`, token, since: lastSeq, incidents }),
    async provision(n, label) {
      const out: Cred[] = [];
      // the bulk import is the factory path: thousands per request
      for (let i = 0; i < n; i += 5000) {
        const rows = ['serial,kind'];
        for (let k = i; k < Math.min(n, i + 5000); k++) rows.push(`BENCH-${run}-${label}-${serials++},call-phone`);
        const res = await fetch(`${http}/api/devices/import`, {
          method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'text/csv' }, body: rows.join('\n') + '\n',
        });
        const text = await res.text();
        if (res.status !== 201) throw new Error(`POST /api/devices/import answered ${res.status}: ${text.slice(0, 300)}`);
        out.push(...parseImportCsv(text));
      }
      return out;
    },
    async consoleTokens(n) {
      const tokens: string[] = [];
      for (let i = 0; i < n; i++) {
        const username = `bench-op-${run}-${consoles++}`;
        const password = randomBytes(18).toString('base64url');
        const created = await fetch(`${http}/api/users`, {
          method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: JSON.stringify({ username, password, role: 'operator' }),
        });
        if (created.status !== 201) throw new Error(`POST /api/users answered ${created.status}: ${(await created.text()).slice(0, 300)}`);
        const res = await fetch(`${http}/api/auth/login`, {
          method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username, password }),
        });
        if (res.status !== 200) throw new Error(`operator ${username} could not log in: ${res.status} ${(await res.text()).slice(0, 300)}`);
        tokens.push(((await res.json()) as { token: string }).token);
      }
      return tokens;
    },
    counters,
    async close() {
      // BENCH_DUMP_METRICS=FILE: eldergate's /metrics as it stands at the end of each start, appended to FILE (its
      // stage histograms say where an alarm's time went: rules, commit, push)
      const dump = process.env.BENCH_DUMP_METRICS;
      if (dump) {
        // a diagnostic: whatever goes wrong with it, the gateway is still stopped below
        try {
          const r = await fetch(`${http}/metrics`, { signal: AbortSignal.timeout(10_000) });
          const text = r.ok ? await r.text() : `# /metrics answered ${r.status}\n`;
          appendFileSync(dump, `# ${new Date().toISOString()} eldergate /metrics at close\n${text}\n`);
        } catch (err) {
          console.error(`BENCH_DUMP_METRICS: ${(err as Error).message}`);
        }
      }
      await node.stop(15_000);
      await engines?.stop();
      rmSync(dataDir, { recursive: true, force: true });
      rmSync(`${dataDir}-keys`, { recursive: true, force: true }); // the token-signing key beside it
    },
    noteSeq(seq, known) {
      lastSeq = Math.max(lastSeq, seq);
      incidents = known;
    },
  };
}

async function startRawAedes(o: StartOptions): Promise<Target> {
  const node = Child.spawn('bench/baselines/raw-aedes.ts', { name: 'raw-aedes', role: 'sut', nodeArgs: o.nodeArgs ?? [] });
  const { port } = await node.call<{ port: number }>('start', { port: 0 }, 30_000);
  return {
    name: 'raw-aedes',
    mqtt: { host: '127.0.0.1', port },
    pids: [node.pid],
    node,
    observer: () => ({ kind: 'mqtt', host: '127.0.0.1', port }),
    noteSeq: () => undefined,
    provision: async (n, label) => fakeCreds(n, label),
    async counters() {
      const c = await node.call<{ ingested: number }>('count');
      return { ingested: c.ingested, shed: 0 };
    },
    async close() {
      await node.call('close', {}, 10_000).catch(() => undefined);
      await node.stop(5000);
    },
  };
}

export const MOSQUITTO = '/usr/sbin/mosquitto';

async function startMosquitto(o: StartOptions): Promise<Target> {
  if (!existsSync(MOSQUITTO)) {
    throw new Error(`Mosquitto is not installed (${MOSQUITTO}): apt-get install -y mosquitto — the side-by-side figures need it`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'mosquitto-bench-'));
  const port = await freePort();
  const conf = join(dir, 'mosquitto.conf');
  writeFileSync(conf, [
    `listener ${port} 127.0.0.1`,
    'allow_anonymous true',
    // Nagle's algorithm alone adds ~40 ms to p99 (docs/design.md §7)
    'set_tcp_nodelay true',
    'persistence false',
    'max_connections -1',
    // let the subscriber's group commit see more than 20 alarms at once, and queue for it rather than drop
    'max_inflight_messages 0',
    'max_queued_messages 100000',
    'log_dest stderr',
    'log_type error',
    'log_type warning',
    '',
  ].join('\n'));
  const [cmd, args] = pinned(coresFor('sut'), MOSQUITTO, ['-c', conf]);
  const broker: ChildProcess = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let brokerErr = '';
  broker.stderr!.on('data', (d: Buffer) => (brokerErr = (brokerErr + d.toString()).slice(-4000)));
  const stopBroker = () => new Promise<void>((r) => {
    if (broker.exitCode !== null || broker.signalCode !== null) return r();
    broker.once('exit', () => r());
    broker.kill('SIGTERM');
    setTimeout(() => broker.kill('SIGKILL'), 5000).unref();
  });
  await waitFor('mosquitto to listen', () => new Promise<boolean>((resolve) => {
    if (broker.exitCode !== null) return resolve(false);
    const s = connect({ host: '127.0.0.1', port }, () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  }), 15_000, 50).catch(async (err) => {
    await stopBroker();
    throw new Error(`${(err as Error).message}: ${brokerErr}`);
  });
  const node = Child.spawn('bench/baselines/mosquitto-pipeline.ts', { name: 'mosquitto-pipeline', role: 'sut', nodeArgs: o.nodeArgs ?? [] });
  let wsPort: number;
  try {
    ({ wsPort } = await node.call<{ wsPort: number }>('start', { mqttPort: port, dbFile: join(dir, 'pipeline.db') }, 30_000));
  } catch (err) {
    await node.stop(2000);
    await stopBroker();
    throw err;
  }
  await sleep(100); // SUBACK
  return {
    name: 'mosquitto',
    mqtt: { host: '127.0.0.1', port },
    pids: [broker.pid!, node.pid],
    node,
    observer: () => ({ kind: 'ws', url: `ws://127.0.0.1:${wsPort}/ws`, token: 'bench', since: 0 }),
    noteSeq: () => undefined,
    provision: async (n, label) => fakeCreds(n, label),
    // the pipeline's WebSocket knows one shared token and streams everything to every console
    consoleTokens: async (n) => Array.from({ length: n }, () => 'bench'),
    async counters() {
      const c = await node.call<{ ingested: number }>('count');
      return { ingested: c.ingested, shed: 0 };
    },
    async close() {
      await node.stop(5000);
      await stopBroker();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export { ROOT };
