// Closing a revoked device's MQTT connections in RabbitMQ through its management API (gateway/cluster/revoke.ts),
// as the embedded broker's onRevoked does: a real RabbitMQ 3.10 node, the auth backend, a registry and the mqtt client.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { spawn, type ChildProcess } from 'node:child_process';
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
    unwire = closeOnRevoke(bus, { closeDevice: (id, why) => { const n = revoker.closeDevice(id, why); revocations.push(n); return n; }, close: async () => {} });
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
    rabbit = await startTestRabbit({ dir: join(dir, 'rabbit'), authUrl: `http://127.0.0.1:${backend.port}/internal/rabbitmq` });
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
    const rlog = () => readdirSync(join(rabbit.dir, 'log')).filter((f) => f.endsWith('.log')).map((f) => readFileSync(join(rabbit.dir, 'log', f), 'utf8')).join('');
    await waitFor(() => rlog().includes('eldergate: device revoked (suspended)'), 'RabbitMQ logging the X-Reason');
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
    const deadPort = await freePort();
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

// ---- a RabbitMQ node of the test's own (until ops/cluster/rabbitmq.ts lands; then its startRabbitCluster, 1 node) ----

const RABBIT_BIN = '/usr/lib/rabbitmq/bin';
const AUTH_CACHE_TTL_MS = 10_000;

interface TestRabbit {
  dir: string;
  mqttPort: number;
  /** eldergate's service user: an internal RabbitMQ user, administrator (management API too) */
  amqpUrl: string;
  managementUrl: string;
  username: string;
  passwordFile: string;
  stop(): Promise<void>;
}

const freePort = () => new Promise<number>((resolve, reject) => {
  const s = createServer();
  s.once('error', reject);
  s.listen(0, '127.0.0.1', () => {
    const { port } = s.address() as { port: number };
    s.close(() => resolve(port));
  });
});

/**
 * One node on private ports, its own epmd port and directories, everything on 127.0.0.1; devices are authenticated by
 * `authUrl` (…/user, /vhost, /resource, /topic, POSTed) behind RabbitMQ's auth cache, the service user is internal.
 */
async function startTestRabbit(o: { dir: string; authUrl: string }): Promise<TestRabbit> {
  if (!existsSync(`${RABBIT_BIN}/rabbitmq-server`)) {
    throw new Error(`RabbitMQ is needed (${RABBIT_BIN}/rabbitmq-server is missing): apt-get install -y rabbitmq-server`);
  }
  mkdirSync(join(o.dir, 'home'), { recursive: true });
  const [amqpPort, mqttPort, mgmtPort, distPort, epmdPort] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
  const username = 'eldergate';
  const password = randomBytes(18).toString('base64url');
  const passwordFile = join(o.dir, 'password');
  writeFileSync(passwordFile, password + '\n', { mode: 0o600 });
  const conf = [
    `listeners.tcp.default = 127.0.0.1:${amqpPort}`,
    `mqtt.listeners.tcp.default = 127.0.0.1:${mqttPort}`,
    'mqtt.allow_anonymous = false',
    'mqtt.exchange = eldergate.mqtt',
    'mqtt.vhost = /',
    `management.tcp.port = ${mgmtPort}`,
    'management.tcp.ip = 127.0.0.1',
    'distribution.listener.interface = 127.0.0.1',
    'auth_backends.1 = internal',
    // as in production: the HTTP backend behind RabbitMQ's auth cache
    'auth_backends.2 = cache',
    'auth_cache.cached_backend = http',
    `auth_cache.cache_ttl = ${AUTH_CACHE_TTL_MS}`,
    'auth_http.http_method = post',
    ...['user', 'vhost', 'resource', 'topic'].map((k) => `auth_http.${k}_path = ${o.authUrl}/${k}`),
    'loopback_users = none',
    // the service user exists from the first boot, with a password only the file holds
    `default_user = ${username}`,
    `default_pass = ${password}`,
    'default_user_tags.administrator = true',
    'default_permissions.configure = .*', 'default_permissions.read = .*', 'default_permissions.write = .*',
  ].join('\n');
  writeFileSync(join(o.dir, 'rabbitmq.conf'), conf + '\n', { mode: 0o600 });
  writeFileSync(join(o.dir, 'enabled_plugins'), '[rabbitmq_mqtt,rabbitmq_auth_backend_http,rabbitmq_auth_backend_cache,rabbitmq_management].\n');
  const node = `egtest${randomBytes(3).toString('hex')}@localhost`;
  const env = {
    ...process.env,
    PATH: `${RABBIT_BIN}:${process.env.PATH}`,
    HOME: join(o.dir, 'home'), ERL_EPMD_PORT: String(epmdPort), ERL_EPMD_ADDRESS: '127.0.0.1',
    RABBITMQ_NODENAME: node, RABBITMQ_NODE_PORT: String(amqpPort), RABBITMQ_DIST_PORT: String(distPort),
    RABBITMQ_CONFIG_FILE: join(o.dir, 'rabbitmq'), RABBITMQ_ENABLED_PLUGINS_FILE: join(o.dir, 'enabled_plugins'),
    RABBITMQ_MNESIA_BASE: join(o.dir, 'mnesia'), RABBITMQ_LOG_BASE: join(o.dir, 'log'), RABBITMQ_PID_FILE: join(o.dir, 'pid'),
    RABBITMQ_PLUGINS_EXPAND_DIR: join(o.dir, 'plugins-expand'), RABBITMQ_FEATURE_FLAGS_FILE: join(o.dir, 'feature_flags'),
  };
  const out: string[] = [];
  // its own process group: stopped whole (the shell script, beam.smp) by its id
  const server: ChildProcess = spawn(`${RABBIT_BIN}/rabbitmq-server`, [], { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  server.stdout!.on('data', (b: Buffer) => { out.push(b.toString()); if (out.length > 200) out.shift(); });
  server.stderr!.on('data', (b: Buffer) => { out.push(b.toString()); if (out.length > 200) out.shift(); });
  const managementUrl = `http://127.0.0.1:${mgmtPort}`;
  const authorization = 'Basic ' + Buffer.from(`${username}:${password}`).toString('base64');
  const stop = async () => {
    if (server.exitCode === null && server.pid) {
      const exited = new Promise((r) => server.once('exit', r));
      try { process.kill(-server.pid, 'SIGTERM'); } catch { /* gone */ }
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
      try { process.kill(-server.pid, 'SIGKILL'); } catch { /* gone */ }
    }
    // the epmd it started daemonised itself (its own session): ended through its own port
    await new Promise((r) => spawn('epmd', ['-kill'], { env, stdio: 'ignore' }).once('exit', r).once('error', r));
  };
  try {
    await waitFor(async () => {
      if (server.exitCode !== null) throw new Error(`rabbitmq-server exited (${server.exitCode}): ${out.join('').slice(-2000)}`);
      // ready once the management API answers for the service user and the MQTT listener is up
      const res = await fetch(`${managementUrl}/api/overview`, { headers: { authorization } });
      return res.ok && (await res.json() as { listeners?: { protocol: string }[] }).listeners?.some((l) => l.protocol === 'mqtt');
    }, 'the RabbitMQ node to start', 60_000, 250);
  } catch (err) {
    await stop();
    throw err;
  }
  return { dir: o.dir, mqttPort, amqpUrl: `amqp://${username}:${encodeURIComponent(password)}@127.0.0.1:${amqpPort}/`, managementUrl, username, passwordFile, stop };
}
