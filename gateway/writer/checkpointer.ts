// The checkpointer thread: copies the WAL back into the database file, off both the event loop and the writer.
//
// Both connections have wal_autocheckpoint off: otherwise the commit that crosses the threshold runs the checkpoint
// itself — on the writer thread that is an alarm's commit waiting behind it (the issue measured a 111 ms COMMIT). A
// PASSIVE checkpoint takes no lock a writer needs: it backfills what it can while commits go on, and the next commit
// after a complete one starts the WAL from its beginning again.
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';

export interface CheckpointerInit {
  file: string;
  intervalMs: number;
}

const port = parentPort;
if (!port) throw new Error('gateway/writer/checkpointer.ts runs as a worker thread (started by gateway/writer/client.ts)');
const init = workerData as CheckpointerInit;
const db = new Database(init.file);
db.pragma('busy_timeout = 5000');
db.pragma('wal_autocheckpoint = 0');
let stopped = false;
const timer = setInterval(() => {
  if (stopped) return;
  try {
    const [r] = db.pragma('wal_checkpoint(PASSIVE)') as { busy: number; log: number; checkpointed: number }[];
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
