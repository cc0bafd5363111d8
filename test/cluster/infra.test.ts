// The one-machine cluster's infrastructure (ops/cluster): three real RabbitMQ 3.10 nodes behind a real HAProxy, a real
// `mqtt` client and amqplib. What cluster mode stands on: the nodes form one cluster, a quorum queue lives on all
// three, a node's crash (SIGKILL) loses neither publishing nor consuming and HAProxy sends devices to a live node, the
// node comes back and rejoins, and stop() leaves no process behind. Also what the MQTT plugin does with a QoS 1
// publish before eldergate declared its exchange: no PUBACK, the connection closed — the topology must exist first.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execFile, execFileSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import amqp, { type ChannelModel } from 'amqplib';
import mqtt from 'mqtt';
import { startRabbitCluster, type RabbitCluster } from '../../ops/cluster/rabbitmq.js';
import { startHaproxy, type Haproxy } from '../../ops/cluster/haproxy.js';
import { isAlive, pidsMentioning, portFree } from '../../ops/cluster/processes.js';
import { freeBasePort } from '../helpers/cluster-ports.js';
import { startTestPostgres } from '../helpers/postgres.js';
import type { ClusterRecord } from '../../ops/cluster/cli.js';

const EXCHANGE = 'egtest.mqtt';
const QUEUE = 'egtest.q';

interface AuthRequest {
  path: string;
  body: Record<string, string>;
}

/** eldergate's auth endpoints as RabbitMQ's HTTP backend calls them, answering "allow" to everything (and recording). */
function startAuthServer(): Promise<{ server: Server; port: number; requests: AuthRequest[] }> {
  const requests: AuthRequest[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => {
      body += chunk;
      if (body.length > 8_192) req.destroy();
    });
    req.on('end', () => {
      if (requests.length < 1_000) requests.push({ path: req.url ?? '', body: Object.fromEntries(new URLSearchParams(body)) });
      res.writeHead(200, { 'content-type': 'text/plain' }).end('allow');
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as { port: number }).port, requests })));
}

/** a free stretch of ports below Linux's ephemeral range (32768+), so no outgoing connection holds one of them */

function mqttConnect(port: number, clientId: string): Promise<mqtt.MqttClient> {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect(`mqtt://127.0.0.1:${port}`, { clientId, username: clientId, password: 'secret-of-' + clientId, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 15_000 });
    c.once('connect', () => resolve(c));
    c.once('error', (err) => {
      c.end(true);
      reject(err);
    });
    c.once('close', () => reject(new Error('closed before CONNACK')));
  });
}

/** QoS 1 publish: 'puback', or 'closed' when the connection ended without one (or nothing within ms) */
function publishQos1(c: mqtt.MqttClient, topic: string, payload: string, ms = 10_000): Promise<'puback' | 'closed' | 'timeout'> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve('timeout'), ms);
    c.once('close', () => {
      clearTimeout(timer);
      resolve('closed');
    });
    c.publish(topic, payload, { qos: 1 }, (err) => {
      clearTimeout(timer);
      resolve(err ? 'closed' : 'puback');
    });
  });
}

describe('the one-machine cluster: RabbitMQ ×3 behind HAProxy', () => {
  let dir: string;
  let auth: Awaited<ReturnType<typeof startAuthServer>>;
  let cluster: RabbitCluster | undefined;
  let haproxy: Haproxy | undefined;
  let password: string;
  const conns: ChannelModel[] = [];
  const clients: mqtt.MqttClient[] = [];

  const amqpConnect = async (i: number) => {
    const conn = await amqp.connect(cluster!.amqpUrls[i]!, { credentials: amqp.credentials.plain(cluster!.serviceUser, password) });
    conn.on('error', () => undefined);
    conns.push(conn);
    return conn;
  };
  const management = async (path: string) => {
    const res = await fetch(`${cluster!.managementUrl}${path}`, { headers: { authorization: 'Basic ' + Buffer.from(`${cluster!.serviceUser}:${password}`).toString('base64') } });
    expect(res.status, `GET ${path}`).toBe(200);
    return res.json() as Promise<Record<string, unknown>>;
  };
  const queueInfo = async () => (await management(`/api/queues/%2F/${encodeURIComponent(QUEUE)}`)) as { type: string; members: string[]; online: string[]; leader: string };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'eldergate-infra-'));
    auth = await startAuthServer();
    const basePort = await freeBasePort(4);
    cluster = await startRabbitCluster({ dir, basePort, authUrl: `http://127.0.0.1:${auth.port}/internal/rabbitmq`, exchange: EXCHANGE });
    haproxy = await startHaproxy({ dir, listeners: [{ name: 'mqtt', port: basePort + 80, mode: 'tcp', backends: cluster.nodes.map((n) => ({ host: '127.0.0.1', port: n.mqttPort })) }] });
    password = readFileSync(cluster.passwordFile, 'utf8').trim();
  }, 150_000);

  afterAll(async () => {
    for (const c of clients) c.end(true);
    for (const c of conns) await c.close().catch(() => undefined);
    await haproxy?.stop();
    await cluster?.stop({ graceMs: 5_000 });
    await new Promise((r) => auth?.server.close(r));
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('forms one cluster of three running nodes, with no default user and a 0600 password file', async () => {
    const status = await cluster!.clusterStatus(1);
    expect(status.running.sort()).toEqual(cluster!.nodes.map((n) => n.name).sort());
    expect(new Set(cluster!.nodes.map((n) => n.pid)).size).toBe(3);
    for (const n of cluster!.nodes) expect(readFileSync(`/proc/${n.pid}/cmdline`, 'utf8')).toContain('beam');
    expect(statSync(cluster!.passwordFile).mode & 0o777).toBe(0o600);
    const users = JSON.parse((await cluster!.ctl(['list_users', '--formatter', 'json'])).stdout) as { user: string; tags: string[] }[];
    expect(users).toEqual([{ user: 'eldergate', tags: ['administrator'] }]);
    for (const url of cluster!.amqpUrls) expect(url).not.toContain('@');
  });

  // RabbitMQ 3.10.8, found here: the MQTT plugin's publish into a missing exchange kills the connection's internal AMQP
  // channel (404 in the node's log), but the MQTT connection stays open — no PUBACK, no close — and every later
  // publish on it goes unacknowledged too, even once the exchange exists. A device that connected before eldergate
  // declared its topology is stuck until it reconnects: the topology must exist before devices can connect at all.
  let early: mqtt.MqttClient;
  it('a QoS 1 publish before the exchange exists gets no PUBACK, and the connection stays open without one', async () => {
    early = await mqttConnect(haproxy!.ports.mqtt!, 'dev-early');
    clients.push(early);
    expect(await publishQos1(early, 'devices/dev-early/events', '{"seq":1}', 4_000)).toBe('timeout');
    expect(early.connected).toBe(true);
  });

  it('quorum queue on all three nodes; an MQTT QoS 1 publish through HAProxy is in it when PUBACKed', async () => {
    const conn = await amqpConnect(0);
    const ch = await conn.createChannel();
    await ch.assertExchange(EXCHANGE, 'topic', { durable: true });
    await ch.assertQueue(QUEUE, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
    await ch.bindQueue(QUEUE, EXCHANGE, 'devices.#');
    const q = await queueInfo();
    expect(q.type).toBe('quorum');
    expect(q.members.sort()).toEqual(cluster!.nodes.map((n) => n.name).sort());

    const c = await mqttConnect(haproxy!.ports.mqtt!, 'dev-1');
    clients.push(c);
    expect(await publishQos1(c, 'devices/dev-1/events', '{"seq":1,"type":"sos"}')).toBe('puback');
    const got = await ch.get(QUEUE, { noAck: false });
    expect(got && got.fields.routingKey).toBe('devices.dev-1.events');
    expect(got && got.content.toString()).toBe('{"seq":1,"type":"sos"}');
    ch.ack(got as amqp.GetMessage);
    c.end(true);

    // the connection that published before the exchange existed is still without acknowledgements
    expect(await publishQos1(early, 'devices/dev-early/events', '{"seq":2}', 3_000)).toBe('timeout');
    early.end(true);
  });

  it('kill -9 of the queue leader\'s node: confirmed publish, consume and MQTT through HAProxy still work', { timeout: 60_000 }, async () => {
    const leader = (await queueInfo()).leader;
    const victim = cluster!.nodes.findIndex((n) => n.name === leader);
    expect(victim).toBeGreaterThanOrEqual(0);
    // a clean-session device subscribed with QoS 1 (its commands) on the node about to die: its subscription queue is
    // a durable classic queue there, mirrored by the cluster's mqtt-sessions policy
    const sub = await mqttConnect(cluster!.nodes[victim]!.mqttPort, 'dev-s');
    clients.push(sub);
    await sub.subscribeAsync('devices/dev-s/commands', { qos: 1 });
    for (let t = 0; ; t++) {
      const r = await cluster!.ctl(['list_queues', '-p', '/', 'name', 'policy', 'synchronised_slave_pids', '--formatter', 'json'], (victim + 1) % 3);
      const q = (JSON.parse(r.stdout) as { name: string; policy: string; synchronised_slave_pids: unknown }[]).find((x) => x.name === 'mqtt-subscription-dev-sqos1');
      if (q?.policy === 'mqtt-sessions' && Array.isArray(q.synchronised_slave_pids) && q.synchronised_slave_pids.length > 0) break;
      expect(t, `the subscription queue is not mirrored: ${JSON.stringify(q)}`).toBeLessThan(40);
      await sleep(250);
    }

    const pid = cluster!.nodes[victim]!.pid!;
    await cluster!.kill(victim);
    expect(isAlive(pid)).toBe(false);
    const live = (victim + 1) % 3;

    const conn = await amqpConnect(live);
    // RabbitMQ 3.10.8, found here: a confirm channel whose first publish to the quorum queue meets the dead leader
    // gets a nack, and every later publish on that channel too (seen for 40 s), while a new channel is confirmed at
    // once. So: on a nack, publish again on a new channel — what eldergate's publisher must do as well.
    let nacks = 0;
    for (;;) {
      const ch = await conn.createConfirmChannel();
      ch.on('error', () => undefined);
      try {
        ch.publish(EXCHANGE, 'devices.dev-2.events', Buffer.from('after the crash'), { persistent: true });
        await ch.waitForConfirms();
        break;
      } catch {
        nacks++;
        expect(nacks, 'confirms keep failing after the crash').toBeLessThan(40);
        await ch.close().catch(() => undefined);
        await sleep(250);
      }
    }
    console.log(`publish after kill -9 of the queue leader: ${nacks} nack(s) before a confirm`);
    const consumer = await conn.createChannel();
    const received = new Promise<string>((resolve) => {
      void consumer.consume(QUEUE, (m) => {
        if (!m) return;
        consumer.ack(m);
        resolve(m.content.toString());
      });
    });
    expect(await received).toBe('after the crash');

    // that device logs in again through HAProxy, on a live node, and keeps its subscription (without the policy:
    // "home node ... of durable queue ... is down", and no CONNACK anywhere until the node returns)
    const again = await mqttConnect(haproxy!.ports.mqtt!, 'dev-s');
    clients.push(again);
    await again.subscribeAsync('devices/dev-s/commands', { qos: 1 });
    again.end(true);

    // HAProxy: new devices reach a live node (a connect to the dead one is refused and redispatched)
    for (let k = 0; k < 3; k++) {
      const c = await mqttConnect(haproxy!.ports.mqtt!, `dev-k${k}`);
      clients.push(c);
      expect(await publishQos1(c, `devices/dev-k${k}/events`, `{"seq":${k}}`)).toBe('puback');
      c.end(true);
    }
  });

  it('start(i) brings the killed node back with its data and it rejoins', { timeout: 90_000 }, async () => {
    const down = cluster!.nodes.findIndex((n) => !n.pid);
    expect(down).toBeGreaterThanOrEqual(0);
    await cluster!.start(down);
    expect(isAlive(cluster!.nodes[down]!.pid)).toBe(true);
    const status = await cluster!.clusterStatus(down);
    expect(status.running.sort()).toEqual(cluster!.nodes.map((n) => n.name).sort());
    for (let t = 0; ; t++) {
      const q = await queueInfo();
      if (q.online.length === 3) break;
      expect(t, `quorum queue members online: ${q.online.join(', ')}`).toBeLessThan(60);
      await sleep(500);
    }
  });

  it('what RabbitMQ 3.10\'s HTTP auth backend sends (for the auth endpoints\' author)', () => {
    const kinds = new Map<string, AuthRequest>();
    for (const r of auth.requests) {
      const kind = `${r.path} ${r.body.resource ?? ''} ${r.body.permission ?? ''}`;
      if (!kinds.has(kind)) kinds.set(kind, r);
    }
    // printed for the record: which fields each request carries (client_id or not)
    console.log('auth backend requests, one of each kind:\n' + [...kinds.values()].map((r) => `POST ${r.path} ${JSON.stringify({ ...r.body, password: r.body.password ? '<redacted>' : undefined })}`).join('\n'));
    expect(new Set(auth.requests.map((r) => r.path))).toEqual(new Set(['/internal/rabbitmq/resource', '/internal/rabbitmq/topic', '/internal/rabbitmq/user', '/internal/rabbitmq/vhost']));
    // what the auth endpoints' author relies on: client_id in user/vhost/resource, variable_map.client_id in topic
    const user = auth.requests.find((r) => r.path.endsWith('/user'))!;
    expect(user.body.client_id).toBe(user.body.username);
    const topic = auth.requests.find((r) => r.path.endsWith('/topic'))!;
    expect(topic.body['variable_map.client_id']).toBe(topic.body.username);
  });

  it('stop() leaves no process of this cluster: nodes, their shells, epmd, HAProxy', { timeout: 60_000 }, async () => {
    for (const c of clients) c.end(true);
    for (const c of conns.splice(0)) await c.close().catch(() => undefined);
    const pids = [...cluster!.nodes.flatMap((n) => [n.pid, n.wrapperPid]), cluster!.epmdPid, haproxy!.pid];
    await haproxy!.stop();
    await cluster!.stop();
    for (const pid of pids) expect(isAlive(pid), `pid ${pid}`).toBe(false);
    expect(pidsMentioning(dir)).toEqual([]);
    let pgrep = '';
    try {
      pgrep = execFileSync('pgrep', ['-af', dir], { encoding: 'utf8' });
    } catch {
      // exit code 1: nothing matched
    }
    expect(pgrep).toBe('');
    expect(await portFree(cluster!.epmdPort)).toBe(true);
  });
});

describe('npm run cluster: what it says before anything starts', () => {
  const ROOT = resolve(import.meta.dirname, '..', '..');
  const cli = (...args: string[]) => new Promise<{ code: number; out: string; err: string }>((res) => {
    execFile(process.execPath, ['--import', 'tsx', 'ops/cluster/cli.ts', ...args], { cwd: ROOT }, (error, stdout, stderr) => {
      res({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, out: stdout, err: stderr });
    });
  });

  it('refuses an unknown command and a base port without room, naming what to give', async () => {
    const bad = await cli('restart');
    expect(bad.code).toBe(64);
    expect(bad.err).toContain('usage: npm run cluster -- start|stop|status');
    const port = await cli('start', '--base-port', '80');
    expect(port.code).toBe(64);
    expect(port.err).toMatch(/--base-port: "80" is not a port from 1024/);
  });

  it('status and stop of a directory with no cluster say so', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'eldergate-infra-cli-'));
    try {
      const status = await cli('status', '--dir', dir);
      expect(status.code).toBe(1);
      expect(status.out).toContain(`no cluster in ${dir}`);
      const stop = await cli('stop', '--dir', dir);
      expect(stop.code).toBe(0);
      expect(stop.out).toContain('no ');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  // the PostgreSQL part of status and stop, without the half minute of a whole cluster: a real server of the
  // cluster's directory and a cluster.json that knows only it (start's other parts are the tests above)
  it('status shows PostgreSQL up with its password file (never the password); stop stops it', { timeout: 30_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'eldergate-infra-cli-pg-'));
    const pg = await startTestPostgres({ dir: join(dir, 'postgres'), band: 4, fsync: false });
    try {
      const record: ClusterRecord = {
        dir,
        basePort: pg.port - 83,
        startedAt: new Date().toISOString(),
        postgres: { pid: pg.pid, port: pg.port, dir: pg.dir, dataDir: pg.dataDir, log: pg.log, database: pg.database, user: pg.user, passwordFile: pg.passwordFile },
      };
      writeFileSync(join(dir, 'cluster.json'), JSON.stringify(record));
      const password = readFileSync(pg.passwordFile, 'utf8').trim();
      const up = await cli('status', '--dir', dir);
      expect(up.out).toMatch(new RegExp(`up +PostgreSQL +127\\.0\\.0\\.1:${pg.port} .*password file ${pg.passwordFile} +pid ${pg.pid}`));
      expect(up.out + up.err).not.toContain(password);
      // HAProxy and the rest never started: not all up
      expect(up.code).toBe(1);

      const stop = await cli('stop', '--dir', dir);
      expect(stop.err).toBe('');
      expect(stop.code).toBe(0);
      expect(isAlive(pg.pid)).toBe(false);
      expect(pidsMentioning(pg.dir)).toEqual([]);
      expect((await cli('status', '--dir', dir)).out).toMatch(/DOWN PostgreSQL +127\.0\.0\.1/);
    } finally {
      await pg.stop({ graceMs: 5_000 });
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
