// What the gateway's PostgreSQL stores (gateway/*-store-pg.ts) share: each is written once against an executor — the
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

export function onPool<S>(pool: pg.Pool, bound: (t: PgExecutor) => S): Transactional<S> {
  const db = drizzle(pool);
  return { ...bound(db), transaction: (fn) => db.transaction((tx) => fn(bound(tx))) };
}
