// Where each bench process runs and how much the machine got in its way. The system under test (eldergate, raw
// aedes, Mosquitto and its subscriber) gets a core of its own; the load generators, the P1 probe, the consoles and
// the harness share the others (`taskset`, util-linux). Over every measured repetition the harness reads the system's
// run-queue wait (`/proc/<pid>/task/*/schedstat`: time its threads were runnable but not running) and the machine's
// steal (`/proc/stat`: time the hypervisor gave our vCPUs to someone else), and a repetition over the stated bounds
// is discarded as noisy — reported, never silently dropped — and run again.
import { hostSpeed, type HostSpeed, type HostSpeedReading } from './host-speed.js';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';

export const TASKSET = ['/usr/bin/taskset', '/bin/taskset'].find((f) => existsSync(f)) ?? null;
const NICE = ['/usr/bin/nice', '/bin/nice'].find((f) => existsSync(f)) ?? null;

/**
 * the P1 probe's nice value: the scheduler's weight for -15 is ~28× that of the generators and consoles beside it at 0,
 * so it runs as soon as an alarm's answer or a console frame wakes it. Not SCHED_FIFO: tried, and node's own threads
 * then spun against each other at real-time priority (yielding only to each other) and starved the load core
 */
export const PROBE_NICE = -15;

export interface CpuPlan {
  /** cores the system under test runs on ("1"), or null when it cannot have one of its own */
  sut: string | null;
  /** cores for everything else: generators, probe, consoles, the harness */
  load: string | null;
  /** why there is no pinning, when there is none */
  note: string | null;
  /**
   * the P1 probe runs at a higher priority (`nice -n PROBE_NICE`) on the load core: it runs the moment an alarm's answer
   * or a console frame wakes it, ahead of the generators and consoles beside it, so its clock times the system and not
   * the load core's queue. false: this process may not raise a priority (not root, no CAP_SYS_NICE)
   */
  probeFirst: boolean;
  /**
   * --writer-core: eldergate's writer thread (the device domain and its commits) moved onto these cores, the load's, so
   * that each of the gateway's two busy threads has a core (the writer sharing its with the load). Absent: every thread
   * of the system on `sut`
   */
  writer?: string;
}

/** the cores this process may use, from its affinity mask (a container may hand us fewer than os.cpus()) */
export function allowedCpus(): number[] {
  try {
    const m = /Cpus_allowed_list:\s*(\S+)/.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m) return expandList(m[1]!);
  } catch {
    // not Linux: fall through
  }
  return os.cpus().map((_, i) => i);
}

export function expandList(list: string): number[] {
  const out: number[] = [];
  for (const part of list.split(',')) {
    const [a, b] = part.split('-').map(Number);
    if (!Number.isInteger(a)) continue;
    for (let c = a!; c <= (b ?? a!); c++) out.push(c);
  }
  return out;
}

/** the last allowed core for the system under test, the rest for the load; none with one core or no taskset */
export function cpuPlan(disabled = false): CpuPlan {
  const cpus = allowedCpus();
  if (disabled) return { sut: null, load: null, note: 'pinning turned off (--no-pin)', probeFirst: false };
  if (!TASKSET) return { sut: null, load: null, note: 'taskset not found (apt-get install util-linux): nothing pinned', probeFirst: false };
  if (cpus.length < 2) return { sut: null, load: null, note: `only ${cpus.length} core allowed: nothing pinned`, probeFirst: false };
  return { sut: String(cpus[cpus.length - 1]), load: cpus.slice(0, -1).join(','), note: null, probeFirst: raisingAllowed() };
}

/** `nice` is there and this process may raise a priority (root, or CAP_SYS_NICE; a container may refuse) */
function raisingAllowed(): boolean {
  if (!NICE) return false;
  try {
    // nice only warns when it cannot: read the priority it got (relative to ours: the harness may itself be niced)
    const own = Number(execFileSync(NICE, [], { encoding: 'utf8' }).trim());
    const got = Number(execFileSync(NICE, ['-n', String(PROBE_NICE), NICE], { encoding: 'utf8' }).trim());
    return got < own;
  } catch {
    return false;
  }
}

let current: CpuPlan = { sut: null, load: null, note: 'not planned yet', probeFirst: false };

/** the plan every bench process is started under (set once per run by bench/run.ts) */
export function setCpuPlan(p: CpuPlan): void {
  current = p;
}

export function currentCpuPlan(): CpuPlan {
  return current;
}

/** which side of the machine a process belongs to */
export type Role = 'sut' | 'load';

export function coresFor(role: Role): string | null {
  return role === 'sut' ? current.sut : current.load;
}

/** command and arguments that start `cmd args` on `cores` (unchanged without a plan), at the probe's priority when `first` */
export function pinned(cores: string | null, cmd: string, args: string[], first = false): [string, string[]] {
  const [c, a]: [string, string[]] = cores && TASKSET ? [TASKSET, ['-c', cores, cmd, ...args]] : [cmd, args];
  // nice and taskset exec in place: the pid is still node's
  return first && current.probeFirst && NICE ? [NICE, ['-n', String(PROBE_NICE), c, ...a]] : [c, a];
}

/** move a running process, every thread of it, onto `cores` (the harness itself, after it has started) */
export function pinProcess(pid: number, cores: string | null): void {
  if (!cores || !TASKSET) return;
  execFileSync(TASKSET, ['-a', '-cp', cores, String(pid)], { stdio: 'ignore' });
}

/** move one thread (a Linux thread id) onto `cores` */
export function pinThread(tid: number, cores: string): void {
  if (!TASKSET) throw new Error('taskset not found (apt-get install util-linux): cannot move a thread');
  execFileSync(TASKSET, ['-cp', cores, String(tid)], { stdio: 'ignore' });
}

/** the cores a running process may use, as the kernel says (`Cpus_allowed_list`) */
export function affinityOf(pid: number): string | null {
  try {
    return /Cpus_allowed_list:\s*(\S+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? null;
  } catch {
    return null;
  }
}

/** run-queue wait of every thread of a process so far, ms (field 2 of schedstat, in ns); 0 when it is gone */
export function runQueueWaitMs(pid: number): number {
  let ns = 0;
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return 0;
  }
  for (const tid of tids) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[1]);
    } catch {
      // the thread ended between readdir and read
    }
  }
  return ns / 1e6;
}

/**
 * one thread's scheduling so far (`/proc/<pid>/task/<tid>/schedstat`): ms on a CPU, ms runnable but waiting, and how
 * many times it was put on a CPU. The P1 probe's clock runs on its main thread (tid = pid), so that thread's wait per
 * wake-up is what its timestamps can be late by; summed over all its threads per second, a probe that wakes every
 * millisecond looks busy however promptly it runs (measured: ~900 wake-ups a second, 61 µs each)
 */
export function threadSched(pid: number, tid = pid): { runMs: number; waitMs: number; slices: number } | null {
  try {
    const [run, wait, slices] = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').trim().split(' ').map(Number);
    return { runMs: run! / 1e6, waitMs: wait! / 1e6, slices: slices! };
  } catch {
    return null;
  }
}

/** the mean wait per wake-up (ms) between two readings of `threadSched`, or null */
export function waitPerWakeMs(a: ReturnType<typeof threadSched>, b: ReturnType<typeof threadSched>): number | null {
  if (!a || !b || b.slices <= a.slices) return null;
  return (b.waitMs - a.waitMs) / (b.slices - a.slices);
}

/** the machine's CPU counters (USER_HZ ticks): all cores and each one */
function procStat(): Map<string, { steal: number; total: number; busy: number; irq: number }> {
  const out = new Map<string, { steal: number; total: number; busy: number; irq: number }>();
  for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
    if (!line.startsWith('cpu')) continue;
    const [name, ...f] = line.split(/\s+/);
    const n = f.map(Number);
    // user nice system idle iowait irq softirq steal guest guest_nice (guest time is already in user)
    const total = n.slice(0, 8).reduce((a, b) => a + (b || 0), 0);
    out.set(name!, { steal: n[7] ?? 0, total, busy: total - (n[3] ?? 0) - (n[4] ?? 0), irq: (n[5] ?? 0) + (n[6] ?? 0) });
  }
  return out;
}

export interface LoadConditions {
  wallMs: number;
  /** the system's threads waiting for a CPU, ms per second of the repetition */
  sutWaitMsPerS: number;
  /** the probe's threads waiting for a CPU, ms per second (all its threads; reported, not judged) */
  probeWaitMsPerS: number | null;
  /** the probe's main thread (its clock) waiting per wake-up, ms: what a P1 timestamp can be late by on average */
  probeWaitPerWakeMs?: number | null;
  /** steal over all cores, % of their time */
  stealPct: number;
  /** steal on the system's own core, % */
  sutCoreStealPct: number | null;
  /** the system's core busy with anything that is not the system (other work that got onto it), % of the core */
  sutCoreOtherPct: number | null;
  /**
   * the system's core in interrupts and softirqs, % (not counted as other work: on loopback it is mostly the system's
   * own sends — 20 consoles' frames — handled in softirq on its core and charged to no process)
   */
  sutCoreIrqPct?: number | null;
  /** the system's processes are where the plan put them */
  pinnedAs: string | null;
  /**
   * a fixed loop's CPU time on the system's core around the repetition, % above the fastest of the run
   * (bench/lib/host-speed.ts: a host that runs the vCPU slower, steal the VM does not report); null when not measured
   */
  hostSlowerPct?: number | null;
  /** random lookups in a large table timed there too, % above the fastest of the run: the host's memory (same file) */
  hostMemSlowerPct?: number | null;
  /**
   * which readings the two figures above are the worse of: the one after the repetition, and the one before it when
   * one was taken at most BEFORE_READING_MAX_AGE_MS before it began
   */
  hostReadings?: 'before and after' | 'after' | 'before' | null;
  noisy: boolean;
  /** which bound it crossed, when noisy */
  why: string | null;
}

export interface NoiseRule {
  /**
   * the system waited longer than this for a CPU (ms per second) while other work was on its core: its own threads
   * queueing behind each other on the one core it is given (a writer worker beside the main thread) is its cost, not noise
   */
  maxSutWaitMsPerS: number;
  /** other work on the system's core: above `minOtherPct` it can cause the wait; above `maxOtherPct` it is noise by itself */
  minOtherPct: number;
  maxOtherPct: number;
  /** the probe's main thread waited longer than this per wake-up on average (ms) */
  maxProbeWaitPerWakeMs: number;
  /** steal on the machine or on the system's core above this (%) */
  maxStealPct: number;
  /** the host ran the system's core slower than at its fastest in the run by more than this (%) */
  maxHostSlowerPct: number;
  /** the host's memory on that core was slower than at its fastest in the run by more than this (%) */
  maxHostMemSlowerPct: number;
}

export const NOISE_RULE: NoiseRule = {
  maxSutWaitMsPerS: 20, minOtherPct: 1, maxOtherPct: 5, maxProbeWaitPerWakeMs: 0.25, maxStealPct: 2, maxHostSlowerPct: 15,
  // a quick host's lookups vary by up to ~25 % between readings; in its slow spells they take 60–80 % longer
  maxHostMemSlowerPct: 40,
};

export function describeRule(r: NoiseRule): string {
  return `a repetition is discarded as noisy when other work (anything but the system and interrupt/softirq handling, from \`/proc/stat\` of its core) took more than ${r.maxOtherPct} % of the system's core, ` +
    `or the system waited more than ${r.maxSutWaitMsPerS} ms per second for a CPU (run-queue wait of all its threads) while other work held more than ${r.minOtherPct} % of its core, ` +
    `or the P1 probe's main thread (its clock) waited more than ${r.maxProbeWaitPerWakeMs} ms per wake-up on average, or steal exceeded ${r.maxStealPct} % of the machine or of the system's core, ` +
    `or the host ran the system's core slow: a fixed loop timed there before or after the repetition took more than ${r.maxHostSlowerPct} % more CPU time than the fastest such loop of the run (this VM reports no steal; bench/lib/host-speed.ts), or random lookups in a large table timed there took more than ${r.maxHostMemSlowerPct} % more than the fastest of the run (the host's slow spells here are in memory, which the loop does not touch; they last minutes, so one that begins or ends inside a repetition shows in one of the two readings); ` +
    'it is then run again, up to the profile\'s extra attempts. (The system\'s threads waiting for each other on its one core is its own cost and is not noise.)';
}

/** started at the beginning of a repetition, read at its end */
export class LoadMeter {
  private readonly at = performance.now();
  private readonly stat0 = procStat();
  private readonly sut0: number;
  private readonly probe0: number;
  private readonly probeMain0: ReturnType<typeof threadSched>;
  private readonly sutCpu0: number;
  constructor(
    private readonly sutPids: number[],
    private readonly probePid: number | null,
    private readonly plan: CpuPlan,
    private readonly cpuSeconds: (pid: number) => number,
    private readonly speed: Pick<HostSpeed, 'check' | 'before'> = hostSpeed,
  ) {
    this.sut0 = sumOf(sutPids, runQueueWaitMs);
    this.probe0 = probePid ? runQueueWaitMs(probePid) : 0;
    this.probeMain0 = probePid ? threadSched(probePid) : null;
    this.sutCpu0 = sumOf(sutPids, cpuSeconds);
  }

  read(rule: NoiseRule = NOISE_RULE): LoadConditions {
    const wallMs = performance.now() - this.at;
    const s = wallMs / 1000;
    const stat = procStat();
    const d = (name: string) => {
      const a = this.stat0.get(name);
      const b = stat.get(name);
      return a && b ? { steal: b.steal - a.steal, total: b.total - a.total, busy: b.busy - a.busy, irq: b.irq - a.irq } : null;
    };
    const all = d('cpu');
    const core = this.plan.sut && !this.plan.sut.includes(',') ? d(`cpu${this.plan.sut}`) : null;
    const sutWaitMsPerS = (sumOf(this.sutPids, runQueueWaitMs) - this.sut0) / s;
    const probeWaitMsPerS = this.probePid ? (runQueueWaitMs(this.probePid) - this.probe0) / s : null;
    const probeWaitPerWakeMs = this.probePid ? waitPerWakeMs(this.probeMain0, threadSched(this.probePid)) : null;
    const stealPct = all && all.total > 0 ? (100 * all.steal) / all.total : 0;
    const sutCoreStealPct = core && core.total > 0 ? (100 * core.steal) / core.total : null;
    // busy ticks on the system's core not spent by the system: other engineers' work, kernel threads, interrupts
    const sutCpuTicks = (sumOf(this.sutPids, this.cpuSeconds) - this.sutCpu0) * 100;
    // (assumes the kernel accounts interrupt time apart from tasks, CONFIG_IRQ_TIME_ACCOUNTING, as Debian's and this
    // machine's do; without it a softirq tick is charged to the task it interrupted too, and other work reads low)
    const sutCoreOtherPct = core && core.total > 0 ? Math.max(0, (100 * (core.busy - core.irq - sutCpuTicks)) / core.total) : null;
    const sutCoreIrqPct = core && core.total > 0 ? (100 * core.irq) / core.total : null;
    const pins = [...new Set(this.sutPids.map(affinityOf))];
    const pinnedAs = pins.length === 1 ? pins[0]! : pins.join(' / ');
    // the host's speed on the system's core (only when the system has a core of its own to time): after the load, and
    // the reading before it when there is a recent one; a repetition is judged by the slower of the two
    const sutCore = timedCore(this.plan);
    const before = sutCore ? this.speed.before(sutCore, this.at) : null;
    const after = sutCore ? this.speed.check(sutCore) : null;
    const worse = (f: (r: HostSpeedReading) => number) => after || before ? Math.max(...[before, after].filter((r) => r !== null).map(f)) : null;
    const hostSlowerPct = worse((r) => r.slowerPct);
    const hostMemSlowerPct = worse((r) => r.memSlowerPct);
    const hostReadings = after && before ? 'before and after' : after ? 'after' : before ? 'before' : null;
    return judge({ wallMs, sutWaitMsPerS, probeWaitMsPerS, probeWaitPerWakeMs, stealPct, sutCoreStealPct, sutCoreOtherPct, sutCoreIrqPct, pinnedAs, hostSlowerPct, hostMemSlowerPct, hostReadings, noisy: false, why: null }, rule);
  }
}

/** the system's own core, when it has exactly one: where the host's speed is timed (bench/lib/host-speed.ts) */
export function timedCore(plan: Pick<CpuPlan, 'sut'>): string | null {
  return plan.sut && /^\d+$/.test(plan.sut) ? plan.sut : null;
}

/** apply the noise rule to a repetition's conditions (again, after the probe has reported its own wait) */
export function judge(l: LoadConditions, rule: NoiseRule): LoadConditions {
  const why: string[] = [];
  const other = l.sutCoreOtherPct;
  // unpinned (no core of its own), every wait counts: there is no telling whose it was
  if (l.sutWaitMsPerS > rule.maxSutWaitMsPerS && (other === null || other > rule.minOtherPct)) why.push(`system waited ${l.sutWaitMsPerS.toFixed(0)} ms/s for a CPU${other !== null ? ` with other work on ${other.toFixed(1)} % of its core` : ''}`);
  else if (other !== null && other > rule.maxOtherPct) why.push(`other work took ${other.toFixed(1)} % of the system's core`);
  const perWake = l.probeWaitPerWakeMs ?? null;
  if (perWake !== null && perWake > rule.maxProbeWaitPerWakeMs) why.push(`probe's clock waited ${(perWake * 1000).toFixed(0)} µs per wake-up`);
  if (l.stealPct > rule.maxStealPct) why.push(`steal ${l.stealPct.toFixed(1)} %`);
  if (l.sutCoreStealPct !== null && l.sutCoreStealPct > rule.maxStealPct) why.push(`steal on the system's core ${l.sutCoreStealPct.toFixed(1)} %`);
  if (l.hostSlowerPct != null && l.hostSlowerPct > rule.maxHostSlowerPct) why.push(`host ran the system's core ${l.hostSlowerPct.toFixed(0)} % slower than at its fastest in this run`);
  if (l.hostMemSlowerPct != null && l.hostMemSlowerPct > rule.maxHostMemSlowerPct) why.push(`host's memory on the system's core ${l.hostMemSlowerPct.toFixed(0)} % slower than at its fastest in this run`);
  return { ...l, noisy: why.length > 0, why: why.length ? why.join('; ') : null };
}

const sumOf = (pids: number[], f: (pid: number) => number) => pids.reduce((a, p) => a + f(p), 0);
