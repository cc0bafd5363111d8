// A console as a test sees it: a real `ws` client against a real gateway, collecting every frame, plus a small
// response network (district → street → community → grid A, grid B) with users of each kind.
import { createHmac } from 'node:crypto';
import WebSocket, { type ClientOptions } from 'ws';
import type { AlarmAction, AlarmSource } from '../../core/contracts.js';
import type { CommittedEvent } from '../../response/incidents.js';
import { waitFor, type TestGateway } from '../helpers/gateway.js';

export interface Frame {
  type: string;
  seq?: number;
  event?: CommittedEvent;
  code?: string;
  [k: string]: unknown;
}

export class TestConsole {
  readonly frames: Frame[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => this.frames.push(JSON.parse(String(data)) as Frame));
    this.closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    ws.on('error', () => undefined); // the close event says what happened
  }

  static url(t: TestGateway): string {
    return `ws://127.0.0.1:${t.gw.httpPort}/ws`;
  }

  /** Connect with a bearer header (a program) and wait for the hello. */
  static async open(t: TestGateway, token: string, opts: ClientOptions & { protocols?: string[] } = {}): Promise<TestConsole> {
    const { protocols, ...rest } = opts;
    const ws = new WebSocket(TestConsole.url(t), protocols ?? [], {
      ...(protocols ? {} : { headers: { authorization: `Bearer ${token}` } }),
      ...rest,
    });
    const c = new TestConsole(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
      ws.once('error', reject);
    });
    await c.waitFor((f) => f.type === 'hello', 'hello');
    return c;
  }

  send(msg: unknown): void {
    this.ws.send(typeof msg === 'string' ? msg : JSON.stringify(msg));
  }

  subscribe(scope: string, since?: number): void {
    this.send({ type: 'subscribe', scope, ...(since !== undefined ? { since } : {}) });
  }

  get incidentFrames(): Frame[] {
    return this.frames.filter((f) => f.type === 'incident');
  }

  get seqs(): number[] {
    return this.incidentFrames.map((f) => f.seq!);
  }

  get lastSeq(): number {
    const s = this.seqs;
    return s.length ? s[s.length - 1]! : 0;
  }

  hello(): Frame {
    return this.frames.find((f) => f.type === 'hello')!;
  }

  waitFor(pred: (f: Frame) => boolean, what: string, timeoutMs = 15_000): Promise<Frame> {
    return waitFor(() => this.frames.find(pred), what, timeoutMs);
  }

  waitForSeq(seq: number, timeoutMs = 20_000): Promise<Frame> {
    return waitFor(() => this.incidentFrames.find((f) => f.seq! >= seq), `incident frame seq ≥ ${seq}`, timeoutMs);
  }

  close(): Promise<{ code: number; reason: string }> {
    this.ws.close();
    return this.closed;
  }
}

/** Expect the upgrade to be refused with this HTTP status (before any socket exists). */
export function expectRefused(t: TestGateway, opts: ClientOptions & { protocols?: string[] }): Promise<{ status: number; body: string }> {
  const { protocols, ...rest } = opts;
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(TestConsole.url(t), protocols ?? [], rest);
    ws.once('open', () => { ws.terminate(); reject(new Error('the upgrade was accepted')); });
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (c: Buffer) => { body += c.toString(); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    ws.once('error', () => undefined);
  });
}

/** A token signed with the gateway's own key but expired: what a console holding yesterday's token sends. */
export function expiredToken(t: TestGateway, userId: string): string {
  const key = t.gw.users.keys.signing();
  const body = Buffer.from(JSON.stringify({ sub: userId, exp: Date.now() - 1000 })).toString('base64url');
  return `${body}.${createHmac('sha256', key).update(body).digest('base64url')}`;
}

export interface Network {
  district: string;
  gridA: string;
  gridB: string;
  residentA: string;
  residentB: string;
  users: { operator: string; stewardA: string; stewardB: string; technician: string };
  passwords: Record<string, string>;
}

async function ok<T>(p: Promise<{ status: number; body: T }>, what: string): Promise<T> {
  const r = await p;
  if (r.status >= 300) throw new Error(`${what}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

export async function buildNetwork(t: TestGateway): Promise<Network> {
  const unit = (id: string, name: string, tier: string, parentId?: string) =>
    ok(t.api('POST', '/api/units', { id, name, tier, ...(parentId ? { parentId } : {}) }), `unit ${id}`);
  await unit('d1', 'District centre', 'district');
  await unit('s1', 'Street centre', 'street', 'd1');
  await unit('c1', 'Community station', 'community', 's1');
  await unit('gA', 'Grid A', 'grid', 'c1');
  await unit('gB', 'Grid B', 'grid', 'c1');
  const resident = (name: string, unitId: string) => ok<{ id: string }>(t.api('POST', '/api/residents', {
    name, unitId, address: `${name} street 1`, home: { lat: 52.52, lon: 13.405 },
    safeZone: { type: 'circle', center: { lat: 52.52, lon: 13.405 }, radiusM: 150 },
    contacts: [{ name: `${name} junior`, relation: 'son', phone: '+49 30 1234567' }],
  }), `resident ${name}`);
  const rA = await resident('Anna Alt', 'gA');
  const rB = await resident('Bruno Berg', 'gB');
  const passwords: Record<string, string> = {};
  const user = async (username: string, role: string, unitId?: string) => {
    passwords[username] = `pw-${username}-0123456789`;
    await ok(t.api('POST', '/api/users', { username, password: passwords[username], role, ...(unitId ? { unitId } : {}) }), `user ${username}`);
    return username;
  };
  return {
    district: 'd1', gridA: 'gA', gridB: 'gB', residentA: rA.id, residentB: rB.id,
    users: {
      operator: await user('olga', 'operator'),
      stewardA: await user('stefan', 'steward', 'gA'),
      stewardB: await user('sabine', 'steward', 'gB'),
      technician: await user('theo', 'technician'),
    },
    passwords,
  };
}

export const login = (t: TestGateway, n: Network, username: string) => t.token(username, n.passwords[username]);

/** Incidents through the real incident service (not MQTT): many events quickly, in one transaction if asked. */
export function raise(t: TestGateway, count: number, opts: { unitId?: string | null; devices?: number; publish?: boolean; device?: string; account?: string } = {}): CommittedEvent[] {
  const { incidents } = t.gw.response;
  const devices = opts.devices ?? 5;
  const events = t.gw.store.sqlite.transaction(() => {
    const out: CommittedEvent[] = [];
    for (let i = 0; i < count; i++) {
      const action: AlarmAction = { action: 'raise', type: 'sos', priority: 'P1', rule: 'test' };
      const source: AlarmSource = {
        deviceId: `${opts.device ?? 'dev'}-${opts.unitId ?? 'none'}-${i % devices}`, residentId: null, unitId: opts.unitId ?? null,
        stamps: { received: Date.now() },
        ...(opts.account !== undefined ? { account: opts.account, flags: ['unknown-account'] } : {}),
      };
      out.push(...incidents.applyAlarm(action, source));
    }
    return out;
    // IMMEDIATE, as every write transaction of the gateway: the writer thread writes the same file meanwhile
  }).immediate();
  if (opts.publish !== false) incidents.publishCommitted(events);
  return events;
}

export function latestSeq(t: TestGateway): number {
  return t.gw.store.sqlite.prepare('SELECT coalesce(max(seq), 0) FROM incident_events').pluck().get() as number;
}

export function seqsInLog(t: TestGateway, after = 0, unitIds?: (string | null)[]): number[] {
  const rows = t.gw.store.sqlite.prepare('SELECT seq, unit_id FROM incident_events WHERE seq > ? ORDER BY seq').all(after) as { seq: number; unit_id: string | null }[];
  return rows.filter((r) => !unitIds || unitIds.includes(r.unit_id)).map((r) => r.seq);
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Open `count` P3 incidents, one device each (so none joins another), in one transaction, published. */
export function raiseP3(t: TestGateway, count: number, unitOf: (i: number) => string | null): void {
  const { incidents } = t.gw.response;
  const events = t.gw.store.sqlite.transaction(() => {
    const out = [];
    for (let i = 0; i < count; i++) {
      const action: AlarmAction = { action: 'raise', type: 'low-battery', priority: 'P3', rule: 'test' };
      const source: AlarmSource = { deviceId: `p3-${i}`, residentId: null, unitId: unitOf(i), stamps: { received: Date.now() } };
      out.push(...incidents.applyAlarm(action, source));
    }
    return out;
    // IMMEDIATE, as every write transaction of the gateway: the writer thread writes the same file meanwhile
  }).immediate();
  incidents.publishCommitted(events);
}
