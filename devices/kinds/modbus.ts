import type { KindDefinition } from './types.js';

/**
 * A wired field device read over Modbus by the gateway itself (bed-exit mat, pull cord, smoke/gas detector).
 * It never speaks MQTT; its observations come from the Modbus adapter, which supervises the link (comm-lost).
 */
export const modbus = {
  kind: 'modbus',
  title: 'Wired field device (Modbus)',
  heartbeatMs: 60_000,
  mainsHeartbeatMs: 60_000,
  lifeSafetySensor: true,
  keepaliveS: 60,
  lowBatteryPct: 20,
  events: {},
  telemetry: {},
} satisfies KindDefinition;
