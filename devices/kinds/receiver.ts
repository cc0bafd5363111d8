import type { KindDefinition } from './types.js';

/**
 * A serial alarm receiver line (Contact ID). Never speaks MQTT; its heartbeat (about every 30 s) is supervised by
 * the serial adapter, and a silent receiver is itself an incident.
 */
export const receiver = {
  kind: 'receiver',
  title: 'Alarm receiver (serial, Contact ID)',
  heartbeatMs: 30_000,
  mainsHeartbeatMs: 30_000,
  lifeSafetySensor: true,
  keepaliveS: 60,
  lowBatteryPct: 20,
  events: {},
  telemetry: {},
} satisfies KindDefinition;
