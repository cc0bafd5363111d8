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
import { spawnSync } from 'node:child_process';

/** ~25 ms a round on this machine: long enough to time, short enough to run after every repetition */
const ROUNDS = 1_000_000;
const LOOP = `let best = Infinity, x = 0;
for (let r = 0; r < 3; r++) {
  const c0 = process.cpuUsage();
  for (let i = 0; i < ${ROUNDS}; i++) x = (x + i * 2654435761) % 1000003;
  const c = process.cpuUsage(c0);
  const ms = (c.user + c.system) / 1000;
  if (ms < best) best = ms;
}
process.stdout.write(JSON.stringify({ ms: best, x }));`;

/** The fixed loop's CPU time on `core` (a single core number, as `taskset -c` takes it), ms; null if it could not run. */
export function timeFixedLoop(core: string): number | null {
  const r = spawnSync('taskset', ['-c', core, process.execPath, '-e', LOOP], { encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) return null;
  try {
    const ms = (JSON.parse(r.stdout) as { ms: unknown }).ms;
    return typeof ms === 'number' && Number.isFinite(ms) && ms > 0 ? ms : null;
  } catch {
    return null;
  }
}

export interface HostSpeedReading {
  /** the loop's time now, ms */
  loopMs: number;
  /** how much slower than the fastest loop of this run, % (0 for the fastest itself) */
  slowerPct: number;
}

export class HostSpeed {
  private fastest = Number.POSITIVE_INFINITY;

  constructor(private readonly time: (core: string) => number | null = timeFixedLoop) {}

  /** time the loop on `core` now; null when it could not be run (then the rule cannot judge by it) */
  check(core: string): HostSpeedReading | null {
    const loopMs = this.time(core);
    if (loopMs === null) return null;
    if (loopMs < this.fastest) this.fastest = loopMs;
    return { loopMs, slowerPct: (100 * (loopMs - this.fastest)) / this.fastest };
  }
}

/** one per harness run: every repetition of every figure is judged against the same fastest loop */
export const hostSpeed = new HostSpeed();
