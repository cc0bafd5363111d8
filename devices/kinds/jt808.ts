import type { KindDefinition } from './types.js';

/**
 * A location terminal speaking JT/T 808 (2013 or 2019) over TCP (gateway/protocols/jt808): personal trackers and
 * pendants certified for the Chinese market. Heartbeat 0x0002 at the interval set on the terminal (commonly 60–300 s).
 */
export const jt808 = {
  kind: 'jt808',
  title: 'Location terminal (JT/T 808)',
  heartbeatMs: 5 * 60_000,
  mainsHeartbeatMs: 5 * 60_000,
  lifeSafetySensor: false,
  keepaliveS: 300,
  lowBatteryPct: 15,
  events: {},
  telemetry: {},
} satisfies KindDefinition;
