import type { KindDefinition } from './types.js';
import { battery, cancel, checkIn, fall, heartbeat, noMovement, presence, tamper, test } from './blocks.js';

/** Wearable or radar fall sensor. A fall the resident does not cancel within the window is an emergency. */
export const fallSensor = {
  kind: 'fall-sensor',
  title: 'Fall sensor (wearable or radar)',
  heartbeatMs: 5 * 60_000,
  mainsHeartbeatMs: 2 * 60_000,
  // a dead fall sensor is a resident without protection (docs/design.md §3)
  lifeSafetySensor: true,
  keepaliveS: 60,
  cancelWindowMs: 30_000,
  lowBatteryPct: 20,
  events: { ...fall(), ...cancel(), ...noMovement(), ...tamper(), ...test(), ...checkIn() },
  telemetry: { ...heartbeat(), ...battery(), ...presence() },
} satisfies KindDefinition;
