import type { KindDefinition } from './types.js';

/**
 * An alarm panel or telecare hub reporting to the receiving centre over IP with SIA DC-09 (gateway/protocols/dc09):
 * its account is the device's serial. Supervised by its NULL polls (EN 50136 reporting path; default 180 s, SP4).
 */
export const dc09 = {
  kind: 'dc09',
  title: 'Alarm panel / telecare hub (SIA DC-09 over IP)',
  heartbeatMs: 180_000,
  mainsHeartbeatMs: 180_000,
  lifeSafetySensor: true,
  keepaliveS: 180,
  lowBatteryPct: 20,
  events: {},
  telemetry: {},
} satisfies KindDefinition;
