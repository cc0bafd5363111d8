// A tick every `everyMs` in this process that measures how long its event loop went without one (the gateway's main
// thread, in tests): how long a socket waiting on that loop would have waited.
export interface LoopGaps {
  /** the longest the event loop went without a tick since start */
  readonly longestMs: number;
  stop(): void;
}

export function watchLoopGaps(everyMs: number): LoopGaps {
  let last = performance.now();
  let longest = 0;
  const tick = setInterval(() => {
    const now = performance.now();
    longest = Math.max(longest, now - last);
    last = now;
  }, everyMs);
  return {
    get longestMs() { return longest; },
    stop() { clearInterval(tick); },
  };
}
