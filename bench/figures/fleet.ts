// Figures 3 (real TCP part) and 4 for one system, in one start of it: a fleet of terminals connected over real
// sockets with heartbeats (memory and CPU per device, longest event-loop and GC pause), then the whole fleet's
// network drops at once and it comes back on the firmware's back-off and jitter while P1 alarms are measured.
import { Child } from '../lib/ipc.js';
import { Generators } from '../lib/generators.js';
import { CpuMeter, rssBytes, sleep } from '../lib/sys.js';
import { summarize, type LatencySummary } from '../lib/stats.js';
import { startTarget, type SystemName, type Target } from '../lib/targets.js';
import type { Cred } from '../lib/creds.js';
import type { Profile } from '../lib/profile.js';
import type { ProbeStats } from '../lib/probe.js';
import { conditions, noiseFor, partGroups, partsOf, probeRun, type Log } from './traffic.js';
import type { InMemStep } from '../load/inmem.js';
import { LoadMeter, currentCpuPlan, judge, type LoadConditions } from '../lib/sched.js';
import { cpuSeconds } from '../lib/sys.js';

export interface FleetResult {
  system: SystemName;
  devices: number;
  connected: number;
  connectMs: number;
  connectErrors: Record<string, number>;
  rssPerDeviceKiB: number;
  heapPerDeviceKiB: number;
  /** V8 heap + memory outside it (Buffers): what the process itself keeps per device, after a full GC */
  jsPerDeviceKiB: number;
  /** RSS growth of all the system's processes per device (the cluster: eldergate, the Erlang VMs, HAProxy) */
  systemRssPerDeviceKiB?: number;
  cpuPct: number;
  cpuGeneratorsPct: number;
  heartbeatsPerS: number;
  eldMaxMs: number;
  gcMaxMs: number;
  /** the median run of figure 4 (by time until all were back; a run where not all came back counts as slowest) */
  storm: StormRun | null;
  /** every run of figure 4, in the order they ran */
  stormRuns: StormRun[];
  errors: string[];
}

export interface StormRun {
  total: number;
  back: number;
  allBackMs: number | null;
  attempts: number;
  refused: number;
  failed: number;
  p1: LatencySummary;
  p1Late: number;
  p1Lost: number;
  cpuPct: number;
  /** the system's CPU by part over the storm (the cluster), % of one core */
  cpuParts?: Record<string, number>;
  /** connects completed per second, from the first attempt to the last device back */
  connectsPerS: number | null;
  /** the generators' own CPU over the storm (% of one core) and per completed connect (µs): the load's cost */
  cpuGeneratorsPct: number;
  generatorUsPerConnect: number | null;
  /** the system's CPU per completed connect, µs */
  systemUsPerConnect: number | null;
  load: LoadConditions;
}

export async function runFleet(system: SystemName, p: Profile, log: Log, withStorm: boolean): Promise<FleetResult> {
  const T = p.terminals;
  const n = withStorm ? Math.max(T.tcp, p.storm.devices) : T.tcp;
  const out: FleetResult = {
    system, devices: n, connected: 0, connectMs: 0, connectErrors: {}, rssPerDeviceKiB: NaN, heapPerDeviceKiB: NaN, jsPerDeviceKiB: NaN, cpuPct: NaN,
    cpuGeneratorsPct: NaN, heartbeatsPerS: 0, eldMaxMs: NaN, gcMaxMs: NaN, storm: null, stormRuns: [], errors: [],
  };
  // --expose-gc: the probe collects before each memory reading, so the figure is live objects, not garbage
  const target = await startTarget(system, { nodeArgs: ['--expose-gc', '--max-old-space-size=8192'] });
  const gens = Generators.forDevices(n, p.generators);
  try {
    const creds = await target.provision(n, 'fleet');
    const probeDevices = await target.provision(Math.min(20, p.latency.probeDevices), 'storm-p1');
    await target.node.call('probe.gc');
    const before = await target.node.call<ProbeStats>('probe.stats');
    const rssAll = () => target.pids.reduce((a, pid) => a + rssBytes(pid), 0);
    const rssBefore = rssAll();
    const c = await gens.connect(target.mqtt, creds, { keepaliveS: 120, concurrency: 200 });
    out.connected = c.connected;
    out.connectMs = c.ms;
    out.connectErrors = c.errors;
    log(`  ${system} fig3: ${c.connected}/${n} terminals connected over TCP in ${Math.round(c.ms)} ms`);
    await gens.heartbeats(T.heartbeatMs);
    await sleep(Math.min(2000, T.steadyMs / 4));
    await target.node.call('probe.reset');
    const cpu = new CpuMeter({ system: target.pids, generators: gens.pids });
    await sleep(T.steadyMs);
    const cpuRead = cpu.read();
    const steady = await target.node.call<ProbeStats>('probe.stats');
    await target.node.call('probe.gc');
    const after = await target.node.call<ProbeStats>('probe.stats');
    out.rssPerDeviceKiB = (after.rss - before.rss) / Math.max(1, c.connected) / 1024;
    out.heapPerDeviceKiB = (after.heapUsed - before.heapUsed) / Math.max(1, c.connected) / 1024;
    out.jsPerDeviceKiB = (after.heapUsed + after.external - before.heapUsed - before.external) / Math.max(1, c.connected) / 1024;
    out.systemRssPerDeviceKiB = (rssAll() - rssBefore) / Math.max(1, c.connected) / 1024;
    out.cpuPct = cpuRead.system!;
    out.cpuGeneratorsPct = cpuRead.generators!;
    out.heartbeatsPerS = (c.connected * 1000) / T.heartbeatMs;
    out.eldMaxMs = steady.eldMaxMs;
    out.gcMaxMs = steady.gcMaxMs;
    log(`  ${system} fig3: ${out.rssPerDeviceKiB.toFixed(1)} KiB RSS / ${out.heapPerDeviceKiB.toFixed(1)} KiB heap / ${out.jsPerDeviceKiB.toFixed(1)} KiB heap+external per device, cpu ${out.cpuPct.toFixed(1)}% at ${Math.round(out.heartbeatsPerS)} heartbeats/s, longest loop delay ${steady.eldMaxMs.toFixed(1)} ms, GC ${steady.gcMaxMs.toFixed(1)} ms`);
    await gens.stopHeartbeats();

    if (withStorm) {
      const S = p.storm;
      try {
        for (let run = 1; run <= S.repeats; run++) {
          const x = await stormOnce(target, probeDevices, gens, p, n);
          out.stormRuns.push(x);
          log(`  ${system} fig4 run ${run}/${S.repeats}: ${x.back}/${x.total} back in ${x.allBackMs === null ? 'n/a (not all)' : Math.round(x.allBackMs) + ' ms'}; ${x.attempts} attempts, ${x.refused} refused, ${x.failed} failed; P1 during storm p99 ${x.p1.p99.toFixed(1)} ms max ${x.p1.max.toFixed(1)} (late ${x.p1Late}, lost ${x.p1Lost}); ${x.connectsPerS === null ? '' : Math.round(x.connectsPerS) + ' connects/s, '}system ${x.systemUsPerConnect?.toFixed(0) ?? 'n/a'} µs and generators ${x.generatorUsPerConnect?.toFixed(0) ?? 'n/a'} µs CPU per connect; ${conditions(x.load)}`);
          // a run that ran out of time leaves connects in flight that would count in the next: no more runs
          if (x.allBackMs === null) break;
          // the last storm's Wills and sessions settle before the next drop
          if (run < S.repeats) await sleep(3000);
        }
      } finally {
        // the runs that completed, even when a later one failed (the error is reported beside them)
        out.storm = medianStorm(out.stormRuns);
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

/**
 * The median run by time until all were back; a run where not all came back counts as the slowest. Of an even number
 * the slower of the middle two (of two runs, the slower one): the figure never rests on the luckier half.
 */
export function medianStorm(runs: StormRun[]): StormRun | null {
  if (runs.length === 0) return null;
  const sorted = [...runs].sort((x, y) => (x.allBackMs ?? Infinity) - (y.allBackMs ?? Infinity));
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** One storm: the fleet's network drops, every terminal comes back on its firmware's back-off; P1 alarms throughout. */
async function stormOnce(target: Target, probeDevices: Cred[], gens: Generators, p: Profile, n: number): Promise<StormRun> {
  const S = p.storm;
  // P1 alarms from devices that stay connected, through the whole storm
  const probeMs = Math.min(S.maxMs, 5000 + 3 * S.backoff.initialMs + (n / 1000) * 1500);
  const { child: probe, result } = await probeRun(target, probeDevices, { ratePerS: 20, durationMs: probeMs, warmupMs: 0 });
  await sleep(500);
  const cpuStorm = new CpuMeter({ system: target.pids, probe: [probe.pid], generators: gens.pids, ...partGroups(target) });
  const meter = new LoadMeter(target.pids, null, currentCpuPlan(), cpuSeconds);
  const s = await gens.storm(S.backoff, S.connectTimeoutMs, S.maxMs);
  const cpuStormRead = cpuStorm.read();
  const sut = meter.read(noiseFor(target, p));
  const r = await result;
  const load = judge({ ...sut, probeWaitMsPerS: r.waitMsPerS, probeWaitPerWakeMs: r.waitPerWakeMs }, noiseFor(target, p));
  // CPU % over the storm's wall time → CPU µs per connect: what the devices' side cost, so a saturated
  // generator (the load core near 100 %) is seen as the limit it is, not taken for the system's
  const wallS = (s.elapsedMs ?? s.allBackMs ?? 0) / 1000;
  const perConnect = (pct: number) => (s.back > 0 && wallS > 0 ? (pct / 100) * wallS * 1e6 / s.back : null);
  const busyS = s.allBackMs !== null && s.firstAttemptMs !== null ? (s.allBackMs - s.firstAttemptMs) / 1000 : null;
  return {
    ...s, p1: summarize(r.latencies), p1Late: r.late, p1Lost: r.lost, cpuPct: cpuStormRead.system!,
    ...(() => { const x = partsOf(cpuStormRead).parts; return x ? { cpuParts: x } : {}; })(),
    connectsPerS: busyS && busyS > 0 ? s.back / busyS : null,
    cpuGeneratorsPct: cpuStormRead.generators!,
    generatorUsPerConnect: perConnect(cpuStormRead.generators!),
    systemUsPerConnect: perConnect(cpuStormRead.system!),
    load,
  };
}

export interface InMemResult {
  system: 'eldergate' | 'raw-aedes';
  steps: InMemStep[];
  heapLimitMiB: number;
  errors: string[];
}

/** Figure 3 beyond the fd limit: the system in the worker's own process, devices on in-memory streams. */
export async function runInMemory(system: 'eldergate' | 'raw-aedes', p: Profile, log: Log): Promise<InMemResult> {
  const worker = Child.spawn('bench/load/inmem.ts', { name: `in-memory ${system}`, role: 'sut', nodeArgs: ['--expose-gc', '--max-old-space-size=12288'] });
  try {
    const r = await worker.call<{ steps: InMemStep[]; heapLimitMiB: number }>('run', {
      system, counts: p.terminals.inMemory, heartbeatMs: Math.min(p.terminals.heartbeatMs, 60_000), steadyMs: p.terminals.steadyMs, probeRatePerS: 20,
    }, 1_800_000);
    for (const s of r.steps) {
      log(`  ${system} fig3 in-memory ${s.devices}: ${s.heapPerDeviceKiB.toFixed(1)} KiB heap/device, cpu ${s.cpuPctSteady.toFixed(0)}%, GC max ${s.gcMaxMs.toFixed(0)} ms, P1 p99 ${s.p1 ? s.p1.p99.toFixed(1) : 'n/a'} ms`);
    }
    return { system, steps: r.steps, heapLimitMiB: r.heapLimitMiB, errors: [] };
  } catch (err) {
    log(`  ${system} in-memory: ERROR ${(err as Error).message}`);
    return { system, steps: [], heapLimitMiB: 0, errors: [(err as Error).message] };
  } finally {
    await worker.stop(10_000);
  }
}
