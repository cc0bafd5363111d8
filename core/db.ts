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

export const schema = { ...coreSchema, ...auditSchema, ...deviceSchema, ...responseSchema };
export type Schema = typeof schema;
export type Db = BetterSQLite3Database<Schema>;

export interface Store {
  /** drizzle over the connection */
  db: Db;
  /** the raw connection, for prepared hot-path statements and pragmas */
  sqlite: Database.Database;
  file: string;
  close(): void;
}

export const MIGRATIONS_DIR = resolve(sourceDir(import.meta.url), '..', 'drizzle');

/**
 * Open (or create) the database file and apply the committed migrations. `:memory:` is accepted for tests
 * of pure storage; anything durable uses a file.
 */
export function openStore(file: string): Store {
  if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true });
  const sqlite = new Database(file);
  sqlite.pragma('journal_mode = WAL');
  // Alarms and incident events are committed with full durability; telemetry batches lower it per batch.
  sqlite.pragma('synchronous = FULL');
  sqlite.pragma('foreign_keys = ON');
  sqlite.pragma('busy_timeout = 5000');
  sqlite.pragma('wal_autocheckpoint = 4000');
  const db = drizzle(sqlite, { schema });
  migrate(db, { migrationsFolder: MIGRATIONS_DIR });
  return {
    db,
    sqlite,
    file,
    close() {
      if (sqlite.open) sqlite.close();
    },
  };
}

export const dbFile = (dataDir: string) => join(dataDir, 'eldergate.db');
