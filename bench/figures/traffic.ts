// Figures 1, 2 and 5 for one system, in one start of it: P1 latency device → console under background telemetry
// (1), telemetry ingest at saturation (2), durable QoS 1 alarm rate (5). The system, the load generators and the
// probe are separate processes; CPU of each is read from /proc over every measured interval.
import { Child } from '../lib/ipc.js';
import { Generators } from '../lib/generators.js';
import { CpuMeter, sleep } from '../lib/sys.js';
import { summarize, type LatencySummary } from '../lib/stats.js';
import { startTarget, type SystemName, type Target } from '../lib/targets.js';
import type { Profile } from '../lib/profile.js';
import type { ProbeResult } from '../load/probe.js';
import type { ProbeStats } from '../lib/probe.js';

export interface LatencyRep {
  ratePerS: number;
  sentPerS: number;
  p1: LatencySummary;
  puback: LatencySummary;
  delivered: number;
  late: number;
  lost: number;
  unmatched: number;
  cpu: { system: number; generators: number; probe: number };
  systemEldMaxMs: number;
  systemGcMaxMs: number;
  ingestedPerS: number;
  shedPerS: number;
}

export interface IngestRep {
  msgPerS: number;
  offeredPerS: number;
  shedPerS: number;
  cpu: { system: number; generators: number };
}

export interface DurableRep {
  alarmsPerS: number;
  latency: LatencySummary;
  timedOut: number;
  cpu: { system: number; generators: number };
}

export interface TrafficResult {
  system: SystemName;
  latency: LatencyRep[];
  /** every measured P1 sample at the highest background rate (for the histogram) */
  samplesAtTop: number[];
  ingest: IngestRep[];
  durable: DurableRep[];
  connect: { connected: number; failed: number; ms: number; errors: Record<string, number> };
  errors: string[];
}

export type Log = (line: string) => void;

/** one probe run concurrently with `during` (background load), CPU measured over the probe's whole interval */
export async function probeRun(target: Target, probeDevices: Awaited<ReturnType<Target['provision']>>, o: {
  ratePerS: number; durationMs: number; warmupMs: number; budgetMs?: number;
}): Promise<{ child: Child; result: Promise<ProbeResult> }> {
  const child = Child.spawn('bench/load/probe.ts', { name: 'p1-probe' });
  // loaded and compiled before the clock starts: its start-up is not part of any measured interval
  await child.call('ping', {}, 60_000);
  const result = child.call<ProbeResult>('run', {
    target: target.mqtt,
    devices: probeDevices,
    observer: target.observer(),
    ratePerS: o.ratePerS,
    durationMs: o.durationMs,
    warmupMs: o.warmupMs,
    budgetMs: o.budgetMs ?? 1000,
    lostAfterMs: 5000,
  }, o.durationMs + 90_000).then((r) => {
    target.noteSeq(r.lastSeq, r.incidents);
    return r;
  }).finally(() => void child.stop(3000));
  // the caller awaits it after the background load; until then a failure must not be an unhandled rejection
  result.catch(() => undefined);
  return { child, result };
}

export async function runTraffic(system: SystemName, p: Profile, log: Log, figures: Set<number>): Promise<TrafficResult> {
  const out: TrafficResult = {
    system, latency: [], samplesAtTop: [], ingest: [], durable: [], connect: { connected: 0, failed: 0, ms: 0, errors: {} }, errors: [],
  };
  const target = await startTarget(system);
  const gens = Generators.spawn(p.generators);
  try {
    const L = p.latency;
    const background = await target.provision(L.backgroundDevices, 'bg');
    const probeDevices = await target.provision(L.probeDevices, 'p1');
    out.connect = await gens.connect(target.mqtt, background);
    log(`  ${system}: ${out.connect.connected}/${background.length} background devices connected in ${Math.round(out.connect.ms)} ms`);
    if (out.connect.connected === 0) throw new Error(`no background device could connect: ${JSON.stringify(out.connect.errors)}`);

    if (figures.has(1)) {
      const top = Math.max(...L.ratesPerS);
      for (const rate of L.ratesPerS) {
        for (let rep = 0; rep < p.reps; rep++) {
          const before = await target.counters();
          await target.node.call('probe.reset');
          const { child: probe, result } = await probeRun(target, probeDevices, { ratePerS: L.probeRatePerS, durationMs: L.durationMs, warmupMs: L.warmupMs });
          // the probe connects its console and devices first; the background starts with it and ends with it
          await sleep(300);
          const cpu = new CpuMeter({ system: target.pids, generators: gens.pids, probe: [probe.pid] });
          const bg = await gens.rate(rate, L.durationMs);
          const cpuRead = cpu.read();
          const r = await result;
          const after = await target.counters();
          const stats = await target.node.call<ProbeStats>('probe.stats');
          const rep1: LatencyRep = {
            ratePerS: rate,
            sentPerS: bg.sent / (L.durationMs / 1000),
            p1: summarize(r.latencies),
            puback: summarize(r.pubacks),
            delivered: r.delivered,
            late: r.late,
            lost: r.lost,
            unmatched: r.unmatchedFrames,
            cpu: { system: cpuRead.system!, generators: cpuRead.generators!, probe: cpuRead.probe! },
            systemEldMaxMs: stats.eldMaxMs,
            systemGcMaxMs: stats.gcMaxMs,
            ingestedPerS: (after.ingested - before.ingested) / (L.durationMs / 1000),
            shedPerS: (after.shed - before.shed) / (L.durationMs / 1000),
          };
          out.latency.push(rep1);
          if (rate === top) out.samplesAtTop.push(...r.latencies);
          log(`  ${system} fig1 bg ${rate}/s rep ${rep + 1}: P1 p50 ${rep1.p1.p50.toFixed(2)} p99 ${rep1.p1.p99.toFixed(2)} max ${rep1.p1.max.toFixed(1)} ms (n=${rep1.p1.n}, lost ${r.lost}), cpu ${system} ${cpuRead.system!.toFixed(0)}% gen ${cpuRead.generators!.toFixed(0)}%`);
          if (r.delivered === 0) out.errors.push(`fig1 ${rate}/s: no alarm reached the console (${r.sent} sent, ${r.unmatchedFrames} unmatched frames)`);
        }
      }
    }

    if (figures.has(2)) {
      const I = p.ingest;
      for (let rep = 0; rep < p.reps; rep++) {
        // warm-up at full speed, then the measured window
        const flood = gens.flood(I.publishers, I.warmupMs + I.durationMs);
        await sleep(I.warmupMs);
        const before = await target.counters();
        const cpu = new CpuMeter({ system: target.pids, generators: gens.pids });
        await sleep(I.durationMs);
        const after = await target.counters();
        const cpuRead = cpu.read();
        const f = await flood;
        // what is still queued is written within a flush interval or two; it is not counted (steady rate only)
        await sleep(500);
        const r: IngestRep = {
          msgPerS: (after.ingested - before.ingested) / (I.durationMs / 1000),
          offeredPerS: f.sent / ((I.warmupMs + I.durationMs) / 1000),
          shedPerS: (after.shed - before.shed) / (I.durationMs / 1000),
          cpu: { system: cpuRead.system!, generators: cpuRead.generators! },
        };
        out.ingest.push(r);
        log(`  ${system} fig2 rep ${rep + 1}: ${Math.round(r.msgPerS)} msg/s taken in (offered ${Math.round(r.offeredPerS)}, shed ${Math.round(r.shedPerS)}), cpu ${system} ${cpuRead.system!.toFixed(0)}% gen ${cpuRead.generators!.toFixed(0)}%`);
      }
      await sleep(1000);
    }

    if (figures.has(5) && system !== 'mosquitto') {
      const D = p.durable;
      for (let rep = 0; rep < p.reps; rep++) {
        const cpu = new CpuMeter({ system: target.pids, generators: gens.pids });
        const r = await gens.alarms(D.durationMs, D.warmupMs, Math.min(D.devices, out.connect.connected));
        const cpuRead = cpu.read();
        const d: DurableRep = {
          alarmsPerS: r.acked / (r.windowMs / 1000),
          latency: summarize(r.latencies),
          timedOut: r.timedOut,
          cpu: { system: cpuRead.system!, generators: cpuRead.generators! },
        };
        out.durable.push(d);
        log(`  ${system} fig5 rep ${rep + 1}: ${Math.round(d.alarmsPerS)} alarms/s acknowledged, PUBACK p50 ${d.latency.p50.toFixed(2)} p99 ${d.latency.p99.toFixed(2)} ms`);
      }
    }
  } catch (err) {
    out.errors.push((err as Error).message);
    log(`  ${system}: ERROR ${(err as Error).message}`);
  } finally {
    await gens.close();
    await target.close();
  }
  return out;
}
