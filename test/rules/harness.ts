// A small world for rule tests: the real engine with a manual clock, devices and residents in memory, and an
// incident book that applies AlarmActions the way the incident service does (raise opens or joins, clear resolves,
// cancel inside the window cancels). It plays ingest's part: one device at a time, timer fires queued behind
// observations and run in order with the device's current state. Rules are pure, so no database is needed.
import { Writable } from 'node:stream';
import type { AlarmAction, Observation, Position } from '../../core/contracts.js';
import type { Config, DataRule } from '../../core/config.js';
import { createLogger } from '../../core/logger.js';
import { createEngine, type Engine, type EvaluateInput, type EvaluateResult, type TimerFire } from '../../gateway/engine.js';
import { checkPosition } from '../../gateway/geo.js';
import { CANCELLED_BY_RESIDENT } from '../../gateway/rules/fall.js';
import type { RuleSettings } from '../../gateway/rules/settings.js';
import type { DeviceView, KindInfo, OpenIncidentView, ResidentView, RestoreHints, Rule } from '../../gateway/rules/types.js';
import { createManualClock, type ManualClock } from '../../gateway/timers.js';

export const KINDS: Record<string, KindInfo> = {
  'call-phone': { kind: 'call-phone', heartbeatMs: 3600_000, mainsHeartbeatMs: 300_000, lifeSafetySensor: false, lowBatteryPct: 20 },
  'fall-sensor': { kind: 'fall-sensor', heartbeatMs: 600_000, lifeSafetySensor: true, cancelWindowMs: 30_000, lowBatteryPct: 15 },
  locator: { kind: 'locator', heartbeatMs: 900_000, lifeSafetySensor: false, lowBatteryPct: 20 },
  modbus: { kind: 'modbus', heartbeatMs: 60_000, lifeSafetySensor: true, lowBatteryPct: 0 },
  receiver: { kind: 'receiver', heartbeatMs: 30_000, lifeSafetySensor: false, lowBatteryPct: 0 },
};

export const SUPERVISION: Config['supervision'] = {
  lateFactor: 1.5, offlineFactor: 3, flapCount: 4, flapWindowMs: 15 * 60_000, intervalScale: 1,
};

/** 2026-01-15 00:00 UTC: a Thursday, far from any edge */
export const T0 = Date.UTC(2026, 0, 15, 0, 0, 0);

export interface Incident {
  id: string;
  deviceId: string;
  type: string;
  priority: string;
  status: 'open' | 'resolved' | 'cancelled';
  openedAt: number;
  count: number;
  test: boolean;
  position?: Position;
  cancelWindowMs?: number;
  data: Record<string, unknown>;
  notes: string[];
  closedReason?: string;
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
/** an observation of any type without the fields the world fills in (source may be given) */
export type ObsInput = DistributiveOmit<Observation, 'deviceId' | 'receivedAt' | 'source'> & Partial<Pick<Observation, 'source' | 'receivedAt'>>;

export interface WorldOptions {
  rules?: Rule[];
  dataRules?: DataRule[];
  ruleSettings?: Partial<RuleSettings>;
  supervision?: Partial<Config['supervision']>;
  start?: number;
}

export class World {
  readonly clock: ManualClock = createManualClock(1_000);
  readonly wall0: number;
  readonly devices = new Map<string, DeviceView>();
  readonly residents = new Map<string, ResidentView>();
  readonly incidents: Incident[] = [];
  readonly applied: { deviceId: string; alarm: AlarmAction }[] = [];
  readonly logLines: Record<string, unknown>[] = [];
  readonly fires: TimerFire[] = [];
  engine: Engine;
  /** queue timer fires instead of running them as they come due */
  holdFires = false;
  private nextIncident = 1;
  private readonly options: WorldOptions;

  constructor(options: WorldOptions = {}) {
    this.options = options;
    this.wall0 = (options.start ?? T0) - this.clock.now();
    this.engine = this.makeEngine();
  }

  private makeEngine(): Engine {
    const sink = new Writable({
      write: (chunk, _enc, cb) => {
        for (const line of String(chunk).split('\n')) if (line) this.logLines.push(JSON.parse(line));
        cb();
      },
    });
    return createEngine({
      ...(this.options.rules && { rules: this.options.rules }),
      kinds: KINDS,
      config: {
        supervision: { ...SUPERVISION, ...this.options.supervision },
        rules: this.options.dataRules ?? [],
        ruleSettings: { timeZoneOffsetMinutes: 0, ...this.options.ruleSettings },
      },
      log: createLogger('debug', sink),
      clock: this.clock,
      wallClock: () => this.now,
      onTimerDue: (fire) => {
        this.fires.push(fire);
        // an idle ingest runs a fire at once, at the time it came due; `holdFires` queues them (a busy device)
        if (!this.holdFires) this.drain();
      },
    });
  }

  /** A gateway restart: a new engine (memory and timers gone), the same devices and incidents. */
  restart(hints: (deviceId: string) => RestoreHints = () => ({})): void {
    this.engine.close();
    this.fires.length = 0;
    this.engine = this.makeEngine();
    this.engine.restoreTimers([...this.devices.keys()].map((id) => ({ ...this.input(id), hints: hints(id) })));
    this.advance(0); // overdue timers come due on the next turn of the loop

  }

  get now(): number {
    return this.wall0 + this.clock.now();
  }

  device(id: string, partial: Partial<DeviceView> = {}): DeviceView {
    const d: DeviceView = {
      id, kind: 'call-phone', power: 'battery', residentId: null, unitId: 'grid-1', lastSeen: null, lastPosition: null,
      battery: null, supervision: 'never-seen', config: {}, ...partial,
    };
    this.devices.set(id, d);
    return d;
  }

  resident(id: string, partial: Partial<ResidentView> = {}): ResidentView {
    const r: ResidentView = {
      id, unitId: 'grid-1', safeZone: null, home: null, noMovementSeconds: null, checkInBy: null, ...partial,
    };
    this.residents.set(id, r);
    return r;
  }

  openIncident(deviceId: string, type: string): Incident | undefined {
    return this.incidents.find((i) => i.deviceId === deviceId && i.type === type && i.status === 'open');
  }

  input(deviceId: string): EvaluateInput {
    const device = this.devices.get(deviceId);
    if (!device) throw new Error(`no device ${deviceId}`);
    const resident = device.residentId ? this.residents.get(device.residentId) ?? null : null;
    return {
      now: this.now,
      device: { ...device },
      resident,
      openIncident: (type): OpenIncidentView | undefined => {
        const i = this.openIncident(deviceId, type);
        return i && { id: i.id, openedAt: i.openedAt, status: 'open' };
      },
    };
  }

  /** One observation through the engine, then applied as ingest would. */
  send(deviceId: string, obs: ObsInput, opts: { drainFirst?: boolean } = {}): EvaluateResult {
    if (opts.drainFirst !== false) this.drain();
    const full = { deviceId, receivedAt: this.now, source: 'mqtt', ...obs } as Observation;
    const result = this.engine.evaluate(full, this.input(deviceId));
    this.afterObservation(full);
    this.apply(deviceId, result);
    return result;
  }

  /** Move both clocks; timers that come due are queued, then run in order. */
  advance(ms: number): EvaluateResult[] {
    const from = this.timerRuns.length;
    this.clock.advance(ms);
    this.drain();
    return this.timerRuns.slice(from);
  }

  /** every timer run so far, in order */
  readonly timerRuns: EvaluateResult[] = [];

  drain(): EvaluateResult[] {
    const from = this.timerRuns.length;
    while (this.fires.length) {
      const fire = this.fires.shift()!;
      const r = this.engine.runTimer(fire, this.input(fire.deviceId));
      this.apply(fire.deviceId, r);
      this.timerRuns.push(r);
    }
    return this.timerRuns.slice(from);
  }

  /** Fold the observation into the device's state as gateway/device-state.ts does: every observation counts as
   * seen and 'ok' (a Will included); the rules' state patch is applied after, and must correct that. */
  private afterObservation(obs: Observation): void {
    const d = this.devices.get(obs.deviceId)!;
    d.lastSeen = this.now;
    const p = checkPosition((obs as { position?: unknown }).position);
    if (p.ok) d.lastPosition = { ...p.position, at: this.now };
    if (obs.type === 'battery') d.battery = obs.level;
    if ((obs.type === 'heartbeat' || obs.type === 'position') && obs.battery !== undefined) d.battery = obs.battery;
    if (obs.type === 'heartbeat' && obs.mains !== undefined) d.mains = obs.mains;
    if (obs.type === 'power-lost') d.mains = false;
    if (obs.type === 'power-restored') d.mains = true;
    d.supervision = 'ok';
  }

  private apply(deviceId: string, result: EvaluateResult): void {
    const d = this.devices.get(deviceId);
    if (d && result.state.supervision) d.supervision = result.state.supervision;
    for (const alarm of result.alarms) {
      this.applied.push({ deviceId, alarm });
      const open = this.openIncident(deviceId, alarm.type);
      if (alarm.action === 'raise') {
        if (open) {
          open.count++;
          continue;
        }
        this.incidents.push({
          id: `inc-${this.nextIncident++}`, deviceId, type: alarm.type, priority: alarm.priority, status: 'open',
          openedAt: this.now, count: 1, test: alarm.test ?? false, position: alarm.position,
          cancelWindowMs: alarm.cancelWindowMs, data: alarm.data ?? {}, notes: [],
        });
      } else if (alarm.action === 'clear') {
        if (open) Object.assign(open, { status: 'resolved', closedReason: alarm.reason });
      } else if (open) {
        if (alarm.reason === CANCELLED_BY_RESIDENT) Object.assign(open, { status: 'cancelled', closedReason: alarm.reason });
        else open.notes.push(alarm.reason);
      }
    }
  }

  /** An operator resolves an incident by hand. */
  resolve(incident: Incident, reason = 'resolved by operator'): void {
    incident.status = 'resolved';
    incident.closedReason = reason;
  }

  raised(deviceId?: string): Extract<AlarmAction, { action: 'raise' }>[] {
    return this.applied
      .filter((a) => deviceId === undefined || a.deviceId === deviceId)
      .map((a) => a.alarm)
      .filter((a): a is Extract<AlarmAction, { action: 'raise' }> => a.action === 'raise');
  }

  /** raise actions of one alarm type (tests of one rule ignore, say, supervision of a silent device) */
  raisedOf(type: string, deviceId?: string): Extract<AlarmAction, { action: 'raise' }>[] {
    return this.raised(deviceId).filter((a) => a.type === type);
  }

  errorsLogged(): Record<string, unknown>[] {
    return this.logLines.filter((l) => (l.level as number) >= 50);
  }
}

export const MIN = 60_000;
export const HOUR = 3600_000;
