// Whose turn it is to write. The main thread and the writer thread (gateway/writer) write the same SQLite file on two
// connections; SQLite lets one in at a time, and a waiting connection polls with growing sleeps (busy_timeout), so a
// main-thread loop of back-to-back batches (retention, an import) could keep an alarm's commit waiting until the loop
// ends. The writer raises a flag in memory both threads share while it wants the lock; bulk writers on the main
// thread look at it before each batch and let the writer in first.
const flag = new Int32Array(new SharedArrayBuffer(4));
let shared = flag;

/** the flag to hand to the writer thread (workerData) */
export function writeTurnBuffer(): SharedArrayBuffer {
  return shared.buffer as SharedArrayBuffer;
}

/** in the writer thread: use the main thread's flag */
export function useWriteTurnBuffer(buffer: SharedArrayBuffer): void {
  shared = new Int32Array(buffer);
}

/** the writer wants the lock (on) or is done with it (off) */
export function writerWants(on: boolean): void {
  Atomics.store(shared, 0, on ? 1 : 0);
}

/**
 * Before a bulk writer's next batch: while the writer wants the lock, wait (in steps of 1 ms, at most `maxMs`, so a
 * writer that never lets go cannot stop retention or an import for good).
 */
export async function yieldToWriter(maxMs = 250): Promise<void> {
  const until = Date.now() + maxMs;
  while (Atomics.load(shared, 0) !== 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 1));
}
