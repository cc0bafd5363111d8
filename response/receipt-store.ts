// The receipts area's storage (push and delivery receipts, response/receipts.ts), behind one narrow interface with
// a SQLite implementation (here: the one-node default, synchronous) and a PostgreSQL one (receipt-store-pg.ts:
// cluster mode, where the consoles of several nodes push and confirm the same incident). One contract for both
// (test/cluster/receipt-store-contract.test.ts):
// - a receipt is stored once: one `pushed` per incident, one `delivered` per incident and user — whichever node or
//   batch brings it first; the unique indexes decide, so two nodes writing the same receipt at once store it once;
// - the first receipt of each kind a batch stores stamps the incident (`stamps.pushed` / `stamps.delivered`, read by
//   lists, KPIs and the API), unless the incident has that stamp already: a stamp records the first time and never
//   moves; an incident not stored (yet) gets no stamp and its receipts are still kept;
// - a batch is one transaction: its receipts and stamps are written together or not at all.
// On SQLite a batch commits with synchronous=NORMAL: in WAL mode that survives the process's crash, and only a power
// cut can take it back (until the next fsynced commit, an alarm's, syncs it with its own). Receipts are best-effort by
// design (receipts.ts); an fsync per batch, 20 a second with consoles acking, cost the writer's thread, and an alarm
// that came during one waited for it.
import type Database from 'better-sqlite3';
import { withoutFsync } from '../core/db.js';
import type { IncidentReceipt, ReceiptKind } from './events.js';
import type { Ret, StoreMode } from './store/types.js';

export interface ReceiptStore<M extends StoreMode> {
  readonly mode: M;
  /** write a batch in one transaction; returns how many receipts were new */
  writeBatch(batch: readonly IncidentReceipt[]): Ret<M, number>;
  /** the incident's stored receipts, oldest first: by `at`; of one millisecond, the push first, then by user */
  of(incidentId: string): Ret<M, IncidentReceipt[]>;
  /** the earliest stored receipt of each kind */
  firsts(incidentId: string): Ret<M, { pushed?: number; delivered?: number }>;
}

/** The key a receipt is stored once by: its incident, its kind and (a delivery) its user. */
export const receiptKey = (r: Pick<IncidentReceipt, 'incidentId' | 'kind' | 'userId'>): string =>
  `${r.incidentId}\u0000${r.kind}\u0000${r.kind === 'delivered' ? r.userId ?? '' : ''}`;

interface ReceiptDbRow {
  incident_id: string;
  kind: ReceiptKind;
  seq: number;
  at: number;
  user_id: string | null;
  username: string | null;
}

export function createSqliteReceiptStore(sqlite: Database.Database): ReceiptStore<'sync'> {
  const insert = sqlite.prepare<[string, ReceiptKind, number, number, string | null, string | null]>(
    'INSERT OR IGNORE INTO incident_receipts (incident_id, kind, seq, at, user_id, username) VALUES (?, ?, ?, ?, ?, ?)',
  );
  const stamp = {
    pushed: sqlite.prepare<[number, string]>(
      `UPDATE incidents SET stamps = json_set(stamps, '$.pushed', ?) WHERE id = ? AND json_extract(stamps, '$.pushed') IS NULL`,
    ),
    delivered: sqlite.prepare<[number, string]>(
      `UPDATE incidents SET stamps = json_set(stamps, '$.delivered', ?) WHERE id = ? AND json_extract(stamps, '$.delivered') IS NULL`,
    ),
  };
  const ofIncident = sqlite.prepare<[string], ReceiptDbRow>(
    // (not by rowid: PostgreSQL inserts a batch in key order, to take its locks in one order, and its ids follow that)
    "SELECT incident_id, kind, seq, at, user_id, username FROM incident_receipts WHERE incident_id = ? ORDER BY at, kind = 'pushed' DESC, user_id",
  );
  const firsts = sqlite.prepare<[string], { kind: ReceiptKind; at: number }>(
    'SELECT kind, min(at) AS at FROM incident_receipts WHERE incident_id = ? GROUP BY kind',
  );
  const write = sqlite.transaction((batch: readonly IncidentReceipt[]) => {
    let written = 0;
    // the first stored receipt of each kind, in the batch's order, stamps its incident (if it has no such stamp): one
    // UPDATE per incident and kind, not one per receipt (20 consoles' deliveries of one SOS are 20 receipts)
    const stamped = new Set<string>();
    for (const r of batch) {
      if (insert.run(r.incidentId, r.kind, r.seq, r.at, r.userId, r.username).changes === 0) continue;
      written++;
      const k = `${r.incidentId}\u0000${r.kind}`;
      if (stamped.has(k)) continue;
      stamped.add(k);
      stamp[r.kind].run(r.at, r.incidentId);
    }
    return written;
  });
  return {
    mode: 'sync',
    // (inside a caller's transaction, cluster mode's receipt mirror, the caller's commit decides: withoutFsync)
    writeBatch: (batch) => withoutFsync(sqlite, () => write.immediate(batch)),
    of: (incidentId) => ofIncident.all(incidentId).map(fromDb),
    firsts(incidentId) {
      const out: { pushed?: number; delivered?: number } = {};
      for (const r of firsts.all(incidentId)) out[r.kind] = r.at;
      return out;
    },
  };
}

export const fromDb = (r: ReceiptDbRow): IncidentReceipt => ({
  incidentId: r.incident_id, kind: r.kind, seq: r.seq, at: r.at, userId: r.user_id, username: r.username,
});
