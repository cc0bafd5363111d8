// The host's speed on the system's core, timed after each repetition (issue 10: discard noisy repetitions).
//
// This machine is a VM that reports no steal: when the host gives its vCPU less, nothing in /proc/stat says so, and
// the system simply needs more of its core for the same load (on 2026-12-04, eldergate at 90 % of its core for a
// load that took 65 % minutes before and after, and a reconnect storm at 671 µs of CPU per connect against 356–368 µs
// in the runs either side). A fixed piece of work timed on the system's core tells: it takes the same time on a host
// that runs at its usual speed (835 ms ± 1 % for 3e7 rounds on a quiet host here) and longer on one that does not.
//
// The loop runs in a short-lived node process pinned to the system's core, after each repetition, three times in a
// row; the fastest of the three counts (the first is often the JIT's, not the host's). It is timed in CPU time, not
// wall time: a system still busy on its core after the load (a checkpoint, a backlog) makes the loop wait for the
// core, which is the system's doing and must not discard its repetition; but a vCPU the host does not run while the
// guest thinks it is running (steal that is not reported) is charged to the task on it, so the loop's CPU time grows.
// A repetition is judged against the fastest loop seen so far in the run.
//
// A second loop times the host's memory: random lookups in a Map of 200,000 string keys (a device table), far larger
// than the caches. The host's slow spells on this machine are in memory, not in arithmetic: on 2026-12-05 from 12:26
// to 12:32 UTC a million of these lookups took 81–92 ms (median 85) against a median of 52 before and after, and the
// rules engine's cost per heartbeat (`npm run bench:engine`) a median of 2.5 µs against 1.4, while the arithmetic loop
// stayed at 25.4–27.8 ms throughout (bench/analysis.md). The arithmetic loop alone judged such repetitions clean.
import { spawnSync } from 'node:child_process';

/** ~25 ms a round on this machine: long enough to time, short enough to run after every repetition */
const ROUNDS = 1_000_000;
/** the device table's size and the lookups per round (~35–55 ms a round on a quick host here) */
const KEYS = 200_000;
const LOOKUPS = 1_000_000;
const LOOP = `let best = Infinity, x = 0;
for (let r = 0; r < 3; r++) {
  const c0 = process.cpuUsage();
  for (let i = 0; i < ${ROUNDS}; i++) x = (x + i * 2654435761) % 1000003;
  const c = process.cpuUsage(c0);
  const ms = (c.user + c.system) / 1000;
  if (ms < best) best = ms;
}
// (in a function: its variables are locals, so the loop's time is the lookups', not the script scope's)
const [memBest, y] = (() => {
  const keys = [];
  const table = new Map();
  for (let i = 0; i < ${KEYS}; i++) {
    const k = 'dev-' + i.toString(36) + '-' + ((i * 2654435761) % 1000003).toString(36);
    keys.push(k);
    table.set(k, i);
  }
  let memBest = Infinity, seed = 12345, y = 0;
  for (let r = 0; r < 3; r++) {
    const c0 = process.cpuUsage();
    for (let i = 0; i < ${LOOKUPS}; i++) {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      y += table.get(keys[seed % ${KEYS}]);
    }
    const c = process.cpuUsage(c0);
    const ms = (c.user + c.system) / 1000;
    if (ms < memBest) memBest = ms;
  }
  return [memBest, y];
})();
process.stdout.write(JSON.stringify({ ms: best, memMs: memBest, x: x + y % 7 }));`;

/** what the loops took on the system's core, ms of CPU: the arithmetic loop and the table lookups */
export interface HostTimes {
  loopMs: number;
  memMs: number;
}

/** The fixed loops' CPU time on `core` (a single core number, as `taskset -c` takes it); null if they could not run. */
export function timeHost(core: string): HostTimes | null {
  const r = spawnSync('taskset', ['-c', core, process.execPath, '-e', LOOP], { encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) return null;
  try {
    const { ms, memMs } = JSON.parse(r.stdout) as { ms: unknown; memMs: unknown };
    const ok = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v > 0;
    return ok(ms) && ok(memMs) ? { loopMs: ms, memMs } : null;
  } catch {
    return null;
  }
}

export interface HostSpeedReading {
  /** the arithmetic loop's time now, ms */
  loopMs: number;
  /** how much slower than the fastest loop of this run, % (0 for the fastest itself) */
  slowerPct: number;
  /** the table lookups' time now, ms */
  memMs: number;
  /** how much slower than the fastest lookups of this run, % */
  memSlowerPct: number;
  /** when it was taken (`performance.now()`) */
  at: number;
}

/**
 * A reading taken at most this long before a repetition began stands for the host before it (the reading after the
 * repetition before it, or one taken for it: HostSpeed.ready). The host's slow spells here last minutes
 * (bench/analysis.md), so one that begins or ends inside a repetition shows in one of the two readings.
 */
export const BEFORE_READING_MAX_AGE_MS = 30_000;

export class HostSpeed {
  private fastest = Number.POSITIVE_INFINITY;
  private fastestMem = Number.POSITIVE_INFINITY;

  private readonly latest = new Map<string, HostSpeedReading>();

  constructor(
    private readonly time: (core: string) => HostTimes | null = timeHost,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** time the loops on `core` now; null when they could not be run (then the rule cannot judge by them) */
  check(core: string): HostSpeedReading | null {
    const t = this.time(core);
    if (t === null) return null;
    if (t.loopMs < this.fastest) this.fastest = t.loopMs;
    if (t.memMs < this.fastestMem) this.fastestMem = t.memMs;
    const reading = {
      loopMs: t.loopMs, slowerPct: (100 * (t.loopMs - this.fastest)) / this.fastest,
      memMs: t.memMs, memSlowerPct: (100 * (t.memMs - this.fastestMem)) / this.fastestMem, at: this.now(),
    };
    this.latest.set(core, reading);
    return reading;
  }

  /** the last reading on `core` if it was taken before `at` and at most BEFORE_READING_MAX_AGE_MS before it */
  before(core: string, at: number): HostSpeedReading | null {
    const r = this.latest.get(core);
    return r && r.at <= at && at - r.at <= BEFORE_READING_MAX_AGE_MS ? r : null;
  }

  /** take a reading on `core` now unless the last one is recent enough to stand for the host before what comes next */
  ready(core: string): void {
    if (!this.before(core, this.now())) this.check(core);
  }
}

/** one per harness run: every repetition of every figure is judged against the same fastest loop */
export const hostSpeed = new HostSpeed();
