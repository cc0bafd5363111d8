// Ports for a RabbitMQ cluster started by a test (ops/cluster: base..base+39 for the nodes, +80..+99 for what is put in
// front of them). Below the kernel's ephemeral range (32768+): no client socket of another test can be holding one.
// Each test file has its own band, so files running at once never pick the same ports; within the band, a stretch
// still held (a run killed before it could stop) is skipped.
import { readFileSync } from 'node:fs';
import { portFree } from '../../ops/cluster/processes.js';
import { missingRabbitPackages, startRabbitCluster, type RabbitCluster } from '../../ops/cluster/rabbitmq.js';

export const FIRST = 20_000;
/** 36 bands of 1,200 ports (12 stretches of 100) between 20,000 and 63,200: band numbers 0..35 */
export const BAND = 1_200;
export const BANDS = 36;

/** the first port the kernel hands out to client sockets (ip_local_port_range); 32768 when it cannot be read */
function ephemeralStart(): number {
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || 32_768;
  } catch {
    return 32_768;
  }
}

export async function freeBasePort(band: number): Promise<number> {
  checkBand(band);
  // stretches of the band below the ephemeral range, where there are any: a port checked free there cannot be taken
  // by a client socket of another test before the server binds it (seen once: EADDRINUSE on band 5's 33190)
  const first = FIRST + band * BAND;
  const below = Math.floor((ephemeralStart() - first) / 100);
  const stretches = below >= 1 ? Math.min(BAND / 100, below) : BAND / 100;
  for (let attempt = 0; attempt < 30; attempt++) {
    const base = first + 100 * Math.floor(Math.random() * stretches);
    const ports = Array.from({ length: 100 }, (_, i) => base + i);
    if ((await Promise.all(ports.map((p) => portFree(p)))).every(Boolean)) return base;
  }
  throw new Error(`no free stretch of 100 ports in ${FIRST + band * BAND}..${FIRST + (band + 1) * BAND} on 127.0.0.1: stop what holds them`);
}

// ---- one RabbitMQ node from ops/cluster (HTTP auth backend behind the auth cache, as in production) ----

export interface TestRabbit {
  mqttPort: number;
  /** eldergate's service user (internal to RabbitMQ, administrator) */
  amqpUrl: string;
  managementUrl: string;
  username: string;
  passwordFile: string;
  /** the node's main log file */
  log: string;
  stop(): Promise<void>;
}

export async function startTestRabbit(o: { dir: string; authUrl: string; band: number }): Promise<TestRabbit> {
  const missing = missingRabbitPackages();
  if (missing.length) throw new Error(`RabbitMQ is needed for these tests: apt-get install -y ${missing.join(' ')}`);
  for (let attempt = 1; ; attempt++) {
    const basePort = await freeBasePort(o.band);
    let cluster: RabbitCluster;
    try {
      cluster = await startRabbitCluster({ dir: o.dir, basePort, nodes: 1, authUrl: o.authUrl });
    } catch (err) {
      // another test's node on these ports: another stretch
      if (attempt < 5 && /already in use/.test((err as Error).message)) continue;
      throw err;
    }
    const node = cluster.nodes[0]!;
    const password = readFileSync(cluster.passwordFile, 'utf8').trim();
    return {
      mqttPort: node.mqttPort,
      amqpUrl: `amqp://${encodeURIComponent(cluster.serviceUser)}:${encodeURIComponent(password)}@127.0.0.1:${node.amqpPort}/`,
      managementUrl: cluster.managementUrl,
      username: cluster.serviceUser,
      passwordFile: cluster.passwordFile,
      log: node.log,
      stop: () => cluster.stop({ graceMs: 5_000 }),
    };
  }
}

/** a band beyond the last would reach past port 65,535 */
export function checkBand(band: number): void {
  if (!Number.isInteger(band) || band < 0 || band >= BANDS) throw new Error(`test port band ${band}: bands are 0..${BANDS - 1} (test/helpers/cluster-ports.ts)`);
}
