// A third connection holding the database's write lock, as a checkpoint, a stalled disk or an operator's sqlite3 would,
// and a 5 ms tick in this process (the gateway's main thread, in tests) that measures how long its event loop stalled
// meanwhile. The lock is this thread's: a main loop waiting for it inside SQLite would stall until busy_timeout.
import Database from 'better-sqlite3';
import { dbFile } from '../../core/db.js';

export interface HeldWriteLock {
  /** the longest the event loop went without a tick since the lock was taken */
  readonly longestGapMs: number;
  /** commit the empty transaction: the lock is free (the tick goes on until close) */
  release(): void;
  /** stop the tick; roll back if never released; close the connection (in `finally`) */
  close(): void;
}

export function holdWriteLock(dataDir: string): HeldWriteLock {
  const blocker = new Database(dbFile(dataDir));
  blocker.prepare('BEGIN IMMEDIATE').run();
  let last = performance.now();
  let longest = 0;
  const tick = setInterval(() => {
    const now = performance.now();
    longest = Math.max(longest, now - last);
    last = now;
  }, 5);
  return {
    get longestGapMs() { return longest; },
    release() {
      if (blocker.inTransaction) blocker.prepare('COMMIT').run();
    },
    close() {
      clearInterval(tick);
      if (blocker.inTransaction) blocker.prepare('ROLLBACK').run();
      blocker.close();
    },
  };
}
