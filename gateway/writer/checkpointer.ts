// The checkpointer thread: copies the WAL back into the database file, off both the event loop and the writer.
//
// Both connections have wal_autocheckpoint off: otherwise the commit that crosses the threshold runs the checkpoint
// itself — on the writer thread that is an alarm's commit waiting behind it (the issue measured a 111 ms COMMIT). A
// PASSIVE checkpoint takes no lock a writer needs: it backfills what it can while commits go on, and the next commit
// after a complete one starts the WAL from its beginning again. Under sustained telemetry no pass is ever complete
// before the next commit; past its soft limit the log is started again through a short pause in telemetry the writer
// gives (gateway/writer/wal-restart.ts).
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { restartWindow, withdrawRequest, type CheckpointResult } from './wal-restart.js';

export interface CheckpointerInit {
  file: string;
  intervalMs: number;
  /** shared with the writer thread (wal-restart.ts) */
  walRestart: SharedArrayBuffer;
  /** the log's size beyond which the checkpointer asks the writer for a pause, to copy all of it back (wal-restart.ts) */
  walSoftLimitBytes: number;
}

const port = parentPort;
if (!port) throw new Error('gateway/writer/checkpointer.ts runs as a worker thread (started by gateway/writer/client.ts)');
const init = workerData as CheckpointerInit;
const db = new Database(init.file);
db.pragma('busy_timeout = 5000');
db.pragma('wal_autocheckpoint = 0');
const softLimitFrames = Math.ceil(init.walSoftLimitBytes / Number(db.pragma('page_size', { simple: true })));
const checkpoint = (mode: 'PASSIVE' | 'RESTART'): CheckpointResult & { busy: number } =>
  (db.pragma(`wal_checkpoint(${mode})`) as { busy: number; log: number; checkpointed: number }[])[0]!;
const passive = () => checkpoint('PASSIVE');
/** a RESTART pass that never waits: not for the write lock (an alarm's commit), not for a reader */
const restart = () => {
  db.pragma('busy_timeout = 0');
  try {
    return checkpoint('RESTART');
  } finally {
    db.pragma('busy_timeout = 5000');
  }
};
// a checkpointer that died in a window left its request standing: this one starts with none
withdrawRequest(init.walRestart);
let stopped = false;
const timer = setInterval(() => {
  if (stopped) return;
  try {
    let r = passive();
    // over the soft limit: a pass that copied all it saw says nothing of the commits made while it ran
    if (r.log > softLimitFrames) {
      const w = restartWindow(init.walRestart, { passive, restart });
      port.postMessage({ op: 'restart-window', outcome: w.outcome });
      r = { ...r, ...w.last };
    }
    port.postMessage({ op: 'checkpoint', ...r });
  } catch (err) {
    // a full disk or an I/O error: the writer reports storage faults; the WAL keeps growing until this works again
    port.postMessage({ op: 'checkpoint-failed', message: (err as Error).message, code: (err as { code?: string }).code ?? null });
  }
}, init.intervalMs);
port.on('message', (m: { op: 'close' }) => {
  if (m.op !== 'close') return;
  stopped = true;
  clearInterval(timer);
  db.close();
  port.close();
});
