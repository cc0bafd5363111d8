// A third connection holding the database's write lock, as a checkpoint, a stalled disk or an operator's sqlite3 would,
// and a 5 ms tick in this process (the gateway's main thread, in tests) that measures how long its event loop stalled
// meanwhile. The lock is this thread's: a main loop waiting for it inside SQLite would stall until busy_timeout.
import Database from 'better-sqlite3';
import { dbFile } from '../../core/db.js';
import { watchLoopGaps } from './loop-gap.js';

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
  const gaps = watchLoopGaps(5);
  return {
    get longestGapMs() { return gaps.longestMs; },
    release() {
      if (blocker.inTransaction) blocker.prepare('COMMIT').run();
    },
    close() {
      gaps.stop();
      if (blocker.inTransaction) blocker.prepare('ROLLBACK').run();
      blocker.close();
    },
  };
}
