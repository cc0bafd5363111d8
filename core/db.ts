// SQLite through drizzle-orm and better-sqlite3: WAL, foreign keys, the committed migrations applied at start.
import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { drizzle, type BetterSQLite3Database } from 'drizzle-orm/better-sqlite3';
import { migrate } from 'drizzle-orm/better-sqlite3/migrator';
import * as coreSchema from './schema.js';
import * as auditSchema from './audit-schema.js';
import * as deviceSchema from '../devices/schema.js';
import * as responseSchema from '../response/schema.js';
import { sourceDir } from './paths.js';
import { EldergateError } from './errors.js';

export const schema = { ...coreSchema, ...auditSchema, ...deviceSchema, ...responseSchema };
export type Schema = typeof schema;
export type Db = BetterSQLite3Database<Schema>;

export interface Store {
  /** drizzle over the connection */
  db: Db;
  /** the raw connection, for prepared hot-path statements and pragmas */
  sqlite: Database.Database;
  file: string;
  /**
   * A write of this thread's own (a person's: provisioning, users, audit), without holding the event loop while
   * another connection (the writer thread, a checkpoint, an operator's sqlite3) has the lock. See writeWhenFree.
   */
  write<T>(fn: () => T): Promise<T>;
  /**
   * Resolves once the write lock was free: for code that writes and keeps state in memory beside its rows (the
   * registry), called in the same turn as its writes. See whenFree.
   */
  whenFree(): Promise<void>;
  close(): void;
}

/** how long a person's write waits for the lock before it is answered 503 (the connection's busy_timeout, too) */
export const WRITE_WAIT_MS = 5000;

/**
 * Run `fn` (synchronous) in a transaction of its own once the write lock is free, waiting for it asynchronously.
 * A write on the main thread with busy_timeout waits inside SQLite, holding the event loop: while another connection
 * had the lock (up to WRITE_WAIT_MS on a stalled disk), no PUBACK was sent, no console pushed, no HTTP answered. Here
 * BEGIN IMMEDIATE is tried without waiting, and tried again after a short sleep (1 ms growing to 20 ms) until it
 * succeeds; once it has, `fn` runs and commits with the lock held, so nothing in it waits. `fn` may use transactions
 * itself (they become savepoints). After WRITE_WAIT_MS it is refused with a 503: nothing was written.
 */
export async function writeWhenFree<T>(sqlite: Database.Database, fn: () => T, maxWaitMs = WRITE_WAIT_MS): Promise<T> {
  const until = Date.now() + maxWaitMs;
  for (let sleep = 1; ; sleep = Math.min(20, sleep * 2)) {
    if (sqlite.inTransaction) throw new Error('writeWhenFree inside a transaction: call it outside any');
    if (tryBegin(sqlite)) break;
    if (Date.now() >= until) {
      throw new EldergateError('UNAVAILABLE', `the database stayed locked by another writer for ${maxWaitMs} ms: nothing was recorded; try again in a few seconds`, { status: 503 });
    }
    await new Promise((r) => setTimeout(r, sleep));
  }
  return runBegun(sqlite, fn);
}

/**
 * Run `fn` (synchronous) in a transaction of its own if this connection can take the write lock this moment; throws,
 * nothing written, when another connection holds it (or this one is inside a transaction already). Never waits in
 * SQLite, which would hold the event loop up to busy_timeout: for writes made from a timer that tries again anyway
 * (the storage incident and its probe).
 */
export function writeNow<T>(sqlite: Database.Database, fn: () => T): T {
  if (sqlite.inTransaction || !tryBegin(sqlite)) throw new Error('another connection holds the write lock: tried again shortly');
  return runBegun(sqlite, fn);
}

/**
 * Run `commit` (a transaction of its own) with synchronous=NORMAL, then put the connection back to FULL, the level every
 * connection keeps (openStore). In WAL mode such a commit is not fsynced: it survives a crash of the process, and only
 * a power cut can take it back until the next fsynced commit syncs it with its own. For writes that are best-effort
 * or done again if lost (delivery receipts, retention's deletes), where an fsync each costs more than the write.
 * Inside a caller's transaction the level cannot change (SQLite refuses): `commit` joins it, and the caller's commit
 * decides its durability.
 */
export function withoutFsync<T>(sqlite: Database.Database, commit: () => T): T {
  if (sqlite.inTransaction) return commit();
  sqlite.pragma('synchronous = NORMAL');
  try {
    return commit();
  } finally {
    sqlite.pragma('synchronous = FULL');
  }
}

/** `fn` inside the transaction just begun, then COMMIT; ROLLBACK if anything throws */
function runBegun<T>(sqlite: Database.Database, fn: () => T): T {
  try {
    const out = fn();
    if (out && typeof (out as { then?: unknown }).then === 'function') throw new Error('a write transaction takes a synchronous function');
    sqlite.exec('COMMIT');
    return out;
  } catch (err) {
    if (sqlite.inTransaction) sqlite.exec('ROLLBACK');
    throw err;
  }
}

/**
 * Wait, without holding the event loop, until this connection can take the write lock; taken and given back at
 * once, so that writes made in the same turn find it free. For code whose writes keep state in memory beside the rows
 * (the registry, the unit tree): run inside writeWhenFree's transaction, a COMMIT failing after them (disk full)
 * would leave the memory ahead of the database, while each of their own statements fails before its memory changes.
 * Not a guarantee: another connection may take the lock in the microseconds between (then the write waits for it in
 * SQLite, as before). After WRITE_WAIT_MS it is refused with a 503.
 */
export async function whenFree(sqlite: Database.Database, maxWaitMs = WRITE_WAIT_MS): Promise<void> {
  await writeWhenFree(sqlite, () => undefined, maxWaitMs);
}

/** BEGIN IMMEDIATE without waiting: false when another connection holds the write lock */
function tryBegin(sqlite: Database.Database): boolean {
  const wait = sqlite.pragma('busy_timeout', { simple: true }) as number;
  sqlite.pragma('busy_timeout = 0');
  try {
    sqlite.exec('BEGIN IMMEDIATE');
    return true;
  } catch (err) {
    // SQLITE_BUSY, and its extended codes (SQLITE_BUSY_RECOVERY: another connection is recovering the WAL)
    if (String((err as { code?: unknown }).code).startsWith('SQLITE_BUSY')) return false;
    throw err;
  } finally {
    sqlite.pragma(`busy_timeout = ${wait}`);
  }
}

/**
 * The page size of a new database file: half SQLite's default of 4096. A stored row dirties about three pages: the
 * table's last leaf, and a leaf in each of the two indexes of `observations` keyed by device — a different leaf for
 * each device (an alarm's row one of them since migration 0010: its dedup key is also how a device's alarms are listed). Every dirtied page is a whole frame in the WAL: written by the commit, fsynced by the next alarm's commit
 * (its synchronous=FULL covers the telemetry frames written since the last one) and copied by the checkpointer. Smaller
 * pages are fewer bytes for the same rows. Measured (bench/analysis.md, 2026-12-03; figure 1, P1 p99 at 10k msg/s,
 * alternating runs): 4096 gave 12.4-82.7 ms over 12 repetitions, 5 of them over 40 ms; 2048 gave 8.3-14.2 ms over
 * 10, and 1024 7.5-12.1 over 10. Under the ingest flood 1024 took in 5-10 % less than 4096 (deeper trees, more
 * cells per byte) and 2048 about 5 % more. An existing file keeps the size it was made with: `npm run db:page-size`
 * (ops/page-size.ts) rewrites one, with the gateway stopped, and the gateway says so at start when its file has
 * another size.
 */
export const PAGE_SIZE = 2048;

/** The page size of an open database file. */
export function pageSizeOf(sqlite: Database.Database): number {
  return Number(sqlite.pragma('page_size', { simple: true }));
}

export const MIGRATIONS_DIR = resolve(sourceDir(import.meta.url), '..', 'drizzle');

/**
 * Open (or create) the database file and apply the committed migrations. `:memory:` is accepted for tests
 * of pure storage; anything durable uses a file.
 */
export function openStore(file: string): Store {
  if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true });
  const sqlite = new Database(file);
  // takes effect only on a new, empty file (a file's page size is fixed once it has a page); before WAL, which writes one
  sqlite.pragma(`page_size = ${PAGE_SIZE}`);
  sqlite.pragma('journal_mode = WAL');
  // Alarms and incident events are committed with full durability; telemetry batches lower it per batch.
  sqlite.pragma('synchronous = FULL');
  sqlite.pragma('foreign_keys = ON');
  sqlite.pragma(`busy_timeout = ${WRITE_WAIT_MS}`);
  sqlite.pragma('wal_autocheckpoint = 4000');
  const db = drizzle(sqlite, { schema });
  migrate(db, { migrationsFolder: MIGRATIONS_DIR });
  return {
    db,
    sqlite,
    file,
    write: (fn) => writeWhenFree(sqlite, fn),
    whenFree: () => whenFree(sqlite),
    close() {
      if (sqlite.open) sqlite.close();
    },
  };
}

export const dbFile = (dataDir: string) => join(dataDir, 'eldergate.db');
