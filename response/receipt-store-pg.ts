// The receipts area in PostgreSQL (node-postgres through drizzle): cluster mode's shared store, where consoles on
// several nodes push and confirm the same incidents. The contract is response/receipt-store.ts's. A batch is one
// transaction: one multi-row INSERT … ON CONFLICT DO NOTHING (the partial unique indexes decide what is new, also
// against a batch another node commits at the same moment), then one conditional UPDATE per stamp it sets; rows and
// incidents are taken in one global order, so two nodes' batches wait for each other but never deadlock (bound to a
// caller's transaction that already holds incident rows, the caller's order counts too).
import type pg from 'pg';
import { and, asc, eq, min, sql } from 'drizzle-orm';
import { pgIncidentReceipts, pgIncidents } from './store/pg-schema.js';
import { onPool, type Atomic, type PgExecutor, type Transactional } from '../core/pg-bind.js';
import { receiptKey, type ReceiptStore } from './receipt-store.js';
import type { IncidentReceipt, ReceiptKind } from './events.js';

export type PgReceiptStore = Transactional<ReceiptStore<'async'>>;

/** rows per INSERT: 7 parameters each, under PostgreSQL's 65,535 */
const ROWS_PER_STATEMENT = 4000;

function bound(t: PgExecutor, atomic: Atomic): ReceiptStore<'async'> {
  const write = async (w: PgExecutor, batch: readonly IncidentReceipt[]): Promise<number> => {
    // a receipt twice in one batch: the first stands (one statement cannot decide between two rows of its own)
    const seen = new Set<string>();
    const unique = batch.filter((r) => !seen.has(receiptKey(r)) && seen.add(receiptKey(r)));
    // in one order on every node (by key): two nodes inserting the same receipts in different orders could each wait
    // for a row the other inserted (a conflicting row not yet committed is waited for), and PostgreSQL would abort one
    // batch as a deadlock
    const ordered = [...unique].sort((x, y) => (receiptKey(x) < receiptKey(y) ? -1 : 1));
    const stored = new Set<string>();
    for (let i = 0; i < ordered.length; i += ROWS_PER_STATEMENT) {
      const rows = await w.insert(pgIncidentReceipts)
        .values(ordered.slice(i, i + ROWS_PER_STATEMENT).map((r) => ({
          incidentId: r.incidentId, kind: r.kind, seq: r.seq, at: r.at, userId: r.userId, username: r.username,
        })))
        .onConflictDoNothing()
        .returning({ incidentId: pgIncidentReceipts.incidentId, kind: pgIncidentReceipts.kind, userId: pgIncidentReceipts.userId });
      for (const r of rows) stored.add(receiptKey(r));
    }
    // the first stored receipt of each kind, in the batch's order, stamps its incident (if it has no such stamp)
    const stamps = new Map<string, IncidentReceipt>();
    for (const r of unique) {
      const k = `${r.incidentId}\u0000${r.kind}`;
      if (stored.has(receiptKey(r)) && !stamps.has(k)) stamps.set(k, r);
    }
    // incidents locked in one order too
    for (const r of [...stamps.values()].sort((x, y) => (x.incidentId < y.incidentId ? -1 : x.incidentId > y.incidentId ? 1 : 0))) {
      await w.update(pgIncidents)
        .set({ stamps: sql`${pgIncidents.stamps} || jsonb_build_object(${r.kind}::text, ${r.at}::bigint)` })
        .where(and(eq(pgIncidents.id, r.incidentId), sql`NOT (${pgIncidents.stamps} ? ${r.kind})`));
    }
    return stored.size;
  };
  return {
    mode: 'async',
    // its own transaction, or (bound by transaction()) the caller's
    writeBatch: (batch) => atomic((w) => write(w, batch)),
    async of(incidentId) {
      const rows = await t.select().from(pgIncidentReceipts).where(eq(pgIncidentReceipts.incidentId, incidentId))
        .orderBy(asc(pgIncidentReceipts.at), sql`${pgIncidentReceipts.kind} = 'pushed' DESC`, asc(pgIncidentReceipts.userId));
      return rows.map(({ id: _id, ...r }) => r);
    },
    async firsts(incidentId) {
      const rows = await t.select({ kind: pgIncidentReceipts.kind, at: min(pgIncidentReceipts.at) }).from(pgIncidentReceipts)
        .where(eq(pgIncidentReceipts.incidentId, incidentId)).groupBy(pgIncidentReceipts.kind);
      const out: { pushed?: number; delivered?: number } = {};
      for (const r of rows) out[r.kind as ReceiptKind] = Number(r.at);
      return out;
    },
  };
}

export function createPgReceiptStore(pool: pg.Pool): PgReceiptStore {
  return onPool(pool, bound);
}
