import type { KindDefinition } from './types.js';
import { battery, callRequest, cancel, heartbeat, power, sos, test } from './blocks.js';

/** One-key-call phone / SOS button: press for help, cancel. Usually mains-powered with a backup battery. */
export const callPhone = {
  kind: 'call-phone',
  title: 'One-key-call phone / SOS button',
  heartbeatMs: 15 * 60_000,
  mainsHeartbeatMs: 5 * 60_000,
  lifeSafetySensor: false,
  keepaliveS: 120,
  lowBatteryPct: 20,
  events: { ...sos(), ...cancel(), ...callRequest(), ...test(), ...power() },
  telemetry: { ...heartbeat(), ...battery() },
} satisfies KindDefinition;
