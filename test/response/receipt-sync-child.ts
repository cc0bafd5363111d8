// The child of receipt-sync.test.ts, run under the power-cut shim: a migrated SQLite file, one receipt batch written
// through the SQLite receipt store, then (when told) one ordinary write at the connection's synchronous=FULL. It says
// what it did on stdout, a line each, and waits for the parent's line on stdin between the two.
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { openStore } from '../../core/db.js';
import { createSqliteReceiptStore } from '../../response/receipt-store.js';

const store = openStore(join(process.argv[2]!, 'eldergate.db'));
const receipts = createSqliteReceiptStore(store.sqlite);
const at = Date.now();
const batch = Array.from({ length: 20 }, (_, i) => ({ incidentId: 'inc-1', kind: 'delivered' as const, seq: 1, at: at + i, userId: `u${i}`, username: `operator${i}` }));
const written = receipts.writeBatch(batch);
const sync = store.sqlite.pragma('synchronous', { simple: true });
console.log(JSON.stringify({ step: 'batch', written, synchronousAfter: sync }));
const lines = createInterface({ input: process.stdin });
lines.once('line', () => {
  store.sqlite.prepare('INSERT INTO incident_receipts (incident_id, kind, seq, at, user_id, username) VALUES (?, ?, ?, ?, ?, ?)')
    .run('inc-2', 'pushed', 2, Date.now(), null, null);
  console.log(JSON.stringify({ step: 'committed' }));
  lines.close();
  store.close();
});
