// What every PostgreSQL store (gateway/*-store-pg.ts, response/receipt-store-pg.ts, core/*-store-pg.ts) shares: each is written once against an executor — the
// pool, or one transaction — and `transaction(fn)` hands `fn` the same store bound to one transaction, so a caller
// can write several areas' rows (the ingest's batch) and have them commit or roll back together.
import type pg from 'pg';
import { drizzle, type NodePgQueryResultHKT } from 'drizzle-orm/node-postgres';
import type { PgDatabase } from 'drizzle-orm/pg-core';

/** the pool or a transaction on it (a transaction is a database whose statements run in it) */
export type PgExecutor = PgDatabase<NodePgQueryResultHKT>;

export type Transactional<S> = S & {
  /** run `fn` with this store bound to one transaction: what it writes commits or rolls back together */
  transaction<T>(fn: (tx: S) => Promise<T>): Promise<T>;
};

/**
 * Where a store writes several statements that must commit together (a batch): on the pool, its own transaction; bound
 * to the caller's transaction, that transaction (nothing nested: drizzle names savepoints by depth alone, so two
 * batches running at once in one transaction would release or roll back each other's savepoint).
 */
export type Atomic = <T>(fn: (t: PgExecutor) => Promise<T>) => Promise<T>;

export function onPool<S>(pool: pg.Pool, bound: (t: PgExecutor, atomic: Atomic) => S): Transactional<S> {
  const db = drizzle(pool);
  return {
    ...bound(db, (fn) => db.transaction((tx) => fn(tx))),
    transaction: (fn) => db.transaction(async (tx) => {
      // a batch that failed inside fails the transaction, even if fn went on (PostgreSQL would turn the COMMIT of an
      // aborted transaction into a ROLLBACK without an error, and a batch that had answered would be lost)
      let failed: unknown;
      const out = await fn(bound(tx, (f) => f(tx).catch((err: unknown) => { failed ??= err; throw err; })));
      if (failed !== undefined) throw failed;
      return out;
    }),
  };
}

/** `?` placeholders (SQLite's) as PostgreSQL's $1, $2…: one query text for both engines */
export function numbered(sql: string): string {
  let i = 0;
  return sql.replace(/\?/g, () => `$${++i}`);
}
