// Cluster mode's consumer (gateway/cluster/rabbitmq.ts) on a real RabbitMQ node with its MQTT plugin: a terminal's
// messages reach the writer through the partitions and are acknowledged after the commit; commands reach the terminal
// through the cluster; a message the writer keeps failing is dead-lettered and raised as an incident, and its partition
// moves on; a suspended device's message is kept as a refusal, and its login with its own secret refused and shown on
// its card; what nothing routes is not lost.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import type { RabbitCluster } from '../../ops/cluster/rabbitmq.js';
import { DEAD_LETTER_INCIDENT, parseRoutingKey, topologyNames } from '../../gateway/cluster/rabbitmq.js';
import { createLogger } from '../../core/logger.js';
import { startRabbitTestGateway, type RabbitTestGateway } from '../helpers/rabbit-gateway.js';

describe('cluster mode: device messages taken from RabbitMQ', () => {
  const dir = mkdtempSync(join(tmpdir(), 'eldergate-ingress-'));
  let g: RabbitTestGateway;
  let rabbit: RabbitCluster;
  let t: TestGateway;
  let authPort = 0;

  beforeAll(async () => {
    g = await startRabbitTestGateway({ dir, band: 1, rabbitmq: { partitions: 2, deliveryLimit: 2 } });
    ({ rabbit, t, authPort } = g);
  }, 120_000);

  afterAll(async () => {
    await g?.stop();
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  const connect = (id: string, secret: string) => g.connect(id, secret, {
    will: { topic: `devices/${id}/status`, payload: Buffer.from('{"online":false}'), qos: 1, retain: true },
  });
  const incidentsOf = async (deviceId: string) => (await t.api('GET', `/api/incidents?deviceId=${deviceId}`)).body.items as { id: string; type: string; priority: string; status: string }[];

  it('parses routing keys into a device and its channel, and nothing else', () => {
    expect(parseRoutingKey('devices.cp-abcd.events')).toEqual({ deviceId: 'cp-abcd', channel: 'events', topic: 'devices/cp-abcd/events' });
    expect(parseRoutingKey('devices.cp-abcd.commands.ack')).toMatchObject({ channel: 'commands/ack' });
    for (const bad of ['devices.cp-abcd.commands', 'devices..events', 'devices.cp-abcd', 'other.cp-abcd.events', 'devices.a#b.events']) {
      expect(parseRoutingKey(bad), bad).toBeUndefined();
    }
  });

  it('an SOS opens an incident; the terminal is online from its status; "help is coming" reaches it through the cluster and its answer is recorded', async () => {
    const dev = await t.provision('call-phone');
    const c = await connect(dev.id, dev.secret);
    const commands: { id: string; type: string }[] = [];
    c.on('message', (_topic, payload) => commands.push(JSON.parse(payload.toString())));
    await c.subscribeAsync(`devices/${dev.id}/commands`, { qos: 1 });
    await c.publishAsync(`devices/${dev.id}/status`, '{"online":true}', { qos: 1, retain: true });
    await c.publishAsync(`devices/${dev.id}/events`, JSON.stringify({ ts: Date.now(), seq: 1, type: 'sos' }), { qos: 1 });
    const [incident] = await waitFor(async () => {
      const list = await incidentsOf(dev.id);
      return list.length ? list : undefined;
    }, 'the SOS incident');
    expect(incident).toMatchObject({ type: 'sos', priority: 'P1' });
    expect(t.gw.states.isOnline(dev.id)).toBe(true);

    expect((await t.api('POST', `/api/incidents/${incident!.id}/acknowledge`)).status).toBe(200);
    const cmd = await waitFor(() => commands.find((m) => m.type === 'acknowledge-alarm'), 'acknowledge-alarm at the terminal');
    await c.publishAsync(`devices/${dev.id}/commands/ack`, JSON.stringify({ id: cmd.id, ok: true }), { qos: 1 });
    await waitFor(async () => (await t.gw.commands.get(cmd.id)).status === 'acked' || undefined, 'the command acknowledged');

    // the Last Will, published by RabbitMQ when the connection dies, says offline
    c.stream.destroy();
    await waitFor(() => !t.gw.states.isOnline(dev.id) || undefined, 'offline from the Last Will');
  });

  it('a message the writer keeps failing is dead-lettered after rabbitmq.deliveryLimit deliveries and raised as a P1 incident; the partition moves on', async () => {
    const dev = await t.provision('call-phone');
    // a fault of this one message (not of the storage): writing it fails, every time
    t.gw.store.sqlite.exec(`create trigger test_poison before insert on observations when new.device_id = '${dev.id}' and new.seq = 666
      begin select raise(abort, 'injected fault for this message'); end`);
    const c = await connect(dev.id, dev.secret);
    const ts = Date.now();
    await c.publishAsync(`devices/${dev.id}/events`, JSON.stringify({ ts, seq: 666, type: 'sos' }), { qos: 1 });
    // the next message of the same device (same partition) is not held behind it for ever
    await c.publishAsync(`devices/${dev.id}/events`, JSON.stringify({ ts: ts + 1, seq: 667, type: 'fall' }), { qos: 1 });
    const dead = await waitFor(async () => (await incidentsOf(dev.id)).find((i) => i.type === DEAD_LETTER_INCIDENT), 'the dead-letter incident', 30_000, 200);
    expect(dead.priority).toBe('P1');
    const detail = (await t.api('GET', `/api/incidents/${dead.id}`)).body;
    expect(JSON.stringify(detail)).toContain(`devices.${dev.id}.events`);
    await waitFor(async () => (await incidentsOf(dev.id)).find((i) => i.type === 'fall'), 'the message after it processed', 30_000, 200);
    const metrics = await (await fetch(`${t.http}/metrics`)).text();
    expect(metrics).toMatch(/eldergate_rabbitmq_messages_total\{queue="partition",result="requeued"\} [2-9]/);
    expect(metrics).toMatch(/eldergate_rabbitmq_messages_total\{queue="dead",result="dead-lettered"\} 1/);
  });

  it('a suspended device\'s message (its connection still open: no management API here) is kept as a refusal, not processed', async () => {
    const dev = await t.provision('call-phone');
    const c = await connect(dev.id, dev.secret);
    // RabbitMQ asks about a routing key once per connection: this one was allowed before the suspension
    await c.publishAsync(`devices/${dev.id}/events`, JSON.stringify({ ts: Date.now(), seq: 1, type: 'test' }), { qos: 1 });
    await waitFor(async () => (await incidentsOf(dev.id)).length > 0 || undefined, 'the test alarm stored');
    expect((await t.api('POST', `/api/devices/${dev.id}/suspend`)).status).toBe(200);
    await c.publishAsync(`devices/${dev.id}/events`, JSON.stringify({ ts: Date.now(), seq: 2, type: 'sos' }), { qos: 1 });
    const reject = await waitFor(() => t.gw.store.sqlite.prepare('select reason from rejects where device_id = ?').get(dev.id) as { reason: string } | undefined, 'the refusal kept');
    expect(reject.reason).toMatch(/suspended/);
    expect((await incidentsOf(dev.id)).filter((i) => i.type === 'sos')).toEqual([]);
  });

  // as on one node (test/devices/suspended-connect.test.ts): someone may be pressing a suspended device's button
  it('a suspended device that logs in to RabbitMQ with its own secret is refused, and its card says why and what to do; a wrong secret raises nothing', async () => {
    const dev = await t.provision('call-phone');
    const stranger = await t.provision('call-phone');
    for (const d of [dev, stranger]) expect((await t.api('POST', `/api/devices/${d.id}/suspend`)).status).toBe(200);
    await expect(g.connect(stranger.id, 'not-its-secret')).rejects.toThrow();
    await expect(g.connect(dev.id, dev.secret)).rejects.toThrow();
    const card = await waitFor(async () => (await incidentsOf(dev.id))[0], 'the device\'s card', 20_000);
    expect(card).toMatchObject({ type: 'unreadable-messages', priority: 'P3', status: 'open' });
    const opened = (await t.api('GET', `/api/incidents/${card.id}`)).body.events[0];
    expect(opened.data.data.reason).toMatch(/suspended .* tried to connect/);
    expect(opened.data.data.reason).toContain(`POST /api/devices/${dev.id}/resume`);
    expect(await incidentsOf(dev.id)).toHaveLength(1);
    // the stranger's attempt came first: nothing for it
    expect(await incidentsOf(stranger.id)).toEqual([]);
  });

  it('a command to a terminal that is not listening is not lost in RabbitMQ: it stays pending in eldergate', async () => {
    const dev = await t.provision('call-phone');
    const before = await (await fetch(`${t.http}/metrics`)).text();
    const n0 = Number(/eldergate_rabbitmq_messages_total\{queue="unrouted",result="acked"\} (\d+)/.exec(before)?.[1] ?? 0);
    // published with confirm: no queue takes it, the alternate exchange's queue does, eldergate counts it
    await t.gw.cluster!.publishToDevice(dev.id, `devices/${dev.id}/commands`, { id: 'x', type: 'locate-now', ts: Date.now() });
    await waitFor(async () => {
      const m = await (await fetch(`${t.http}/metrics`)).text();
      return Number(/eldergate_rabbitmq_messages_total\{queue="unrouted",result="acked"\} (\d+)/.exec(m)?.[1] ?? 0) > n0 || undefined;
    }, 'the unrouted command counted');
    // the names the topology uses, for the operator's eye in RabbitMQ's management UI
    expect(topologyNames('eldergate.mqtt', 2)).toMatchObject({
      unrouted: 'eldergate.mqtt.unrouted', dead: 'eldergate.mqtt.dead',
      partitionNames: ['eldergate.mqtt.p0', 'eldergate.mqtt.p1'], eventPartitionNames: ['eldergate.mqtt.e0', 'eldergate.mqtt.e1'],
    });
  });

  it('events and command answers are routed into partitions of their own, apart from telemetry; an older node\'s binding of events into the telemetry partitions is removed at start', async () => {
    const auth = 'Basic ' + Buffer.from(`${rabbit.serviceUser}:${readFileSync(rabbit.passwordFile, 'utf8').trim()}`).toString('base64');
    const vhost = encodeURIComponent(rabbit.vhost);
    const management = async (method: string, path: string, body?: unknown) => {
      const res = await fetch(`${rabbit.managementUrl}/api${path}`, {
        method, headers: { authorization: auth, 'content-type': 'application/json' }, ...(body !== undefined && { body: JSON.stringify(body) }),
      });
      if (!res.ok) throw new Error(`${method} ${path}: HTTP ${res.status} ${await res.text()}`);
      return res.status === 204 || res.headers.get('content-length') === '0' ? null : res.json();
    };
    const routes = async () => ((await management('GET', `/exchanges/${vhost}/eldergate.mqtt/bindings/source`)) as { destination: string; routing_key: string }[])
      .map((b) => `${b.routing_key} -> ${b.destination}`).sort();
    const lanes = [
      'devices.*.commands.ack -> eldergate.mqtt.events.partitions',
      'devices.*.events -> eldergate.mqtt.events.partitions',
      'devices.*.status -> eldergate.mqtt.partitions',
      'devices.*.telemetry -> eldergate.mqtt.partitions',
    ];
    expect(await routes()).toEqual(lanes);
    const queues = ((await management('GET', `/queues/${vhost}`)) as { name: string }[]).map((q) => q.name);
    expect(queues).toEqual(expect.arrayContaining(['eldergate.mqtt.e0', 'eldergate.mqtt.e1', 'eldergate.mqtt.p0', 'eldergate.mqtt.p1']));

    // a cluster set up by a node from before the lanes: events routed into the telemetry partitions as well
    await management('POST', `/bindings/${vhost}/e/eldergate.mqtt/e/eldergate.mqtt.partitions`, { routing_key: 'devices.*.events' });
    expect(await routes()).toContain('devices.*.events -> eldergate.mqtt.partitions');
    // a node starting now (its consumers wait as standbys behind the first node's) puts the lanes right
    const lines: string[] = [];
    const other = await startTestGateway({
      rabbitmq: { urls: rabbit.amqpUrls, passwordFile: rabbit.passwordFile, authPort: authPort + 6, partitions: 2, deliveryLimit: 2, mqttPort: rabbit.nodes[0]!.mqttPort },
    }, undefined, createLogger('info', { write: (l: string) => { lines.push(l); } }));
    try {
      await Promise.race([other.gw.cluster!.ready, new Promise((_, reject) => setTimeout(() => reject(new Error(lines.join(''))), 15_000))]);
      expect(await routes()).toEqual(lanes);
    } finally {
      await other.stop();
    }
  });

  it('garbage from a terminal opens its "unreadable messages" incident, as on one node', async () => {
    const dev = await t.provision('call-phone');
    const c = await connect(dev.id, dev.secret);
    await c.publishAsync(`devices/${dev.id}/events`, Buffer.from([0xff, 0x00, 0x13]), { qos: 1 });
    const inc = await waitFor(async () => (await incidentsOf(dev.id)).find((i) => i.type === 'unreadable-messages'), 'the unreadable incident', 20_000);
    expect(inc.priority).toBe('P3');
  });

  it('a node configured with fewer partitions than exist does not consume, and says which queue would be stranded', async () => {
    const lines: string[] = [];
    const other = await startTestGateway({
      rabbitmq: { urls: rabbit.amqpUrls, passwordFile: rabbit.passwordFile, authPort: authPort + 5, partitions: 1, mqttPort: rabbit.nodes[0]!.mqttPort },
    }, undefined, createLogger('info', { write: (l: string) => { lines.push(l); } }));
    try {
      const line = await waitFor(() => lines.find((l) => l.includes('eldergate.mqtt.p1 exists')), 'the refusal logged', 20_000);
      expect(line).toMatch(/rabbitmq\.partitions was lowered/);
      expect(other.gw.cluster!.connected()).toBe(false);
      expect((await fetch(`${other.http}/readyz`)).status).toBe(503);
    } finally {
      await other.stop();
    }
  });
});
