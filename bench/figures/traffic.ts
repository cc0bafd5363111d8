// Figures 1, 2 and 5 for one system, in one start of it: P1 latency device → console under background telemetry
// (1), telemetry ingest at saturation (2), durable QoS 1 alarm rate (5). The system, the load generators and the
// probe are separate processes; CPU of each is read from /proc over every measured interval. The system runs on its
// own core, everything else on the other (bench/lib/sched.ts); every repetition records the system's run-queue wait
// and the machine's steal, and one over the noise rule is kept in the report as discarded and run again.
// Figure 7: P1 with 20 consoles attached and acking (19 in a consoles process, the probe's own the 20th).
import { Child } from '../lib/ipc.js';
import { Generators } from '../lib/generators.js';
import { CpuMeter, sleep } from '../lib/sys.js';
import { summarize, type LatencySummary } from '../lib/stats.js';
import { startTarget, type SystemName, type Target } from '../lib/targets.js';
import type { Profile } from '../lib/profile.js';
import type { ProbeResult } from '../load/probe.js';
import type { ProbeStats } from '../lib/probe.js';
import { LoadMeter, currentCpuPlan, judge, timedCore, type LoadConditions } from '../lib/sched.js';
import { cpuSeconds } from '../lib/sys.js';
import { hostSpeed } from '../lib/host-speed.js';

export interface LatencyRep {
  ratePerS: number;
  sentPerS: number;
  p1: LatencySummary;
  puback: LatencySummary;
  delivered: number;
  late: number;
  lost: number;
  unmatched: number;
  cpu: { system: number; generators: number; probe: number; parts?: Record<string, number> };
  systemEldMaxMs: number;
  systemGcMaxMs: number;
  ingestedPerS: number;
  /** observations the writer went through per second: stored, folded into state, or duplicates (eldergate) */
  processedPerS?: number;
  shedPerS: number;
  /** the background generators: largest number sent in one 1 ms tick, longest gap between ticks */
  generator: { maxBurst: number; maxTickGapMs: number };
  load: LoadConditions;
  /** noisy by the rule: shown, never counted in a median or a ratio */
  discarded: boolean;
}

export interface ConsolesRep extends LatencyRep {
  consoles: number;
  /** frames each extra console received in the repetition (min / max) and acks it sent */
  framesPerConsole: { min: number; max: number };
  acksPerConsole: { min: number; max: number };
  /** consoles the server closed during the repetition, with the close code */
  closed: string[];
}

export interface IngestRep {
  msgPerS: number;
  /** eldergate: observations the writer went through per second (stored, folded into state, duplicates) */
  processedPerS?: number;
  offeredPerS: number;
  shedPerS: number;
  cpu: { system: number; generators: number; parts?: Record<string, number> };
  /** the cluster: how long after the flood its queues took to drain into eldergate, and what was purged after SETTLE_MS */
  drain?: { ms: number; left: number | null; purged: number };
  load: LoadConditions;
  discarded: boolean;
}

export interface DurableRep {
  alarmsPerS: number;
  /** observations eldergate stored per second over the same interval (the cluster PUBACKs before eldergate commits) */
  committedPerS?: number;
  latency: LatencySummary;
  timedOut: number;
  cpu: { system: number; generators: number; parts?: Record<string, number> };
  load: LoadConditions;
  discarded: boolean;
}

export interface TrafficResult {
  system: SystemName;
  latency: LatencyRep[];
  /** every measured P1 sample at the highest background rate (for the histogram) */
  samplesAtTop: number[];
  ingest: IngestRep[];
  durable: DurableRep[];
  /** figure 7: P1 at the top background rate with consoles attached (systems with a console only) */
  consoles: ConsolesRep[];
  connect: { connected: number; failed: number; ms: number; errors: Record<string, number> };
  /** how the system was set up beyond its defaults (the cluster) */
  notes?: string[];
  errors: string[];
}

export type Log = (line: string) => void;

/** the system's parts as CpuMeter groups ("part:rabbitmq"), none for a system of one kind of process */
export function partGroups(target: Target): Record<string, (number | string)[]> {
  return Object.fromEntries(Object.entries(target.parts ?? {}).map(([k, v]) => [`part:${k}`, v]));
}

/** the parts' CPU out of a CpuMeter reading, or nothing */
export function partsOf(read: Record<string, number>): { parts?: Record<string, number> } {
  const parts = Object.fromEntries(Object.entries(read).filter(([k]) => k.startsWith('part:')).map(([k, v]) => [k.slice(5), v]));
  return Object.keys(parts).length ? { parts } : {};
}

function partsText(parts: Record<string, number> | undefined): string {
  return parts ? ` (${Object.entries(parts).map(([k, v]) => `${k} ${v.toFixed(0)}%`).join(', ')})` : '';
}

/** the cluster's backlog from one repetition must not load the next (a no-op for the other systems) */
async function settle(target: Target, log: Log, what: string): Promise<{ ms: number; left: number | null; purged: number } | undefined> {
  if (!target.settle) return undefined;
  const r = await target.settle(SETTLE_MS);
  if (r.ms > 3000 || r.left) log(`  ${what}: ${r.purged ? `queues not drained into eldergate within ${SETTLE_MS / 1000} s: ${r.purged} messages purged` : `queues drained into eldergate in ${(r.ms / 1000).toFixed(1)} s`}`);
  return r;
}

/** how long the cluster's queues may take to drain into eldergate between repetitions before they are purged */
export const SETTLE_MS = 30_000;

/** the noise rule for this system (a system of many busy processes: its own wait is not noise, bench/lib/targets.ts) */
export function noiseFor(target: Target, p: Profile): Profile['noise'] {
  return target.ownWait ? { ...p.noise, maxSutWaitMsPerS: Number.POSITIVE_INFINITY } : p.noise;
}

/**
 * Figure 7's consoles: `n` real WebSocket clients in a process of their own, each logged in as its own operator,
 * subscribed from the head and acking (bench/load/consoles.ts). The probe's console comes on top of them.
 */
export async function attachConsoles(target: Target, n: number): Promise<Child> {
  if (!target.consoleTokens) throw new Error(`${target.name} has no consoles`);
  const obs = target.observer();
  if (obs.kind !== 'ws') throw new Error('consoles need a WebSocket observer');
  const consoles = Child.spawn('bench/load/consoles.ts', { name: 'consoles' });
  try {
    await consoles.call('attach', { url: obs.url, tokens: await target.consoleTokens(n), since: obs.since }, 60_000);
    return consoles;
  } catch (err) {
    await detachConsoles(consoles);
    throw err;
  }
}

export async function detachConsoles(consoles: Child): Promise<void> {
  await consoles.call('close', {}, 10_000).catch(() => undefined);
  await consoles.stop(3000);
}

/** one probe run concurrently with `during` (background load), CPU measured over the probe's whole interval */
export async function probeRun(target: Target, probeDevices: Awaited<ReturnType<Target['provision']>>, o: {
  ratePerS: number; durationMs: number; warmupMs: number; budgetMs?: number;
}): Promise<{ child: Child; result: Promise<ProbeResult> }> {
  const child = Child.spawn('bench/load/probe.ts', { name: 'p1-probe', first: true });
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
    system, latency: [], samplesAtTop: [], ingest: [], durable: [], consoles: [], connect: { connected: 0, failed: 0, ms: 0, errors: {} }, errors: [],
  };
  const target = await startTarget(system);
  if (target.notes) out.notes = target.notes;
  const gens = Generators.spawn(p.generators);
  try {
    const L = p.latency;
    const background = await target.provision(L.backgroundDevices, 'bg');
    const probeDevices = await target.provision(L.probeDevices, 'p1');
    out.connect = await gens.connect(target.mqtt, background);
    log(`  ${system}: ${out.connect.connected}/${background.length} background devices connected in ${Math.round(out.connect.ms)} ms`);
    if (out.connect.connected === 0) throw new Error(`no background device could connect: ${JSON.stringify(out.connect.errors)}`);

    /** one P1 repetition at `rate` background: probe and background start together and end together */
    const latencyRep = async (rate: number): Promise<{ rep: LatencyRep; samples: number[] }> => {
      await settle(target, log, `${system} fig1 bg ${rate}/s`);
      const before = await target.counters();
      await target.node.call('probe.reset');
      const { child: probe, result } = await probeRun(target, probeDevices, { ratePerS: L.probeRatePerS, durationMs: L.durationMs, warmupMs: L.warmupMs });
      // the probe connects its console and devices first; the background starts with it and ends with it
      await sleep(300);
      const cpu = new CpuMeter({ system: target.pids, generators: gens.pids, probe: [probe.pid], ...partGroups(target) });
      // the probe reads its own run-queue wait (it may have exited by the time the meter is read)
      const meter = new LoadMeter(target.pids, null, currentCpuPlan(), cpuSeconds);
      const bg = await gens.rate(rate, L.durationMs);
      const cpuRead = cpu.read();
      const sut = meter.read(noiseFor(target, p));
      const r = await result;
      const load = judge({ ...sut, probeWaitMsPerS: r.waitMsPerS, probeWaitPerWakeMs: r.waitPerWakeMs }, noiseFor(target, p));
      const after = await target.counters();
      const stats = await target.node.call<ProbeStats>('probe.stats');
      if (r.delivered === 0) out.errors.push(`fig1 ${rate}/s: no alarm reached the console (${r.sent} sent, ${r.unmatchedFrames} unmatched frames)`);
      if (r.observerClosed) out.errors.push(`fig1 ${rate}/s: the probe's console WebSocket ended during the run (${r.observerClosed}); its alarms after that count as lost`);
      return {
        samples: r.latencies,
        rep: {
          ratePerS: rate,
          sentPerS: bg.sent / (L.durationMs / 1000),
          p1: summarize(r.latencies),
          puback: summarize(r.pubacks),
          delivered: r.delivered,
          late: r.late,
          lost: r.lost,
          unmatched: r.unmatchedFrames,
          cpu: { system: cpuRead.system!, generators: cpuRead.generators!, probe: cpuRead.probe!, ...partsOf(cpuRead) },
          systemEldMaxMs: stats.eldMaxMs,
          systemGcMaxMs: stats.gcMaxMs,
          ingestedPerS: (after.ingested - before.ingested) / (L.durationMs / 1000),
          ...(after.processed !== undefined ? { processedPerS: (after.processed - before.processed!) / (L.durationMs / 1000) } : {}),
          shedPerS: (after.shed - before.shed) / (L.durationMs / 1000),
          generator: { maxBurst: bg.maxBurst, maxTickGapMs: bg.maxTickGapMs },
          load,
          discarded: load.noisy,
        },
      };
    };
    const top = Math.max(...L.ratesPerS);

    if (figures.has(1)) {
      const noisyTop: number[] = [];
      for (const rate of L.ratesPerS) {
        await repeat(p, `${system} fig1 bg ${rate}/s`, log, async () => {
          const { rep, samples } = await latencyRep(rate);
          out.latency.push(rep);
          if (rate === top) (rep.discarded ? noisyTop : out.samplesAtTop).push(...samples);
          log(`  ${system} fig1 bg ${rate}/s: P1 p50 ${rep.p1.p50.toFixed(2)} p99 ${rep.p1.p99.toFixed(2)} max ${rep.p1.max.toFixed(1)} ms (n=${rep.p1.n}, lost ${rep.lost}), cpu ${system} ${rep.cpu.system.toFixed(0)}%${partsText(rep.cpu.parts)} gen ${rep.cpu.generators.toFixed(0)}%, eldergate stored ${Math.round(rep.ingestedPerS)}/s${rep.processedPerS !== undefined ? ` (processed ${Math.round(rep.processedPerS)}/s)` : ''} (burst ≤ ${rep.generator.maxBurst}, tick gap ≤ ${rep.generator.maxTickGapMs.toFixed(1)} ms); ${conditions(rep.load)}`);
          return rep.discarded;
        }, out.errors);
      }
      // a run with every repetition discarded still draws the histogram, from what there is (the table says so)
      if (out.samplesAtTop.length === 0) out.samplesAtTop.push(...noisyTop);
    }

    if (figures.has(7) && target.consoleTokens) {
      const extra = Math.max(0, p.consoles - 1);
      let consoles: Child | undefined;
      try {
        consoles = await attachConsoles(target, extra);
        const attached = consoles;
        log(`  ${system} fig7: ${extra} consoles attached (+ the probe's own = ${extra + 1})`);
        await repeat(p, `${system} fig7 ${extra + 1} consoles`, log, async () => {
          const s0 = await attached.call<{ frames: number[]; acks: number[] }>('stats');
          const { rep } = await latencyRep(top);
          const s1 = await attached.call<{ open: number; frames: number[]; acks: number[]; closed: string[] }>('stats');
          const frames = s1.frames.map((f, i) => f - (s0.frames[i] ?? 0));
          const acks = s1.acks.map((f, i) => f - (s0.acks[i] ?? 0));
          const c: ConsolesRep = {
            ...rep, consoles: s1.open + 1,
            framesPerConsole: { min: Math.min(...frames), max: Math.max(...frames) },
            acksPerConsole: { min: Math.min(...acks), max: Math.max(...acks) },
            closed: s1.closed,
          };
          out.consoles.push(c);
          log(`  ${system} fig7 ${c.consoles} consoles, bg ${top}/s: P1 p50 ${c.p1.p50.toFixed(2)} p99 ${c.p1.p99.toFixed(2)} max ${c.p1.max.toFixed(1)} ms (n=${c.p1.n}), cpu ${system} ${c.cpu.system.toFixed(0)}%${partsText(c.cpu.parts)}; ${c.framesPerConsole.min}–${c.framesPerConsole.max} frames and ${c.acksPerConsole.min}–${c.acksPerConsole.max} acks per console; ${conditions(c.load)}`);
          return c.discarded;
        }, out.errors);
      } catch (err) {
        out.errors.push(`fig7: ${(err as Error).message.split('\n')[0]}`);
        log(`  ${system} fig7: ERROR ${(err as Error).message}`);
      } finally {
        if (consoles) await detachConsoles(consoles);
      }
    }

    const fig2 = async () => {
      if (figures.has(2)) {
        const I = p.ingest;
        await repeat(p, `${system} fig2`, log, async () => {
          await settle(target, log, `${system} fig2`);
          // warm-up at full speed, then the measured window
          const flood = gens.flood(I.publishers, I.warmupMs + I.durationMs);
          await sleep(I.warmupMs);
          const before = await target.counters();
          const cpu = new CpuMeter({ system: target.pids, generators: gens.pids, ...partGroups(target) });
          const meter = new LoadMeter(target.pids, null, currentCpuPlan(), cpuSeconds);
          await sleep(I.durationMs);
          const after = await target.counters();
          const cpuRead = cpu.read();
          const load = meter.read(noiseFor(target, p));
          const f = await flood;
        // RabbitMQ blocks publishers when a node hits its memory alarm: a flood that got nothing out measures nothing
        if (f.sent < 1000) throw new Error(`the flood published ${f.sent} messages: the system blocked its publishers (RabbitMQ: memory or disk alarm)`);
          // what is still queued is written within a flush interval or two; it is not counted (steady rate only)
          await sleep(500);
          const drain = await settle(target, log, `${system} fig2`);
          const r: IngestRep = {
            msgPerS: (after.ingested - before.ingested) / (I.durationMs / 1000),
            ...(after.processed !== undefined ? { processedPerS: (after.processed - before.processed!) / (I.durationMs / 1000) } : {}),
            offeredPerS: f.sent / ((I.warmupMs + I.durationMs) / 1000),
            shedPerS: (after.shed - before.shed) / (I.durationMs / 1000),
            cpu: { system: cpuRead.system!, generators: cpuRead.generators!, ...partsOf(cpuRead) },
            ...(drain ? { drain } : {}),
            load,
            discarded: load.noisy,
          };
          out.ingest.push(r);
          log(`  ${system} fig2: ${Math.round(r.processedPerS ?? r.msgPerS)} msg/s taken in${r.processedPerS !== undefined ? ` (${Math.round(r.msgPerS)}/s as rows)` : ''} (offered ${Math.round(r.offeredPerS)}, shed ${Math.round(r.shedPerS)}), cpu ${system} ${cpuRead.system!.toFixed(0)}%${partsText(r.cpu.parts)} gen ${cpuRead.generators!.toFixed(0)}%; ${conditions(load)}`);
          return r.discarded;
        }, out.errors);
        await sleep(1000);
      }

    };
    const fig5 = async () => {
      if (figures.has(5) && system !== 'mosquitto') {
        const D = p.durable;
        await repeat(p, `${system} fig5`, log, async () => {
          await settle(target, log, `${system} fig5`);
          const c0 = await target.counters();
          const t0 = performance.now();
          const cpu = new CpuMeter({ system: target.pids, generators: gens.pids, ...partGroups(target) });
          const meter = new LoadMeter(target.pids, null, currentCpuPlan(), cpuSeconds);
          const r = await gens.alarms(D.durationMs, D.warmupMs, Math.min(D.devices, out.connect.connected));
          const cpuRead = cpu.read();
          const load = meter.read(noiseFor(target, p));
          const c1 = await target.counters();
          const d: DurableRep = {
            alarmsPerS: r.acked / (r.windowMs / 1000),
            // warm-up included on both sides of this one: the whole interval the alarms ran
            ...(system.startsWith('eldergate') ? { committedPerS: (c1.ingested - c0.ingested) / ((performance.now() - t0) / 1000) } : {}),
            latency: summarize(r.latencies),
            timedOut: r.timedOut,
            cpu: { system: cpuRead.system!, generators: cpuRead.generators!, ...partsOf(cpuRead) },
            load,
            discarded: load.noisy,
          };
          out.durable.push(d);
          log(`  ${system} fig5: ${Math.round(d.alarmsPerS)} alarms/s acknowledged${d.committedPerS !== undefined ? ` (eldergate stored ${Math.round(d.committedPerS)}/s)` : ''}, cpu ${d.cpu.system.toFixed(0)}%${partsText(d.cpu.parts)}, PUBACK p50 ${d.latency.p50.toFixed(2)} p99 ${d.latency.p99.toFixed(2)} ms; ${conditions(load)}`);
          return d.discarded;
        }, out.errors);
      }
    };
    // the cluster: the flood of figure 2 leaves RabbitMQ busy with its backlog for minutes, so the alarms go first
    if (target.settle) {
      await fig5();
      await fig2();
    } else {
      await fig2();
      await fig5();
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
 * Run a measured repetition until the profile's `reps` of them were clean, at most `reps + extraAttempts` times.
 * `once` returns whether its repetition was noisy; noisy ones stay in the results, marked discarded.
 */
export async function repeat(p: Profile, what: string, log: Log, once: () => Promise<boolean>, errors?: string[]): Promise<void> {
  let clean = 0;
  for (let attempt = 0; clean < p.reps && attempt < p.reps + p.extraAttempts; attempt++) {
    let noisy: boolean;
    // the host's speed on the system's core before the repetition (the reading after the one before it, when recent)
    const sutCore = timedCore(currentCpuPlan());
    if (sutCore) hostSpeed.ready(sutCore);
    try {
      noisy = await once();
    } catch (err) {
      // one failed repetition (a probe connection reset on a starved machine) costs an attempt, not the figure
      const msg = `${what}: repetition ${attempt + 1} failed: ${(err as Error).message.split('\n')[0]}`;
      log(`  ${msg}`);
      if (!errors) throw err;
      errors.push(msg);
      continue;
    }
    if (noisy) log(`  ${what}: repetition ${attempt + 1} DISCARDED as noisy${attempt + 1 < p.reps + p.extraAttempts ? ', running another' : ''}`);
    else clean++;
  }
  if (clean < p.reps) log(`  ${what}: only ${clean} clean repetition${clean === 1 ? '' : 's'} of ${p.reps}`);
}

/** "wait 3 ms/s, probe 12 ms/s, steal 0.0 %" — the load conditions of one repetition, for the log */
export function conditions(l: LoadConditions): string {
  return `run-queue wait ${l.sutWaitMsPerS.toFixed(1)} ms/s${l.probeWaitMsPerS !== null ? `, probe ${l.probeWaitMsPerS.toFixed(1)} ms/s${l.probeWaitPerWakeMs != null ? ` (${(l.probeWaitPerWakeMs * 1000).toFixed(0)} µs per wake-up)` : ''}` : ''}, steal ${l.stealPct.toFixed(1)} %` +
    `${l.sutCoreOtherPct !== null ? `, other work on its core ${l.sutCoreOtherPct.toFixed(1)} %` : ''}${l.sutCoreIrqPct != null ? ` (interrupts ${l.sutCoreIrqPct.toFixed(1)} %)` : ''}${l.noisy ? ` — NOISY (${l.why})` : ''}`;
}
