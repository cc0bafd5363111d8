// Ports for a RabbitMQ cluster started by a test (ops/cluster: base..base+39 for the nodes, +80..+99 for what is put in
// front of them). Below the kernel's ephemeral range (32768+): no client socket of another test can be holding one.
// Each test file has its own band, so files running at once never pick the same ports; within the band, a stretch
// still held (a run killed before it could stop) is skipped.
import { readFileSync } from 'node:fs';
import { portFree } from '../../ops/cluster/processes.js';
import { missingRabbitPackages, startRabbitCluster, type RabbitCluster } from '../../ops/cluster/rabbitmq.js';

export const FIRST = 20_000;
export const BAND = 2_400;

export async function freeBasePort(band: number): Promise<number> {
  for (let attempt = 0; attempt < 30; attempt++) {
    const base = FIRST + band * BAND + 100 * Math.floor(Math.random() * (BAND / 100));
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
