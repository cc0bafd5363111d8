// npm run bench:engine — the rules engine's own cost per heartbeat, in isolation: the real engine with the default
// rules, configuration and device kinds, `devices` call phones (default 10,000) each sending heartbeats in turn, as the
// writer thread evaluates them (every heartbeat re-arms the device's supervision timer). No broker, no database: this
// isolates what the engine and its timer heap cost per message, which the end-to-end figures cannot separate from the
// rest. Printed: CPU µs per heartbeat for each of 5 rounds of 500,000 after a warm-up. Pin it for stable numbers:
// `taskset -c 1 npm run bench:engine -- 100000`.
import { Writable } from 'node:stream';
import { loadConfig } from '../core/config.js';
import { createLogger } from '../core/logger.js';
import { createEngine } from '../gateway/engine.js';
import { kindInfos } from '../gateway/alarms.js';
import type { Observation } from '../core/contracts.js';
import type { DeviceView } from '../gateway/rules/types.js';

const count = Number(process.argv[2] ?? 10_000);
if (!Number.isInteger(count) || count < 1) {
  console.error('usage: npm run bench:engine -- [devices, a positive integer; default 10000]');
  process.exit(2);
}
const config = loadConfig({});
const engine = createEngine({
  kinds: kindInfos(),
  config: { supervision: config.supervision, rules: config.rules, ruleSettings: config.ruleSettings },
  // rules log only on faults; nothing is written
  log: createLogger('warn', new Writable({ write: (_c, _e, cb) => cb() })),
  onTimerDue: () => undefined,
});
const devices: DeviceView[] = Array.from({ length: count }, (_, i) => ({
  id: `cp-bench-${i}`, kind: 'call-phone', power: 'battery', residentId: null, unitId: null,
  lastSeen: Date.now(), lastPosition: null, battery: 80, supervision: 'ok', config: {},
}));

/** CPU time of this process over the round, ms: unlike wall time it does not count time the vCPU was taken away (steal) */
function round(n: number): number {
  const started = process.cpuUsage();
  for (let i = 0; i < n; i++) {
    const device = devices[i % count]!;
    const now = Date.now();
    const obs = { type: 'heartbeat', deviceId: device.id, receivedAt: now, source: 'mqtt', battery: 80 } as Observation;
    const r = engine.evaluate(obs, { now, device, resident: null, openIncident: () => undefined });
    if (r.errors.length) throw new Error(`a rule failed: ${JSON.stringify(r.errors)}`);
  }
  const used = process.cpuUsage(started);
  return (used.user + used.system) / 1000;
}

round(200_000);
const per = 500_000;
console.log(`rules engine, ${count} call phones, heartbeats in turn (timers pending: ${engine.timers.size})`);
for (let k = 1; k <= 5; k++) console.log(`  round ${k}: ${((round(per) * 1000) / per).toFixed(2)} µs of CPU per heartbeat`);
engine.close();
