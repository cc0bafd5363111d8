// Time as a dependency. Deadlines are persisted as wall-clock epoch ms (they must survive a restart), but timers
// run on the monotonic clock so that a wall-clock jump (NTP step, operator fixing the date) neither fires an
// escalation early nor holds it back.

export interface ClockTimer {
  cancel(): void;
}

export interface Clock {
  /** wall clock, epoch ms: what is stored and shown */
  now(): number;
  /** monotonic ms since an arbitrary origin: what timers are measured on */
  monotonic(): number;
  /** run `fn` after `ms` of monotonic time */
  setTimer(fn: () => void, ms: number): ClockTimer;
}

// setTimeout keeps at most 2^31-1 ms; longer waits are chained.
const MAX_TIMER_MS = 2 ** 31 - 1;

export const systemClock: Clock = {
  now: () => Date.now(),
  monotonic: () => performance.now(),
  setTimer(fn, ms) {
    let handle: NodeJS.Timeout;
    let cancelled = false;
    const arm = (left: number) => {
      handle = setTimeout(() => {
        if (cancelled) return;
        if (left > MAX_TIMER_MS) arm(left - MAX_TIMER_MS);
        else fn();
      }, Math.max(0, Math.min(left, MAX_TIMER_MS)));
      // a pending escalation must not keep a closing process alive; close() cancels it anyway
      handle.unref?.();
    };
    arm(ms);
    return {
      cancel() {
        cancelled = true;
        clearTimeout(handle);
      },
    };
  },
};

/** A clock that only moves when told to: for tests of deadlines and escalation. */
export interface ManualClock extends Clock {
  /** move wall and monotonic time forward, running due timers in time order (each sees its own due time) */
  advance(ms: number): void;
  /** move only the wall clock (a clock step): timers are not affected */
  jumpWall(ms: number): void;
  /** timers waiting */
  pending(): number;
}

export function createManualClock(startWall = Date.UTC(2024, 0, 15, 9, 0, 0)): ManualClock {
  let wall = startWall;
  let mono = 0;
  let nextId = 0;
  const timers = new Map<number, { due: number; fn: () => void; order: number }>();
  return {
    now: () => wall,
    monotonic: () => mono,
    setTimer(fn, ms) {
      const id = nextId++;
      timers.set(id, { due: mono + Math.max(0, ms), fn, order: id });
      return { cancel: () => void timers.delete(id) };
    },
    advance(ms) {
      const target = mono + ms;
      for (;;) {
        let next: [number, { due: number; fn: () => void; order: number }] | undefined;
        for (const entry of timers) {
          if (entry[1].due > target) continue;
          if (!next || entry[1].due < next[1].due || (entry[1].due === next[1].due && entry[1].order < next[1].order)) next = entry;
        }
        if (!next) break;
        timers.delete(next[0]);
        wall += next[1].due - mono;
        mono = next[1].due;
        next[1].fn();
      }
      wall += target - mono;
      mono = target;
    },
    jumpWall(ms) {
      wall += ms;
    },
    pending: () => timers.size,
  };
}
