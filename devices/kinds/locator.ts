import type { KindDefinition } from './types.js';
import { battery, cancel, heartbeat, position, removed, sos, test } from './blocks.js';

/** GPS watch / tracker for residents with dementia: SOS, leaving the safe zone, taken off the wrist. */
export const locator = {
  kind: 'locator',
  title: 'Location terminal (GPS watch)',
  heartbeatMs: 5 * 60_000,
  mainsHeartbeatMs: 5 * 60_000,
  lifeSafetySensor: false,
  keepaliveS: 180,
  lowBatteryPct: 15,
  events: { ...sos(), ...cancel(), ...removed(), ...test() },
  telemetry: { ...heartbeat(), ...battery(), ...position() },
} satisfies KindDefinition;
