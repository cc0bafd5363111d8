import type { TSchema } from '@sinclair/typebox';
import type { DeviceKind, ObservationType } from '../../core/contracts.js';

/**
 * A device kind is data plus small reusable building blocks (zigbee-herdsman-converters' habit): which messages it
 * may send on which channel, each with a payload schema, its supervision interval, and nothing else.
 */
export interface MessageSpec {
  /** observation type this message becomes */
  type: ObservationType;
  /** schema of the fields beyond the envelope {ts, seq, type}; fields in `required` are needed for the message to mean anything */
  fields: TSchema;
}

export interface KindDefinition {
  kind: DeviceKind;
  title: string;
  /** heartbeat interval of a battery device, ms; supervision derives late/offline from it */
  heartbeatMs: number;
  /** heartbeat interval when mains powered (tighter supervision) */
  mainsHeartbeatMs: number;
  /** a silent device of this kind leaves a resident unprotected: offline is P2, not P3 */
  lifeSafetySensor: boolean;
  /** MQTT keepalive the firmware should use, seconds */
  keepaliveS: number;
  /** a fall can be cancelled by the resident within this window */
  cancelWindowMs?: number;
  lowBatteryPct: number;
  /** messages on devices/{id}/events (QoS 1, durable before PUBACK) */
  events: Record<string, MessageSpec>;
  /** messages on devices/{id}/telemetry (batched) */
  telemetry: Record<string, MessageSpec>;
}
