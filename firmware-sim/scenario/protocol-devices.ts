// A scenario's terminals of the gateway's own protocols (watch, JT/T 808, DC-09): each a ProtocolSimTerminal
// (firmware-sim/protocols) with what the scenario needs around it and the bare terminal does not have — a link that
// is up or down, keepalives at the group's interval (watch LK, JT/T 808 0x0002, DC-09 NULL poll), a link dropped
// and brought back, alarms held while the link is down and sent once it is back (as terminals buffer them), and a
// record of every alarm with the moment the gateway's protocol acknowledgement arrived.
import type { LatLon } from '../core/geo.js';
import { DEFAULT_CITY } from '../devices/locator.js';
import { Dc09SimTerminal } from '../protocols/dc09.js';
import { Jt808SimTerminal } from '../protocols/jt808.js';
import type { ProtocolSimKind, ProtocolSimTerminal, ReceivedCommand } from '../protocols/types.js';
import { WatchSimTerminal } from '../protocols/watch.js';
import type { TerminalCredentials } from '../provision.js';

/** keepalive intervals when the group gives none: shorter than what the gateway supervises each kind against */
export const DEFAULT_HEARTBEAT_S: Record<ProtocolSimKind, number> = { watch: 300, jt808: 120, dc09: 60 };

export interface ProtocolMessage {
  type: 'sos' | 'fall' | 'position';
  /** a life-safety event (incident latencies are measured for these) */
  alarm: boolean;
  /** when the scenario asked for it, epoch ms */
  createdWall: number;
  /** when it first went on the wire, epoch ms (later than createdWall when the link was down) */
  firstSentWall: number | null;
  /** when the gateway's protocol acknowledgement arrived (AL reply, 0x8001, ACK): only once durable */
  ackedWall: number | null;
}

export interface ProtocolDeviceOptions {
  creds: TerminalCredentials;
  group: string;
  /** connect here instead of the provisioning answer's host (its publicHost may not be reachable from here) */
  host?: string;
  heartbeatS?: number;
  ackTimeoutMs?: number;
  /** reconnect back-off */
  backoffInitialMs?: number;
  backoffMaxMs?: number;
}

export type LinkState = 'idle' | 'connecting' | 'online' | 'down' | 'stopped';

export class ProtocolDevice {
  readonly id: string;
  readonly kind: ProtocolSimKind;
  readonly identifier: string;
  readonly group: string;
  readonly sim: ProtocolSimTerminal;
  readonly events: ProtocolMessage[] = [];
  state: LinkState = 'idle';
  lastError: string | undefined;
  /** where the terminal is (its resident's home, or the simulator's default city) */
  position: LatLon;
  private readonly heartbeatMs: number;
  private readonly ackTimeoutMs: number;
  private readonly backoff: { initialMs: number; maxMs: number };
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private heartbeatInFlight = false;
  /** bumped by every drop and stop: a connection attempt begun before it must not bring the link back */
  private generation = 0;
  private waiters: (() => void)[] = [];

  constructor(o: ProtocolDeviceOptions) {
    this.id = o.creds.id;
    this.kind = o.creds.kind;
    this.identifier = o.creds.identifier;
    this.group = o.group;
    this.position = o.creds.home ?? DEFAULT_CITY;
    this.heartbeatMs = (o.heartbeatS ?? DEFAULT_HEARTBEAT_S[this.kind]) * 1000;
    this.ackTimeoutMs = o.ackTimeoutMs ?? 3000;
    this.backoff = { initialMs: o.backoffInitialMs ?? 500, maxMs: o.backoffMaxMs ?? 10_000 };
    const base = { host: o.host ?? o.creds.host, port: o.creds.port, identifier: o.creds.identifier, ackTimeoutMs: this.ackTimeoutMs };
    this.sim =
      this.kind === 'watch' ? new WatchSimTerminal({ ...base, lat: this.position.lat, lon: this.position.lon }) :
      this.kind === 'jt808' ? new Jt808SimTerminal(base) :
      new Dc09SimTerminal(base);
  }

  get online(): boolean {
    return this.state === 'online';
  }

  /** every command the gateway sent to the terminal, decoded */
  get received(): readonly ReceivedCommand[] {
    return this.sim.received;
  }

  /** bring the link up (again), retrying with back-off until it is; a dropped link comes back only through here */
  start(delayMs = 0): void {
    if (this.state === 'online' || this.state === 'connecting' || this.state === 'stopped') return;
    clearTimeout(this.retryTimer);
    this.state = 'connecting';
    const gen = this.generation;
    let waitMs = this.backoff.initialMs;
    const attempt = async () => {
      if (gen !== this.generation) return;
      try {
        await withTimeout(this.sim.connect(), this.ackTimeoutMs * 3 + 2000, 'no answer to the login');
        if (gen !== this.generation) return; // dropped or stopped meanwhile
        this.state = 'online';
        this.lastError = undefined;
        this.armHeartbeat();
        for (const w of this.waiters.splice(0)) w();
      } catch (err) {
        if (gen !== this.generation) return;
        this.lastError = `${this.kind} ${this.identifier}: ${(err as Error).message}`;
        this.sim.drop();
        this.retryTimer = setTimeout(() => void attempt(), waitMs);
        waitMs = Math.min(this.backoff.maxMs, waitMs * 2);
      }
    };
    this.retryTimer = setTimeout(() => void attempt(), delayMs);
  }

  /** drop the link abruptly (no goodbye, no more keepalives): supervision should notice; back after `forMs` if given */
  drop(forMs?: number): void {
    if (this.state === 'stopped') return;
    this.generation++;
    clearTimeout(this.retryTimer);
    this.disarmHeartbeat();
    this.sim.drop();
    this.state = 'down';
    if (forMs !== undefined) this.retryTimer = setTimeout(() => this.start(), forMs);
  }

  sos(): void {
    void this.send('sos', true, () => (this.kind === 'dc09' ? this.sim.sos() : this.sim.sos({ ...this.position })));
  }

  fall(): void {
    const fall = this.sim.fall?.bind(this.sim);
    if (fall) void this.send('fall', true, () => fall({ ...this.position }));
  }

  /** a position report (watch UD, unanswered by the protocol; JT/T 808 0x0200, answered) */
  reportPosition(at?: LatLon): void {
    if (at) this.position = at;
    const report = this.sim.position?.bind(this.sim);
    if (report) void this.send('position', false, () => report(this.position.lat, this.position.lon));
  }

  /** one keepalive now (besides the periodic ones) */
  heartbeat(): void {
    void this.beat();
  }

  async stop(): Promise<void> {
    this.generation++;
    clearTimeout(this.retryTimer);
    this.disarmHeartbeat();
    this.state = 'stopped';
    for (const w of this.waiters.splice(0)) w();
    await withTimeout(this.sim.close(), 3000, 'close').catch(() => this.sim.drop());
  }

  /** an alarm or report: held while the link is down, sent when it is up, again after a reconnect until acknowledged */
  private async send(type: ProtocolMessage['type'], alarm: boolean, fn: () => Promise<number>): Promise<void> {
    const m: ProtocolMessage = { type, alarm, createdWall: Date.now(), firstSentWall: null, ackedWall: null };
    this.events.push(m);
    while (this.state !== 'stopped') {
      if (!this.online) {
        await new Promise<void>((r) => this.waiters.push(r));
        continue;
      }
      m.firstSentWall ??= Date.now();
      try {
        m.ackedWall = await fn();
        return;
      } catch (err) {
        // the link closed under it (watch): it goes again once the link is back
        this.lastError = `${this.kind} ${this.identifier}: ${(err as Error).message}`;
        if (this.online) await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  private armHeartbeat(): void {
    this.disarmHeartbeat();
    this.heartbeatTimer = setInterval(() => void this.beat(), this.heartbeatMs);
  }

  private disarmHeartbeat(): void {
    clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = undefined;
  }

  /** a keepalive; one that is not answered within a few resends means the link is gone: reconnect */
  private async beat(): Promise<void> {
    if (!this.online || this.heartbeatInFlight) return;
    this.heartbeatInFlight = true;
    const gen = this.generation;
    try {
      await withTimeout(this.sim.heartbeat(), this.ackTimeoutMs * 3 + 2000, 'keepalive not answered');
    } catch (err) {
      if (gen === this.generation && this.online) {
        this.lastError = `${this.kind} ${this.identifier}: ${(err as Error).message}`;
        // the gateway closed the link (idle timeout, restart): a terminal logs in again
        this.generation++;
        this.disarmHeartbeat();
        this.sim.drop();
        this.state = 'down';
        this.start(this.backoff.initialMs);
      }
    } finally {
      this.heartbeatInFlight = false;
    }
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} within ${ms} ms`)), ms);
    }),
  ]);
}

/** alarm → the gateway's protocol acknowledgement, ms (the "PUBACK" of these protocols: only once durable) */
export function ackLatencies(devices: Iterable<ProtocolDevice>): number[] {
  const out: number[] = [];
  for (const d of devices) for (const m of d.events) if (m.firstSentWall !== null && m.ackedWall !== null && m.type !== 'position') out.push(Math.max(0, m.ackedWall - m.firstSentWall));
  return out.sort((a, b) => a - b);
}

/** alarm → the operator's acknowledgement reaching the terminal, ms (watch MESSAGE, JT/T 808 0x8300) */
export function ackCommandLatencies(devices: Iterable<ProtocolDevice>): number[] {
  const out: number[] = [];
  for (const d of devices) {
    const alarms = d.events.filter((m) => m.alarm && m.firstSentWall !== null);
    for (const c of d.received) {
      if (c.type !== 'acknowledge-alarm') continue;
      const before = alarms.filter((m) => (m.firstSentWall as number) <= c.at).at(-1);
      if (before) out.push(c.at - (before.firstSentWall as number));
    }
  }
  return out.sort((a, b) => a - b);
}
