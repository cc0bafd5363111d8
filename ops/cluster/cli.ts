// `npm run cluster -- start|stop|status [--dir .cluster] [--base-port 27000] [--nodes 2]`: eldergate's cluster mode on
// one machine, for people and tests: a 3-node RabbitMQ cluster (MQTT plugin, quorum queues), HAProxy in front of it
// (terminals' MQTT) and of eldergate (HTTP, and RabbitMQ's questions to the auth backend), 1 to 3 eldergate nodes in
// cluster mode (2 by default), and one PostgreSQL server, the nodes' shared store (the incident log, observations,
// device states, commands, and the registry, network and accounts every node keeps a copy of). No root, no system service: every process runs as the
// caller (PostgreSQL, which refuses root, as the `postgres` system user when the caller is root), on 127.0.0.1, with
// ports from --base-port and data under --dir.
//
// Ports from --base-port B: B..B+43 RabbitMQ (epmd, rabbitmqctl's range, then 10 per node: ops/cluster/rabbitmq.ts),
// B+80 HAProxy MQTT, B+81 HAProxy HTTP, B+82 HAProxy → RabbitMQ management, B+83 PostgreSQL, B+84 HAProxy → the
// eldergate nodes' auth endpoints; eldergate node i (1..3) B+87+3i HTTP, B+88+3i its embedded MQTT (unused in cluster
// mode), B+89+3i its RabbitMQ auth endpoints (node 1: B+90, B+91, B+92, as before several nodes).
//
// PostgreSQL's data lives in <dir>/postgres and, unlike RabbitMQ's cluster, is kept from one start to the next; so do
// the nodes' data directories (<dir>/eldergate-<i>) and the token-signing key they share.
//
// start leaves everything running and writes <dir>/cluster.json (ports, pids, files; never a secret); stop reads it,
// so it works after the CLI that started the cluster is gone, and also after a crash of that CLI mid-start (it then
// also looks for this directory's processes by their command line).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { missingRabbitPackages, startRabbitCluster, AUTH_CACHE_TTL_MS, type RabbitCluster } from './rabbitmq.js';
import { missingHaproxyPackages, startHaproxy } from './haproxy.js';
import { missingPostgresPackages, startPostgres, stopPostgres, type PostgresServer } from './postgres.js';
import { NODE_FLAGS } from '../../core/node-flags.js';
import { isAlive, pidsMentioning, portFree, portOpen, processMentions, tail, terminate, waitUntil } from './processes.js';

const ROOT = resolve(fileURLToPath(import.meta.url), '..', '..', '..');
const NODES = 3;
const USAGE = 'usage: npm run cluster -- start|stop|status [--dir .cluster] [--base-port 27000] [--nodes 2 (eldergate nodes, 1 to 3)]';
const MAX_ELDERGATE_NODES = 3;
/** the highest port the cluster takes above its base (node 3's auth endpoints) */
const SPAN = 98;

/** Ports beside RabbitMQ's (which take basePort..basePort+43 for 3 nodes); the file's header lays them all out. */
export function clusterPorts(basePort: number, nodes = 1) {
  const eldergate = Array.from({ length: nodes }, (_, i) => ({ http: basePort + 90 + 3 * i, mqtt: basePort + 91 + 3 * i, auth: basePort + 92 + 3 * i }));
  return { haproxyMqtt: basePort + 80, haproxyHttp: basePort + 81, haproxyManagement: basePort + 82, postgres: basePort + 83, haproxyAuth: basePort + 84, eldergate };
}

/** PostgreSQL's directory in the cluster's: data, socket, log and password files (ops/cluster/postgres.ts). */
function postgresDir(dir: string): string {
  return join(dir, 'postgres');
}

/** <dir>/cluster.json: what `status` and `stop` need, written as each part starts. */
export interface ClusterRecord {
  dir: string;
  basePort: number;
  startedAt: string;
  stoppedAt?: string;
  /** messages left in RabbitMQ's queues when `stop` stopped it (undefined: not known — a crash, or not stopped) */
  queuedAtStop?: number;
  rabbitmq?: {
    epmd: { port: number; pid: number | undefined };
    home: string;
    nodes: { name: string; amqpPort: number; mqttPort: number; managementPort: number; pid: number | undefined; wrapperPid: number | undefined; log: string }[];
    amqpUrls: string[];
    managementUrl: string;
    serviceUser: string;
    passwordFile: string;
    vhost: string;
    exchange: string;
    authUrl: string;
    authCacheTtlMs: number;
  };
  eldergate?: { pid: number | undefined; httpPort: number; mqttPort: number; dataDir: string; log: string; adminPasswordFile: string }[];
  haproxy?: { pid: number; config: string; log: string; mqttPort: number; httpPort: number; managementPort: number; authPort?: number };
  /** no password here: the application role's is in passwordFile (0600), the superuser's in <dir>/postgres.password */
  postgres?: { pid: number; port: number; dir: string; dataDir: string; log: string; database: string; user: string; passwordFile: string };
}

function recordFile(dir: string) {
  return join(dir, 'cluster.json');
}

function readRecord(dir: string): ClusterRecord | undefined {
  const file = recordFile(dir);
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as ClusterRecord;
  } catch (err) {
    throw new Error(`${file} is not readable JSON (${(err as Error).message}): move it aside; \`stop\` then finds this directory's processes by their command line`);
  }
}

function writeRecord(r: ClusterRecord) {
  const file = recordFile(r.dir);
  writeFileSync(file + '.tmp', JSON.stringify(r, null, 2) + '\n');
  renameSync(file + '.tmp', file);
}

/** the pids of a record that still run as this cluster's processes */
function livePids(r: ClusterRecord): number[] {
  const pids: number[] = [];
  for (const n of r.rabbitmq?.nodes ?? []) for (const p of [n.pid, n.wrapperPid]) if (isAlive(p) && processMentions(p, r.dir)) pids.push(p);
  for (const e of r.eldergate ?? []) if (isAlive(e.pid) && processMentions(e.pid, e.dataDir)) pids.push(e.pid);
  if (r.haproxy && isAlive(r.haproxy.pid) && processMentions(r.haproxy.pid, r.haproxy.config)) pids.push(r.haproxy.pid);
  if (r.postgres && postgresUp(r.postgres)) pids.push(r.postgres.pid);
  return pids;
}

/** Is the recorded postmaster still the one running from its data directory (pid reuse)? */
function postgresUp(p: NonNullable<ClusterRecord['postgres']>): boolean {
  return isAlive(p.pid) && processMentions(p.pid, `-D ${p.dataDir} `);
}

export async function start(dir: string, basePort: number, out: (line: string) => void = console.log, nodes = 2): Promise<ClusterRecord> {
  const missing = [...missingRabbitPackages(), ...missingHaproxyPackages(), ...missingPostgresPackages()];
  if (missing.length) throw new Error(`npm run cluster needs ${missing.join(' and ')}: apt-get install ${missing.join(' ')}`);
  mkdirSync(dir, { recursive: true });
  const previous = readRecord(dir);
  if (previous && livePids(previous).length) throw new Error(`a cluster already runs from ${dir} (pids ${livePids(previous).join(', ')}): \`npm run cluster -- status --dir ${dir}\`, or stop it first with \`npm run cluster -- stop --dir ${dir}\``);
  const leftovers = pidsMentioning(`-home ${join(dir, 'home')}`);
  if (leftovers.length) throw new Error(`RabbitMQ nodes of ${dir} still run (pids ${leftovers.join(', ')}) without a cluster.json: \`npm run cluster -- stop --dir ${dir} --base-port <the port it was started with>\``);
  const pgLeftovers = pidsMentioning(`-D ${join(postgresDir(dir), 'data')} `);
  if (pgLeftovers.length) throw new Error(`PostgreSQL of ${dir} still runs (pid ${pgLeftovers.join(', ')}) without a cluster.json that knows it: \`npm run cluster -- stop --dir ${dir}\` stops it`);

  // RabbitMQ's cluster is always new (ops/cluster/rabbitmq.ts says why); what it held must have been taken by eldergate
  const rabbitDirs = readdirSync(dir).filter((d) => /^rabbit-\d+$/.test(d));
  if (rabbitDirs.length) {
    if (previous?.queuedAtStop !== 0) {
      const what = previous?.queuedAtStop === undefined ? 'it was not stopped with `npm run cluster -- stop` (a crash?), so its queues may still hold device messages eldergate never took' : `${previous.queuedAtStop} device message(s) were still queued when it stopped`;
      throw new Error(`${dir} holds an earlier RabbitMQ cluster and ${what}. They would be lost with a new cluster. To discard them: rm -r ${rabbitDirs.map((d) => join(dir, d)).join(' ')} — then start again`);
    }
    for (const d of rabbitDirs) rmSync(join(dir, d), { recursive: true, force: true });
  }

  const ports = clusterPorts(basePort, nodes);
  const busy: number[] = [];
  const every = [ports.haproxyMqtt, ports.haproxyHttp, ports.haproxyManagement, ports.postgres, ports.haproxyAuth, ...ports.eldergate.flatMap((e) => [e.http, e.mqtt, e.auth])];
  for (const p of every) if (!(await portFree(p))) busy.push(p);
  if (busy.length) throw new Error(`port${busy.length > 1 ? 's' : ''} ${busy.join(', ')} already in use on 127.0.0.1: choose another --base-port (the cluster takes ${basePort}..${basePort + SPAN})`);

  const record: ClusterRecord = { dir, basePort, startedAt: new Date().toISOString() };
  writeRecord(record);
  // first: it takes about a second, keeps its data from earlier starts, and a problem with it (a server of this
  // directory left running, a directory the postgres user cannot reach) shows before RabbitMQ's half a minute
  out(`starting PostgreSQL on 127.0.0.1:${ports.postgres} (data in ${postgresDir(dir)}, kept from earlier starts)…`);
  const postgres = await startPostgres({ dir: postgresDir(dir), port: ports.postgres });
  record.postgres = postgresRecord(postgres);
  writeRecord(record);
  out(`starting ${NODES} RabbitMQ nodes one after another (about 10 s each)…`);
  // RabbitMQ asks HAProxy, which asks a live eldergate node: any node answers for any device (the registry is shared)
  const authUrl = `http://127.0.0.1:${ports.haproxyAuth}/internal/rabbitmq`;
  const rabbit = await startRabbitCluster({ dir, basePort, nodes: NODES, authUrl });
  record.rabbitmq = rabbitRecord(rabbit);
  writeRecord(record);

  // the eldergate nodes before HAProxy's MQTT frontend: RabbitMQ 3.10 leaves a device that publishes before eldergate
  // declared its exchange on a connection that never acknowledges anything again (test/cluster/infra.test.ts)
  const adminPasswordFile = join(dir, 'eldergate-1-admin-password');
  if (!existsSync(adminPasswordFile)) writeFileSync(adminPasswordFile, `eg-${randomBytes(15).toString('base64url')}\n`, { mode: 0o600, flag: 'wx' });
  record.eldergate = [];
  for (const [i, p] of ports.eldergate.entries()) {
    const name = `eldergate node ${i + 1}`;
    const dataDir = join(dir, `eldergate-${i + 1}`);
    const log = join(dir, `eldergate-${i + 1}.log`);
    const env: NodeJS.ProcessEnv = {
      ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ELDERGATE_'))),
      // the data-dir setting is `dataDir` (core/config.ts)
      ELDERGATE_DATA_DIR: dataDir,
      ELDERGATE_HTTP_HOST: '127.0.0.1',
      ELDERGATE_HTTP_PORT: String(p.http),
      // the embedded broker's port: unused in cluster mode, but never one that clashes
      ELDERGATE_MQTT_HOST: '127.0.0.1',
      ELDERGATE_MQTT_PORT: String(p.mqtt),
      ELDERGATE_RABBITMQ_URLS: JSON.stringify(rabbit.amqpUrls),
      ELDERGATE_RABBITMQ_USERNAME: rabbit.serviceUser,
      ELDERGATE_RABBITMQ_PASSWORD_FILE: rabbit.passwordFile,
      ELDERGATE_RABBITMQ_EXCHANGE: rabbit.exchange,
      ELDERGATE_RABBITMQ_VHOST: rabbit.vhost,
      ELDERGATE_RABBITMQ_AUTH_HOST: '127.0.0.1',
      ELDERGATE_RABBITMQ_AUTH_PORT: String(p.auth),
      // through HAProxy, so that revoking a device still reaches a live node's management API when one node is down
      // (HAProxy starts a few seconds after eldergate: a revocation in between is retried by eldergate's second sweep)
      ELDERGATE_RABBITMQ_MANAGEMENT_URL: `http://127.0.0.1:${ports.haproxyManagement}`,
      // what provisioning answers tell devices: HAProxy's MQTT port, not a node's
      ELDERGATE_RABBITMQ_MQTT_PORT: String(ports.haproxyMqtt),
      // the shared store (no password in the URL)
      ELDERGATE_POSTGRES_URL: `postgres://127.0.0.1:${postgres.port}/${postgres.database}`,
      ELDERGATE_POSTGRES_USERNAME: postgres.user,
      ELDERGATE_POSTGRES_PASSWORD_FILE: postgres.passwordFile,
      // one token-signing key for every node (a console's token is good on each): node 1's, where it always was
      ELDERGATE_AUTH_KEY_FILE: join(dir, 'eldergate-1-keys', 'token-signing-key.json'),
      // the cluster's first start only (the shared accounts keep their admin); the file is 0600, the variable only this process's
      ELDERGATE_ADMIN_PASSWORD: readFileSync(adminPasswordFile, 'utf8').trim(),
    };
    out(`starting ${name} in cluster mode (node scripts/start.mjs; compiles dist/ first when it is stale)…`);
    const fd = openSync(log, 'a');
    // its own process group: the CLI exits, the node stays
    const child = spawn(process.execPath, [...NODE_FLAGS, join(ROOT, 'scripts', 'start.mjs')], { cwd: ROOT, env, detached: true, stdio: ['ignore', fd, fd] });
    closeSync(fd);
    child.unref();
    record.eldergate.push({ pid: child.pid, httpPort: p.http, mqttPort: p.mqtt, dataDir, log, adminPasswordFile });
    writeRecord(record);
    // one after the other: the first brings the token key and the admin, the next find them
    const ready = await waitReady(p.http, 300_000, () => isAlive(child.pid));
    if (!ready) {
      throw new Error(`${name} did not become ready on 127.0.0.1:${p.http} (${isAlive(child.pid) ? 'still starting after 5 min' : 'it exited'}). Its log, ${log}:\n${tail(log, 20)}\nRabbitMQ still runs: \`npm run cluster -- stop --dir ${dir}\` stops it`);
    }
    // "eldergate ready" comes before its RabbitMQ link has declared the topology (seen in its log): wait for the exchange
    if (i === 0 && !(await waitExchange(record.rabbitmq!, rabbit.exchange, 120_000, () => isAlive(child.pid)))) {
      throw new Error(`${name} runs but did not declare RabbitMQ's exchange "${rabbit.exchange}" within 2 min (is cluster mode in this checkout? its log: ${log}). HAProxy was not started: a device connecting now would get no PUBACK, ever, on that connection`);
    }
  }

  const proxy = await startHaproxy({
    dir,
    listeners: [
      { name: 'mqtt', port: ports.haproxyMqtt, mode: 'tcp', backends: rabbit.nodes.map((n) => ({ host: '127.0.0.1', port: n.mqttPort })) },
      { name: 'http', port: ports.haproxyHttp, mode: 'http', backends: ports.eldergate.map((e) => ({ host: '127.0.0.1', port: e.http })), healthPath: '/readyz' },
      { name: 'auth', port: ports.haproxyAuth, mode: 'http', backends: ports.eldergate.map((e) => ({ host: '127.0.0.1', port: e.auth })) },
      // the management UI's page answers without credentials: a fair "this node's management API is up"
      { name: 'management', port: ports.haproxyManagement, mode: 'http', backends: rabbit.nodes.map((n) => ({ host: '127.0.0.1', port: n.managementPort })), healthPath: '/' },
    ],
  });
  record.haproxy = { pid: proxy.pid, config: proxy.config, log: proxy.log, mqttPort: ports.haproxyMqtt, httpPort: ports.haproxyHttp, managementPort: ports.haproxyManagement, authPort: ports.haproxyAuth };
  writeRecord(record);
  return record;
}

function postgresRecord(p: PostgresServer): NonNullable<ClusterRecord['postgres']> {
  // field by field: the server's url holds the password, and cluster.json never does
  return { pid: p.pid, port: p.port, dir: p.dir, dataDir: p.dataDir, log: p.log, database: p.database, user: p.user, passwordFile: p.passwordFile };
}

function rabbitRecord(c: RabbitCluster): NonNullable<ClusterRecord['rabbitmq']> {
  return {
    epmd: { port: c.epmdPort, pid: c.epmdPid },
    home: join(c.dir, 'home'),
    nodes: c.nodes.map((n) => ({ name: n.name, amqpPort: n.amqpPort, mqttPort: n.mqttPort, managementPort: n.managementPort, pid: n.pid, wrapperPid: n.wrapperPid, log: n.log })),
    amqpUrls: c.amqpUrls,
    managementUrl: c.managementUrl,
    serviceUser: c.serviceUser,
    passwordFile: c.passwordFile,
    vhost: c.vhost,
    exchange: c.exchange,
    authUrl: c.authUrl,
    authCacheTtlMs: AUTH_CACHE_TTL_MS,
  };
}

async function isReady(port: number): Promise<boolean> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(2_000) });
    await res.arrayBuffer();
    return res.ok;
  } catch {
    return false;
  }
}

function waitReady(port: number, ms: number, alive: () => boolean): Promise<boolean> {
  return waitUntil(() => isReady(port), ms, alive, 500);
}

async function waitExchange(rabbit: NonNullable<ClusterRecord['rabbitmq']>, exchange: string, ms: number, alive: () => boolean): Promise<boolean> {
  const authorization = managementAuth(rabbit);
  const deadline = Date.now() + ms;
  while (Date.now() < deadline && alive()) {
    for (const node of rabbit.nodes) {
      try {
        const res = await fetch(`http://127.0.0.1:${node.managementPort}/api/exchanges/${encodeURIComponent(rabbit.vhost)}/${encodeURIComponent(exchange)}`, { headers: { authorization }, signal: AbortSignal.timeout(3_000) });
        await res.arrayBuffer();
        if (res.ok) return true;
        break;
      } catch {
        // that node is down: ask the next
      }
    }
    await sleep(500);
  }
  return false;
}

function managementAuth(rabbit: NonNullable<ClusterRecord['rabbitmq']>): string {
  return 'Basic ' + Buffer.from(`${rabbit.serviceUser}:${readFileSync(rabbit.passwordFile, 'utf8').trim()}`).toString('base64');
}

/** GET a management API path from the first node that answers; undefined when none can be asked. */
async function askManagement<T>(r: ClusterRecord, path: string, timeoutMs: number): Promise<T | undefined> {
  const rabbit = r.rabbitmq;
  if (!rabbit) return undefined;
  let authorization: string;
  try {
    authorization = managementAuth(rabbit);
  } catch {
    return undefined;
  }
  for (const node of rabbit.nodes) {
    try {
      const res = await fetch(`http://127.0.0.1:${node.managementPort}${path}`, { headers: { authorization }, signal: AbortSignal.timeout(timeoutMs) });
      if (res.ok) return (await res.json()) as T;
    } catch {
      // that node is down: ask the next
    }
  }
  return undefined;
}

/** Messages in the cluster's queues, from the management API (undefined when it cannot be asked). */
async function queuedMessages(r: ClusterRecord): Promise<number | undefined> {
  const queues = await askManagement<{ messages?: number }[]>(r, '/api/queues?columns=name,messages', 5_000);
  return queues?.reduce((sum, q) => sum + (q.messages ?? 0), 0);
}

export async function stop(dir: string, basePort: number | undefined, out: (line: string) => void = console.log): Promise<void> {
  const r = readRecord(dir);
  if (!r) out(`no ${recordFile(dir)}: stopping whatever of ${dir} still runs`);
  // devices first (no new messages), then let eldergate take what is queued, then eldergate, then RabbitMQ
  if (r?.haproxy) await terminate([r.haproxy.pid], r.haproxy.config, 5_000);
  await terminate(pidsMentioning(join(dir, 'haproxy.cfg')), join(dir, 'haproxy.cfg'), 2_000);
  let queued: number | undefined;
  if (r?.rabbitmq) {
    const eldergateUp = (r.eldergate ?? []).some((e) => isAlive(e.pid) && processMentions(e.pid, e.dataDir));
    const deadline = Date.now() + (eldergateUp ? 30_000 : 0);
    for (;;) {
      queued = await queuedMessages(r);
      if (queued === 0 || queued === undefined || Date.now() >= deadline) break;
      await sleep(500);
    }
    if (queued) out(`warning: ${queued} device message(s) still queued in RabbitMQ (eldergate did not take them within 30 s); its data stays in ${dir}/rabbit-*`);
  }
  for (const e of r?.eldergate ?? []) await terminate([e.pid], e.dataDir, 20_000);
  const home = join(dir, 'home');
  // SIGTERM to a node's VM is RabbitMQ's orderly shutdown; its rabbitmq-server shell exits with it
  await terminate([...(r?.rabbitmq?.nodes.map((n) => n.pid) ?? []), ...pidsMentioning(`-home ${home}`)], home, 30_000);
  await terminate(r?.rabbitmq?.nodes.map((n) => n.wrapperPid) ?? [], home, 2_000);
  const epmdPort = r?.rabbitmq?.epmd.port ?? r?.basePort ?? basePort;
  if (epmdPort !== undefined) {
    const needle = `-port ${epmdPort} `;
    await terminate([r?.rabbitmq?.epmd.pid, ...pidsMentioning(needle).filter((p) => processMentions(p, 'epmd'))], needle, 2_000);
  }
  // PostgreSQL last: eldergate's store, once it uses it, must outlive eldergate's last write. From its own lock file,
  // so that it also goes after a crash of the CLI before cluster.json knew of it
  await stopPostgres(r?.postgres?.dir ?? postgresDir(dir), 30_000);
  if (r) {
    r.stoppedAt = new Date().toISOString();
    r.queuedAtStop = queued ?? (r.rabbitmq ? undefined : 0);
    writeRecord(r);
  }
  const left = [
    ...pidsMentioning(`-home ${home}`),
    ...pidsMentioning(join(dir, 'haproxy.cfg')),
    ...(r?.eldergate ?? []).map((e) => e.pid).filter((p): p is number => isAlive(p) && processMentions(p, join(dir, 'eldergate-'))),
  ];
  if (left.length) throw new Error(`still running after stop: pids ${[...new Set(left)].join(', ')}`);
  out(`stopped: nothing of ${dir} runs any more${queued === 0 ? ' (RabbitMQ\'s queues were empty: the next start makes a new RabbitMQ cluster)' : ''}`);
}

export async function status(dir: string, out: (line: string) => void = console.log): Promise<boolean> {
  const r = readRecord(dir);
  if (!r) {
    out(`no cluster in ${dir} (no cluster.json): npm run cluster -- start --dir ${dir}`);
    return false;
  }
  const up = (ok: boolean) => (ok ? 'up  ' : 'DOWN');
  let all = true;
  const mark = (ok: boolean) => {
    all &&= ok;
    return up(ok);
  };
  out(`cluster in ${dir}, started ${r.startedAt}${r.stoppedAt && r.stoppedAt > r.startedAt ? `, stopped ${r.stoppedAt}` : ''}`);
  const running = await runningNodes(r);
  for (const n of r.rabbitmq?.nodes ?? []) {
    const ok = isAlive(n.pid) && processMentions(n.pid, dir) && (await portOpen(n.mqttPort));
    out(`  ${mark(ok)} RabbitMQ ${n.name}  amqp 127.0.0.1:${n.amqpPort}  mqtt :${n.mqttPort}  management :${n.managementPort}  pid ${n.pid}${running ? `  (${running.has(n.name) ? 'running in the cluster' : 'not running in the cluster'})` : ''}`);
  }
  for (const [i, e] of (r.eldergate ?? []).entries()) {
    const ok = isAlive(e.pid) && processMentions(e.pid, e.dataDir) && (await isReady(e.httpPort));
    out(`  ${mark(ok)} eldergate node ${i + 1}  http 127.0.0.1:${e.httpPort}  pid ${e.pid}  log ${e.log}`);
  }
  if (r.haproxy) {
    const ok = isAlive(r.haproxy.pid) && processMentions(r.haproxy.pid, r.haproxy.config) && (await portOpen(r.haproxy.mqttPort));
    out(`  ${mark(ok)} HAProxy  MQTT 127.0.0.1:${r.haproxy.mqttPort}  HTTP 127.0.0.1:${r.haproxy.httpPort}  management 127.0.0.1:${r.haproxy.managementPort}  pid ${r.haproxy.pid}  log ${r.haproxy.log}`);
  } else {
    all = false;
    out('  DOWN HAProxy (never started)');
  }
  if (r.postgres) {
    const p = r.postgres;
    const ok = postgresUp(p) && (await portOpen(p.port));
    out(`  ${mark(ok)} PostgreSQL  127.0.0.1:${p.port}  database ${p.database}  user ${p.user}  password file ${p.passwordFile}  pid ${p.pid}  log ${p.log}`);
  } else {
    all = false;
    out('  DOWN PostgreSQL (never started)');
  }
  return all;
}

/** the nodes the cluster itself calls running (management API), or undefined when no node answers */
async function runningNodes(r: ClusterRecord): Promise<Set<string> | undefined> {
  const nodes = await askManagement<{ name: string; running: boolean }[]>(r, '/api/nodes?columns=name,running', 3_000);
  return nodes && new Set(nodes.filter((n) => n.running).map((n) => n.name));
}

function describe(r: ClusterRecord): string {
  const rabbit = r.rabbitmq!;
  const nodes = r.eldergate!;
  const e = nodes[0]!;
  const h = r.haproxy!;
  const p = r.postgres!;
  return [
    '',
    `eldergate cluster running from ${r.dir} (details: ${recordFile(r.dir)})`,
    '',
    `  terminals  mqtt://127.0.0.1:${h.mqttPort}   HAProxy → RabbitMQ's MQTT on ${rabbit.nodes.map((n) => n.mqttPort).join(', ')}`,
    `             (client id = username = the device's id, password = its secret; QoS 1 PUBACK once in a quorum queue)`,
    `  console    http://127.0.0.1:${h.httpPort}/   HAProxy → the eldergate nodes (${nodes.map((n) => `http://127.0.0.1:${n.httpPort}`).join(', ')})`,
    `             admin password (the cluster's first start only): ${e.adminPasswordFile}`,
    '',
    ...rabbit.nodes.map((n) => `  RabbitMQ   ${n.name}  amqp :${n.amqpPort}  mqtt :${n.mqttPort}  management :${n.managementPort}  log ${n.log}`),
    `             service user ${rabbit.serviceUser}, password in ${rabbit.passwordFile}; management API http://127.0.0.1:${h.managementPort} (HAProxy → all nodes)`,
    `             devices are asked about at ${rabbit.authUrl}/{user,vhost,resource,topic}, answers cached ${rabbit.authCacheTtlMs / 1000} s`,
    ...nodes.map((n, i) => `  eldergate  node ${i + 1}: data ${n.dataDir}, log ${n.log}`),
    `  HAProxy    config ${h.config}, log ${h.log}`,
    `  PostgreSQL 127.0.0.1:${p.port}  database ${p.database}, user ${p.user}, password in ${p.passwordFile}; data ${p.dataDir}, log ${p.log}`,
    `             PGPASSWORD="$(cat ${p.passwordFile})" psql "postgres://${p.user}@127.0.0.1:${p.port}/${p.database}"`,
    '',
    '  PostgreSQL: the nodes\' shared store (incident log, observations, device states, commands, and the registry,',
    '  network and accounts); each node keeps a copy of the registry, network and accounts and a replica of the log',
    '  for its consoles in its data directory (docs/scale-out.md).',
    '',
    '  A simulated fleet against it:',
    `    npx eldergate-sim fleet --devices 100 --rate 10 --api http://127.0.0.1:${h.httpPort} --mqtt mqtt://127.0.0.1:${h.mqttPort} --user admin --password "$(cat ${e.adminPasswordFile})"`,
    `  Kill a node to see devices move: kill -9 ${rabbit.nodes[0]!.pid}   (status: npm run cluster -- status --dir ${r.dir})`,
    ...(nodes.length > 1 ? [`  Kill an eldergate node to see the other carry on: kill -9 ${e.pid}`] : []),
    `  Stop everything: npm run cluster -- stop --dir ${r.dir}`,
    '',
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options: { dir: { type: 'string', default: '.cluster' }, 'base-port': { type: 'string' }, nodes: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${USAGE}\n`);
    return 64;
  }
  const [command, ...extra] = parsed.positionals;
  if (parsed.values.help || !command) {
    process.stdout.write(`${USAGE}\n`);
    return parsed.values.help ? 0 : 64;
  }
  if (!['start', 'stop', 'status'].includes(command) || extra.length) {
    process.stderr.write(`unknown command "${[command, ...extra].join(' ')}"\n${USAGE}\n`);
    return 64;
  }
  const dir = resolve(parsed.values.dir!);
  const rawPort = parsed.values['base-port'];
  const basePort = rawPort === undefined ? undefined : Number(rawPort);
  if (basePort !== undefined && !(Number.isInteger(basePort) && basePort >= 1024 && basePort <= 65535 - SPAN)) {
    process.stderr.write(`--base-port: "${rawPort}" is not a port from 1024 to ${65535 - SPAN} (the cluster takes it and the ${SPAN} above it)\n`);
    return 64;
  }
  const rawNodes = parsed.values.nodes;
  const nodes = rawNodes === undefined ? 2 : Number(rawNodes);
  if (!(Number.isInteger(nodes) && nodes >= 1 && nodes <= MAX_ELDERGATE_NODES) || (rawNodes !== undefined && command !== 'start')) {
    process.stderr.write(`--nodes: "${rawNodes}" ${command !== 'start' ? 'is for start only' : `is not a number of eldergate nodes from 1 to ${MAX_ELDERGATE_NODES}`}\n`);
    return 64;
  }
  try {
    if (command === 'start') {
      const r = await start(dir, basePort ?? 27000, console.log, nodes);
      process.stdout.write(describe(r) + '\n');
      return 0;
    }
    if (command === 'stop') {
      await stop(dir, basePort);
      return 0;
    }
    return (await status(dir)) ? 0 : 1;
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    let r: ClusterRecord | undefined;
    try {
      r = command === 'start' ? readRecord(dir) : undefined;
    } catch {
      // said above, or unreadable: nothing more to add
    }
    if (r && livePids(r).length) process.stderr.write(`parts of the cluster still run: npm run cluster -- stop --dir ${dir}\n`);
    return 1;
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = await main(process.argv.slice(2));
}
