// Closing a revoked device's MQTT connections in RabbitMQ through its management API (gateway/cluster/revoke.ts),
// as the embedded broker's onRevoked does: a real RabbitMQ 3.10 node, the auth backend, a registry and the mqtt client.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer } from 'node:net';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import amqp, { type ChannelModel } from 'amqplib';
import { loadConfig, type Config } from '../../core/config.js';
import { createLogger } from '../../core/logger.js';
import { createMetrics, type Metrics } from '../../core/metrics.js';
import { openStore, type Store } from '../../core/db.js';
import { Bus } from '../../core/bus.js';
import { DeviceRegistry } from '../../devices/registry.js';
import { SecretHasher } from '../../devices/credentials.js';
import { startAuthBackend, type AuthBackend } from '../../gateway/cluster/auth-backend.js';
import { closeOnRevoke, createRevoker, type Revoker } from '../../gateway/cluster/revoke.js';
import { waitFor } from '../helpers/gateway.js';
import { startTestRabbit, type TestRabbit } from '../helpers/cluster-ports.js';

interface Device { id: string; secret: string }

describe('a revoked device\'s connections closed through RabbitMQ\'s management API', () => {
  const dir = mkdtempSync(join(tmpdir(), 'eldergate-revoke-'));
  const lines: string[] = [];
  const log = createLogger('debug', { write: (s: string) => { lines.push(s); } });
  const bus = new Bus();
  let store: Store;
  let registry: DeviceRegistry;
  let metrics: Metrics;
  let backend: AuthBackend;
  let rabbit: TestRabbit;
  let amqpConn: ChannelModel;
  let config: Config;
  let revoker: Revoker;
  const others: Revoker[] = [];
  const clients: MqttClient[] = [];
  /** what closeDevice answered for each revocation, as eldergate.ts would call it */
  const revocations: Promise<number>[] = [];

  const connect = (d: Device, extra: IClientOptions = {}) => new Promise<MqttClient>((resolve, reject) => {
    const c = mqtt.connect(`mqtt://127.0.0.1:${rabbit.mqttPort}`, {
      clientId: d.id, username: d.id, password: d.secret, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 10_000, ...extra,
    });
    clients.push(c);
    c.once('connect', () => resolve(c));
    c.once('error', (err) => { c.end(true); reject(err); });
    c.once('close', () => reject(new Error('closed before CONNACK')));
  });
  const provision = (serial: string): Device => {
    const { device, secret } = registry.provision({ kind: 'call-phone', serial });
    return { id: device.id, secret };
  };
  let unwire = () => {};
  const wire = () => {
    unwire = closeOnRevoke(bus, { closeDevice: (id, why) => { const n = revoker.closeDevice(id, why); revocations.push(n); return n; } });
  };
  /**
   * Its CONNECT is refused (CONNACK 4/5), at once without an auth cache in front of the backend; with one
   * (rabbitmq_auth_backend_cache), a login it remembers is let in until its TTL ends: such a connection is ended here
   * (the revoker's second sweep would close it) and the device tries again.
   */
  const refusedOnceForgotten = (d: Device) => waitFor(
    () => connect(d).then((c) => { c.end(true); return false; }, (err: Error & { code?: number }) => [4, 5].includes(err.code ?? -1)),
    `${d.id}'s CONNECT refused`, 20_000, 500);
  const counted = async () => metrics.registry.getSingleMetricAsString('eldergate_rabbitmq_revocations_total');

  beforeAll(async () => {
    store = openStore(join(dir, 'eldergate.db'));
    registry = new DeviceRegistry(store.db, new SecretHasher(Buffer.alloc(32, 5)), bus);
    metrics = createMetrics();
    const authConfig = loadConfig({}, { dataDir: dir, rabbitmq: { authHost: '127.0.0.1', authPort: 0 } });
    backend = await startAuthBackend({ config: authConfig, registry, log, metrics });
    rabbit = await startTestRabbit({ band: 3, dir: join(dir, 'rabbit'), authUrl: `http://127.0.0.1:${backend.port}/internal/rabbitmq` });
    amqpConn = await amqp.connect(rabbit.amqpUrl);
    const ch = await amqpConn.createChannel();
    await ch.assertExchange('eldergate.mqtt', 'topic', { durable: true });
    config = loadConfig({}, {
      dataDir: dir,
      rabbitmq: { authHost: '127.0.0.1', authPort: 0, managementUrl: rabbit.managementUrl, username: rabbit.username, passwordFile: rabbit.passwordFile },
    });
    revoker = createRevoker({ config, log, metrics, resweepAfterMs: 0 });
    // as eldergate.ts wires it (closeOnRevoke), keeping what each closeDevice answered
    wire();
  }, 90_000);

  afterAll(async () => {
    for (const c of clients) c.end(true);
    await revoker?.close();
    for (const r of others) await r.close();
    await amqpConn?.close().catch(() => {});
    await rabbit?.stop();
    await backend?.close();
    store?.close();
    rmSync(dir, { recursive: true, force: true });
  }, 30_000);

  it('a suspended device is disconnected at once and cannot come back', async () => {
    const d = provision('REV-PHONE-1');
    const c = await connect(d);
    await c.publishAsync(`devices/${d.id}/events`, '{"type":"sos"}', { qos: 1 });
    const gone = new Promise<void>((r) => c.once('close', () => r()));
    registry.setState(d.id, 'suspended');
    expect(await revocations.at(-1)).toBe(1);
    await gone;
    await refusedOnceForgotten(d);
    // RabbitMQ logged why (the X-Reason header)
    await waitFor(() => readFileSync(rabbit.log, 'utf8').includes('eldergate: device revoked (suspended)'), 'RabbitMQ logging the X-Reason');
    expect(await counted()).toMatch(/result="closed"} 1/);
  });

  it('a rotated secret: the connection holding the old one is closed, the old secret refused, the new one let in', async () => {
    const d = provision('REV-PHONE-2');
    const a = await connect(d);
    // a second connection of the same device (clean session each): both are closed
    const b = await connect(d, { clientId: d.id });
    const bothGone = Promise.all([a, b].map((c) => (c.connected ? new Promise<void>((r) => c.once('close', () => r())) : Promise.resolve())));
    const { secret } = registry.rotateSecret(d.id);
    expect(await revocations.at(-1)).toBeGreaterThanOrEqual(1);
    await bothGone;
    await refusedOnceForgotten(d);
    const fresh = await connect({ id: d.id, secret });
    await fresh.publishAsync(`devices/${d.id}/events`, '{"type":"sos"}', { qos: 1 });
    fresh.end(true);
  });

  it('a device with no connection: 0, counted as none', async () => {
    const d = provision('REV-PHONE-3');
    registry.setState(d.id, 'decommissioned');
    expect(await revocations.at(-1)).toBe(0);
    expect(await counted()).toMatch(/result="none"} 1/);
  });

  it('a connection RabbitMQ\'s auth cache lets in after the first sweep is closed by the second', async () => {
    const d = provision('REV-PHONE-4');
    const first = await connect(d);
    const late = createRevoker({ config, log, metrics, resweepAfterMs: 1000 });
    others.push(late);
    unwire();
    registry.setState(d.id, 'suspended');
    wire();
    const firstGone = new Promise<void>((r) => first.once('close', () => r()));
    expect(await late.closeDevice(d.id, 'suspended')).toBe(1);
    await firstGone;
    // the cache still holds the `allow` of its login with this secret: the suspended device is let in again
    const again = await connect(d);
    await new Promise<void>((r) => again.once('close', () => r()));
  });

  it('the management API unreachable or refusing: 0, logged and counted, never thrown', async () => {
    const d = provision('REV-PHONE-5');
    // a port nothing listens on (taken from the kernel, then let go)
    const deadPort = await new Promise<number>((r) => { const srv = createServer().listen(0, '127.0.0.1', () => { const { port } = srv.address() as { port: number }; srv.close(() => r(port)); }); });
    const dead = createRevoker({ config: { ...config, rabbitmq: { ...config.rabbitmq, managementUrl: `http://127.0.0.1:${deadPort}` } }, log, metrics, resweepAfterMs: 0, attempts: 2 });
    others.push(dead);
    expect(await dead.closeDevice(d.id, 'suspended')).toBe(0);
    const wrongPassword = join(dir, 'wrong-password');
    writeFileSync(wrongPassword, 'not-the-password\n', { mode: 0o600 });
    const refused = createRevoker({ config: { ...config, rabbitmq: { ...config.rabbitmq, passwordFile: wrongPassword } }, log, metrics, resweepAfterMs: 0 });
    others.push(refused);
    expect(await refused.closeDevice(d.id, 'suspended')).toBe(0);
    expect(await refused.closeDevice('../../api/users', 'suspended')).toBe(0);
    // a monitoring user lists the device's connections but RabbitMQ 3.10.8 answers 500 to its DELETE: the
    // service user needs the administrator tag, and the log says so
    const admin = { authorization: 'Basic ' + Buffer.from(`${rabbit.username}:${readFileSync(rabbit.passwordFile, 'utf8').trim()}`).toString('base64'), 'content-type': 'application/json' };
    const monPassword = randomBytes(12).toString('hex');
    expect((await fetch(`${rabbit.managementUrl}/api/users/eg-monitor`, { method: 'PUT', headers: admin, body: JSON.stringify({ password: monPassword, tags: 'monitoring' }) })).ok).toBe(true);
    expect((await fetch(`${rabbit.managementUrl}/api/permissions/%2F/eg-monitor`, { method: 'PUT', headers: admin, body: JSON.stringify({ configure: '', write: '', read: '' }) })).ok).toBe(true);
    const monFile = join(dir, 'monitor-password');
    writeFileSync(monFile, monPassword, { mode: 0o600 });
    const monitor = createRevoker({ config: { ...config, rabbitmq: { ...config.rabbitmq, username: 'eg-monitor', passwordFile: monFile } }, log, metrics, resweepAfterMs: 0, attempts: 1 });
    others.push(monitor);
    const c = await connect(d);
    expect(await monitor.closeDevice(d.id, 'suspended')).toBe(0);
    expect(c.connected).toBe(true);
    expect(lines.some((l) => l.includes('lacks the administrator tag'))).toBe(true);
    c.end(true);
    expect(await counted()).toMatch(/result="failed"} 4/);
    const warned = lines.filter((l) => l.includes('could not close a revoked device'));
    expect(warned.some((l) => l.includes('HTTP 401'))).toBe(true);
    expect(warned.some((l) => l.includes('"attempts":2'))).toBe(true);
    // the service user's password never reaches the log
    expect(lines.join('')).not.toContain(readFileSync(rabbit.passwordFile, 'utf8').trim());
  });

  it('without rabbitmq.managementUrl: said once at start, nothing closed', async () => {
    const before = lines.length;
    const none = createRevoker({ config: { ...config, rabbitmq: { ...config.rabbitmq, managementUrl: undefined } }, log, metrics });
    others.push(none);
    const said = lines.slice(before).filter((l) => l.includes('rabbitmq.managementUrl is not set'));
    expect(said).toHaveLength(1);
    expect(await none.closeDevice(provision('REV-PHONE-6').id, 'suspended')).toBe(0);
    // a management URL without the password file is a configuration error, said at start
    expect(() => createRevoker({ config: { ...config, rabbitmq: { ...config.rabbitmq, passwordFile: undefined } }, log, metrics }))
      .toThrow(/rabbitmq\.passwordFile: rabbitmq\.managementUrl is set/);
    expect(() => createRevoker({ config: { ...config, rabbitmq: { ...config.rabbitmq, passwordFile: join(dir, 'no-such-file') } }, log, metrics }))
      .toThrow(/cannot read .*no-such-file/);
    expect(lines.slice(before).filter((l) => l.includes('rabbitmq.managementUrl is not set'))).toHaveLength(1);
  });

  it('why closing is needed: RabbitMQ 3.10 keeps a connection\'s permissions, so a revoked device left connected keeps publishing', async () => {
    const d = provision('REV-PHONE-7');
    const c = await connect(d);
    await c.publishAsync(`devices/${d.id}/events`, '{"type":"sos"}', { qos: 1 });
    // revoked in the registry only: nobody closes its connection
    unwire();
    registry.setState(d.id, 'suspended');
    wire();
    // the auth backend now denies every question about it, but RabbitMQ does not ask again for this connection
    await c.publishAsync(`devices/${d.id}/events`, '{"type":"sos"}', { qos: 1 });
    expect(c.connected).toBe(true);
    const gone = new Promise<void>((r) => c.once('close', () => r()));
    expect(await revoker.closeDevice(d.id, 'suspended')).toBe(1);
    await gone;
  });
});
