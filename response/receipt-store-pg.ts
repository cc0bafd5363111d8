// The receipts area in PostgreSQL (node-postgres through drizzle): cluster mode's shared store, where consoles on
// several nodes push and confirm the same incidents. The contract is response/receipt-store.ts's. A batch is one
// transaction: one multi-row INSERT … ON CONFLICT DO NOTHING (the partial unique indexes decide what is new, also
// against a batch another node commits at the same moment), then one conditional UPDATE per stamp it sets; rows and
// incidents are taken in one global order, so two nodes' batches wait for each other but never deadlock (bound to a
// caller's transaction that already holds incident rows, the caller's order counts too).
//
// Every node's replica holds every node's receipts (response/receipt-mirror.ts): a batch first takes the receipts'
// head row (`receipt_log_head`) FOR UPDATE, numbers its receipts after it (`rseq`, in the batch's order, so a replica
// applying them by rseq stamps what this batch stamped), moves the head and notifies `receipt_log`; batches of all
// nodes commit one after another, so a head read committed means every receipt up to it is committed. Lock order: the
// receipts' head, receipt rows, incident rows (the writer's transactions take the log's head and incident rows, never
// this head; the stamps take the log's head, shared, before any incident row, as the writers take it first: no cycle).
import type pg from 'pg';
import { and, asc, eq, gt, lte, min, sql } from 'drizzle-orm';
import { pgIncidentLogHead, pgIncidentReceipts, pgIncidents, pgReceiptLogHead } from './store/pg-schema.js';
import { onPool, type Atomic, type PgExecutor, type Transactional } from '../core/pg-bind.js';
import { receiptKey, type ReceiptStore } from './receipt-store.js';
import type { IncidentReceipt, ReceiptKind } from './events.js';

/** the channel a batch notifies with the receipts' new head */
export const RECEIPT_CHANNEL = 'receipt_log';

/** A stored receipt with its place in the receipts' log. */
export type LoggedReceipt = IncidentReceipt & { rseq: number };

interface ReceiptLog extends ReceiptStore<'async'> {
  /** write a batch (as writeBatch) and say where the receipts' log stood after it */
  append(batch: readonly IncidentReceipt[]): Promise<{ written: number; head: number }>;
  /** the receipts' head: every receipt at or below it is committed */
  head(): Promise<number>;
  /** receipts after `rseq` up to `upTo`, in rseq order, at most `limit` */
  after(rseq: number, upTo: number, limit: number): Promise<LoggedReceipt[]>;
}

export type PgReceiptStore = Transactional<ReceiptLog>;

/** rows per INSERT: 7 parameters each, under PostgreSQL's 65,535 */
const ROWS_PER_STATEMENT = 4000;

async function headOf(t: PgExecutor): Promise<number> {
  const [row] = await t.select({ seq: pgReceiptLogHead.seq }).from(pgReceiptLogHead).where(eq(pgReceiptLogHead.id, 1));
  return row?.seq ?? 0;
}

function bound(t: PgExecutor, atomic: Atomic): ReceiptLog {
  const write = async (w: PgExecutor, batch: readonly IncidentReceipt[]): Promise<{ written: number; head: number }> => {
    // a receipt twice in one batch: the first stands (one statement cannot decide between two rows of its own)
    const seen = new Set<string>();
    const unique = batch.filter((r) => !seen.has(receiptKey(r)) && seen.add(receiptKey(r)));
    if (!unique.length) return { written: 0, head: await headOf(w) };
    // the batch's numbers reserved by one UPDATE (which locks the head row to commit): two batches in one caller's
    // transaction each get their own range
    const [moved] = await w.update(pgReceiptLogHead).set({ seq: sql`${pgReceiptLogHead.seq} + ${unique.length}` })
      .where(eq(pgReceiptLogHead.id, 1)).returning({ seq: pgReceiptLogHead.seq });
    if (!moved) throw new Error('the receipts\' head row is missing: run the PostgreSQL migrations (drizzle-pg/)');
    const head = moved.seq;
    // numbered in the batch's order (a number a receipt already stored does not use is a gap, which followers allow)
    const rseqOf = new Map(unique.map((r, i) => [receiptKey(r), head - unique.length + 1 + i]));
    // in one order on every node (by key): two nodes inserting the same receipts in different orders could each wait
    // for a row the other inserted (a conflicting row not yet committed is waited for), and PostgreSQL would abort one
    // batch as a deadlock
    const ordered = [...unique].sort((x, y) => (receiptKey(x) < receiptKey(y) ? -1 : 1));
    const stored = new Set<string>();
    for (let i = 0; i < ordered.length; i += ROWS_PER_STATEMENT) {
      const rows = await w.insert(pgIncidentReceipts)
        .values(ordered.slice(i, i + ROWS_PER_STATEMENT).map((r) => ({
          incidentId: r.incidentId, kind: r.kind, seq: r.seq, at: r.at, userId: r.userId, username: r.username, rseq: rseqOf.get(receiptKey(r))!,
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
    // the writers' transactions lock the log's head, then incident rows in the order their observations come: a batch
    // holding incident A and waiting for B while a writer holds B and waits for A would deadlock. So the stamps wait
    // for the head too (shared: receipt batches do not wait for each other there) and lock incidents after it, in one
    // order (between receipt batches)
    if (stamps.size) await w.select({ id: pgIncidentLogHead.id }).from(pgIncidentLogHead).where(eq(pgIncidentLogHead.id, 1)).for('share');
    for (const r of [...stamps.values()].sort((x, y) => (x.incidentId < y.incidentId ? -1 : x.incidentId > y.incidentId ? 1 : 0))) {
      await w.update(pgIncidents)
        .set({ stamps: sql`${pgIncidents.stamps} || jsonb_build_object(${r.kind}::text, ${r.at}::bigint)` })
        .where(and(eq(pgIncidents.id, r.incidentId), sql`NOT (${pgIncidents.stamps} ? ${r.kind})`));
    }
    await w.execute(sql`SELECT pg_notify(${RECEIPT_CHANNEL}, ${String(head)})`);
    return { written: stored.size, head };
  };
  const append = (batch: readonly IncidentReceipt[]) => atomic((w) => write(w, batch));
  return {
    mode: 'async',
    // its own transaction, or (bound by transaction()) the caller's
    writeBatch: async (batch) => (await append(batch)).written,
    append,
    head: () => headOf(t),
    async after(rseq, upTo, limit) {
      const rows = await t.select().from(pgIncidentReceipts)
        .where(and(gt(pgIncidentReceipts.rseq, rseq), lte(pgIncidentReceipts.rseq, upTo)))
        .orderBy(asc(pgIncidentReceipts.rseq)).limit(limit);
      return rows.map(({ id: _id, ...r }) => r);
    },
    async of(incidentId) {
      const rows = await t.select().from(pgIncidentReceipts).where(eq(pgIncidentReceipts.incidentId, incidentId))
        .orderBy(asc(pgIncidentReceipts.at), sql`${pgIncidentReceipts.kind} = 'pushed' DESC`, asc(pgIncidentReceipts.userId));
      return rows.map(({ id: _id, rseq: _rseq, ...r }) => r);
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
