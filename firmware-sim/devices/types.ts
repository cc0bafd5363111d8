// What a simulated terminal sends and receives, as the firmware of a real one would (docs/design.md §2, notes/api.md).
// Kept here rather than imported from the gateway: firmware-sim is an outside client and may drive a rival.
import type { LatLon, SafeZone } from '../core/geo.js';

export const SIM_KINDS = ['call-phone', 'fall-sensor', 'locator'] as const;
export type SimKind = (typeof SIM_KINDS)[number];

export function isSimKind(k: string): k is SimKind {
  return (SIM_KINDS as readonly string[]).includes(k);
}

/** Event types that are emergencies: they go ahead of telemetry and are never dropped before it. */
export const ALARM_TYPES = ['sos', 'fall', 'removed', 'call-request', 'no-movement'] as const;

export interface Credentials {
  id: string;
  secret: string;
  kind: SimKind;
  serial?: string;
  residentId?: string;
  home?: LatLon;
  safeZone?: SafeZone;
}

export type Channel = 'events' | 'telemetry';

/** One message the firmware produced, from creation to PUBACK. */
export interface OutMessage {
  channel: Channel;
  qos: 0 | 1;
  type: string;
  seq: number;
  /** device clock, epoch ms */
  ts: number;
  /** serialised once so that a resend repeats the same bytes (same seq, same ts) */
  json: string;
  /** a life-safety event: never dropped before telemetry */
  alarm: boolean;
  /** scheduler ms */
  createdAt: number;
  firstSentAt: number | null;
  /** wall clock of the first send, epoch ms */
  firstSentWall: number | null;
  sends: number;
  acked: boolean;
  ackedAt: number | null;
  /** when the device received an acknowledge-alarm command for it */
  ackCommandAt: number | null;
}

export interface DeviceCommand {
  id: string;
  type: string;
  ts?: number;
  incidentId?: string;
  params?: Record<string, unknown>;
}

export type FallSensitivity = 'low' | 'medium' | 'high';

/** Per-kind firmware defaults. */
export interface KindProfile {
  kind: SimKind;
  /** MQTT keepalive, seconds: mains phones can afford a short one, battery trackers save power with a long one */
  keepaliveS: number;
  heartbeatS: number;
  /** battery percentage points lost per hour (0 for mains with backup kept charged) */
  drainPerHour: number;
  mains: boolean;
  /** event types this firmware can send */
  events: readonly string[];
  /** the alarm a fleet's random traffic presses */
  fleetAlarm: 'sos' | 'fall';
  /** locator: position report interval, seconds */
  positionS?: number;
}
