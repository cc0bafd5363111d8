// One RabbitMQ node (its MQTT plugin, on a band of private ports) and an eldergate node in cluster mode in this
// process, as several cluster test files set them up; and what they read back of a device's stored observations.
import { join } from 'node:path';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { startTestGateway, type TestGateway } from './gateway.js';
import { freeBasePort } from './cluster-ports.js';
import { startRabbitCluster, type RabbitCluster } from '../../ops/cluster/rabbitmq.js';

export interface RabbitTestGateway {
  rabbit: RabbitCluster;
  t: TestGateway;
  /** where the node answers RabbitMQ's HTTP auth backend */
  authPort: number;
  /** a terminal on the RabbitMQ node's MQTT port (no reconnects), connected */
  connect(id: string, secret: string, extra?: IClientOptions): Promise<MqttClient>;
  /** the terminals, the node, RabbitMQ */
  stop(): Promise<void>;
}

/**
 * `band`: the test file's own (grep `band` and freeBasePort under test/); `rabbitmq`: settings beside the cluster's;
 * `management`: the node closes devices through RabbitMQ's management API (rabbitmq.managementUrl); `config`: more
 * of the node's settings; `amqpVia`: the AMQP URL the node is given for each of RabbitMQ's (a proxy of the test's)
 */
export async function startRabbitTestGateway(o: {
  dir: string; band: number; rabbitmq?: Record<string, unknown>; management?: boolean; config?: Record<string, unknown>;
  amqpVia?: (url: string) => Promise<string>;
}): Promise<RabbitTestGateway> {
  const basePort = await freeBasePort(o.band);
  const authPort = basePort + 90;
  const rabbit = await startRabbitCluster({ dir: join(o.dir, 'rabbit'), basePort, nodes: 1, authUrl: `http://127.0.0.1:${authPort}/internal/rabbitmq` });
  let t: TestGateway;
  try {
    const urls = o.amqpVia ? await Promise.all(rabbit.amqpUrls.map(o.amqpVia)) : rabbit.amqpUrls;
    t = await startTestGateway({
      ...o.config,
      rabbitmq: {
        urls, passwordFile: rabbit.passwordFile, authPort, mqttPort: rabbit.nodes[0]!.mqttPort,
        ...(o.management ? { managementUrl: rabbit.managementUrl } : {}), ...o.rabbitmq,
      },
    }, join(o.dir, 'eldergate'));
    await t.gw.cluster!.ready;
  } catch (err) {
    await rabbit.stop();
    throw err;
  }
  const clients: MqttClient[] = [];
  return {
    rabbit, t, authPort,
    async connect(id, secret, extra = {}) {
      const c = mqtt.connect(`mqtt://127.0.0.1:${rabbit.nodes[0]!.mqttPort}`, { clientId: id, username: id, password: secret, protocolVersion: 4, reconnectPeriod: 0, ...extra });
      clients.push(c);
      await new Promise<void>((resolve, reject) => {
        c.once('connect', () => resolve());
        c.once('error', reject);
      });
      return c;
    },
    async stop() {
      for (const c of clients) c.end(true);
      await t.stop();
      await rabbit.stop();
    },
  };
}

/** Every seq stored for a device's observations (`query`: more filters), oldest first, paging back through the API. */
export async function storedSeqs(get: (path: string) => Promise<{ items: { id: number; seq: number | null }[] }>, deviceId: string, query = ''): Promise<number[]> {
  const seqs: number[] = [];
  for (let before: number | undefined; ;) {
    const page = (await get(`/api/observations?deviceId=${deviceId}${query}&limit=1000${before ? `&before=${before}` : ''}`)).items;
    for (const o of page) if (o.seq !== null) seqs.push(o.seq);
    if (page.length < 1000) return seqs.reverse();
    before = page.at(-1)!.id;
  }
}
