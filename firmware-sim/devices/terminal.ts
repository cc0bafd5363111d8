// The firmware every simulated terminal shares: connect with exponential back-off and seeded jitter, a Last
// Will, heartbeats on the shared scheduler, alarms at QoS 1 resent until PUBACK with the same seq and ts, a
// bounded buffer while offline flushed in order on reconnect, battery drain, and commands obeyed and answered.
import net from 'node:net';
import tls from 'node:tls';
import { MqttClient } from 'mqtt';
import type { Rng } from '../core/prng.js';
import { mqttTimer, type Scheduler, type TimerHandle } from '../core/scheduler.js';
import { Outbox, DEFAULT_OUTBOX_LIMITS, type OutboxLimits, type Dropped } from './outbox.js';
import {
  ALARM_TYPES,
  type Channel,
  type Credentials,
  type DeviceCommand,
  type KindProfile,
  type OutMessage,
  type SimKind,
} from './types.js';

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  factor: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 1000, maxMs: 60_000, factor: 2 };

/**
 * Delay before connection attempt `attempt` (0 = first retry): exponential, capped, with "equal jitter" —
 * uniform in [d/2, d) — so a fleet that lost the gateway at the same instant does not come back at the same
 * instant, yet nobody retries faster than half the schedule.
 */
export function backoffDelay(attempt: number, opts: BackoffOptions, rng: Rng): number {
  const d = Math.min(opts.maxMs, opts.initialMs * opts.factor ** Math.min(attempt, 30));
  return Math.round(rng.range(d / 2, d));
}

export type TerminalState = 'idle' | 'connecting' | 'online' | 'waiting' | 'down' | 'dead' | 'stopped';

export interface CommandResult {
  ok: boolean;
  error?: string;
}

/** Everything a fleet, a scenario or the interactive device wants to hear about. All optional, all sync. */
export interface TerminalObserver {
  onConnected?(t: Terminal, attempt: number): void;
  onDisconnected?(t: Terminal, reason: string): void;
  onConnectFailed?(t: Terminal, error: string, retryInMs: number): void;
  onSent?(t: Terminal, m: OutMessage, resend: boolean): void;
  onPuback?(t: Terminal, m: OutMessage, latencyMs: number): void;
  onCommand?(t: Terminal, cmd: DeviceCommand, result: CommandResult, alarm: OutMessage | null, latencyMs: number | null): void;
  onDropped?(t: Terminal, d: Dropped): void;
}

export interface TerminalOptions {
  creds: Credentials;
  /** mqtt://host:port or mqtts://host:port */
  mqttUrl: string;
  scheduler: Scheduler;
  rng: Rng;
  observer?: TerminalObserver;
  /** overrides of the kind's firmware defaults (heartbeat, keepalive, drain) */
  profile?: Partial<Omit<KindProfile, 'kind' | 'events' | 'fleetAlarm'>>;
  backoff?: Partial<BackoffOptions>;
  /** no PUBACK for this long: send the alarm again (same bytes) on the same connection; doubles up to 60 s */
  ackTimeoutMs?: number;
  outbox?: OutboxLimits;
  /** the Last Will `{"online":false}` retained (default; the gateway allows retain on the status topic only) */
  willRetain?: boolean;
  battery?: number;
  /** device clock minus true time, ms (cheap terminals drift) */
  clockSkewMs?: number;
  connectTimeoutMs?: number;
  /** accept self-signed certificates on mqtts:// */
  insecureTls?: boolean;
}

const LOW_BATTERY_STEPS = [20, 10, 5];
const timers = new WeakMap<Scheduler, ReturnType<typeof mqttTimer>>();

export abstract class Terminal {
  readonly id: string;
  readonly kind: SimKind;
  state: TerminalState = 'idle';
  battery: number;
  /** message counter since boot; a reboot starts it again (the gateway dedups on seq *and* ts) */
  seq = 0;
  boots = 1;
  heartbeatS: number;
  keepaliveS: number;
  drainPerHour: number;
  readonly outbox: Outbox;
  lastError: string | null = null;
  connects = 0;
  connectFailures = 0;
  /** events (QoS 1: alarms, cancels, tests) this boot and before, newest last; bounded */
  readonly events: OutMessage[] = [];
  readonly commands: { cmd: DeviceCommand; at: number; result: CommandResult }[] = [];

  protected readonly scheduler: Scheduler;
  protected readonly rng: Rng;
  protected readonly observer: TerminalObserver;
  private readonly opts: TerminalOptions;
  private readonly backoff: BackoffOptions;
  private readonly ackTimeoutMs: number;
  private client: MqttClient | null = null;
  private gen = 0;
  private attempt = 0;
  private pending: TimerHandle | null = null;
  private heartbeatTimer: TimerHandle | null = null;
  private readonly resendTimers = new Map<OutMessage, TimerHandle>();
  private readonly seenCommands: string[] = [];
  private muted = false;

  constructor(
    readonly profile: KindProfile,
    opts: TerminalOptions,
  ) {
    this.opts = opts;
    this.id = opts.creds.id;
    this.kind = profile.kind;
    this.scheduler = opts.scheduler;
    this.rng = opts.rng;
    this.observer = opts.observer ?? {};
    this.backoff = { ...DEFAULT_BACKOFF, ...opts.backoff };
    this.ackTimeoutMs = opts.ackTimeoutMs ?? 10_000;
    this.outbox = new Outbox(opts.outbox ?? DEFAULT_OUTBOX_LIMITS);
    this.battery = opts.battery ?? 100;
    this.heartbeatS = opts.profile?.heartbeatS ?? profile.heartbeatS;
    this.keepaliveS = opts.profile?.keepaliveS ?? profile.keepaliveS;
    this.drainPerHour = opts.profile?.drainPerHour ?? profile.drainPerHour;
  }

  get online(): boolean {
    return this.state === 'online';
  }

  get credentials(): Credentials {
    return this.opts.creds;
  }

  // ── lifecycle ──────────────────────────────────────────────────────────────────────────────────────

  /** power on: connect after `delayMs`, start the heartbeat with a random phase so a fleet spreads out */
  start(delayMs = 0): void {
    if (this.state !== 'idle' && this.state !== 'stopped') return;
    this.state = 'waiting';
    this.schedule(delayMs, () => this.openConnection());
    this.startHeartbeat(this.rng.range(0.05, 1) * this.heartbeatS * 1000);
    this.onStart();
  }

  /** power off cleanly: DISCONNECT (so no Last Will), timers cancelled; the outbox is kept */
  async stop(): Promise<void> {
    if (this.state === 'online') this.observer.onDisconnected?.(this, 'switched off');
    this.state = 'stopped';
    this.cancelTimers();
    const c = this.client;
    this.client = null;
    this.gen++;
    if (!c) return;
    // a clean DISCONNECT waits for in-flight PUBACKs; a gateway that never answers must not hang the shutdown
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        c.end(true);
        resolve();
      }, 1000);
      c.end(false, {}, () => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  /**
   * The network goes away under the device: the socket dies without DISCONNECT, so the broker publishes the
   * Last Will. The firmware keeps running and buffering; it reconnects after `forMs` (never, without `connect`).
   */
  disconnect(forMs?: number): void {
    if (this.state === 'dead' || this.state === 'stopped') return;
    this.dropConnection('network lost');
    this.state = 'down';
    this.cancelPending();
    if (forMs !== undefined) this.schedule(forMs, () => this.reconnectNow());
  }

  /** network back (after `disconnect`), or power on if idle */
  connect(): void {
    if (this.state === 'idle' || this.state === 'stopped') return this.start();
    if (this.state === 'down' || this.state === 'waiting') this.reconnectNow();
  }

  /**
   * The device falls silent. `dead`: power or firmware failure — no traffic at all, the broker times the
   * socket out or sees it die; after `forMs` it reboots. `mute`: the firmware hangs but the MQTT stack keeps
   * pinging — connected, no heartbeats (only supervision by message can find it).
   */
  silence(forMs?: number, mode: 'dead' | 'mute' = 'dead'): void {
    if (mode === 'mute') {
      this.muted = true;
      if (forMs !== undefined) this.schedule(forMs, () => (this.muted = false), true);
      return;
    }
    this.dropConnection('device dead');
    this.cancelTimers();
    this.state = 'dead';
    if (forMs !== undefined) this.schedule(forMs, () => this.reboot());
  }

  /** the link goes down and up `times` times, `periodMs` apart (half down, half up) */
  flap(times: number, periodMs: number): void {
    for (let i = 0; i < times; i++) {
      this.scheduler.after(i * periodMs, () => this.disconnect(periodMs / 2));
    }
  }

  /** restart the firmware: seq counter from zero, a new connection (unacknowledged alarms are in flash and kept) */
  reboot(): void {
    if (this.state === 'stopped') return;
    this.dropConnection('reboot');
    this.cancelTimers();
    this.seq = 0;
    this.boots++;
    this.muted = false;
    this.attempt = 0;
    this.state = 'idle';
    this.start(this.rng.range(200, 1000));
  }

  // ── what the resident or the environment does ──────────────────────────────────────────────────────

  /**
   * Publish an event on `devices/{id}/events` at QoS 1. Returns the message, or null when the device is dead
   * (a dead device records nothing). Throws for a type this kind's firmware cannot send.
   */
  event(type: string, extra: Record<string, unknown> = {}): OutMessage | null {
    if (!this.profile.events.includes(type)) {
      throw new RangeError(`a ${this.kind} cannot send "${type}" (it sends: ${this.profile.events.join(', ')})`);
    }
    if (this.state === 'dead' || this.state === 'stopped') return null;
    const m = this.enqueue('events', 1, type, { ...this.eventExtras(type), ...extra });
    this.events.push(m);
    if (this.events.length > 1000) this.events.shift();
    return m;
  }

  /** set the battery level and report it */
  setBattery(level: number): void {
    this.battery = Math.max(0, Math.min(100, level));
    this.telemetry('battery', { level: Math.round(this.battery) }, 1);
  }

  /** the most recent life-safety alarm not yet acknowledged by an acknowledge-alarm command */
  lastOpenAlarm(): OutMessage | null {
    for (let i = this.events.length - 1; i >= 0; i--) {
      const a = this.events[i] as OutMessage;
      if (a.alarm && a.ackCommandAt === null) return a;
    }
    return null;
  }

  // ── hooks for the kinds ────────────────────────────────────────────────────────────────────────────

  protected onStart(): void {}
  protected heartbeatExtras(): Record<string, unknown> {
    return {};
  }
  protected eventExtras(_type: string): Record<string, unknown> {
    return {};
  }
  /** apply one configuration parameter; return an error text if it is not understood */
  protected configureParam(key: string, value: unknown): string | null {
    if (key === 'heartbeatS') {
      if (typeof value !== 'number' || !(value >= 1 && value <= 86_400)) return 'heartbeatS must be a number of seconds in 1..86400';
      this.heartbeatS = value;
      this.startHeartbeat(value * 1000);
      return null;
    }
    return `unknown parameter "${key}"`;
  }
  /** locate-now: publish a position; kinds without GPS answer with an error */
  protected locateNow(): string | null {
    return 'this device has no position fix';
  }

  /** publish telemetry (QoS 0 for heartbeats; positions and battery reports at QoS 1) */
  protected telemetry(type: string, body: Record<string, unknown>, qos: 0 | 1 = 0): OutMessage | null {
    if (this.state === 'dead' || this.state === 'stopped') return null;
    return this.enqueue('telemetry', qos, type, body);
  }

  // ── internals ──────────────────────────────────────────────────────────────────────────────────────

  private enqueue(channel: Channel, qos: 0 | 1, type: string, body: Record<string, unknown>): OutMessage {
    const seq = ++this.seq;
    const ts = Date.now() + (this.opts.clockSkewMs ?? 0);
    const m: OutMessage = {
      channel,
      qos,
      type,
      seq,
      ts,
      json: JSON.stringify({ ts, seq, type, ...body }),
      alarm: channel === 'events' && (ALARM_TYPES as readonly string[]).includes(type),
      createdAt: this.scheduler.now(),
      firstSentAt: null,
      firstSentWall: null,
      sends: 0,
      acked: false,
      ackedAt: null,
      ackCommandAt: null,
    };
    for (const d of this.outbox.push(m)) {
      this.cancelResend(d.message);
      this.observer.onDropped?.(this, d);
    }
    if (this.online && this.outbox.all().includes(m)) this.send(m);
    return m;
  }

  private send(m: OutMessage): void {
    const c = this.client;
    if (!c || !this.online) return;
    const resend = m.sends > 0;
    m.sends++;
    if (m.firstSentAt === null) {
      m.firstSentAt = this.scheduler.now();
      m.firstSentWall = Date.now();
    }
    const topic = `devices/${this.id}/${m.channel}`;
    if (m.qos === 0) {
      this.outbox.remove(m);
      c.publish(topic, m.json, { qos: 0 });
    } else {
      c.publish(topic, m.json, { qos: 1 }, (err) => {
        // a PUBACK may arrive for an older copy on an older connection: it acknowledges the message all the same
        if (!err) this.onAcked(m);
      });
      this.armResend(m);
    }
    this.observer.onSent?.(this, m, resend);
  }

  private onAcked(m: OutMessage): void {
    if (m.acked) return;
    m.acked = true;
    m.ackedAt = this.scheduler.now();
    this.cancelResend(m);
    this.outbox.remove(m);
    this.observer.onPuback?.(this, m, m.ackedAt - (m.firstSentAt ?? m.createdAt));
  }

  private armResend(m: OutMessage): void {
    this.cancelResend(m);
    const wait = Math.min(60_000, this.ackTimeoutMs * 2 ** Math.max(0, m.sends - 1));
    this.resendTimers.set(
      m,
      this.scheduler.after(wait, () => {
        this.resendTimers.delete(m);
        if (!m.acked && this.online) this.send(m);
      }),
    );
  }

  private cancelResend(m: OutMessage): void {
    const h = this.resendTimers.get(m);
    if (h) {
      this.scheduler.cancel(h);
      this.resendTimers.delete(m);
    }
  }

  private openConnection(): void {
    this.pending = null;
    if (this.state === 'dead' || this.state === 'stopped' || this.state === 'down') return;
    const gen = ++this.gen;
    this.state = 'connecting';
    const url = new URL(this.opts.mqttUrl);
    const secure = url.protocol === 'mqtts:' || url.protocol === 'ssl:' || url.protocol === 'tls:';
    const host = url.hostname || 'localhost';
    const port = Number(url.port) || (secure ? 8883 : 1883);
    let timer = timers.get(this.scheduler);
    if (!timer) timers.set(this.scheduler, (timer = mqttTimer(this.scheduler)));
    // noDelay: Nagle would hold a small PUBLISH back behind an unacknowledged one and add ~40 ms (docs/design.md §7)
    const build = () =>
      secure
        ? tls.connect({ host, port, servername: host, rejectUnauthorized: !this.opts.insecureTls }).setNoDelay(true)
        : net.createConnection({ host, port, noDelay: true });
    const client = new MqttClient(build as never, {
      clientId: this.id,
      username: this.id,
      password: this.opts.creds.secret,
      protocolVersion: 4,
      clean: true,
      keepalive: this.keepaliveS,
      reconnectPeriod: 0,
      connectTimeout: this.opts.connectTimeoutMs ?? 10_000,
      resubscribe: false,
      queueQoSZero: false,
      timerVariant: timer as never,
      will: {
        topic: `devices/${this.id}/status`,
        payload: Buffer.from('{"online":false}'),
        qos: 1,
        retain: this.opts.willRetain ?? true,
      },
    });
    this.client = client;
    client.on('connect', () => {
      if (gen === this.gen) this.onConnected();
    });
    client.on('message', (_topic, payload) => {
      if (gen === this.gen) this.onMessage(payload);
    });
    client.on('error', (err) => {
      if (gen === this.gen) this.lastError = err.message;
    });
    client.on('close', () => {
      if (gen === this.gen) this.onClosed();
    });
  }

  private onConnected(): void {
    const attempt = this.attempt;
    this.state = 'online';
    this.attempt = 0;
    this.connects++;
    this.lastError = null;
    const c = this.client as MqttClient;
    c.subscribe(`devices/${this.id}/commands`, { qos: 1 });
    c.publish(`devices/${this.id}/status`, '{"online":true}', { qos: 1 });
    this.observer.onConnected?.(this, attempt);
    // flush in creation order: what was in flight on the lost connection first, then what was buffered
    for (const m of this.outbox.all().slice()) this.send(m);
  }

  private onClosed(): void {
    const wasOnline = this.state === 'online';
    const c = this.client;
    this.client = null;
    this.gen++;
    if (c) c.end(true);
    for (const h of this.resendTimers.values()) this.scheduler.cancel(h);
    this.resendTimers.clear();
    if (this.state === 'down' || this.state === 'dead' || this.state === 'stopped') return;
    const reason = this.lastError ?? 'connection closed';
    if (wasOnline) this.observer.onDisconnected?.(this, reason);
    else this.connectFailures++;
    const delay = backoffDelay(this.attempt++, this.backoff, this.rng);
    if (!wasOnline) this.observer.onConnectFailed?.(this, reason, delay);
    this.state = 'waiting';
    this.schedule(delay, () => this.openConnection());
  }

  private dropConnection(reason: string): void {
    const c = this.client;
    const wasOnline = this.state === 'online';
    this.client = null;
    this.gen++;
    for (const h of this.resendTimers.values()) this.scheduler.cancel(h);
    this.resendTimers.clear();
    if (c) {
      // abrupt: no DISCONNECT, so the broker publishes the Last Will [MQTT-3.1.2-8]
      c.stream?.destroy();
      c.end(true);
    }
    if (wasOnline) this.observer.onDisconnected?.(this, reason);
  }

  private reconnectNow(): void {
    if (this.state === 'dead' || this.state === 'stopped' || this.state === 'online' || this.state === 'connecting') return;
    this.cancelPending();
    this.state = 'waiting';
    this.attempt = 0;
    // the network is back for everyone at once: real firmware still waits a jittered moment
    this.schedule(this.rng.range(0, Math.min(1000, this.backoff.initialMs)), () => this.openConnection());
  }

  private onMessage(payload: Buffer): void {
    let cmd: DeviceCommand;
    try {
      const v = JSON.parse(payload.toString('utf8')) as Partial<DeviceCommand>;
      if (typeof v !== 'object' || v === null || typeof v.id !== 'string' || typeof v.type !== 'string') return;
      cmd = v as DeviceCommand;
    } catch {
      return; // firmware ignores what it cannot read
    }
    // QoS 1 may deliver a command twice: obey once, answer every time
    const dup = this.seenCommands.includes(cmd.id);
    let result: CommandResult = { ok: true };
    let alarm: OutMessage | null = null;
    let latency: number | null = null;
    if (!dup) {
      this.seenCommands.push(cmd.id);
      if (this.seenCommands.length > 32) this.seenCommands.shift();
      ({ result, alarm, latency } = this.obey(cmd));
      this.commands.push({ cmd, at: this.scheduler.now(), result });
      if (this.commands.length > 256) this.commands.shift();
      this.observer.onCommand?.(this, cmd, result, alarm, latency);
    } else {
      result = this.commands.find((c) => c.cmd.id === cmd.id)?.result ?? result;
    }
    const ack = result.ok ? { id: cmd.id, ok: true } : { id: cmd.id, ok: false, error: result.error };
    this.client?.publish(`devices/${this.id}/commands/ack`, JSON.stringify(ack), { qos: 1 });
  }

  private obey(cmd: DeviceCommand): { result: CommandResult; alarm: OutMessage | null; latency: number | null } {
    const none = { alarm: null, latency: null };
    switch (cmd.type) {
      case 'acknowledge-alarm': {
        // "help is coming": match the alarm by seq when the gateway says which, else the latest open one
        const seq = cmd.params?.['seq'];
        const alarm =
          (typeof seq === 'number' ? this.events.find((a) => a.alarm && a.seq === seq && a.ackCommandAt === null) : undefined) ??
          this.lastOpenAlarm();
        if (!alarm) return { result: { ok: true }, ...none };
        alarm.ackCommandAt = this.scheduler.now();
        return { result: { ok: true }, alarm, latency: alarm.ackCommandAt - (alarm.firstSentAt ?? alarm.createdAt) };
      }
      case 'configure': {
        const params = cmd.params ?? {};
        const errors: string[] = [];
        for (const [k, v] of Object.entries(params)) {
          const e = this.configureParam(k, v);
          if (e) errors.push(e);
        }
        return { result: errors.length ? { ok: false, error: errors.join('; ') } : { ok: true }, ...none };
      }
      case 'locate-now': {
        const e = this.locateNow();
        return { result: e ? { ok: false, error: e } : { ok: true }, ...none };
      }
      case 'test-alarm': {
        this.event('test');
        return { result: { ok: true }, ...none };
      }
      default:
        return { result: { ok: false, error: `unknown command type "${cmd.type}"` }, ...none };
    }
  }

  private startHeartbeat(firstMs: number): void {
    this.scheduler.cancel(this.heartbeatTimer);
    this.heartbeatTimer = this.scheduler.every(this.heartbeatS * 1000, () => this.heartbeat(), firstMs);
  }

  private heartbeat(): void {
    if (this.state === 'dead' || this.state === 'stopped') return;
    this.drain(this.heartbeatS);
    if (this.battery <= 0) {
      // flat battery: the device dies where it stands (supervision must notice)
      this.silence(undefined, 'dead');
      return;
    }
    if (this.muted) return;
    this.telemetry('heartbeat', {
      battery: Math.round(this.battery),
      signal: -this.rng.int(60, 95), // dBm
      ...(this.profile.mains ? { mains: true } : {}),
      ...this.heartbeatExtras(),
    });
  }

  private drain(seconds: number): void {
    if (this.drainPerHour <= 0) return;
    const before = this.battery;
    this.battery = Math.max(0, this.battery - (this.drainPerHour * seconds) / 3600);
    const crossed = LOW_BATTERY_STEPS.find((s) => before > s && this.battery <= s);
    if (crossed !== undefined) this.telemetry('battery', { level: Math.round(this.battery) }, 1);
  }

  private schedule(ms: number, fn: () => void, keepPending = false): void {
    if (keepPending) {
      this.scheduler.after(ms, fn);
      return;
    }
    this.cancelPending();
    this.pending = this.scheduler.after(ms, () => {
      this.pending = null;
      fn();
    });
  }

  private cancelPending(): void {
    this.scheduler.cancel(this.pending);
    this.pending = null;
  }

  private cancelTimers(): void {
    this.cancelPending();
    this.scheduler.cancel(this.heartbeatTimer);
    this.heartbeatTimer = null;
    for (const h of this.resendTimers.values()) this.scheduler.cancel(h);
    this.resendTimers.clear();
    this.cancelKindTimers();
  }

  protected cancelKindTimers(): void {}
}
