// What backup and restore share: finding the database from the gateway's own configuration, and checking a file.
import Database from 'better-sqlite3';
import { loadConfig } from '../core/config.js';
import { dbFile } from '../core/db.js';

/** The database file of the gateway configured by this environment (ELDERGATE_* and the config file, as `npm start`). */
export function configuredDbFile(env: NodeJS.ProcessEnv = process.env): { file: string; dataDir: string } {
  const config = loadConfig(env);
  return { file: dbFile(config.dataDir), dataDir: config.dataDir };
}

/**
 * Is `file` a whole eldergate database? `PRAGMA integrity_check` reads every page; the migrations table says it is
 * ours. Returns the problems (none = good).
 */
export function checkDatabase(file: string): string[] {
  let db: Database.Database;
  try {
    db = new Database(file, { readonly: true, fileMustExist: true });
  } catch (err) {
    return [`${file} cannot be opened as a SQLite database: ${(err as Error).message}`];
  }
  try {
    const rows = db.pragma('integrity_check') as { integrity_check: string }[];
    const problems = rows.map((r) => r.integrity_check).filter((r) => r !== 'ok');
    if (problems.length) return problems.slice(0, 20).map((p) => `integrity_check: ${p}`);
    const ours = db.prepare("select count(*) n from sqlite_master where type = 'table' and name in ('__drizzle_migrations', 'observations', 'incidents')").get() as { n: number };
    if (ours.n < 3) return [`${file} is a SQLite database but not an eldergate one (no migrations, observations or incidents table)`];
    return [];
  } catch (err) {
    return [`${file} could not be checked: ${(err as Error).message}`];
  } finally {
    db.close();
  }
}

/** Print a user-facing error (what was wrong, what to do) and exit non-zero; no stack trace. */
export function fail(err: unknown): never {
  const msg = err instanceof Error ? err.message : String(err);
  process.stderr.write(`${msg}\n`);
  process.exit(1);
}
