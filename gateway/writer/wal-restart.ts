// Starting the write-ahead log again from its beginning, agreed between the checkpointer thread and the writer thread
// in memory both share (each reads the other's flag however busy its own thread is).
//
// SQLite starts the WAL from its beginning only when a write transaction begins with every frame of the log already
// copied back into the database file and no reader in the log. Under sustained telemetry the writer commits every few
// milliseconds, so a PASSIVE checkpoint (it never blocks the writer) never finishes before the next commit: the log
// then never starts again and grows for as long as the load lasts — 182 MB in the first 8 s at 10k msg/s, 293 MB
// after 50 s, every write an append the file system allocates and journals. That is a disk filling up, and the
// writer's kernel time rising by a tenth of a core while it grows.
//
// So, once the log is over its soft limit (ingest.walSoftLimitMB), the checkpointer asks
// the writer for a pause in telemetry. The writer stops starting telemetry slices and says so; alarms, people's actions
// and receipts still go at once. The checkpointer copies the rest (the frames written during its last pass, a few
// milliseconds' worth), starts the log again (a RESTART checkpoint with nothing left to copy, which gives up at once
// if anyone is in the log) and lets go.
// Neither side waits for the other for long: the checkpointer gives up waiting after QUIET_WAIT_MS, the writer resumes
// after HOLD_MAX_MS whatever happened.

/** slots of the shared Int32Array */
const WANT = 0; // 1: the checkpointer asks for a pause (set and cleared by it)
const QUIET = 1; // 1: the writer has stopped starting telemetry (set and cleared by the writer)
const SLOTS = 2;

/** how long the checkpointer waits for the writer to reach the end of its slice (a slice is ≤ 5 ms and its commit) */
export const QUIET_WAIT_MS = 25;
/** how long the checkpointer goes on copying while the writer holds (alarms written meanwhile add frames) */
export const COPY_BUDGET_MS = 50;
/** the longest pause the writer gives, whatever the checkpointer does (it may have died) */
export const HOLD_MAX_MS = QUIET_WAIT_MS + COPY_BUDGET_MS + 25;
/**
 * After a pause the writer gives no other for this long, so a request nobody withdraws (a checkpointer that died
 * asking) costs telemetry at most HOLD_MAX_MS in every HOLD_MAX_MS + MIN_GAP_MS. The checkpointer asks once a second.
 */
export const MIN_GAP_MS = 500;

export function walRestartBuffer(): SharedArrayBuffer {
  return new SharedArrayBuffer(4 * SLOTS);
}

/** The writer's side: looked at before each telemetry slice. */
export class WalRestartGate {
  private readonly flags: Int32Array;
  private holding = false;
  private notBefore = 0;

  /** `minGapMs`: below the checkpointer's interval (a second), so that it never turns a request down */
  constructor(buffer: SharedArrayBuffer, private readonly minGapMs = MIN_GAP_MS) {
    this.flags = new Int32Array(buffer);
  }

  /** the checkpointer asks for a pause, none is being given, and the last one ended MIN_GAP_MS ago */
  wanted(): boolean {
    return !this.holding && Atomics.load(this.flags, WANT) === 1 && performance.now() >= this.notBefore;
  }

  /** a pause is being given now */
  get held(): boolean {
    return this.holding;
  }

  /**
   * Give the pause: say so, then resolve once the checkpointer lets go, or after `maxMs`. Telemetry is not started
   * meanwhile; the caller starts it again when this resolves.
   */
  async hold(maxMs = HOLD_MAX_MS): Promise<void> {
    this.holding = true;
    Atomics.store(this.flags, QUIET, 1);
    Atomics.notify(this.flags, QUIET);
    try {
      // (Node ≥ 16; TypeScript's lib declares it from ES2024 on)
      const w = (Atomics as unknown as AtomicsWaitAsync).waitAsync(this.flags, WANT, 1, maxMs);
      if (w.async) await w.value;
    } finally {
      Atomics.store(this.flags, QUIET, 0);
      this.holding = false;
      this.notBefore = performance.now() + this.minGapMs;
    }
  }
}

interface AtomicsWaitAsync {
  waitAsync(a: Int32Array, index: number, value: number, timeoutMs: number):
    { async: false; value: 'not-equal' | 'timed-out' } | { async: true; value: Promise<'ok' | 'timed-out'> };
}

export interface CheckpointResult {
  /** frames in the log */
  log: number;
  /** of them, copied back into the database file */
  checkpointed: number;
}

/**
 * restarted: the log starts again from its beginning now; copied: every frame is back in the database file but a
 * reader was still in the log, so the log starts again at the writer's next transaction if none is by then;
 * incomplete: frames were still being written (alarms) when the budget ran out.
 */
export type WindowOutcome = 'restarted' | 'copied' | 'incomplete';

export interface WindowPasses {
  /** one PASSIVE pass: copies what it can, never waits for the writer */
  passive(): CheckpointResult;
  /**
   * One RESTART pass that gives up at once (busy_timeout 0) if the writer holds the write lock or a reader is in the
   * log; `busy` 1 then. Run only with the writer holding and nothing left to copy: it holds the write lock for the
   * ~0.1 ms it takes to start the log again.
   */
  restart(): CheckpointResult & { busy: number };
}

/**
 * The checkpointer's side, after a pass that found the log over its soft limit: ask for the pause, wait for it (at
 * most QUIET_WAIT_MS), copy until every frame is back or COPY_BUDGET_MS is spent, start the log again, let go.
 * Blocks the calling thread (the checkpointer has nothing else to do meanwhile).
 */
export function restartWindow(
  buffer: SharedArrayBuffer,
  passes: WindowPasses,
  now: () => number = () => performance.now(),
): { outcome: WindowOutcome; last: CheckpointResult } {
  const flags = new Int32Array(buffer);
  askForPause(buffer);
  try {
    // (an idle writer never says it is quiet: nothing is being written then, and the passes below finish by themselves)
    Atomics.wait(flags, QUIET, 0, QUIET_WAIT_MS);
    // A pass reports the log as it was when the pass began, so "all copied" is only true once a pass finds nothing
    // new since the pass before it (an alarm or a batch of receipts committed meanwhile adds frames: copy again). A
    // millisecond apart, not back to back: passes in a tight loop while alarms and receipts kept committing took this
    // thread's whole 50 ms budget of the core the gateway's threads share, once a second.
    const pause = new Int32Array(new SharedArrayBuffer(4));
    const until = now() + COPY_BUDGET_MS;
    let last = passes.passive();
    let complete = false;
    while (!complete && now() < until) {
      Atomics.wait(pause, 0, 0, 1);
      const next = passes.passive();
      complete = next.log === last.log && next.checkpointed >= next.log;
      last = next;
    }
    if (!complete) return { outcome: 'incomplete', last };
    // Without this, the log starts again only if the writer's next transaction begins with no reader in the log and
    // nothing written since the last pass: 4 times in 7 windows under figure 7's load. A reader's read is short: one
    // more try every millisecond while the budget lasts.
    for (;;) {
      const r = passes.restart();
      if (r.busy === 0) return { outcome: 'restarted', last: { log: 0, checkpointed: 0 } };
      if (now() >= until) return { outcome: 'copied', last };
      Atomics.wait(pause, 0, 0, 1);
    }
  } finally {
    withdrawRequest(buffer);
  }
}

/** the checkpointer asks the writer for a pause */
export function askForPause(buffer: SharedArrayBuffer): void {
  Atomics.store(new Int32Array(buffer), WANT, 1);
}

/** the checkpointer withdraws its request (after a window; and when a new checkpointer thread starts) */
export function withdrawRequest(buffer: SharedArrayBuffer): void {
  const flags = new Int32Array(buffer);
  Atomics.store(flags, WANT, 0);
  Atomics.notify(flags, WANT);
}
