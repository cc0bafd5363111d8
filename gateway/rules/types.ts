// The rule contract. A rule is a small pure function of (observation, context) with declared timers: no I/O, no
// Date.now() (ctx.now is the clock), no timers of its own. What it wants to happen later it asks for in its output
// ({ set: 'late', inMs }), and the engine calls its onTimer when that comes due. Per-device memory a rule needs
// (flap history, hysteresis state) is handed in as ctx.memory and returned as output.memory, so the rule itself
// stays a function and the engine owns all state.
import type { AlarmAction, DeviceKind, IncidentStatus, Observation, Position, Priority } from '../../core/contracts.js';
import type { Config } from '../../core/config.js';
import type { SafeZone } from '../../devices/schema.js';
import type { RuleSettings } from './settings.js';

export type Supervision = 'ok' | 'late' | 'offline' | 'never-seen';

/** The device as the rules see it: its state *before* the observation being evaluated is applied. */
export interface DeviceView {
  id: string;
  kind: DeviceKind | string;
  power: 'battery' | 'mains';
  residentId: string | null;
  unitId: string | null;
  /** gateway clock (epoch ms) of the last observation heard from the device; null if never */
  lastSeen: number | null;
  /** last usable fix, kept by ingest from position telemetry and events */
  lastPosition: Position | null;
  battery: number | null;
  /** mains present at the last report (heartbeat mains, power-lost/-restored); null/absent = unknown */
  mains?: boolean | null;
  supervision: Supervision;
  /** per-device configuration; rules read `heartbeatMs` and `cancelWindowMs` (numbers, ms) and `checkIn` (boolean) */
  config: Readonly<Record<string, unknown>>;
}

export interface ResidentView {
  id: string;
  unitId: string | null;
  safeZone: SafeZone | null;
  home: { lat: number; lon: number } | null;
  /** null = the rule default (settings.noMovementDefaultSeconds) */
  noMovementSeconds: number | null;
  /** local "HH:MM" by which the daily check-in is due; null = no check-in service */
  checkInBy: string | null;
}

/** What the rules need to know about a device kind (from devices/kinds/<kind>.ts). */
export interface KindInfo {
  kind: DeviceKind | string;
  /** the interval at which a battery-powered device of this kind reports (heartbeat or any message), ms */
  heartbeatMs: number;
  /** the (usually shorter) interval of a mains-powered one; absent = the same as heartbeatMs */
  mainsHeartbeatMs?: number;
  /** a dead one leaves a resident unprotected: offline is P2 (fall sensors, Modbus detectors), else P3 */
  lifeSafetySensor: boolean;
  /** how long after a fall the resident may cancel it, ms */
  cancelWindowMs?: number;
  /** battery percentage below which low-battery is raised */
  lowBatteryPct: number;
}

/** An incident of this device that is not yet resolved or cancelled, as the incident service knows it. */
export interface OpenIncidentView {
  id: string;
  openedAt: number;
  status: IncidentStatus;
}

/** Everything a rule may read. Settings include the supervision section of the configuration. */
export interface RuleContext<M = unknown> {
  /** gateway wall clock, epoch ms */
  now: number;
  device: DeviceView;
  resident: ResidentView | null;
  kind: KindInfo;
  settings: EngineSettings;
  /** this rule's memory for this device, as last returned in output.memory; undefined if none (or after restart) */
  memory: M | undefined;
  openIncident(type: string): OpenIncidentView | undefined;
  /** whether this rule's timer `key` is pending for this device */
  hasTimer(key: string): boolean;
}

export type TimerRequest = { set: string; inMs: number } | { clear: string };

/** The part of the device state rules may change (ingest applies it after its own updates). */
export type DeviceStatePatch = Partial<Pick<DeviceView, 'supervision'>>;

export interface RuleOutput<M = unknown> {
  alarms?: AlarmAction[];
  timers?: TimerRequest[];
  state?: DeviceStatePatch;
  /** replaces this rule's memory for the device; null forgets it */
  memory?: M | null;
  /**
   * An explicit, reasoned decision not to raise an alarm for a life-safety observation (a bed exit by day when so
   * configured, a restore). Without it, a life-safety observation that produced no alarm gets the engine's
   * fallback P1 raise.
   */
  handled?: string;
}

export interface Rule<M = unknown> {
  readonly name: string;
  /** observation types this rule looks at; '*' for every observation */
  readonly on: readonly string[];
  /** the timer keys it may set; the engine refuses others (and uses the list to forget a device) */
  readonly timers?: readonly string[];
  evaluate(obs: Observation, ctx: RuleContext<M>): RuleOutput<M> | undefined;
  onTimer?(key: string, ctx: RuleContext<M>): RuleOutput<M> | undefined;
  /** at start-up (and when a device or its resident changes): the timers to arm from the stored state */
  restore?(ctx: RuleContext<M>, hints: RestoreHints): Pick<RuleOutput<M>, 'timers' | 'memory'> | undefined;
}

/** What ingest can tell about a device's past at start-up, from the observation history. */
export interface RestoreHints {
  /** last check-in observation (epoch ms); null = never; undefined = not looked up */
  lastCheckInAt?: number | null;
  /** last presence/activity observation (epoch ms); null = never; undefined = not looked up */
  lastActivityAt?: number | null;
  /** the gateway is starting (not a device or resident that changed): devices get supervision's start-up grace */
  startup?: boolean;
}

/** Rule settings plus the supervision section of the configuration. */
export interface EngineSettings extends RuleSettings {
  supervision: Config['supervision'];
  /** resolved: the configured offset, or the host's offset at start-up */
  timeZoneOffsetMinutes: number;
}

export type { Priority };
