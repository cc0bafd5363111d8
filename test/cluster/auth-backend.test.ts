// RabbitMQ's HTTP auth backend answered by eldergate (gateway/cluster/auth-backend.ts), with a real RabbitMQ 3.10 node
// (Debian's rabbitmq-server: MQTT plugin, rabbitmq_auth_backend_http) and the real `mqtt` client as the device: the
// promises of the embedded broker's authenticate / authorizePublish / authorizeSubscribe hold through RabbitMQ.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import amqp, { type Channel, type ChannelModel } from 'amqplib';
import { loadConfig, type Config } from '../../core/config.js';
import { createLogger } from '../../core/logger.js';
import { createMetrics, type Metrics } from '../../core/metrics.js';
import { openStore, type Store } from '../../core/db.js';
import { Bus } from '../../core/bus.js';
import type { DeviceKind } from '../../core/contracts.js';
import { DeviceRegistry } from '../../devices/registry.js';
import { SecretHasher } from '../../devices/credentials.js';
import { AUTH_BODY_LIMIT, startAuthBackend, type AuthBackend } from '../../gateway/cluster/auth-backend.js';
import { waitFor } from '../helpers/gateway.js';
import { startTestRabbit, type TestRabbit } from '../helpers/cluster-ports.js';

interface Device { id: string; secret: string }

describe('the auth backend RabbitMQ asks: devices through a real RabbitMQ node', () => {
  const dir = mkdtempSync(join(tmpdir(), 'eldergate-auth-'));
  const lines: string[] = [];
  const log = createLogger('debug', { write: (s: string) => { lines.push(s); } });
  let store: Store;
  let registry: DeviceRegistry;
  let config: Config;
  let metrics: Metrics;
  let backend: AuthBackend;
  let rabbit: TestRabbit;
  let amqpConn: ChannelModel;
  let ch: Channel;
  /** what reached the exchange from devices, as the consumer would see it */
  const routed: { key: string; body: string }[] = [];
  const clients: MqttClient[] = [];
  let phone: Device, sensor: Device, other: Device, suspended: Device, retired: Device, watch: Device;

  const connect = (d: { id: string; secret: string }, extra: IClientOptions = {}) => new Promise<MqttClient>((resolve, reject) => {
    const c = mqtt.connect(`mqtt://127.0.0.1:${rabbit.mqttPort}`, {
      clientId: d.id, username: d.id, password: d.secret, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 10_000, ...extra,
    });
    clients.push(c);
    c.once('connect', () => resolve(c));
    c.once('error', (err) => { c.end(true); reject(err); });
    c.once('close', () => reject(new Error('closed before CONNACK')));
  });
  const closed = (c: MqttClient) => new Promise<void>((r) => (c.connected ? c.once('close', () => r()) : r()));

  beforeAll(async () => {
    store = openStore(join(dir, 'eldergate.db'));
    registry = new DeviceRegistry(store.db, new SecretHasher(Buffer.alloc(32, 9)), new Bus());
    const provision = (kind: DeviceKind, serial: string): Device => {
      const { device, secret } = registry.provision({ kind, serial });
      return { id: device.id, secret };
    };
    phone = provision('call-phone', 'AUTH-PHONE-1');
    sensor = provision('fall-sensor', 'AUTH-FALL-1');
    other = provision('call-phone', 'AUTH-PHONE-2');
    suspended = provision('locator', 'AUTH-LOC-1');
    registry.setState(suspended.id, 'suspended');
    retired = provision('call-phone', 'AUTH-PHONE-3');
    registry.setState(retired.id, 'decommissioned');
    // a watch speaks its own TCP protocol (gateway/protocols), never MQTT
    watch = provision('watch', 'AUTH-WATCH-1');
    config = loadConfig({}, {
      dataDir: dir, logLevel: 'debug',
      rabbitmq: { authHost: '127.0.0.1', authPort: 0, vhost: '/', exchange: 'eldergate.mqtt' },
      limits: { logBurst: 3, logWindowMs: 60_000 },
    });
    metrics = createMetrics();
    backend = await startAuthBackend({ config, registry, log, metrics });
    rabbit = await startTestRabbit({ band: 2, dir: join(dir, 'rabbit'), authUrl: `http://127.0.0.1:${backend.port}/internal/rabbitmq` });
    // eldergate's own service user (internal to RabbitMQ) declares the exchange the MQTT plugin publishes into
    amqpConn = await amqp.connect(rabbit.amqpUrl);
    ch = await amqpConn.createChannel();
    await ch.assertExchange(config.rabbitmq.exchange, 'topic', { durable: true });
    const { queue } = await ch.assertQueue('', { exclusive: true });
    await ch.bindQueue(queue, config.rabbitmq.exchange, 'devices.#');
    await ch.bindQueue(queue, config.rabbitmq.exchange, '$SYS.#');
    await ch.consume(queue, (m) => { if (m) routed.push({ key: m.fields.routingKey, body: m.content.toString() }); }, { noAck: true });
  }, 90_000);

  afterAll(async () => {
    for (const c of clients) c.end(true);
    await amqpConn?.close().catch(() => {});
    await rabbit?.stop();
    await backend?.close();
    store?.close();
    rmSync(dir, { recursive: true, force: true });
  }, 30_000);

  it('a device with its secret connects, publishes QoS 1 on its own channels and receives its commands', async () => {
    const c = await connect(phone);
    const granted = await c.subscribeAsync(`devices/${phone.id}/commands`, { qos: 1 });
    expect(granted).toEqual([{ topic: `devices/${phone.id}/commands`, qos: 1 }]);
    for (const channel of ['events', 'telemetry', 'status', 'commands/ack']) {
      // resolves on the PUBACK
      await c.publishAsync(`devices/${phone.id}/${channel}`, JSON.stringify({ channel }), { qos: 1 });
    }
    await waitFor(() => routed.filter((m) => m.key.startsWith(`devices.${phone.id}.`)).length === 4, 'the four messages routed');
    expect(routed.filter((m) => m.key.startsWith(`devices.${phone.id}.`)).map((m) => m.key)).toEqual(
      ['events', 'telemetry', 'status', 'commands.ack'].map((s) => `devices.${phone.id}.${s}`));
    // a command from eldergate reaches the device on its subscription
    const got = new Promise<string>((r) => c.once('message', (topic, payload) => r(`${topic} ${payload.toString()}`)));
    ch.publish(config.rabbitmq.exchange, `devices.${phone.id}.commands`, Buffer.from('{"type":"acknowledge-alarm"}'));
    expect(await got).toBe(`devices/${phone.id}/commands {"type":"acknowledge-alarm"}`);
    // another MQTT kind too
    const s = await connect(sensor);
    await s.publishAsync(`devices/${sensor.id}/events`, '{"type":"fall"}', { qos: 1 });
    const allowed = await metrics.registry.getSingleMetricAsString('eldergate_rabbitmq_auth_total');
    for (const kind of ['user', 'vhost', 'resource', 'topic']) expect(allowed).toContain(`kind="${kind}",result="allow"`);
  });

  it('refuses a wrong secret, an unknown device, a suspended or decommissioned one, a non-MQTT kind, clientId ≠ username', async () => {
    const refusedConnect = async (d: Device, extra: IClientOptions = {}) => {
      const err = await connect(d, extra).then(() => undefined, (e: Error & { code?: number }) => e);
      expect(err, `${d.id} ${JSON.stringify(extra)} must be refused`).toBeDefined();
      // CONNACK 5 (not authorised) or 4 (bad user name or password): never connected
      expect([4, 5]).toContain(err!.code);
    };
    await refusedConnect({ id: phone.id, secret: 'wrong-secret-' + 'x'.repeat(20) });
    await refusedConnect({ id: 'cp-nosuchdevice', secret: phone.secret });
    await refusedConnect(suspended);
    await refusedConnect(retired);
    await refusedConnect(watch);
    await refusedConnect(phone, { clientId: other.id });
    await refusedConnect(phone, { clientId: 'anything-else' });
    // not a device id at all (a secret pasted into the username, say)
    await refusedConnect({ id: phone.secret, secret: phone.secret }, { clientId: phone.id });
    const refused = await metrics.registry.getSingleMetricAsString('eldergate_refused_total');
    for (const reason of ['bad-secret', 'unknown-device', 'suspended', 'decommissioned', 'kind does not connect over MQTT', 'client id differs from username', 'username is not a device id']) {
      expect(refused).toContain(`stage="rabbitmq-user",reason="${reason}"`);
    }
    // the device with the right secret still gets in afterwards
    (await connect(phone, { clientId: phone.id })).end(true);
  });

  it('refuses subscriptions outside the device contract: another device, #, +, $SYS', async () => {
    for (const filter of [`devices/${other.id}/commands`, '#', 'devices/+/commands', '$SYS/#', `devices/${phone.id}/events`, `devices/${phone.id}/#`]) {
      const c = await connect(phone);
      const seen: string[] = [];
      c.on('message', (t) => seen.push(t));
      const outcome = await c.subscribeAsync(filter, { qos: 1 }).then((g) => `granted ${g[0]?.qos}`, () => 'closed');
      // RabbitMQ 3.10 closes the connection of a device subscribing where it may not (the embedded broker answers
      // SUBACK 0x80 and keeps it): either way, no subscription
      expect(['closed', 'granted 128'], filter).toContain(outcome);
      ch.publish(config.rabbitmq.exchange, `devices.${other.id}.commands`, Buffer.from('{}'));
      ch.publish(config.rabbitmq.exchange, `devices.${phone.id}.events`, Buffer.from('{}'));
      await new Promise((r) => setTimeout(r, 100));
      expect(seen, filter).toEqual([]);
      c.end(true);
    }
    const refused = await metrics.registry.getSingleMetricAsString('eldergate_refused_total');
    expect(refused).toContain('stage="rabbitmq-topic",reason="subscribe outside the device contract"');
  });

  it('refuses publishing to another device\'s topic, $SYS, or outside devices/<id>/: not routed, no PUBACK', async () => {
    for (const topic of [`devices/${other.id}/events`, '$SYS/broker/x', `devices/${phone.id}/commands`, `devices/${phone.id}/other`, 'alarms']) {
      const c = await connect(phone);
      const before = routed.length;
      const outcome = await Promise.race([
        c.publishAsync(topic, '{"type":"sos"}', { qos: 1 }).then(() => 'puback', () => 'error'),
        closed(c).then(() => 'closed'),
        new Promise((r) => setTimeout(() => r('no answer'), 3000)),
      ]);
      // RabbitMQ 3.10 closes the connection of a device publishing where it may not
      expect(outcome, topic).not.toBe('puback');
      expect(routed.length, topic).toBe(before);
      c.end(true);
    }
    const refused = await metrics.registry.getSingleMetricAsString('eldergate_refused_total');
    expect(refused).toContain('stage="rabbitmq-topic",reason="publish outside the device contract"');
  });

  it('answers deny to malformed questions and keeps answering', async () => {
    const url = (kind: string) => `http://127.0.0.1:${backend.port}/internal/rabbitmq/${kind}`;
    const post = async (kind: string, body: string, type = 'application/x-www-form-urlencoded') => {
      const res = await fetch(url(kind), { method: 'POST', headers: { 'content-type': type }, body });
      return `${res.status} ${await res.text()}`;
    };
    const form = (o: Record<string, string>) => new URLSearchParams(o).toString();
    const good = form({ username: phone.id, password: phone.secret, vhost: '/', client_id: phone.id });
    expect(await post('user', good)).toBe('200 allow');
    expect(await post('user', form({ username: phone.id, vhost: '/', client_id: phone.id }))).toBe('200 deny'); // no password
    expect(await post('user', '')).toBe('200 deny');
    expect(await post('user', `${good}&username=${other.id}`)).toBe('200 deny');
    expect(await post('user', `${good}&pad=${'x'.repeat(AUTH_BODY_LIMIT)}`)).toBe('200 deny');
    expect(await post('user', JSON.stringify({ username: phone.id, password: phone.secret }), 'application/json')).toBe('200 deny');
    expect(await post('topic', form({ username: phone.id, vhost: '/', client_id: phone.id, resource: 'topic', name: 'eldergate.mqtt', permission: 'write' }))).toBe('200 deny');
    expect(await post('topic', form({ username: phone.id, vhost: '/', 'variable_map.client_id': phone.id, resource: 'topic', name: 'eldergate.mqtt', permission: 'configure', routing_key: `devices.${phone.id}.events` }))).toBe('200 deny');
    expect(await post('resource', form({ username: phone.id, vhost: '/', client_id: phone.id, resource: 'exchange', name: 'eldergate.mqtt', permission: 'configure' }))).toBe('200 deny');
    expect(await post('resource', form({ username: phone.id, vhost: '/', client_id: phone.id, resource: 'queue', name: `mqtt-subscription-${other.id}qos1`, permission: 'read' }))).toBe('200 deny');
    expect(await post('vhost', form({ username: phone.id, vhost: 'other', client_id: phone.id }))).toBe('200 deny');
    // an AMQP login with a device's secret carries no client id: the secret opens MQTT only
    expect(await post('user', form({ username: phone.id, password: phone.secret, vhost: '/' }))).toBe('200 deny');
    const get = await fetch(`${url('user')}?${good}`);
    expect(`${get.status} ${await get.text()}`).toBe('404 deny');
    expect(await post('user', good)).toBe('200 allow');
    const counted = await metrics.registry.getSingleMetricAsString('eldergate_rabbitmq_auth_total');
    expect(counted).toMatch(/kind="user",result="malformed"} [4-9]/);
    expect(counted).toContain('kind="other",result="malformed"} 1');
  });

  it('never writes a secret, and writes repeated refusals a few times per window', async () => {
    const text = lines.join('');
    for (const d of [phone, sensor, other, suspended, retired, watch]) expect(text).not.toContain(d.secret);
    expect(text).not.toContain('wrong-secret-');
    // the bad-secret refusals of the phone (4: the connect above and 3 more) are written at most logBurst times
    const c = Array.from({ length: 4 }, () => connect({ id: phone.id, secret: 'wrong-secret-again-000000' }).catch(() => undefined));
    await Promise.all(c);
    const badSecretLines = lines.filter((l) => l.includes('"reason":"bad-secret"') && l.includes(phone.id));
    expect(badSecretLines.length).toBeLessThanOrEqual(3);
    expect(lines.join('')).not.toContain('wrong-secret-again');
    const refusal = JSON.parse(badSecretLines[0]!);
    expect(refusal).toMatchObject({ module: 'rabbitmq-auth', kind: 'user', reason: 'bad-secret', deviceId: phone.id, clientId: phone.id });
    expect(refusal).not.toHaveProperty('password');
  });
});
