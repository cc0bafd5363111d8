// `npm run db:page-size`: rewrite the configured gateway's database with the page size new databases get (PAGE_SIZE in
// core/db.ts, and why there), with the gateway stopped. A file made before that keeps its old pages: SQLite fixes a
// file's page size when it writes the first page, and changes it only by rewriting the whole file.
//
// How, and why this way:
// - The database is opened with an exclusive lock held until the end: a gateway running on it is refused (and one
//   started meanwhile fails to open it, instead of writing alarms into a file about to be set aside).
// - Its WAL is folded into the file first (journal_mode=TRUNCATE), then `VACUUM INTO` writes a new file with the new
//   page size, row for row. The new file is checked whole (PRAGMA integrity_check), its tables' row counts compared
//   with the old one's, given the old file's owner and permissions, and synced.
// - The old file is kept as `<db>.before-page-size-<time>` (a hard link taken first), and the new one is renamed over
//   the database's name: the name always points at a whole database, never at nothing.
// - TRUNCATE, not DELETE: this connection still has the old name when it closes, after the swap, and in DELETE mode
//   it would then delete `<db>-journal` by that name — the new database's journal, if a gateway had just opened it. In
//   TRUNCATE mode it leaves its empty journal, which the gateway's first open deletes (an empty journal is not hot).
// - It needs free space about 1.2 × the database's live pages, checked before anything is written.
import { existsSync, linkSync, renameSync, rmSync, statSync, statfsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { PAGE_SIZE, pageSizeOf } from '../core/db.js';
import { checkDatabase, configuredDbFile, fail, fsyncPath, holdExclusive, refuseOtherOwner, sameOwnerAs } from './sqlite-files.js';

export interface PageSizeResult {
  file: string;
  from: number;
  to: number;
  /** false: the file already had the page size, nothing was changed */
  converted: boolean;
  keptAside: string | null;
  bytesBefore: number;
  bytesAfter: number;
  ms: number;
  /** something the operator should know about a conversion that was done */
  note?: string;
}

/** the tables whose row counts must match between the old file and the new one */
function rowCounts(db: Database.Database): Map<string, number> {
  const tables = db.prepare("select name from sqlite_master where type = 'table' and name not like 'sqlite_%'").pluck().all() as string[];
  return new Map(tables.map((t) => [t, db.prepare(`select count(*) from "${t.replace(/"/g, '""')}"`).pluck().get() as number]));
}

export function convertPageSize(file: string, now = new Date(), pageSize = PAGE_SIZE): PageSizeResult {
  const started = Date.now();
  if (!existsSync(file)) throw new Error(`no database at ${file}: is ELDERGATE_DATA_DIR (or dataDir in the config file) the gateway's?`);
  refuseOtherOwner(file, 'npm run db:page-size');
  // held until close: no gateway opens the file while it is rewritten
  const db = holdExclusive(file, 'run npm run db:page-size');
  const partial = `${file}.page-size-partial`;
  let swapped = false;
  try {
    const from = pageSizeOf(db);
    const wal = existsSync(`${file}-wal`) ? statSync(`${file}-wal`).size : 0;
    const bytesBefore = statSync(file).size + wal;
    if (from === pageSize) {
      return { file, from, to: pageSize, converted: false, keptAside: null, bytesBefore, bytesAfter: bytesBefore, ms: Date.now() - started };
    }
    // what VACUUM INTO writes: the live pages (free ones are dropped), WAL included, with a margin for the new size
    const live = (Number(db.pragma('page_count', { simple: true })) - Number(db.pragma('freelist_count', { simple: true }))) * from;
    const needed = Math.ceil((live + wal) * 1.2);
    const free = statfsSync(dirname(file));
    const freeBytes = Number(free.bavail) * Number(free.bsize);
    if (freeBytes < needed) {
      throw new Error(`${dirname(file)} has ${mb(freeBytes)} free and the new file needs about ${mb(needed)}: free that much space there and run it again; nothing was changed`);
    }
    // the WAL folded into the file and removed: the file alone is the database, and is what gets kept aside
    db.pragma('journal_mode = TRUNCATE');
    const before = rowCounts(db);
    rmSync(partial, { force: true });
    db.pragma(`page_size = ${pageSize}`);
    try {
      db.prepare('VACUUM INTO ?').run(partial);
    } catch (err) {
      throw new Error(`the new file could not be written (${(err as Error).message}); nothing was changed`);
    }
    const problems = checkDatabase(partial);
    const check = new Database(partial, { readonly: true, fileMustExist: true });
    try {
      const got = pageSizeOf(check);
      if (got !== pageSize) problems.push(`the new file has ${got}-byte pages, not ${pageSize}`);
      const after = rowCounts(check);
      for (const [table, n] of before) {
        if (after.get(table) !== n) problems.push(`table ${table}: ${n} rows before, ${after.get(table) ?? 'none'} in the new file`);
      }
    } finally {
      check.close();
    }
    if (problems.length) throw new Error(`the new file failed its check, nothing was changed:\n  - ${problems.join('\n  - ')}`);
    sameOwnerAs(partial, file);
    fsyncPath(partial);
    const keptAside = `${file}.before-page-size-${now.toISOString().replace(/[:.]/g, '-')}`;
    try {
      // a second name for the old file first, then the new one renamed over the database's name in one step
      linkSync(file, keptAside);
    } catch (err) {
      throw new Error(`the old file could not be kept as ${keptAside} (${(err as Error).message}); nothing was changed`);
    }
    // the gateway's shared-memory index of the WAL folded in above: stale, and this lock proves nobody uses it
    rmSync(`${file}-shm`, { force: true });
    renameSync(partial, file);
    swapped = true;
    let note: string | undefined;
    try {
      fsyncPath(dirname(file));
    } catch (err) {
      note = `the directory could not be synced (${(err as Error).message}): the swap is done, but a power cut now could undo it`;
    }
    return { file, from, to: pageSize, converted: true, keptAside, bytesBefore, bytesAfter: statSync(file).size, ms: Date.now() - started, note };
  } catch (err) {
    if (!swapped) rmSync(partial, { force: true });
    throw err;
  } finally {
    db.close();
  }
}

const mb = (bytes: number) => `${(bytes / 1048576).toFixed(1)} MiB`;

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  if (process.argv.length > 2) fail('usage: npm run db:page-size   (with the gateway stopped; no arguments)');
  try {
    const { file } = configuredDbFile();
    const r = convertPageSize(file);
    if (!r.converted) {
      process.stdout.write(`${r.file} already has ${r.to}-byte pages; nothing to do.\n`);
    } else {
      process.stdout.write(`${r.file}: pages of ${r.from} bytes rewritten as ${r.to} (${mb(r.bytesBefore)} → ${mb(r.bytesAfter)}, ${r.ms} ms); ` +
        'integrity and row counts checked.\n' +
        `The old file is kept as ${r.keptAside} (delete it once the gateway runs well). Start the gateway.\n` +
        (r.note ? `Note: ${r.note}.\n` : ''));
    }
  } catch (err) {
    fail(err);
  }
}
