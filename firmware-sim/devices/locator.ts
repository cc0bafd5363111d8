// GPS watch / tracker: walks around home on a seeded random walk that stays inside the safe zone, reports its
// position, adds it to every alarm, and can be sent out of the zone on demand. Long keepalive: it saves battery.
import { Terminal, type TerminalOptions } from './terminal.js';
import type { KindProfile, OutMessage } from './types.js';
import type { TimerHandle } from '../core/scheduler.js';
import { bearing, distanceM, offset, zoneCentre, type LatLon, type SafeZone } from '../core/geo.js';

export const locatorProfile: KindProfile = {
  kind: 'locator',
  keepaliveS: 180,
  heartbeatS: 300,
  drainPerHour: 2,
  mains: false,
  events: ['sos', 'cancel', 'removed', 'test'],
  fleetAlarm: 'sos',
  positionS: 60,
};

/** where simulated residents live when the scenario does not say (a city centre; any will do) */
export const DEFAULT_CITY: LatLon = { lat: 39.9042, lon: 116.4074 };
export const DEFAULT_ZONE_RADIUS_M = 300;

export class Locator extends Terminal {
  home: LatLon;
  zone: SafeZone;
  position: LatLon;
  positionS: number;
  /** true once walked out of the zone on demand (the random walk then stays out there) */
  outside = false;
  private heading: number;
  private positionTimer: TimerHandle | null = null;
  private pathTimers: TimerHandle[] = [];
  private anchor: LatLon;

  constructor(opts: TerminalOptions & { positionS?: number }) {
    super(locatorProfile, opts);
    this.positionS = opts.positionS ?? locatorProfile.positionS ?? 60;
    this.home = opts.creds.home ?? offset(DEFAULT_CITY, this.rng.range(0, 5000), this.rng.range(0, 360));
    this.zone = opts.creds.safeZone ?? { type: 'circle', center: this.home, radiusM: DEFAULT_ZONE_RADIUS_M };
    this.position = { ...this.home };
    this.anchor = zoneCentre(this.zone).center;
    this.heading = this.rng.range(0, 360);
  }

  sos(): OutMessage | null {
    return this.event('sos');
  }

  cancel(): OutMessage | null {
    return this.event('cancel');
  }

  /** taken off the wrist */
  removed(): OutMessage | null {
    return this.event('removed');
  }

  /**
   * Walk out of the safe zone over `overMs`, reporting positions along the way, to `distanceM` from the
   * zone's centre (default: half a radius beyond its edge, at least 100 m).
   */
  walkOutOfZone(overMs = 10_000, distanceM?: number): void {
    const { center, radiusM } = zoneCentre(this.zone);
    const dist = distanceM ?? radiusM + Math.max(100, radiusM / 2);
    const target = offset(center, dist, this.rng.range(0, 360));
    this.walkTo(target, overMs);
    this.outside = true;
    this.anchor = target;
  }

  /** walk back home */
  returnHome(overMs = 10_000): void {
    this.walkTo(this.home, overMs);
    this.outside = false;
    this.anchor = zoneCentre(this.zone).center;
  }

  /** publish the current position now (locate-now, and each step of the walk) */
  reportPosition(): OutMessage | null {
    return this.telemetry('position', { lat: this.position.lat, lon: this.position.lon, accuracy: this.rng.int(5, 25) }, 1);
  }

  protected override onStart(): void {
    this.scheduler.cancel(this.positionTimer);
    const period = this.positionS * 1000;
    this.positionTimer = this.scheduler.every(period, () => this.wander(), this.rng.range(0.05, 1) * period);
  }

  protected override cancelKindTimers(): void {
    this.scheduler.cancel(this.positionTimer);
    this.positionTimer = null;
    for (const t of this.pathTimers) this.scheduler.cancel(t);
    this.pathTimers = [];
  }

  protected override eventExtras(type: string): Record<string, unknown> {
    // every life-safety event carries the position (the operator sends help there)
    return type === 'sos' || type === 'removed' ? { position: { lat: this.position.lat, lon: this.position.lon, accuracy: 10 } } : {};
  }

  protected override locateNow(): string | null {
    return this.reportPosition() ? null : 'device is not running';
  }

  protected override configureParam(key: string, value: unknown): string | null {
    if (key === 'safeZone') {
      const z = parseZone(value);
      if (!z) return 'safeZone must be {type:"circle",center:{lat,lon},radiusM} or {type:"polygon",points:[{lat,lon},…]}';
      this.zone = z;
      if (!this.outside) this.anchor = zoneCentre(z).center;
      return null;
    }
    if (key === 'positionS') {
      if (typeof value !== 'number' || !(value >= 1 && value <= 86_400)) return 'positionS must be seconds in 1..86400';
      this.positionS = value;
      this.onStart();
      return null;
    }
    return super.configureParam(key, value);
  }

  /** one step of the random walk: wander, but turn back towards the anchor when drifting too far */
  wander(): void {
    if (this.pathTimers.length > 0) return; // a scripted walk is in progress
    const { radiusM } = zoneCentre(this.zone);
    const leash = this.outside ? 60 : radiusM * 0.7;
    this.heading = (this.heading + this.rng.normal() * 40 + 360) % 360;
    const meters = Math.min(this.rng.range(0.2, 1.2) * this.positionS, leash / 2);
    let next = offset(this.position, meters, this.heading);
    if (distanceM(next, this.anchor) > leash) {
      this.heading = bearing(this.position, this.anchor);
      next = offset(this.position, meters, this.heading);
    }
    this.position = next;
    this.reportPosition();
  }

  private walkTo(target: LatLon, overMs: number): void {
    for (const t of this.pathTimers) this.scheduler.cancel(t);
    this.pathTimers = [];
    const from = { ...this.position };
    const steps = Math.max(3, Math.round(overMs / 2000));
    for (let i = 1; i <= steps; i++) {
      const f = i / steps;
      const h = this.scheduler.after((overMs * i) / steps, () => {
        this.position = {
          lat: Math.round((from.lat + (target.lat - from.lat) * f) * 1e7) / 1e7,
          lon: Math.round((from.lon + (target.lon - from.lon) * f) * 1e7) / 1e7,
        };
        this.reportPosition();
        if (i === steps) this.pathTimers = [];
      });
      this.pathTimers.push(h);
    }
  }
}

function parseZone(v: unknown): SafeZone | null {
  if (typeof v !== 'object' || v === null) return null;
  const z = v as Record<string, unknown>;
  const isPoint = (p: unknown): p is LatLon =>
    typeof p === 'object' && p !== null && typeof (p as LatLon).lat === 'number' && typeof (p as LatLon).lon === 'number';
  if (z['type'] === 'circle' && isPoint(z['center']) && typeof z['radiusM'] === 'number' && z['radiusM'] > 0) {
    return { type: 'circle', center: z['center'], radiusM: z['radiusM'] };
  }
  if (z['type'] === 'polygon' && Array.isArray(z['points']) && z['points'].length >= 3 && z['points'].every(isPoint)) {
    return { type: 'polygon', points: z['points'] };
  }
  return null;
}
