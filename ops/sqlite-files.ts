// What backup, restore and db:page-size share: finding the database from the gateway's own configuration, and checking a file.
import { chmodSync, chownSync, closeSync, existsSync, fsyncSync, openSync, statSync } from 'node:fs';
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

/**
 * Open `file` with an exclusive lock that is held until the connection closes (locking_mode=EXCLUSIVE: kept from the
 * first write transaction on). Throws, saying what to do, when a process holds the file open: the gateway keeps its
 * connection for as long as it runs. `then`: what the operator does once it is stopped ("restore").
 */
export function holdExclusive(file: string, then: string): Database.Database {
  const db = new Database(file, { fileMustExist: true, timeout: 0 });
  try {
    db.pragma('locking_mode = EXCLUSIVE');
    db.exec('BEGIN EXCLUSIVE; COMMIT');
    return db;
  } catch (err) {
    db.close();
    // SQLITE_BUSY and its extended codes (SQLITE_BUSY_RECOVERY: another connection is recovering the WAL)
    if (String((err as { code?: unknown }).code).startsWith('SQLITE_BUSY')) {
      throw new Error(`${file} is in use — a gateway is running on it: stop it first (e.g. systemctl stop eldergate), then ${then}`);
    }
    throw err;
  }
}

/** Throws when a process holds `file` open (holdExclusive); the lock is given back at once. */
export function refuseIfInUse(file: string, then: string): void {
  if (!existsSync(file)) return;
  // the last connection to close checkpoints the WAL into the file: what is set aside or copied afterwards is whole
  holdExclusive(file, then).close();
}

/** fsync a file, or a directory (after a rename in it) */
export function fsyncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Refuse up front what could not hand the new file to the gateway's user: the file is replaced by one this process
 * writes, so this process must be root or the file's owner (the service runs as `eldergate`, ops/eldergate.service).
 */
export function refuseOtherOwner(file: string, command: string): void {
  const uid = process.getuid?.();
  if (uid === undefined || uid === 0 || !existsSync(file)) return;
  const owner = statSync(file).uid;
  if (owner !== uid) {
    throw new Error(`${file} belongs to user ${owner} and this runs as ${uid}: run it as that user or root (e.g. sudo -u eldergate ${command}); nothing was changed`);
  }
}

/**
 * Give `path` the owner, group and permission bits of `like` (the database it replaces): a file written by root for a
 * gateway that runs as its own user would otherwise be unwritable by it, and the gateway would not start.
 */
export function sameOwnerAs(path: string, like: string): void {
  const st = statSync(like);
  if (process.getuid?.() === 0) chownSync(path, st.uid, st.gid);
  chmodSync(path, st.mode & 0o7777);
}

/** Print a user-facing error (what was wrong, what to do) and exit non-zero; no stack trace. */
export function fail(err: unknown): never {
  const msg = err instanceof Error ? err.message : String(err);
  process.stderr.write(`${msg}\n`);
  process.exit(1);
}
