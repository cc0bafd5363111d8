// What crosses boundaries: the shared vocabulary of observations, alarms, incidents and the
// interfaces between transport (broker, adapters, server) and domain (devices, rules, response).
// Everything that enters eldergate, whatever the transport, becomes one `Observation`.

export const PRIORITIES = ['P1', 'P2', 'P3'] as const;
export type Priority = (typeof PRIORITIES)[number];

export const DEVICE_KINDS = ['call-phone', 'fall-sensor', 'locator', 'modbus', 'receiver', 'watch', 'jt808', 'dc09'] as const;
export type DeviceKind = (typeof DEVICE_KINDS)[number];

export const DEVICE_STATES = ['provisioned', 'commissioned', 'in-service', 'suspended', 'decommissioned'] as const;
export type DeviceLifecycle = (typeof DEVICE_STATES)[number];

export const ROLES = ['admin', 'technician', 'operator', 'steward'] as const;
export type Role = (typeof ROLES)[number];

/**
 * WGS84 position. `stale` marks a position that is not from this message: the device's last known fix, or the
 * resident's home address when there is no fix at all (`source` says which; a home is never a "last known fix").
 */
export interface Position {
  lat: number;
  lon: number;
  accuracy?: number;
  /** epoch ms when the fix was taken */
  at?: number;
  stale?: boolean;
  /** where a stale position came from (gateway/rules/stale-position.ts) */
  source?: 'last-known' | 'home';
}

/** Observation types that are emergencies for a person: never filtered, never shed, never swallowed. */
export const LIFE_SAFETY_TYPES = [
  'sos', 'panic', 'medical', 'fire', 'gas', 'smoke', 'pull-cord', 'fall', 'bed-exit', 'call-request', 'removed',
  'no-movement', 'wander',
] as const;
export type LifeSafetyType = (typeof LIFE_SAFETY_TYPES)[number];

export const TECHNICAL_TYPES = [
  'cancel', 'check-in', 'heartbeat', 'position', 'battery', 'power-lost', 'power-restored', 'signal', 'tamper',
  'device-fault', 'comm-lost', 'comm-restored', 'test', 'status', 'command-ack', 'presence', 'supervision', 'unknown',
  'unreadable',
] as const;
export type TechnicalType = (typeof TECHNICAL_TYPES)[number];

export type ObservationType = LifeSafetyType | TechnicalType;
export const OBSERVATION_TYPES: readonly ObservationType[] = [...LIFE_SAFETY_TYPES, ...TECHNICAL_TYPES];

export function isLifeSafety(type: string): type is LifeSafetyType {
  return (LIFE_SAFETY_TYPES as readonly string[]).includes(type);
}

export type ObservationSource = 'mqtt' | 'modbus' | 'serial' | 'gateway' | 'watch' | 'jt808' | 'dc09';

interface ObservationBase {
  deviceId: string;
  /** device counter; with `deviceTs` the deduplication key (a rebooted device restarts its counter) */
  seq?: number;
  /** device clock, epoch ms */
  deviceTs?: number;
  /** gateway clock when the frame arrived, epoch ms */
  receivedAt: number;
  source: ObservationSource;
  /** what was wrong with optional fields that were dropped, e.g. `invalid:position` */
  flags?: string[];
  /** a restore closes what the same type opened (Contact ID qualifier R/3, Modbus value back to normal) */
  restore?: boolean;
  /** transport detail kept for diagnosis (Contact ID code, Modbus register) */
  detail?: Record<string, unknown>;
  /**
   * Set by an alarm receiver's adapter for an event from an account no device is registered to (flag
   * `unknown-account`): the account as it would be registered (`receiver:line:account`). The receiver's device stands
   * for the unknown panel, and the account keeps its incidents apart from every other unknown account's.
   */
  account?: string;
  /**
   * The transport connection it arrived on (MQTT: client id and connect time). A device resends an unacknowledged
   * message only on a new connection [MQTT-4.4.0-1]; a repeat in the same session is a resend or a firmware bug.
   */
  session?: string;
  /** MQTT packet id of a QoS 1 publish: a resend after reconnect carries the same one [MQTT-4.3.2-1] */
  packetId?: number;
  /** the MQTT DUP flag: the sender says this may be a redelivery [MQTT-3.3.1-1] (many clients never set it) */
  redelivered?: boolean;
  /**
   * Handed to the writer together with the device's next ones, without waiting for its own commit (cluster mode's
   * consumer): if it is not stored, the device's ordered observations after it in the same batch are not either
   * (EARLIER_NOT_STORED), so that a retried one still lands before them.
   */
  ordered?: boolean;
}

/** the error code of an ordered observation refused because one of its device before it in the batch was not stored */
export const EARLIER_NOT_STORED = 'EARLIER_NOT_STORED';

/** Flag on an observation (and its incident) that repeats an earlier one's dedup key but was raised anyway. */
export const POSSIBLE_REPLAY = 'possible-replay';

/** Flag on an alarm receiver's event (and its incident) from an account no device is registered to (Observation.account). */
export const UNKNOWN_ACCOUNT = 'unknown-account';

export type Observation = ObservationBase &
  (
    | { type: Exclude<LifeSafetyType, 'fall' | 'no-movement'>; position?: Position }
    | { type: 'fall'; confidence?: number; position?: Position }
    | { type: 'no-movement'; seconds?: number }
    | { type: 'cancel' }
    | { type: 'check-in' }
    | { type: 'heartbeat'; battery?: number; signal?: number; mains?: boolean }
    | { type: 'position'; position: Position; battery?: number }
    | { type: 'battery'; level: number }
    | { type: 'signal'; level: number }
    | { type: 'presence'; present: boolean }
    | { type: 'power-lost' | 'power-restored' | 'tamper' | 'device-fault' | 'comm-lost' | 'comm-restored' | 'test' }
    | { type: 'supervision'; code?: string }
    | { type: 'status'; online: boolean }
    | { type: 'command-ack'; commandId: string; ok: boolean; error?: string }
    | { type: 'unknown'; code: string }
    /**
     * the gateway's own report that a device sent frames it had to refuse (devices/frames.ts): `count` refusals since
     * the last report, the last one's reason and topic; rate-bound per device (gateway/broker/unreadable.ts)
     */
    | { type: 'unreadable'; count: number; reason: string; topic?: string }
  );

export interface IngestResult {
  /**
   * `stored`: written durably now; `duplicate`: a resend of an observation already durable (the same (deviceId,
   * seq, ts), or a keyless envelope recognised by session, packet id and arrival order) — dropped, logged, counted
   */
  status: 'stored' | 'duplicate';
  observationId: number;
}

/**
 * Where transports hand observations. The promise resolves only once the observation (and whatever
 * incident it opened) is durable; a transport acknowledges to the device (PUBACK, Contact ID ACK) only then.
 */
export interface ObservationSink {
  submit(obs: Observation): Promise<IngestResult>;
}

export type IncidentStatus = 'open' | 'acknowledged' | 'dispatched' | 'on-site' | 'resolved' | 'cancelled';
export const INCIDENT_STATUSES: readonly IncidentStatus[] = [
  'open', 'acknowledged', 'dispatched', 'on-site', 'resolved', 'cancelled',
];

// The incident log's events: a discriminated union (type → data shape) shared with the console (response/events.ts).
export { INCIDENT_EVENT_TYPES } from '../response/events.js';
export type { IncidentEvent, IncidentEventType } from '../response/events.js';

/** MQTT topic contract (docs/design.md §2). */
export const topics = {
  prefix: (deviceId: string) => `devices/${deviceId}/`,
  events: (deviceId: string) => `devices/${deviceId}/events`,
  telemetry: (deviceId: string) => `devices/${deviceId}/telemetry`,
  status: (deviceId: string) => `devices/${deviceId}/status`,
  commands: (deviceId: string) => `devices/${deviceId}/commands`,
  commandAck: (deviceId: string) => `devices/${deviceId}/commands/ack`,
} as const;

/**
 * - acknowledge-alarm: "help is coming" (sent when a person acknowledges the incident)
 * - locate-now: report a position now
 * - call-back: the terminal dials `params.number` (the voice path hand-off to the operator)
 * - set-contacts: `params.sos` (up to 3 numbers the SOS key dials) and `params.family` (speed-dial numbers)
 * - send-text: show or speak `params.text` on the terminal
 */
export const DEVICE_COMMAND_TYPES = [
  'acknowledge-alarm', 'configure', 'locate-now', 'test-alarm', 'call-back', 'set-contacts', 'send-text',
] as const;
export type DeviceCommandType = (typeof DEVICE_COMMAND_TYPES)[number];

/** What a device receives on `devices/{id}/commands`. */
export interface DeviceCommand {
  id: string;
  type: DeviceCommandType;
  ts: number;
  incidentId?: string;
  params?: Record<string, unknown>;
}

/**
 * What rules produce and the incident service consumes (one device at a time, in order).
 * - raise: open an incident, or join the open one of the same device and type (count, last seen)
 * - clear: close the open incident of that type because the condition ended (device back online, power restored)
 * - cancel: the resident cancelled (a fall inside its cancel window → "cancelled by resident"; outside → noted)
 */
export type AlarmAction =
  | {
      action: 'raise';
      type: string;
      priority: Priority;
      /** monthly test alarms and commissioning tests are recorded as tests, not emergencies */
      test?: boolean;
      position?: Position;
      /** the kind's cancel window for a fall, ms */
      cancelWindowMs?: number;
      rule: string;
      data?: Record<string, unknown>;
    }
  | { action: 'clear'; type: string; rule: string; reason: string }
  | { action: 'cancel'; type: string; rule: string; reason: string };

/** Context the incident service needs about the device an alarm came from. */
export interface AlarmSource {
  deviceId: string;
  residentId: string | null;
  /** the resident's grid unit */
  unitId: string | null;
  observationId?: number;
  /** stamps so far: deviceTs, received, ruleEvaluated (epoch ms) */
  stamps: Record<string, number>;
  /** what the incident must show about the observation, e.g. `possible-replay` */
  flags?: string[];
  /**
   * An alarm receiver's account no device is registered to (Observation.account): part of the card's identity, so two
   * unknown panels behind one receiver never share a card
   */
  account?: string;
}
