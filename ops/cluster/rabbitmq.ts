// A RabbitMQ cluster on one machine, for tests and for people (`npm run cluster`): Debian's rabbitmq-server 3.10
// run from /usr/lib/rabbitmq/bin as the calling user (the /usr/sbin wrapper su's to the rabbitmq user), every node
// with its own directory and ports under one cluster directory, its own epmd (ERL_EPMD_PORT) and its own Erlang
// cookie, everything bound to 127.0.0.1. Nothing here touches the system's RabbitMQ (/var/lib/rabbitmq, 5672, 4369).
//
// Ports, from basePort B: B epmd; B+1..B+9 the range rabbitmqctl's own Erlang node listens in; node i (0-based)
// B+10+10i AMQP, +1 MQTT, +2 management, +3 Erlang distribution.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isAlive, pidsMentioning, portFree, processMentions, run, signal, tail, terminate, waitPort, type RunResult } from './processes.js';

export const RABBITMQ_BIN = '/usr/lib/rabbitmq/bin';
const SERVER = join(RABBITMQ_BIN, 'rabbitmq-server');
const CTL = join(RABBITMQ_BIN, 'rabbitmqctl');
const EPMD = '/usr/bin/epmd';
export const MAX_NODES = 7;

/** The plugins every node runs; the cache in front of the HTTP auth backend absorbs reconnect storms. */
const PLUGINS = ['rabbitmq_mqtt', 'rabbitmq_consistent_hash_exchange', 'rabbitmq_auth_backend_http', 'rabbitmq_auth_backend_cache', 'rabbitmq_management'];

/**
 * How long a device's allow/deny from eldergate's auth endpoints is reused. Short, because a revoked device must not
 * keep publishing on a cached "allow" (eldergate also closes a revoked device's open connections through the
 * management API); long enough that a storm of reconnects after a node's death costs one HTTP request per device,
 * not one per CONNECT, per topic check.
 */
export const AUTH_CACHE_TTL_MS = 10_000;

export interface RabbitClusterOptions {
  /** the cluster's directory (created if missing); it must not hold an earlier cluster's node data (see below) */
  dir: string;
  basePort: number;
  nodes?: number;
  /** eldergate's auth endpoints, without the trailing /user: `http://127.0.0.1:<authPort>/internal/rabbitmq` */
  authUrl: string;
  /** the topic exchange the MQTT plugin publishes into (eldergate declares it) */
  exchange?: string;
  vhost?: string;
  /** per node: publishers are blocked above this (RabbitMQ's memory alarm); the VM itself uses ~120 MiB idle */
  memoryHighWatermarkMiB?: number;
  startTimeoutMs?: number;
}

export interface RabbitNode {
  index: number;
  /** Erlang node name, e.g. eg1a2b3c4dn1@localhost: unique per cluster directory */
  name: string;
  amqpPort: number;
  mqttPort: number;
  managementPort: number;
  distPort: number;
  dir: string;
  /** the node's main log file */
  log: string;
  /** OS pid of the Erlang VM (beam.smp), from RABBITMQ_PID_FILE; undefined while it is not running */
  pid: number | undefined;
  /** the rabbitmq-server shell that started the VM (it exits with it) */
  wrapperPid: number | undefined;
}

export interface ClusterStatus {
  running: string[];
  disk: string[];
}

export interface RabbitCluster {
  dir: string;
  epmdPort: number;
  epmdPid: number | undefined;
  nodes: RabbitNode[];
  /** one per node, no credentials in them (eldergate reads the password from passwordFile) */
  amqpUrls: string[];
  /** eldergate's own RabbitMQ user */
  serviceUser: string;
  /** holds serviceUser's password (mode 0600) */
  passwordFile: string;
  /** one node's management API (any node answers for the whole cluster) */
  managementUrl: string;
  exchange: string;
  vhost: string;
  authUrl: string;
  /** rabbitmqctl against node i, with this cluster's cookie and epmd */
  ctl(args: string[], i?: number, input?: string): Promise<RunResult>;
  clusterStatus(i?: number): Promise<ClusterStatus>;
  /** SIGKILL node i's VM: a crash, no goodbye to its peers */
  kill(i: number): Promise<void>;
  /** start node i again (killed or stopped) with the same data; resolves once it has rejoined */
  start(i: number): Promise<void>;
  /** resolves once node i runs and sees itself among the cluster's running nodes */
  waitRunning(i: number, timeoutMs?: number): Promise<void>;
  /** every node (SIGTERM, then SIGKILL after graceMs) and this cluster's epmd: no process of the directory is left */
  stop(opts?: { graceMs?: number }): Promise<void>;
}

/** The ports a cluster of `nodes` nodes uses from basePort (for checking them before anything starts). */
export function rabbitPorts(basePort: number, nodes: number): { epmd: number; ctlMin: number; ctlMax: number; node: (i: number) => { amqp: number; mqtt: number; management: number; dist: number } } {
  return {
    epmd: basePort,
    ctlMin: basePort + 1,
    ctlMax: basePort + 9,
    node: (i: number) => {
      if (i < 0 || i >= nodes) throw new Error(`no node ${i}: the cluster has nodes 0..${nodes - 1}`);
      const b = basePort + 10 + 10 * i;
      return { amqp: b, mqtt: b + 1, management: b + 2, dist: b + 3 };
    },
  };
}

/** What is missing to run a cluster here, as Debian packages (empty: nothing). */
export function missingRabbitPackages(): string[] {
  return [SERVER, CTL, EPMD].every((f) => existsSync(f)) ? [] : ['rabbitmq-server'];
}

export async function startRabbitCluster(opts: RabbitClusterOptions): Promise<RabbitCluster> {
  const n = opts.nodes ?? 3;
  if (!Number.isInteger(n) || n < 1 || n > MAX_NODES) throw new Error(`nodes: ${n} is not a node count from 1 to ${MAX_NODES}`);
  if (!Number.isInteger(opts.basePort) || opts.basePort < 1024 || opts.basePort + 10 + 10 * n > 65535) {
    throw new Error(`basePort: ${opts.basePort} does not leave room for ${n} nodes (it takes basePort..basePort+${10 + 10 * n - 1}); choose a port from 1024 to ${65535 - 10 - 10 * n}`);
  }
  if (!/^https?:\/\/\S+[^/]$/.test(opts.authUrl)) throw new Error(`authUrl: "${opts.authUrl}" is not an http(s) URL without a trailing slash (e.g. http://127.0.0.1:28080/internal/rabbitmq)`);
  const exchange = opts.exchange ?? 'eldergate.mqtt';
  if (!/^[A-Za-z0-9._-]+$/.test(exchange)) throw new Error(`exchange: "${exchange}" may hold only letters, digits, '.', '_' and '-'`);
  const vhost = opts.vhost ?? '/';
  if (!/^[A-Za-z0-9/._-]+$/.test(vhost)) throw new Error(`vhost: "${vhost}" may hold only letters, digits, '/', '.', '_' and '-'`);
  const missing = missingRabbitPackages();
  if (missing.length) throw new Error(`RabbitMQ is not installed (${SERVER} missing): apt-get install ${missing.join(' ')}`);

  const dir = resolve(opts.dir);
  const ports = rabbitPorts(opts.basePort, n);
  const busy: number[] = [];
  for (const p of [ports.epmd, ...Array.from({ length: n }, (_, i) => Object.values(ports.node(i))).flat()]) if (!(await portFree(p))) busy.push(p);
  if (busy.length) throw new Error(`port${busy.length > 1 ? 's' : ''} ${busy.join(', ')} already in use on 127.0.0.1: choose another basePort (the cluster takes ${opts.basePort}..${opts.basePort + 10 + 10 * n - 1}), or stop what holds them`);

  const home = join(dir, 'home');
  mkdirSync(home, { recursive: true, mode: 0o700 });
  // the cookie is the cluster's only secret between its nodes (and rabbitmqctl): random, readable by us alone
  const cookie = join(home, '.erlang.cookie');
  if (!existsSync(cookie)) writeFileSync(cookie, randomBytes(24).toString('hex').toUpperCase(), { mode: 0o400, flag: 'wx' });
  chmodSync(cookie, 0o400);
  const envFile = join(dir, 'rabbitmq-env.conf');
  // an empty env file of our own: /etc/rabbitmq/rabbitmq-env.conf is the system node's, not ours
  writeFileSync(envFile, '# intentionally empty: these nodes take their settings from the environment ops/cluster/rabbitmq.ts gives them\n');

  const tag = 'eg' + createHash('sha256').update(dir).digest('hex').slice(0, 8);
  const nodes: RabbitNode[] = Array.from({ length: n }, (_, i) => {
    const p = ports.node(i);
    const nodeDir = join(dir, `rabbit-${i + 1}`);
    const name = `${tag}n${i + 1}@localhost`;
    return { index: i, name, amqpPort: p.amqp, mqttPort: p.mqtt, managementPort: p.management, distPort: p.dist, dir: nodeDir, log: join(nodeDir, 'log', `${name}.log`), pid: undefined, wrapperPid: undefined };
  });

  // what every Erlang process of this cluster (nodes and rabbitmqctl) shares; nothing inherited from a RABBITMQ_* or
  // ERL_* of the caller's environment, which may well point at another node
  const baseEnv: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('RABBITMQ_') && !k.startsWith('ERL_')));
  Object.assign(baseEnv, {
    HOME: home,
    LANG: 'C.UTF-8',
    LC_ALL: 'C.UTF-8',
    ERL_EPMD_PORT: String(ports.epmd),
    ERL_EPMD_ADDRESS: '127.0.0.1',
    RABBITMQ_CONF_ENV_FILE: envFile,
    RABBITMQ_CTL_DIST_PORT_MIN: String(ports.ctlMin),
    RABBITMQ_CTL_DIST_PORT_MAX: String(ports.ctlMax),
    RABBITMQ_CTL_ERL_ARGS: '-kernel inet_dist_use_interface {127,0,0,1}',
  });

  const definitions = join(dir, 'definitions.json');
  writeFileSync(definitions, JSON.stringify({ vhosts: [{ name: vhost }] }) + '\n');
  const peers = nodes.map((node, i) => `cluster_formation.classic_config.nodes.${i + 1} = ${node.name}`).join('\n');
  const memory = opts.memoryHighWatermarkMiB ?? 384;
  const nodeEnv = nodes.map((node) => {
    for (const d of ['mnesia', 'log', 'plugins-expand']) mkdirSync(join(node.dir, d), { recursive: true });
    writeFileSync(join(node.dir, 'rabbitmq.conf'), [
      `# written by ops/cluster/rabbitmq.ts for ${node.name}; rewritten at every start`,
      `listeners.tcp.default = 127.0.0.1:${node.amqpPort}`,
      `mqtt.listeners.tcp.default = 127.0.0.1:${node.mqttPort}`,
      'mqtt.allow_anonymous = false',
      `mqtt.exchange = ${exchange}`,
      `mqtt.vhost = ${vhost}`,
      // a device's persistent session (clean session false: its QoS 1 commands subscription) lives in a queue; as a
      // classic queue it stays on the node the device first reached, and when that node dies the device cannot log in
      // anywhere (queue.declare: "home node ... is down", seen here) — replicated, it moves with the device
      'mqtt.durable_queue_type = quorum',
      `management.tcp.port = ${node.managementPort}`,
      'management.tcp.ip = 127.0.0.1',
      // eldergate's own user is internal; devices are asked about over HTTP, through the cache
      'auth_backends.1 = internal',
      'auth_backends.2 = cache',
      'auth_cache.cached_backend = http',
      `auth_cache.cache_ttl = ${AUTH_CACHE_TTL_MS}`,
      'auth_http.http_method = post',
      ...['user', 'vhost', 'resource', 'topic'].map((k) => `auth_http.${k}_path = ${opts.authUrl}/${k}`),
      'cluster_formation.peer_discovery_backend = classic_config',
      peers,
      // the first node of a new cluster looks for peers this many times (every 500 ms) before it starts alone
      'cluster_formation.discovery_retry_limit = 3',
      // a node cut off from the majority stops serving (its listeners close, HAProxy sends devices elsewhere)
      'cluster_partition_handling = pause_minority',
      `vm_memory_high_watermark.absolute = ${memory}MiB`,
      'disk_free_limit.absolute = 50MB',
      // eldergate holds a message unacknowledged until its own commit, also through a storage outage: RabbitMQ's
      // default 30 min consumer timeout would close its channel and hand every held message out again, each time
      // counting towards the partitions' delivery limit (dead-lettering). 24 h.
      'consumer_timeout = 86400000',
      // quorum queues keep their write-ahead log in memory up to this size (default 512 MiB)
      'raft.wal_max_size_bytes = 67108864',
      // a blank node creates guest/guest unless definitions are configured: ours hold the vhost and no user, so no
      // default password exists even for the seconds before setUpUsers runs
      `load_definitions = ${definitions}`,
      'log.console = false',
      'log.file.level = info',
      '',
    ].join('\n'));
    writeFileSync(join(node.dir, 'enabled_plugins'), `[${PLUGINS.join(',')}].\n`);
    return {
      ...baseEnv,
      RABBITMQ_NODENAME: node.name,
      RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
      RABBITMQ_NODE_PORT: String(node.amqpPort),
      RABBITMQ_DIST_PORT: String(node.distPort),
      RABBITMQ_CONFIG_FILE: join(node.dir, 'rabbitmq'),
      RABBITMQ_ENABLED_PLUGINS_FILE: join(node.dir, 'enabled_plugins'),
      RABBITMQ_MNESIA_BASE: join(node.dir, 'mnesia'),
      RABBITMQ_LOG_BASE: join(node.dir, 'log'),
      RABBITMQ_PID_FILE: join(node.dir, 'pid'),
      RABBITMQ_PLUGINS_EXPAND_DIR: join(node.dir, 'plugins-expand'),
      RABBITMQ_FEATURE_FLAGS_FILE: join(node.dir, 'feature_flags'),
      RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: '-kernel inet_dist_use_interface {127,0,0,1}',
    } as NodeJS.ProcessEnv;
  });

  // RabbitMQ 3.10's MQTT plugin does not come back reliably when every node of a cluster restarts: each node's
  // mqtt_node asks its peers' (not yet running) Raft servers for members, with a 100 s timeout, before restarting its
  // own (seen here: one node up after 100 s, another not within 120 s). A cluster is therefore always new; `npm run
  // cluster -- stop` drains the queues first. Single nodes restart with their data (start(i)) while the rest run.
  const stale = nodes.filter((node) => existsSync(join(node.dir, 'mnesia', node.name)));
  if (stale.length) {
    throw new Error(`${dir} holds the data of an earlier cluster (${stale.map((node) => join(node.dir, 'mnesia')).join(', ')}): a whole RabbitMQ 3.10 cluster is not restarted from its data (its MQTT plugin stalls). Remove ${join(dir, 'rabbit-*')} (after its queues were consumed) or choose a new directory`);
  }

  const timeoutMs = opts.startTimeoutMs ?? 120_000;
  const ctl = (args: string[], i = 0, input?: string) =>
    run(CTL, ['-n', nodes[checkIndex(i)]!.name, ...args], { env: baseEnv, input, timeoutMs: 60_000 });

  function checkIndex(i: number): number {
    if (!Number.isInteger(i) || i < 0 || i >= n) throw new Error(`no node ${i}: the cluster has nodes 0..${n - 1}`);
    return i;
  }

  // our own epmd, started before any node so that no node starts a daemon one we would not know the pid of
  const epmdArgs = ['-address', '127.0.0.1', '-port', String(ports.epmd)];
  const epmdNeedle = `-port ${ports.epmd} `;
  const epmd = spawn(EPMD, epmdArgs, { env: baseEnv, detached: true, stdio: 'ignore' });
  epmd.unref();
  let epmdPid = epmd.pid;
  if (!(await waitPort(ports.epmd, 10_000, () => epmd.exitCode === null))) {
    throw new Error(`epmd did not start on 127.0.0.1:${ports.epmd} (exit code ${epmd.exitCode}): is the port taken? choose another basePort`);
  }

  function spawnNode(i: number) {
    const node = nodes[i]!;
    rmSync(join(node.dir, 'pid'), { force: true });
    const out = openSync(join(node.dir, 'server.out'), 'a');
    // its own process group: a Ctrl-C meant for the caller does not reach the nodes (`stop` ends them in order)
    const child = spawn(SERVER, [], { env: nodeEnv[i], detached: true, stdio: ['ignore', out, out] });
    closeSync(out);
    child.unref();
    node.wrapperPid = child.pid;
    node.pid = undefined;
  }

  /** the VM's pid once it wrote its pid file (a stale file was removed at spawn) */
  function vmPid(i: number): number | undefined {
    const node = nodes[i]!;
    if (node.pid && isAlive(node.pid)) return node.pid;
    try {
      const pid = Number(readFileSync(join(node.dir, 'pid'), 'utf8').trim());
      if (isAlive(pid) && processMentions(pid, home)) node.pid = pid;
    } catch {
      // not written yet
    }
    return node.pid;
  }

  async function clusterStatus(i = 0): Promise<ClusterStatus> {
    const r = await ctl(['cluster_status', '--formatter', 'json'], i);
    if (r.code !== 0) throw new Error(`rabbitmqctl cluster_status on ${nodes[i]!.name} failed: ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' ')}`);
    const j = JSON.parse(r.stdout) as { running_nodes?: string[]; disk_nodes?: string[] };
    return { running: j.running_nodes ?? [], disk: j.disk_nodes ?? [] };
  }

  async function waitRunning(i: number, ms = timeoutMs): Promise<void> {
    checkIndex(i);
    const node = nodes[i]!;
    const deadline = Date.now() + ms;
    let last = '';
    while (Date.now() < deadline) {
      if (!isAlive(node.wrapperPid) && !isAlive(vmPid(i))) {
        throw new Error(`RabbitMQ node ${node.name} exited while starting. Its log (${node.log}):\n${tail(node.log)}\n${tail(join(node.dir, 'server.out'), 8)}`);
      }
      if (vmPid(i)) {
        const up = await ctl(['await_startup', '--timeout', String(Math.max(1, Math.min(10, Math.ceil((deadline - Date.now()) / 1000))))], i);
        if (up.code === 0) {
          const status = await clusterStatus(i).catch((err: Error) => ({ running: [] as string[], disk: [] as string[], err }));
          if (status.running.includes(node.name)) return;
          last = 'err' in status ? status.err.message : `running nodes: ${status.running.join(', ')}`;
        } else {
          last = (up.stderr || up.stdout).trim().split('\n').slice(-2).join(' ');
        }
      }
      await sleep(300);
    }
    throw new Error(`RabbitMQ node ${node.name} did not start within ${ms} ms (${last || 'no pid file yet'}). Its log: ${node.log}\n${tail(node.log)}`);
  }

  async function stop({ graceMs = 20_000 }: { graceMs?: number } = {}): Promise<void> {
    // SIGTERM to the VM is RabbitMQ's orderly shutdown; the rabbitmq-server shell exits with it
    await terminate(nodes.map((_, i) => vmPid(i)), home, graceMs);
    await terminate(nodes.map((node) => node.wrapperPid), home, 2_000);
    // whatever else still runs as one of this directory's nodes (a VM whose pid file we never read)
    await terminate(pidsMentioning(`-home ${home}`), home, 2_000);
    for (const node of nodes) node.pid = node.wrapperPid = undefined;
    await terminate([epmdPid], epmdNeedle, 2_000);
    epmdPid = undefined;
  }

  const cluster: RabbitCluster = {
    dir,
    epmdPort: ports.epmd,
    get epmdPid() {
      return epmdPid;
    },
    nodes,
    amqpUrls: nodes.map((node) => `amqp://127.0.0.1:${node.amqpPort}`),
    serviceUser: 'eldergate',
    passwordFile: join(dir, 'eldergate-rabbitmq.password'),
    managementUrl: `http://127.0.0.1:${nodes[0]!.managementPort}`,
    exchange,
    vhost,
    authUrl: opts.authUrl,
    ctl,
    clusterStatus,
    async kill(i) {
      const pid = vmPid(checkIndex(i));
      if (!pid) throw new Error(`node ${nodes[i]!.name} is not running`);
      signal(pid, 'SIGKILL');
      while (isAlive(pid) || isAlive(nodes[i]!.wrapperPid)) await sleep(50);
      nodes[i]!.pid = undefined;
    },
    async start(i) {
      checkIndex(i);
      if (isAlive(vmPid(i))) throw new Error(`node ${nodes[i]!.name} is already running (pid ${nodes[i]!.pid})`);
      spawnNode(i);
      await waitRunning(i);
      await waitMqttMember(i);
    },
    waitRunning,
    stop,
  };

  /**
   * Is node i a member of the MQTT plugin's client-ID tracking Raft cluster (mqtt_node), and has that a leader?
   * Without it the node answers every CONNECT with CONNACK 3 (server unavailable).
   */
  async function waitMqttMember(i: number, ms = timeoutMs): Promise<void> {
    const deadline = Date.now() + ms;
    let last = '';
    while (Date.now() < deadline) {
      const r = await ctl(['eval', 'ra:members({mqtt_node, node()}).'], i);
      last = (r.stdout || r.stderr).trim();
      // {ok,[{mqtt_node,a@localhost},...],{mqtt_node,leader@localhost}}: atoms print unquoted here
      const m = /^\{ok,\s*\[(.*)\],\s*\{mqtt_node,\s*'?[^'}]+'?\}\}$/s.exec(last);
      const members = m ? [...m[1]!.matchAll(/\{mqtt_node,\s*'?([^'}\s]+)'?\}/g)].map((x) => x[1]) : [];
      if (members.includes(nodes[i]!.name)) return;
      await sleep(500);
    }
    throw new Error(`RabbitMQ node ${nodes[i]!.name} did not join the MQTT plugin's client ID tracking (ra:members: ${last.slice(0, 300)})`);
  }

  try {
    // One node after the other, not all at once: the MQTT plugin of 3.10 tracks client IDs in a Raft cluster of its
    // own (mqtt_node) that each node joins at boot with ra:add_member, and Ra takes one membership change at a time:
    // nodes booting together get cluster_change_not_permitted and silently stay out, and the cluster then answers
    // CONNECTs with CONNACK 3 once a node dies (seen here). classic_config peer discovery still does the clustering.
    for (let i = 0; i < n; i++) {
      spawnNode(i);
      await waitRunning(i);
      await waitMqttMember(i);
    }
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const status = await clusterStatus(0);
      if (nodes.every((node) => status.running.includes(node.name))) break;
      if (Date.now() > deadline) throw new Error(`the nodes did not form one cluster within ${timeoutMs} ms: ${nodes[0]!.name} sees running ${status.running.join(', ')}`);
      await sleep(500);
    }
    await setUpUsers(cluster);
  } catch (err) {
    await stop({ graceMs: 5_000 });
    throw err;
  }
  return cluster;
}

/**
 * Users and policies. No default passwords: `guest` goes. eldergate's own user gets a random password, written to a 0600 file before the
 * user exists (a crash between the two leaves a password nobody uses, never a user whose password is lost). Run at
 * every start: the file and the user always agree, also for a directory reused from an earlier run.
 */
async function setUpUsers(c: RabbitCluster): Promise<void> {
  const must = async (args: string[], input?: string, okIf?: RegExp) => {
    const r = await c.ctl(args, 0, input);
    if (r.code !== 0 && !(okIf && okIf.test(r.stderr + r.stdout))) throw new Error(`rabbitmqctl ${args[0]} failed: ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' ')}`);
    return r;
  };
  // never created (see load_definitions); deleted all the same should a directory come from elsewhere
  await must(['delete_user', 'guest'], undefined, /does not exist|no_such_user/i);
  if (!existsSync(c.passwordFile)) writeFileSync(c.passwordFile, randomBytes(24).toString('base64url') + '\n', { mode: 0o600, flag: 'wx' });
  chmodSync(c.passwordFile, 0o600);
  const password = readFileSync(c.passwordFile, 'utf8').trim();
  // the password goes through stdin: on the command line every user of the machine could read it in ps
  const added = await must(['add_user', c.serviceUser], password, /already exists|user_already_exists/i);
  if (added.code !== 0) await must(['change_password', c.serviceUser], password);
  await must(['set_permissions', '-p', c.vhost, c.serviceUser, '.*', '.*', '.*']);
  // The MQTT plugin keeps a clean-session device's QoS 1 subscription (its commands) in a durable, auto-delete classic
  // queue on the node it first reached. When that node is killed the queue is neither deleted nor reachable, and the
  // device's next CONNECT anywhere fails ("home node ... of durable queue mqtt-subscription-<id>qos1 is down", seen
  // here with the simulator): it is locked out until that node returns. Mirrored to a second node, the queue survives
  // and the device logs in on a live node at once. (Classic mirroring is deprecated after 3.x; quorum queues, which
  // mqtt.durable_queue_type covers, cannot be auto-delete, so the plugin uses them for persistent sessions only.)
  await must(['set_policy', '-p', c.vhost, '--apply-to', 'queues', '--priority', '1', 'mqtt-sessions', '^mqtt-subscription-',
    JSON.stringify({ 'ha-mode': 'exactly', 'ha-params': 2, 'ha-sync-mode': 'automatic' })]);
  // administrator: eldergate closes a revoked device's open MQTT connections through the management API, which only
  // lets an administrator close other users' connections (the auth cache alone would let it publish for up to a TTL)
  await must(['set_user_tags', c.serviceUser, 'administrator']);
}
