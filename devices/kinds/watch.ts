import type { KindDefinition } from './types.js';

/**
 * A GPS watch or pendant speaking the "3G/SG watch" TCP protocol (Beesure / SeTracker family, gateway/protocols/watch):
 * never MQTT. It sends LK keepalives (about every 5 min, settable on the watch) and positions; its frames are decoded
 * by the watch listener, so it has no MQTT message specs here.
 */
export const watch = {
  kind: 'watch',
  title: 'GPS watch / pendant (watch protocol over TCP)',
  heartbeatMs: 10 * 60_000,
  mainsHeartbeatMs: 10 * 60_000,
  lifeSafetySensor: false,
  keepaliveS: 300,
  lowBatteryPct: 15,
  events: {},
  telemetry: {},
} satisfies KindDefinition;
