// The `eldergate-cluster` system: eldergate in cluster mode as docs/scale-out.md describes it, started the way
// `npm run cluster -- start` starts it (ops/cluster/cli.ts) but on ports and a directory of this run: 3 RabbitMQ
// nodes (Debian's rabbitmq-server, MQTT plugin, quorum queues), one eldergate node (compiled dist/main.js, as the
// one-node system) taking the device messages over AMQP and answering RabbitMQ's HTTP auth backend, and HAProxy in
// front of the nodes' MQTT listeners. The bench's terminals, probe and generators point at HAProxy's MQTT port.
//
// The whole system under test — eldergate, the three Erlang VMs (and their helper processes, epmd) and HAProxy — is
// moved onto the system's core once it runs, and its CPU and run-queue wait are summed over all those processes,
// with the share of each part kept apart (`parts`) for a per-message cost of eldergate against RabbitMQ.
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRabbitCluster, missingRabbitPackages, type RabbitCluster } from '../../ops/cluster/rabbitmq.js';
import { startHaproxy, missingHaproxyPackages, type Haproxy } from '../../ops/cluster/haproxy.js';
import { missingPostgresPackages, startPostgres, type PostgresServer } from '../../ops/cluster/postgres.js';
import { coresFor, pinProcess } from './sched.js';
import { sleep } from './sys.js';

export const CLUSTER_NODES = 3;
/** per RabbitMQ node: the flood of figure 2 queues up in memory; the ops default (384 MiB) would block publishers early */
const MEMORY_HIGH_WATERMARK_MIB = 1536;

export interface ClusterEngines {
  rabbit: RabbitCluster;
  dir: string;
  mqttPort: number;
  authPort: number;
  /** the env an eldergate node needs to run in cluster mode against these engines (no secret in it: a file name) */
  eldergateEnv: Record<string, string>;
  /** pids of the engines (the Erlang VMs with their children, epmd, HAProxy, PostgreSQL's processes), by part */
  parts(): { rabbitmq: number[]; haproxy: number[]; postgres: number[] };
  /** messages in RabbitMQ's queues now (management API), or null when no node answers */
  queued(): Promise<number | null>;
  /** empty every queue (what eldergate has not taken yet is dropped: bench data only); messages purged */
  purge(): Promise<number>;
  /** each Erlang VM down to one scheduler online (as on a one-core machine); what each had before */
  oneSchedulerEach(): Promise<string[]>;
  /** the exchange eldergate declares: once it is there, devices may connect */
  exchangeDeclared(): Promise<boolean>;
  /** HAProxy's MQTT frontend, opened only after the exchange exists */
  openMqtt(): Promise<Haproxy>;
  stop(): Promise<void>;
}

/** what is missing to run the cluster system, as Debian packages */
export function missingClusterPackages(): string[] {
  return [...missingRabbitPackages(), ...missingHaproxyPackages(), ...missingPostgresPackages()];
}

/** the processes whose parent chain leads to one of `roots` (roots included): /proc/<pid>/stat's ppid */
export function processTree(roots: number[]): number[] {
  const parent = new Map<number, number>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      parent.set(Number(d), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // ended between readdir and read
    }
  }
  const out = new Set(roots.filter((p) => parent.has(p)));
  for (let grew = true; grew;) {
    grew = false;
    for (const [pid, ppid] of parent) {
      if (!out.has(pid) && out.has(ppid)) {
        out.add(pid);
        grew = true;
      }
    }
  }
  return [...out];
}

/**
 * RabbitMQ ×3 and HAProxy on private ports. HAProxy's MQTT frontend opens only when `openMqtt()` is called: RabbitMQ
 * 3.10 never PUBACKs on a connection that published before eldergate declared its exchange (ops/cluster/cli.ts).
 */
export async function startClusterEngines(): Promise<ClusterEngines> {
  const missing = missingClusterPackages();
  if (missing.length) throw new Error(`the eldergate-cluster system needs ${missing.join(' and ')}: apt-get install -y ${missing.join(' ')}`);
  const dir = mkdtempSync(join(tmpdir(), 'eldergate-bench-cluster-'));
  // PostgreSQL runs as the postgres user when the bench runs as root: it must be able to pass through (not list) this
  // run's directory to reach its own below it
  chmodSync(dir, 0o711);
  let rabbit: RabbitCluster | undefined;
  let basePort = 0;
  // a private range of ports (RabbitMQ takes base..base+39; ours +80..+92 as in ops/cluster/cli.ts); another run
  // may hold one, so a few tries at random bases
  for (let attempt = 0; !rabbit; attempt++) {
    basePort = 40_000 + Math.floor(Math.random() * 200) * 100;
    try {
      rabbit = await startRabbitCluster({
        dir: join(dir, 'rabbit'), basePort, nodes: CLUSTER_NODES, authUrl: `http://127.0.0.1:${basePort + 92}/internal/rabbitmq`,
        memoryHighWatermarkMiB: MEMORY_HIGH_WATERMARK_MIB,
      });
    } catch (err) {
      if (attempt < 3 && /already in use/.test((err as Error).message)) continue;
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  }
  const r = rabbit;
  // the node's store (docs/scale-out.md): PostgreSQL as `npm run cluster` starts it, fsync on, on the system's core
  let postgres: PostgresServer;
  try {
    postgres = await startPostgres({ dir: join(dir, 'postgres'), port: basePort + 83 });
  } catch (err) {
    await r.stop({ graceMs: 15_000 }).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const mqttPort = basePort + 80;
  const authPort = basePort + 92;
  const auth = 'Basic ' + Buffer.from(`${r.serviceUser}:${readFileSync(r.passwordFile, 'utf8').trim()}`).toString('base64');
  const mgmt = async (path: string) => {
    for (const n of r.nodes) {
      try {
        const res = await fetch(`http://127.0.0.1:${n.managementPort}${path}`, { headers: { authorization: auth }, signal: AbortSignal.timeout(5_000) });
        if (res.ok) return res.json();
        await res.arrayBuffer();
      } catch {
        // that node does not answer: ask the next
      }
    }
    return null;
  };
  let proxy: Haproxy | undefined;
  const engines: ClusterEngines = {
    rabbit: r,
    dir,
    mqttPort,
    authPort,
    eldergateEnv: {
      ELDERGATE_RABBITMQ_URLS: JSON.stringify(r.amqpUrls),
      ELDERGATE_RABBITMQ_USERNAME: r.serviceUser,
      ELDERGATE_RABBITMQ_PASSWORD_FILE: r.passwordFile,
      ELDERGATE_RABBITMQ_EXCHANGE: r.exchange,
      ELDERGATE_RABBITMQ_VHOST: r.vhost,
      ELDERGATE_RABBITMQ_AUTH_HOST: '127.0.0.1',
      ELDERGATE_RABBITMQ_AUTH_PORT: String(authPort),
      ELDERGATE_RABBITMQ_MANAGEMENT_URL: r.managementUrl,
      ELDERGATE_RABBITMQ_MQTT_PORT: String(mqttPort),
      ELDERGATE_POSTGRES_URL: `postgres://127.0.0.1:${postgres.port}/${postgres.database}`,
      ELDERGATE_POSTGRES_USERNAME: postgres.user,
      ELDERGATE_POSTGRES_PASSWORD_FILE: postgres.passwordFile,
    },
    parts() {
      const roots = r.nodes.flatMap((n) => [n.wrapperPid, n.pid]).filter((p): p is number => !!p);
      return {
        rabbitmq: processTree([...roots, ...(r.epmdPid ? [r.epmdPid] : [])]), haproxy: proxy ? [proxy.pid] : [],
        // the postmaster and its backends, started and ended as connections come and go: read again at each call
        postgres: processTree([postgres.pid]),
      };
    },
    async queued() {
      const qs = (await mgmt(`/api/queues/${encodeURIComponent(r.vhost)}?columns=name,messages`)) as { messages?: number }[] | null;
      return qs ? qs.reduce((a, q) => a + (q.messages ?? 0), 0) : null;
    },
    async purge() {
      const qs = (await mgmt(`/api/queues/${encodeURIComponent(r.vhost)}?columns=name,messages`)) as { name: string; messages?: number }[] | null;
      let purged = 0;
      for (const q of qs ?? []) {
        if (!q.messages) continue;
        for (const n of r.nodes) {
          try {
            const res = await fetch(`http://127.0.0.1:${n.managementPort}/api/queues/${encodeURIComponent(r.vhost)}/${encodeURIComponent(q.name)}/contents`, { method: 'DELETE', headers: { authorization: auth }, signal: AbortSignal.timeout(10_000) });
            await res.arrayBuffer();
            if (res.ok) {
              purged += q.messages;
              break;
            }
          } catch {
            // the next node
          }
        }
      }
      return purged;
    },
    async oneSchedulerEach() {
      const was: string[] = [];
      for (let i = 0; i < r.nodes.length; i++) {
        const res = await r.ctl(['eval', '{erlang:system_flag(schedulers_online, 1), erlang:system_flag(dirty_cpu_schedulers_online, 1)}.'], i);
        was.push((res.stdout || res.stderr).trim());
      }
      return was;
    },
    async exchangeDeclared() {
      return (await mgmt(`/api/exchanges/${encodeURIComponent(r.vhost)}/${encodeURIComponent(r.exchange)}`)) !== null;
    },
    async openMqtt() {
      proxy = await startHaproxy({
        dir: join(dir, 'haproxy'),
        listeners: [{ name: 'mqtt', port: mqttPort, mode: 'tcp', backends: r.nodes.map((n) => ({ host: '127.0.0.1', port: n.mqttPort })) }],
        // figure 4's fleet and the probes; each connection is two descriptors, and HAProxy may hold 20,000 here
        maxconn: 9000,
      });
      // two passing health checks (inter 1s, rise 2) before a backend takes connections for sure
      await sleep(2500);
      return proxy;
    },
    async stop() {
      await proxy?.stop().catch(() => undefined);
      await r.stop({ graceMs: 15_000 }).catch(() => undefined);
      await postgres.stop().catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return engines;
}

/** move every process of the engines (all threads) onto the system's core, as the other systems run */
export function pinEngines(e: Pick<ClusterEngines, 'parts'>): void {
  const cores = coresFor('sut');
  const { rabbitmq, haproxy, postgres } = e.parts();
  for (const pid of [...rabbitmq, ...haproxy, ...postgres]) {
    try {
      pinProcess(pid, cores);
    } catch {
      // a helper that ended meanwhile
    }
  }
}

export type StartedEngines = ClusterEngines;
