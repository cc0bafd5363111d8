// Start a real gateway in this process: real aedes on an ephemeral TCP port, real SQLite file with the committed
// migrations, real Fastify on an ephemeral port.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import mqtt, { type MqttClient, type IClientOptions } from 'mqtt';
import { loadConfig } from '../../core/config.js';
import { createLogger, type Logger } from '../../core/logger.js';
import { startEldergate, type Eldergate } from '../../eldergate.js';

export interface TestGateway {
  gw: Eldergate;
  dataDir: string;
  adminPassword: string;
  http: string;
  mqttUrl: string;
  token(username?: string, password?: string): Promise<string>;
  api<T = any>(method: string, path: string, body?: unknown, token?: string): Promise<{ status: number; body: T }>;
  provision(kind?: string, serial?: string): Promise<{ id: string; secret: string }>;
  connectDevice(id: string, secret: string, extra?: IClientOptions): Promise<MqttClient>;
  stop(): Promise<void>;
}

/** `log`: a logger of the test's own (to read what the gateway logged); by default one at TEST_LOG_LEVEL or silent */
export async function startTestGateway(overrides: Record<string, unknown> = {}, dataDir?: string, log?: Logger): Promise<TestGateway> {
  const dir = dataDir ?? mkdtempSync(join(tmpdir(), 'eldergate-test-'));
  // a test that restarts on the same data dir passes its own (the first start created the admin with it)
  const adminPassword = (overrides.adminPassword as string | undefined) ?? 'test-' + randomBytes(12).toString('hex');
  const config = loadConfig({}, {
    dataDir: dir,
    adminPassword,
    logLevel: process.env.TEST_LOG_LEVEL ?? 'silent',
    mqtt: { port: 0, host: '127.0.0.1' },
    http: { port: 0, host: '127.0.0.1' },
    ...overrides,
  });
  const gw = await startEldergate({ config, log: log ?? createLogger(config.logLevel) });
  const http = `http://127.0.0.1:${gw.httpPort}`;
  let adminToken: string | undefined;
  const api = async (method: string, path: string, body?: unknown, token?: string) => {
    const headers: Record<string, string> = {};
    if (token !== '') headers.authorization = `Bearer ${token ?? (adminToken ??= await login('admin', adminPassword))}`;
    let payload: string | undefined;
    if (typeof body === 'string') {
      headers['content-type'] = 'text/csv';
      payload = body;
    } else if (body !== undefined) {
      headers['content-type'] = 'application/json';
      payload = JSON.stringify(body);
    }
    const res = await fetch(http + path, { method, headers, body: payload });
    const text = await res.text();
    let parsed: unknown = text;
    try { parsed = JSON.parse(text); } catch { /* CSV or text */ }
    return { status: res.status, body: parsed as any };
  };
  const login = async (username: string, password: string) => {
    const res = await fetch(http + '/api/auth/login', {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username, password }),
    });
    if (res.status !== 200) throw new Error(`login ${username} failed: ${res.status} ${await res.text()}`);
    return ((await res.json()) as { token: string }).token;
  };
  let serialCounter = 0;
  const t: TestGateway = {
    gw, dataDir: dir, adminPassword, http, mqttUrl: `mqtt://127.0.0.1:${gw.mqttPort}`,
    token: (u = 'admin', p = adminPassword) => login(u, p),
    api,
    async provision(kind = 'call-phone', serial = `SN-${randomBytes(4).toString('hex')}-${serialCounter++}`) {
      const r = await api('POST', '/api/devices', { kind, serial });
      if (r.status !== 201) throw new Error(`provision failed: ${r.status} ${JSON.stringify(r.body)}`);
      return r.body;
    },
    connectDevice: (id, secret, extra = {}) => connectDevice(t.mqttUrl, id, secret, extra),
    async stop() {
      await gw.close();
      if (!dataDir) {
        rmSync(dir, { recursive: true, force: true });
        rmSync(`${dir}-keys`, { recursive: true, force: true }); // the token-signing key file beside it (core/token-keys.ts)
      }
    },
  };
  return t;
}

export function connectDevice(url: string, id: string, secret: string, extra: IClientOptions = {}): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect(url, {
      clientId: id, username: id, password: secret, reconnectPeriod: 0, connectTimeout: 5000, protocolVersion: 4, ...extra,
    });
    c.once('connect', () => resolve(c));
    c.once('error', (err) => { c.end(true); reject(err); });
    c.once('close', () => reject(new Error('closed before CONNACK')));
  });
}

export async function waitFor<T>(fn: () => T | Promise<T>, what: string, timeoutMs = 10_000, everyMs = 20): Promise<NonNullable<T>> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export const publishAsync = (c: MqttClient, topic: string, payload: string | Buffer, qos: 0 | 1 | 2 = 1) =>
  new Promise<void>((resolve, reject) => c.publish(topic, payload, { qos }, (err) => (err ? reject(err) : resolve())));

/**
 * A metric's value as /metrics gives it (this thread's and the writer thread's, summed): the sum over every series of
 * `name` whose labels include `labels`.
 */
export async function metricValue(gw: Eldergate, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await gw.writer.metricsText();
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have: Record<string, string> = {};
    for (const [, k, v] of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) have[k!] = v!;
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum += Number(m[3]);
  }
  return sum;
}
