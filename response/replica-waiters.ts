// Callers waiting for a replica (response/log-mirror.ts, response/receipt-mirror.ts) to reach a position of the log it
// follows: each resolved once the replica's head passes it, rejected after its timeout or when the replica closes.
export interface ReplicaWaiters {
  /** resolves once `moved` reports a head at or past `at`; `head()` names where it is when it times out */
  wait(at: number, timeoutMs: number, head: () => number): Promise<void>;
  /** the replica's head moved: everyone waiting for it or less is answered */
  moved(head: number): void;
  /** the replica closed: everyone waiting is told */
  close(): void;
}

export function replicaWaiters(what: string): ReplicaWaiters {
  const waiting = new Set<{ at: number; resolve: () => void; reject: (err: Error) => void }>();
  return {
    wait(at, timeoutMs, head) {
      return new Promise((resolve, reject) => {
        const w = { at, resolve: () => { clearTimeout(timer); resolve(); }, reject: (err: Error) => { clearTimeout(timer); reject(err); } };
        const timer = setTimeout(() => {
          waiting.delete(w);
          reject(new Error(`${what} did not reach ${at} within ${timeoutMs} ms (it is at ${head()})`));
        }, timeoutMs);
        timer.unref();
        waiting.add(w);
      });
    },
    moved(head) {
      for (const w of waiting) if (w.at <= head) { waiting.delete(w); w.resolve(); }
    },
    close() {
      for (const w of waiting) w.reject(new Error(`${what} was closed`));
      waiting.clear();
    },
  };
}
