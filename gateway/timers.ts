// Timers for rules: one 4-ary min-heap of deadlines (shallower than binary: fewer cache misses per pop), indexed by
// (owner, slot) for O(log n) set/clear, and one real setTimeout armed for the nearest deadline. 100k devices × a few
// timers each is a few hundred thousand small entries. Every heartbeat re-arms its device's supervision timer a little
// later, so moving a timer *later* touches the heap not at all: the entry keeps its place under its old, earlier key
// and only its deadline changes; when the old key comes to the top, the entry goes back down under its real deadline
// (once per supervision interval, not once per heartbeat). A heap key is never later than its deadline, so nothing
// fires late and timers still fire in deadline order. Deadlines are on a monotonic clock (performance.now): wall-clock
// jumps (NTP, DST, an operator fixing the date) must neither fire every supervision timer at once nor postpone them.

/** The time source and scheduler; the default reads the globals at each call so vitest fake timers apply. */
export interface Clock {
  /** monotonic milliseconds */
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => globalThis.performance.now(),
  setTimeout: (fn, ms) => {
    const t = globalThis.setTimeout(fn, ms);
    // timers never keep the process alive on their own: the servers do, and tests end cleanly
    (t as { unref?: () => void }).unref?.();
    return t;
  },
  clearTimeout: (h) => globalThis.clearTimeout(h as ReturnType<typeof setTimeout>),
};

/** A clock that only moves when told to (tests). `advance` fires what became due, like real time would. */
export interface ManualClock extends Clock {
  advance(ms: number): void;
  set(now: number): void;
}

export function createManualClock(start = 0): ManualClock {
  let now = start;
  let nextId = 1;
  const pending = new Map<number, { at: number; fn: () => void }>();
  const clock: ManualClock = {
    now: () => now,
    setTimeout(fn, ms) {
      const id = nextId++;
      pending.set(id, { at: now + Math.max(0, ms), fn });
      return id;
    },
    clearTimeout(h) {
      pending.delete(h as number);
    },
    set(t) {
      clock.advance(t - now);
    },
    advance(ms) {
      const end = now + ms;
      // fire in deadline order, moving time to each deadline, as a real event loop would
      for (;;) {
        let first: [number, { at: number; fn: () => void }] | undefined;
        for (const e of pending) if (e[1].at <= end && (!first || e[1].at < first[1].at)) first = e;
        if (!first) break;
        pending.delete(first[0]);
        now = Math.max(now, first[1].at);
        first[1].fn();
      }
      now = end;
    },
  };
  return clock;
}

/** One pending timer. `owner` is a device id; `slot` names the rule's timer (e.g. "supervision/late"). */
export class TimerEntry {
  constructor(
    readonly id: string,
    readonly owner: string,
    readonly slot: string,
    /** when it is due */
    public at: number,
    /** its place in the heap: `at`, or an earlier deadline it had before it was moved later (never later than `at`) */
    public key: number,
    /** increases on every set, so a fire can be recognised as stale after a re-set */
    public gen: number,
    public order: number,
    public index: number,
  ) {}
}

export interface TimerQueueOptions {
  clock?: Clock;
  /** called for each timer that became due, in deadline order */
  onDue: (entry: TimerEntry) => void;
  /** timers handled per turn of the event loop, so a start-up with thousands overdue does not stall ingest */
  batch?: number;
}

// setTimeout's delay is a signed 32-bit integer; longer delays fire at once in Node (with a warning)
const MAX_DELAY = 2 ** 31 - 1;

export class TimerQueue {
  private readonly heap: TimerEntry[] = [];
  private readonly byId = new Map<string, TimerEntry>();
  private readonly clock: Clock;
  private readonly onDue: (entry: TimerEntry) => void;
  private readonly batch: number;
  private handle: unknown = undefined;
  private armedAt = Infinity;
  private counter = 0;
  private closed = false;

  constructor(options: TimerQueueOptions) {
    this.clock = options.clock ?? systemClock;
    this.onDue = options.onDue;
    this.batch = options.batch ?? 1000;
  }

  static id(owner: string, slot: string): string {
    return owner + '\u0000' + slot;
  }

  get size(): number {
    return this.heap.length;
  }

  now(): number {
    return this.clock.now();
  }

  /** Set (or move) the timer to fire `inMs` from now. Returns its generation. */
  set(owner: string, slot: string, inMs: number): number {
    const id = TimerQueue.id(owner, slot);
    return this.place(this.byId.get(id), id, owner, slot, inMs);
  }

  /**
   * `set` with the id already made (`TimerQueue.id(owner, slot)`: the hot path makes it once per request), returning
   * when the timer was due before (undefined when it was not pending): the rules engine records that for its undo,
   * with one lookup in the index instead of two.
   */
  reset(id: string, owner: string, slot: string, inMs: number): number | undefined {
    const existing = this.byId.get(id);
    const before = existing?.at;
    this.place(existing, id, owner, slot, inMs);
    return before;
  }

  /** `clear` with the id already made, returning when the timer was due (undefined when none was pending) */
  remove(id: string): number | undefined {
    const e = this.byId.get(id);
    if (!e) return undefined;
    this.removeAt(e.index);
    this.byId.delete(e.id);
    // the armed setTimeout may now be early; firing early finds nothing due and re-arms, which is cheaper than
    // clearing and re-creating the real timer on every clear
    return e.at;
  }

  /** set the timer of `id` (`existing`: its entry, if it is pending) to fire `inMs` from now; returns its generation */
  private place(existing: TimerEntry | undefined, id: string, owner: string, slot: string, inMs: number): number {
    const at = this.clock.now() + Math.max(0, inMs);
    const gen = ++this.counter;
    if (existing) {
      existing.at = at;
      existing.gen = gen;
      // later (a heartbeat re-arming supervision): stays where it is under its earlier key, re-placed when that key
      // comes up (runDue). Earlier, or onto its key: takes that key now, and the order of a fresh set among equal
      // deadlines (the last set of equal deadlines fires last)
      if (at < existing.key) {
        existing.key = at;
        existing.order = gen;
        this.up(existing.index);
      } else if (at === existing.key) {
        existing.order = gen;
        this.down(existing.index);
      }
    } else {
      const e = new TimerEntry(id, owner, slot, at, at, gen, gen, this.heap.length);
      this.heap.push(e);
      this.byId.set(id, e);
      this.up(e.index);
    }
    this.arm();
    return gen;
  }

  /** Remove the timer if it is pending; true if it was. */
  clear(owner: string, slot: string): boolean {
    return this.remove(TimerQueue.id(owner, slot)) !== undefined;
  }

  get(owner: string, slot: string): { at: number; gen: number } | undefined {
    const e = this.byId.get(TimerQueue.id(owner, slot));
    return e && { at: e.at, gen: e.gen };
  }

  has(owner: string, slot: string): boolean {
    return this.byId.has(TimerQueue.id(owner, slot));
  }

  /** The nearest deadline (monotonic ms), or undefined when nothing is pending. */
  nextAt(): number | undefined {
    this.settleTop();
    return this.heap[0]?.at;
  }

  /** put entries moved later back under their real deadline until the top's key is its deadline */
  private settleTop(): void {
    for (let top = this.heap[0]; top && top.key < top.at; top = this.heap[0]) this.rekey(top);
  }

  private rekey(e: TimerEntry): void {
    e.key = e.at;
    // its order among equal deadlines is that of its last set (gen), as if it had been moved then
    e.order = e.gen;
    this.down(e.index);
  }

  /**
   * Fire every timer due at `now` (default: the clock's now), in deadline order, and return how many fired.
   * For manual advancing in tests and for draining at once; the real timer calls it in batches. `limit` bounds the
   * work of one call: timers fired and timers re-placed under a later deadline alike (a fleet armed together at
   * start-up and pushed later by its heartbeats comes up for re-placing together).
   */
  runDue(now = this.clock.now(), limit = Infinity): number {
    let fired = 0;
    for (let work = 0; work < limit; work++) {
      const top = this.heap[0];
      if (!top || top.key > now) break;
      if (top.key < top.at) {
        // moved later since it was placed: down under its deadline (it fires in this pass only if that is due too)
        this.rekey(top);
        continue;
      }
      this.removeAt(0);
      this.byId.delete(top.id);
      fired++;
      this.onDue(top);
    }
    return fired;
  }

  /** Stop the real timer; pending entries stay (close is for shutdown). */
  close(): void {
    this.closed = true;
    if (this.handle !== undefined) this.clock.clearTimeout(this.handle);
    this.handle = undefined;
    this.armedAt = Infinity;
  }

  private arm(): void {
    if (this.closed) return;
    // the top's key, not its deadline: an early wake re-places entries that were moved later, and arms again
    const next = this.heap[0]?.key;
    if (next === undefined || next >= this.armedAt) return;
    if (this.handle !== undefined) this.clock.clearTimeout(this.handle);
    this.armedAt = next;
    const delay = Math.min(MAX_DELAY, Math.max(0, Math.ceil(next - this.clock.now())));
    this.handle = this.clock.setTimeout(this.tick, delay);
  }

  private readonly tick = (): void => {
    this.handle = undefined;
    this.armedAt = Infinity;
    this.runDue(this.clock.now(), this.batch);
    if ((this.heap[0]?.key ?? Infinity) <= this.clock.now()) {
      // more are due: yield to the event loop (alarms in flight go first), then continue
      if (!this.closed) {
        this.armedAt = this.clock.now();
        this.handle = this.clock.setTimeout(this.tick, 0);
      }
      return;
    }
    this.arm();
  };

  private less(a: TimerEntry, b: TimerEntry): boolean {
    return a.key < b.key || (a.key === b.key && a.order < b.order);
  }

  private swap(i: number, j: number): void {
    const a = this.heap[i]!;
    const b = this.heap[j]!;
    this.heap[i] = b;
    this.heap[j] = a;
    a.index = j;
    b.index = i;
  }

  private up(i: number): void {
    while (i > 0) {
      const parent = (i - 1) >> 2;
      if (!this.less(this.heap[i]!, this.heap[parent]!)) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  private down(i: number): void {
    const n = this.heap.length;
    for (;;) {
      const first = 4 * i + 1;
      if (first >= n) break;
      const last = Math.min(first + 4, n);
      let m = first;
      for (let c = first + 1; c < last; c++) if (this.less(this.heap[c]!, this.heap[m]!)) m = c;
      if (!this.less(this.heap[m]!, this.heap[i]!)) break;
      this.swap(i, m);
      i = m;
    }
  }

  private removeAt(i: number): void {
    const last = this.heap.pop()!;
    if (i === this.heap.length) return;
    this.heap[i] = last;
    last.index = i;
    this.up(i);
    this.down(last.index);
  }
}
