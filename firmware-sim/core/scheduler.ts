// One shared scheduler for every simulated device: a binary heap of deadlines behind a single Node timer.
// 5000 devices with heartbeats, resend timers and back-offs are 5000 heap entries, not 5000 setIntervals; and
// the same code runs on virtual time in tests (`VirtualScheduler.advance`), which makes runs reproducible.

export interface TimerHandle {
  /** opaque; pass to `cancel` */
  readonly __timer: true;
}

interface Entry extends TimerHandle {
  at: number;
  order: number;
  fn: () => void;
  /** > 0 for periodic tasks */
  period: number;
  cancelled: boolean;
  queued: boolean;
}

export abstract class Scheduler {
  private heap: Entry[] = [];
  private dead = 0;
  private order = 0;
  /** errors thrown by tasks are reported here rather than killing the loop */
  onError: (err: unknown) => void = (err) => {
    process.emitWarning(`firmware-sim task failed: ${String(err)}`);
  };

  abstract now(): number;
  protected abstract arm(at: number | undefined): void;

  /** run `fn` once after `ms` */
  after(ms: number, fn: () => void): TimerHandle {
    return this.push(this.now() + Math.max(0, ms), 0, fn);
  }

  /** run `fn` every `ms`, first after `firstMs` (default `ms`): a phase spreads a fleet's heartbeats */
  every(ms: number, fn: () => void, firstMs = ms): TimerHandle {
    if (!(ms > 0)) throw new RangeError(`period must be > 0 ms, got ${ms}`);
    return this.push(this.now() + Math.max(0, firstMs), ms, fn);
  }

  cancel(handle: TimerHandle | null | undefined): void {
    const e = handle as Entry | null | undefined;
    if (!e || e.cancelled) return;
    e.cancelled = true;
    if (e.queued) {
      this.dead++;
      // lazy deletion; rebuild when most of the heap is dead (resend timers cancelled on PUBACK, keepalives)
      if (this.dead > 1024 && this.dead * 2 > this.heap.length) this.compact();
    }
  }

  /** live tasks */
  get size(): number {
    return this.heap.length - this.dead;
  }

  /** drop every task */
  clear(): void {
    for (const e of this.heap) {
      e.cancelled = true;
      e.queued = false;
    }
    this.heap = [];
    this.dead = 0;
    this.arm(undefined);
  }

  /** run every task due at `now`; returns how many ran */
  protected runDue(limit = 20_000): number {
    let ran = 0;
    const now = this.now();
    while (this.heap.length > 0 && ran < limit) {
      const top = this.heap[0] as Entry;
      if (top.cancelled) {
        this.pop();
        this.dead--;
        top.queued = false;
        continue;
      }
      if (top.at > now) break;
      this.pop();
      top.queued = false;
      ran++;
      if (top.period > 0) {
        // keep the phase, but never try to catch up a backlog of missed periods
        top.at = Math.max(top.at + top.period, now + 1);
        top.order = this.order++;
        this.insert(top);
      } else {
        top.cancelled = true;
      }
      try {
        top.fn();
      } catch (err) {
        this.onError(err);
      }
    }
    this.rearm();
    return ran;
  }

  protected nextAt(): number | undefined {
    while (this.heap.length > 0 && (this.heap[0] as Entry).cancelled) {
      (this.heap[0] as Entry).queued = false;
      this.pop();
      this.dead--;
    }
    return this.heap[0]?.at;
  }

  private rearm(): void {
    this.arm(this.nextAt());
  }

  private push(at: number, period: number, fn: () => void): TimerHandle {
    const e: Entry = { __timer: true, at, order: this.order++, fn, period, cancelled: false, queued: false };
    const before = this.heap[0];
    this.insert(e);
    if (this.heap[0] === e && before !== e) this.arm(e.at);
    return e;
  }

  private insert(e: Entry): void {
    e.queued = true;
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!less(e, h[p] as Entry)) break;
      h[i] = h[p] as Entry;
      i = p;
    }
    h[i] = e;
  }

  private pop(): Entry | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last) {
      let i = 0;
      const n = h.length;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        let best = last;
        if (l < n && less(h[l] as Entry, best)) {
          m = l;
          best = h[l] as Entry;
        }
        if (r < n && less(h[r] as Entry, best)) m = r;
        if (m === i) break;
        h[i] = h[m] as Entry;
        i = m;
      }
      h[i] = last;
    }
    return top;
  }

  private compact(): void {
    const live = this.heap.filter((e) => !e.cancelled);
    for (const e of this.heap) if (e.cancelled) e.queued = false;
    this.heap = [];
    this.dead = 0;
    for (const e of live) this.insert(e);
  }
}

function less(a: Entry, b: Entry): boolean {
  return a.at < b.at || (a.at === b.at && a.order < b.order);
}

/** Wall time: one Node timer armed for the earliest deadline. */
export class RealScheduler extends Scheduler {
  private timer: NodeJS.Timeout | null = null;
  private armedAt = Infinity;
  private readonly origin = performance.now();

  now(): number {
    return performance.now() - this.origin;
  }

  protected arm(at: number | undefined): void {
    if (at === undefined) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = null;
      this.armedAt = Infinity;
      return;
    }
    if (this.timer && at >= this.armedAt) return;
    if (this.timer) clearTimeout(this.timer);
    this.armedAt = at;
    const delay = Math.min(Math.max(0, at - this.now()), 2 ** 31 - 1);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.armedAt = Infinity;
      const ran = this.runDue();
      // a huge batch was cut short: yield to I/O, then continue
      if (ran >= 20_000 && !this.timer) setImmediate(() => this.runDue());
    }, delay);
  }

  /** stop the timer (tasks stay queued); `clear()` drops them too */
  stop(): void {
    this.arm(undefined);
  }
}

/** Virtual time for tests: nothing runs until `advance`. */
export class VirtualScheduler extends Scheduler {
  private t = 0;

  now(): number {
    return this.t;
  }

  protected arm(): void {
    // virtual time moves only when the test says so
  }

  /** move time forward, running tasks in deadline order at their own times */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      const next = this.nextAt();
      if (next === undefined || next > end) break;
      this.t = Math.max(this.t, next);
      this.runDue();
    }
    this.t = end;
  }
}

/**
 * mqtt.js lets a client take its keepalive timer from outside (`timerVariant: { set, clear }`); this routes
 * every client's keepalive through the shared scheduler too.
 */
export function mqttTimer(scheduler: Scheduler): {
  set: (fn: (...args: unknown[]) => unknown, ms: number) => number;
  clear: (id: number) => void;
} {
  const handles = new Map<number, TimerHandle>();
  let next = 1;
  return {
    set(fn, ms) {
      const id = next++;
      handles.set(id, scheduler.every(ms, () => void fn()));
      return id;
    },
    clear(id) {
      scheduler.cancel(handles.get(id));
      handles.delete(id);
    },
  };
}
