// A fleet: many terminals on one shared scheduler, connected at a bounded rate, with optional random alarm
// traffic (a Poisson process, seeded) and counters for the progress line and the report.
import { Rng } from './core/prng.js';
import { RealScheduler, type Scheduler, type TimerHandle } from './core/scheduler.js';
import { createTerminal } from './devices/kinds.js';
import type { Terminal, TerminalOptions } from './devices/terminal.js';
import { FallSensor } from './devices/fall-sensor.js';
import { Locator } from './devices/locator.js';
import { SIM_KINDS, type Credentials, type SimKind } from './devices/types.js';
import { FleetStats } from './stats.js';

export interface FleetOptions {
  devices: readonly Credentials[];
  mqttUrl: string;
  seed: number;
  scheduler?: Scheduler;
  /** connection attempts per second when the fleet powers on (a fleet does not all boot in one millisecond) */
  connectRatePerS?: number;
  /** firmware options shared by every terminal */
  terminal?: Pick<TerminalOptions, 'backoff' | 'ackTimeoutMs' | 'outbox' | 'willRetain' | 'connectTimeoutMs' | 'insecureTls'>;
  /** per-kind overrides of the firmware defaults (shorter heartbeats for tests, say) */
  kinds?: Partial<Record<SimKind, { heartbeatS?: number; keepaliveS?: number; drainPerHour?: number; positionS?: number }>>;
  /** per-device overrides by id (scenario groups) */
  perDevice?: (creds: Credentials) => { heartbeatS?: number; keepaliveS?: number; drainPerHour?: number; positionS?: number; battery?: number } | undefined;
}

export interface TrafficOptions {
  /** alarms per minute across the whole fleet */
  ratePerMin: number;
  /** share of falls the resident cancels (after 3–20 s, inside the cancel window) */
  cancelShare?: number;
}

export class Fleet {
  readonly terminals: Terminal[] = [];
  readonly byId = new Map<string, Terminal>();
  readonly stats = new FleetStats();
  readonly scheduler: Scheduler;
  readonly rng: Rng;
  private traffic: TimerHandle | null = null;
  private readonly trafficRng: Rng;
  private readonly ownsScheduler: boolean;

  constructor(private readonly opts: FleetOptions) {
    this.ownsScheduler = !opts.scheduler;
    this.scheduler = opts.scheduler ?? new RealScheduler();
    this.rng = new Rng(opts.seed);
    this.trafficRng = this.rng.fork('traffic');
    for (const creds of opts.devices) {
      const k = opts.kinds?.[creds.kind] ?? {};
      const d = opts.perDevice?.(creds) ?? {};
      const t = createTerminal({
        creds,
        mqttUrl: opts.mqttUrl,
        scheduler: this.scheduler,
        // each device draws from its own stream: adding a device does not change what the others do
        rng: this.rng.fork(`device/${creds.id}`),
        observer: this.stats,
        ...opts.terminal,
        battery: d.battery,
        profile: {
          heartbeatS: d.heartbeatS ?? k.heartbeatS,
          keepaliveS: d.keepaliveS ?? k.keepaliveS,
          drainPerHour: d.drainPerHour ?? k.drainPerHour,
        },
        positionS: d.positionS ?? k.positionS,
      });
      this.terminals.push(t);
      this.byId.set(t.id, t);
    }
  }

  get size(): number {
    return this.terminals.length;
  }

  countByKind(): Record<SimKind, number> {
    const out = Object.fromEntries(SIM_KINDS.map((k) => [k, 0])) as Record<SimKind, number>;
    for (const t of this.terminals) out[t.kind]++;
    return out;
  }

  /** power on every terminal (or the given ones), spread at `connectRatePerS` */
  start(which: readonly Terminal[] = this.terminals): void {
    const rate = this.opts.connectRatePerS ?? 500;
    which.forEach((t, i) => t.start((i / rate) * 1000));
  }

  /** random alarms at `ratePerMin` over the fleet until `stopTraffic` */
  startTraffic(o: TrafficOptions): void {
    this.stopTraffic();
    if (!(o.ratePerMin > 0) || this.terminals.length === 0) return;
    const meanMs = 60_000 / o.ratePerMin;
    const cancelShare = o.cancelShare ?? 0.3;
    const tick = () => {
      const t = this.trafficRng.pick(this.terminals);
      if (t instanceof FallSensor) {
        const m = t.fall(this.trafficRng.range(0.65, 0.99));
        if (m && this.trafficRng.chance(cancelShare)) this.scheduler.after(this.trafficRng.range(3000, 20_000), () => t.cancel());
      } else if (t instanceof Locator) {
        t.sos();
      } else {
        t.event('sos');
      }
      this.traffic = this.scheduler.after(this.trafficRng.exp(meanMs), tick);
    };
    this.traffic = this.scheduler.after(this.trafficRng.exp(meanMs), tick);
  }

  stopTraffic(): void {
    this.scheduler.cancel(this.traffic);
    this.traffic = null;
  }

  /** resolve once `count` terminals are online (default: all), or reject after `timeoutMs` */
  waitConnected(count = this.terminals.length, timeoutMs = 60_000): Promise<void> {
    return waitFor(() => this.stats.connected >= count, timeoutMs, () => `only ${this.stats.connected}/${count} devices connected`);
  }

  /** every alarm PUBACKed (nothing left in any outbox that is an event) */
  pendingEvents(): number {
    let n = 0;
    for (const t of this.terminals) for (const m of t.outbox.all()) if (m.channel === 'events') n++;
    return n;
  }

  async stop(): Promise<void> {
    this.stopTraffic();
    // clean DISCONNECTs in batches: thousands of simultaneous closes are a storm of their own
    for (let i = 0; i < this.terminals.length; i += 500) {
      await Promise.all(this.terminals.slice(i, i + 500).map((t) => t.stop()));
    }
    if (this.ownsScheduler) this.scheduler.clear();
  }
}

export function waitFor(cond: () => boolean, timeoutMs: number, describe: () => string, everyMs = 50): Promise<void> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const check = () => {
      if (cond()) return resolve();
      if (Date.now() - started > timeoutMs) return reject(new Error(`timed out after ${timeoutMs} ms: ${describe()}`));
      setTimeout(check, everyMs);
    };
    check();
  });
}

/** parse `call-phone:50,fall-sensor:30,locator:20` into counts that add up to `total` */
export function parseMix(mix: string, total: number): Record<SimKind, number> {
  const weights: Partial<Record<SimKind, number>> = {};
  for (const part of mix.split(',').map((p) => p.trim()).filter(Boolean)) {
    const [k, w] = part.split(':');
    if (!k || !(SIM_KINDS as readonly string[]).includes(k)) throw new Error(`unknown kind "${k}" in --mix (kinds: ${SIM_KINDS.join(', ')})`);
    const n = Number(w ?? '1');
    if (!Number.isFinite(n) || n < 0) throw new Error(`weight of ${k} in --mix must be a number ≥ 0, got "${w}"`);
    weights[k as SimKind] = n;
  }
  const sum = Object.values(weights).reduce((a, b) => a + (b ?? 0), 0);
  if (sum <= 0) throw new Error('--mix needs at least one kind with a weight > 0');
  const out = Object.fromEntries(SIM_KINDS.map((k) => [k, 0])) as Record<SimKind, number>;
  // largest remainder: the counts add up to exactly `total`
  const exact = SIM_KINDS.map((k) => ({ k, x: ((weights[k] ?? 0) / sum) * total }));
  let given = 0;
  for (const e of exact) {
    out[e.k] = Math.floor(e.x);
    given += out[e.k];
  }
  exact.sort((a, b) => (b.x - Math.floor(b.x)) - (a.x - Math.floor(a.x)));
  for (let i = 0; given < total; i++, given++) out[(exact[i % exact.length] as { k: SimKind }).k]++;
  return out;
}
