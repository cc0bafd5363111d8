// A gateway as an attacker meets it: a separate process (`node --import tsx main.ts`), optionally under a lowered
// descriptor limit (`ulimit -n` in sh, then exec: the limit is the gateway's own, this test process keeps its own),
// with its stdout captured byte for byte, and the pieces a legitimate device and console need.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import { connectDevice, waitFor } from '../helpers/gateway.js';
import type { MqttClient } from 'mqtt';
import { GATEWAY_ARGV } from '../helpers/child-gateway.js';

const ROOT = resolve(import.meta.dirname, '..', '..');

export interface HostileGateway {
  proc: ChildProcess;
  pid: number;
  mqttPort: number;
  httpPort: number;
  http: string;
  adminPassword: string;
  /** every line the gateway wrote to stdout and stderr, and the stdout byte count */
  lines: string[];
  stdoutBytes(): number;
  alive(): boolean;
  token(): Promise<string>;
  api(method: string, path: string, body?: unknown, opts?: { token?: string; contentType?: string }): Promise<{ status: number; body: any }>;
  provision(kind?: string): Promise<{ id: string; secret: string }>;
  device(id: string, secret: string): Promise<MqttClient>;
  console(token: string): Promise<ConsoleClient>;
  /** a metric's value summed over the series whose labels include `match` */
  metric(name: string, match?: Record<string, string>): Promise<number>;
  rssBytes(): number;
  stop(): Promise<void>;
}

export async function startHostileGateway(opts: { nofile?: number; env?: Record<string, string> } = {}): Promise<HostileGateway> {
  const dataDir = mkdtempSync(join(tmpdir(), 'eldergate-hostile-'));
  const adminPassword = 'hostile-' + randomBytes(12).toString('hex');
  const node = `exec ${GATEWAY_ARGV.map((a) => `"${a}"`).join(' ')}`;
  const cmd = opts.nofile ? `ulimit -n ${opts.nofile} && ${node}` : node;
  const proc = spawn('sh', ['-c', cmd], {
    cwd: ROOT,
    env: {
      ...process.env,
      ELDERGATE_DATA_DIR: dataDir,
      ELDERGATE_ADMIN_PASSWORD: adminPassword,
      ELDERGATE_MQTT_HOST: '127.0.0.1', ELDERGATE_MQTT_PORT: '0',
      ELDERGATE_HTTP_HOST: '127.0.0.1', ELDERGATE_HTTP_PORT: '0',
      ELDERGATE_LOG_LEVEL: 'info',
      ...opts.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  let bytes = 0;
  let partial = '';
  const onData = (count: boolean) => (chunk: Buffer) => {
    if (count) bytes += chunk.length;
    const text = partial + chunk.toString('utf8');
    const parts = text.split('\n');
    partial = parts.pop()!;
    for (const l of parts) {
      lines.push(l);
      if (lines.length > 20_000) lines.splice(0, 10_000);
    }
  };
  proc.stdout!.on('data', onData(true));
  proc.stderr!.on('data', onData(false));
  let exited: string | null = null;
  proc.once('exit', (code, signal) => { exited = `exited (${code ?? signal})`; });

  const ready = await waitFor(() => {
    if (exited) throw new Error(`gateway ${exited} before it was ready:\n${lines.slice(-20).join('\n')}`);
    const l = lines.find((x) => x.includes('"eldergate ready"'));
    return l ? (JSON.parse(l) as { mqttPort: number; httpPort: number }) : undefined;
  }, 'the gateway to be ready', 60_000).catch((err) => {
    proc.kill('SIGKILL');
    throw err;
  });
  const http = `http://127.0.0.1:${ready.httpPort}`;
  let adminToken: string | undefined;
  const api = async (method: string, path: string, body?: unknown, o: { token?: string; contentType?: string } = {}) => {
    const headers: Record<string, string> = {};
    const token = o.token ?? (path === '/api/auth/login' ? undefined : (adminToken ??= await login()));
    if (token) headers.authorization = `Bearer ${token}`;
    let payload: string | undefined;
    if (typeof body === 'string') {
      headers['content-type'] = o.contentType ?? 'text/csv';
      payload = body;
    } else if (body !== undefined) {
      headers['content-type'] = 'application/json';
      payload = JSON.stringify(body);
    }
    const res = await fetch(http + path, { method, headers, body: payload, signal: AbortSignal.timeout(60_000) });
    const text = await res.text();
    let parsed: unknown = text;
    try { parsed = JSON.parse(text); } catch { /* text */ }
    return { status: res.status, body: parsed as any };
  };
  const login = async () => {
    const r = await api('POST', '/api/auth/login', { username: 'admin', password: adminPassword });
    if (r.status !== 200) throw new Error(`login failed: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body.token as string;
  };
  const g: HostileGateway = {
    proc, pid: proc.pid!, mqttPort: ready.mqttPort, httpPort: ready.httpPort, http, adminPassword, lines,
    stdoutBytes: () => bytes,
    alive: () => exited === null,
    token: login,
    api,
    async provision(kind = 'call-phone') {
      const r = await api('POST', '/api/devices', { kind, serial: `HS-${randomBytes(5).toString('hex')}` });
      if (r.status !== 201) throw new Error(`provision failed: ${r.status} ${JSON.stringify(r.body)}`);
      return r.body;
    },
    device: (id, secret) => connectDevice(`mqtt://127.0.0.1:${ready.mqttPort}`, id, secret, { keepalive: 30 }),
    console: (token) => ConsoleClient.open(`ws://127.0.0.1:${ready.httpPort}/ws`, token),
    async metric(name, match = {}) {
      const r = await api('GET', '/metrics');
      if (r.status !== 200) throw new Error(`/metrics answered ${r.status}`);
      let sum = 0;
      for (const line of String(r.body).split('\n')) {
        if (!line.startsWith(name + '{') && !line.startsWith(name + ' ')) continue;
        if (!Object.entries(match).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
        sum += Number(line.slice(line.lastIndexOf(' ') + 1));
      }
      return sum;
    },
    rssBytes() {
      const status = readFileSync(`/proc/${proc.pid}/status`, 'utf8');
      const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1]);
      return kb * 1024;
    },
    async stop() {
      if (exited === null) {
        const gone = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGKILL');
        await gone;
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return g;
}

/** A console: a real `ws` client that subscribes to everything and keeps every frame. */
export class ConsoleClient {
  readonly frames: any[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  private constructor(readonly ws: WebSocket) {
    ws.on('message', (d) => this.frames.push(JSON.parse(String(d))));
    ws.on('error', () => undefined);
    this.closed = new Promise((r) => ws.on('close', (code, reason) => r({ code, reason: reason.toString() })));
  }

  static async open(url: string, token: string): Promise<ConsoleClient> {
    const ws = new WebSocket(url, [], { headers: { authorization: `Bearer ${token}` } });
    const c = new ConsoleClient(ws);
    await new Promise<void>((res, rej) => {
      ws.once('open', () => res());
      ws.once('unexpected-response', (_q, r) => rej(new Error(`upgrade refused: ${r.statusCode}`)));
      ws.once('error', rej);
    });
    await waitFor(() => c.frames.find((f) => f.type === 'hello'), 'hello', 20_000);
    return c;
  }

  async subscribeAll(): Promise<void> {
    this.ws.send(JSON.stringify({ type: 'subscribe', scope: 'all' }));
    await waitFor(() => this.frames.find((f) => f.type === 'replayed'), 'replayed', 30_000);
  }

  opened(deviceId: string, type = 'sos'): any {
    return this.frames.find((f) => f.type === 'incident' && f.event?.type === 'opened' && f.event.data?.deviceId === deviceId && f.event.data?.type === type);
  }
}

/** Idle sockets an attacker holds, in a process of their own (test/security/socket-holder.mjs); `close` ends them. */
export interface HeldSockets {
  close(): void;
}

/** Sockets per holder process: well inside the soft descriptor limit of 1024 that a fresh machine may have (and that
 * a container's root cannot raise beyond its hard limit), with room for node's own descriptors. */
const PER_HOLDER = 500;

/**
 * Open `n` idle TCP sockets to a port and hold them (those the server closes are simply gone). They are held by child
 * processes of PER_HOLDER sockets each, so the attack does not depend on the descriptors this test process has left
 * (vitest's workers run file after file); it fails, saying why, unless every one of the `n` connections was
 * established.
 */
export async function holdIdleSockets(port: number, n: number): Promise<HeldSockets> {
  const holders: HeldSockets[] = [];
  try {
    for (let i = 0; i < n; i += PER_HOLDER) holders.push(await holdInOneProcess(port, Math.min(PER_HOLDER, n - i)));
  } catch (e) {
    closeAll(holders);
    throw e;
  }
  return { close: () => closeAll(holders) };
}

async function holdInOneProcess(port: number, n: number): Promise<HeldSockets> {
  const script = join(ROOT, 'test', 'security', 'socket-holder.mjs');
  // the soft limit raised to the hard one (anyone may): a holder needs n descriptors and node's own. Its stdin is a
  // pipe from this process: when this process ends, however it ends, the holder sees the pipe close and exits.
  const proc = spawn('sh', ['-c', 'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@"', 'sh', process.execPath, script, String(port), String(n)], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  proc.stdout!.on('data', (d: Buffer) => { out += d.toString('utf8'); });
  proc.stderr!.on('data', (d: Buffer) => { err += d.toString('utf8'); });
  const close = () => { proc.kill('SIGKILL'); };
  type Report = { connected: number; errors: Record<string, number>; fdLimit: number | null };
  try {
    const report = await new Promise<Report>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out after 60 s waiting for ${n} idle sockets to port ${port}`)), 60_000);
      const done = (f: () => void) => { clearTimeout(timer); proc.stdout!.off('data', onData); proc.off('exit', onExit); f(); };
      const onData = () => {
        const line = out.split('\n').find((l) => l.startsWith('{') && l.endsWith('}'));
        if (line) done(() => resolve(JSON.parse(line) as Report));
      };
      const onExit = (code: number | null, signal: string | null) =>
        done(() => reject(new Error(`the socket holder exited (${code ?? signal}): ${err.trim()}`)));
      proc.stdout!.on('data', onData);
      proc.once('exit', onExit);
    });
    if (report.connected < n) {
      throw new Error(`the socket holder established only ${report.connected} of ${n} connections to port ${port} ` +
        `(errors ${JSON.stringify(report.errors)}, its descriptor limit ${report.fdLimit})`);
    }
    return { close };
  } catch (e) {
    close();
    throw e;
  }
}

export function closeAll(held: HeldSockets[]): void {
  for (const h of held) h.close();
}

/** A raw WebSocket client: handshake with a bearer token, then never reads. Returns a function writing masked frames. */
export async function rawWebSocket(port: number, token: string): Promise<{ socket: Socket; send(opcode: number, payload: Buffer): boolean }> {
  const socket = netConnect({ host: '127.0.0.1', port });
  socket.on('error', () => undefined);
  await new Promise<void>((res, rej) => { socket.once('connect', () => res()); socket.once('error', rej); });
  socket.write([
    'GET /ws HTTP/1.1', `Host: 127.0.0.1:${port}`, 'Upgrade: websocket', 'Connection: Upgrade',
    `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`, 'Sec-WebSocket-Version: 13',
    `Authorization: Bearer ${token}`, '', '',
  ].join('\r\n'));
  await new Promise<void>((res, rej) => {
    let head = '';
    const onData = (d: Buffer) => {
      head += d.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      socket.off('data', onData);
      if (!head.startsWith('HTTP/1.1 101')) return rej(new Error(`upgrade refused: ${head.split('\r\n')[0]}`));
      // from here on this client never reads: what the server sends piles up in the kernel, then in the server
      socket.pause();
      res();
    };
    socket.on('data', onData);
  });
  const send = (opcode: number, payload: Buffer) => {
    const mask = randomBytes(4);
    const masked = Buffer.alloc(payload.length);
    for (let i = 0; i < payload.length; i++) masked[i] = payload[i]! ^ mask[i % 4]!;
    const header = payload.length < 126
      ? Buffer.from([0x80 | opcode, 0x80 | payload.length])
      : Buffer.from([0x80 | opcode, 0x80 | 126, payload.length >> 8, payload.length & 0xff]);
    return socket.write(Buffer.concat([header, mask, masked]));
  };
  return { socket, send };
}

/** What a failed cap assertion needs to be understood: the connection metrics and the gateway's last lines. */
export async function refusalReport(g: HostileGateway): Promise<string> {
  const r = await g.api('GET', '/metrics');
  const metrics = String(r.body).split('\n').filter((l) => /^eldergate_connection/.test(l)).join('\n');
  return `metrics:\n${metrics}\nthe gateway's last lines:\n${g.lines.slice(-10).join('\n')}`;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A hostile gateway with one legitimate device connected and one console subscribed to everything: what each
 * attack test watches while it attacks. `stop` ends them all (and closes `held` sockets). */
export interface Watched {
  g: HostileGateway;
  deviceId: string;
  device: MqttClient;
  console: ConsoleClient;
  held: HeldSockets[];
  stop(): Promise<void>;
}

export async function startWatched(opts: Parameters<typeof startHostileGateway>[0] = {}): Promise<Watched> {
  const g = await startHostileGateway(opts);
  const d = await g.provision();
  const device = await g.device(d.id, d.secret);
  const console_ = await g.console(await g.token());
  await console_.subscribeAll();
  const held: HeldSockets[] = [];
  return {
    g, deviceId: d.id, device, console: console_, held,
    async stop() {
      closeAll(held);
      device.end(true);
      console_.ws.terminate();
      await g.stop();
    },
  };
}
