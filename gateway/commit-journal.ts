// What a batch being written owes to memory outside the database, kept as a flat list of pairs instead of a closure
// per entry: undo actions for a rollback (rule memory, timers, a device's last key), counters moved and actions run
// once the batch commits. At 10k msg/s every heartbeat added three or four closures and a hook object here, and each
// counter increment hashed its labels in prom-client; now an entry is two slots of an array that is reused, and a
// counter's labels are hashed once per commit.
//
// Marks are positions in the list: rolling back to a mark undoes (newest first) and forgets everything after it, so one
// observation that fails inside a batch takes only its own entries with it.

import type { Counter } from 'prom-client';

/** One series of a counter: found without building its labels, counted as a number until the commit. */
export interface CountSlot {
  readonly counter: Counter<string>;
  readonly labels: Record<string, string>;
  /** owed by the batch being settled (0 between commits) */
  n: number;
}

/**
 * The series of one counter, by up to three label values (the observation's source, and what the call site says).
 * Bounded as the counter is: every value comes from the code or from a fixed set (sources, classes, keys).
 */
export class CountSeries<L extends string> {
  private readonly slots = new Map<string, Map<string, Map<string, CountSlot>>>();

  constructor(
    private readonly counter: Counter<L>,
    private readonly labels: (a: string, b: string, c: string) => Record<L, string>,
  ) {}

  at(a: string, b = '', c = ''): CountSlot {
    let byB = this.slots.get(a);
    if (!byB) this.slots.set(a, (byB = new Map()));
    let byC = byB.get(b);
    if (!byC) byB.set(b, (byC = new Map()));
    let slot = byC.get(c);
    if (!slot) byC.set(c, (slot = { counter: this.counter as unknown as Counter<string>, labels: this.labels(a, b, c), n: 0 }));
    return slot;
  }
}

const COUNT = Symbol('count');
const ON_COMMIT = Symbol('on-commit');
type Undo = (arg: never) => void;

export class CommitJournal {
  /** pairs: [an undo action, its argument] | [COUNT, a slot] | [ON_COMMIT, an action] */
  private entries: unknown[] = [];
  /** what the last commit owes: actions to run, series to count */
  private actions: (() => void)[] = [];
  private counted: CountSlot[] = [];

  /** where the batch is now: give it to rollBack to undo what came after */
  get mark(): number {
    return this.entries.length;
  }

  /** on rollback: `fn(arg)` (an argument instead of a closure, for what runs per message) */
  onRollback<T>(fn: (arg: T) => void, arg?: T): void {
    this.entries.push(fn, arg);
  }

  whenCommitted(fn: () => void): void {
    this.entries.push(ON_COMMIT, fn);
  }

  count(slot: CountSlot): void {
    this.entries.push(COUNT, slot);
  }

  /** Undo everything after `mark`, newest first, and forget it (its counts and commit actions with it). */
  rollBack(mark: number, onError: (err: unknown) => void): void {
    const e = this.entries;
    for (let i = e.length - 2; i >= mark; i -= 2) {
      const kind = e[i];
      if (kind === COUNT || kind === ON_COMMIT) continue;
      try {
        (kind as Undo)(e[i + 1] as never);
      } catch (err) {
        onError(err);
      }
    }
    e.length = mark;
  }

  /** The batch committed: nothing is undone any more; its counts and actions are owed until settle(). */
  committed(): void {
    const e = this.entries;
    for (let i = 0; i < e.length; i += 2) {
      const kind = e[i];
      if (kind === COUNT) {
        const slot = e[i + 1] as CountSlot;
        if (slot.n++ === 0) this.counted.push(slot);
      } else if (kind === ON_COMMIT) {
        this.actions.push(e[i + 1] as () => void);
      }
    }
    e.length = 0;
  }

  /**
   * Forget what commits owe and have not settled: a failed batch (nothing of it happened), and with it what an
   * earlier batch still owes if it committed but was not synced (it was not acknowledged either: its devices resend).
   */
  forgetOwed(): void {
    for (const slot of this.counted) slot.n = 0;
    this.counted = [];
    this.actions = [];
  }

  /** Move the counters and run the actions the committed batches owe. */
  settle(onError: (err: unknown) => void): void {
    const counted = this.counted;
    const actions = this.actions;
    this.counted = [];
    this.actions = [];
    for (const slot of counted) {
      const n = slot.n;
      slot.n = 0;
      try {
        slot.counter.inc(slot.labels, n);
      } catch (err) {
        onError(err);
      }
    }
    for (const fn of actions) {
      try {
        fn();
      } catch (err) {
        onError(err);
      }
    }
  }
}
