// A real SQLite file as an older release left it: the committed migrations applied up to, not including, the one
// whose tag starts with `tag` (so a test can write old data, then run the new migration through openStore).
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { drizzle } from 'drizzle-orm/better-sqlite3';
import { migrate } from 'drizzle-orm/better-sqlite3/migrator';
import { MIGRATIONS_DIR } from '../../core/db.js';

export function databaseBefore(tag: string, dir: string, file = join(dir, 'old.db')): { db: Database.Database; file: string } {
  const db = new Database(file);
  migrate(drizzle(db), { migrationsFolder: migrationsBefore(MIGRATIONS_DIR, tag, dir) });
  return { db, file };
}

/** A copy (in `dir`) of the migrations folder `from` as an older release had it: up to, not including, `tag`. */
export function migrationsBefore(from: string, tag: string, dir: string): string {
  const before = join(dir, `migrations-before-${tag}-${Math.random().toString(36).slice(2, 8)}`);
  cpSync(from, before, { recursive: true });
  const journal = JSON.parse(readFileSync(join(before, 'meta/_journal.json'), 'utf8')) as { entries: { tag: string }[] };
  const idx = journal.entries.findIndex((e) => e.tag.startsWith(tag));
  if (idx <= 0) throw new Error(`no migration ${tag} after the first in ${from}`);
  journal.entries = journal.entries.slice(0, idx);
  writeFileSync(join(before, 'meta/_journal.json'), JSON.stringify(journal));
  return before;
}
