// npm run bench:flood-sos — an SOS from one device while others flood (docs/security.md, "A device that floods").
//
// `flooders` authenticated devices publish QoS 0 heartbeats as fast as TCP lets them for 8 s while the P1 probe's
// devices send an SOS five times a second and a console watches; printed: the SOS's PUBACK and console latencies,
// with eldergate's per-device pacing as configured by default (mqtt.publishRatePerS) and with it off (0). The
// system under test is pinned to its core as in `npm run bench`. Usage: npm run bench:flood-sos -- [flooders]
import { Generators } from './lib/generators.js';
import { startTarget } from './lib/targets.js';
import { probeRun } from './figures/traffic.js';
import { sleep } from './lib/sys.js';

const flooders = Number(process.argv[2] ?? 10);
const q = (a: number[], p: number) => { const s = [...a].sort((x, y) => x - y); return s.length ? s[Math.min(s.length - 1, Math.floor(p * s.length))]! : NaN; };

for (const [label, env] of [['pacing on (default: 100/s, burst 1000)', { ELDERGATE_MQTT_PUBLISH_RATE_PER_S: '100' }], ['pacing off (0)', { ELDERGATE_MQTT_PUBLISH_RATE_PER_S: '0' }]] as const) {
  const t = await startTarget('eldergate', { env });
  const gens = Generators.spawn(1);
  try {
    const creds = await t.provision(flooders, 'flood');
    await gens.connect(t.mqtt, creds);
    const probeDevices = await t.provision(5, 'sos');
    const { result } = await probeRun(t, probeDevices, { ratePerS: 5, durationMs: 12_000, warmupMs: 0 });
    await sleep(2000);
    // a paced flooder's socket never drains within the window: the flood is not awaited, its generator is closed
    gens.flood(flooders, 8000).catch(() => undefined);
    const r = await result;
    const text = await (await fetch(`${t.api!.http}/metrics`)).text();
    const metric = (name: string) => text.split('\n').filter((l) => l.startsWith(name)).map((l) => Number(l.split(' ').pop())).reduce((a, b) => a + b, 0);
    console.log(`${label}, ${flooders} flooders: SOS sent ${r.sent}, late ${r.late}, lost ${r.lost}; PUBACK p50 ${q(r.pubacks, 0.5).toFixed(1)} ms, max ${(r.pubacks.length ? Math.max(...r.pubacks) : NaN).toFixed(1)} ms; on the console p50 ${q(r.latencies, 0.5).toFixed(1)} ms, p99 ${q(r.latencies, 0.99).toFixed(1)} ms; paced publishes ${metric('eldergate_mqtt_publishes_paced_total')}, telemetry shed ${metric('eldergate_telemetry_shed_total')}`);
  } finally {
    await Promise.race([gens.close(), sleep(5000)]);
    await t.close();
  }
}
process.exit(0);
