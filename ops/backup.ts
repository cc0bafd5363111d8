// `npm run backup -- <file>`: a consistent copy of the running gateway's database, taken online with SQLite's backup
// API (better-sqlite3 `db.backup()`), from its own process. Why a separate process and not an admin route: the backup
// API copies pages synchronously; inside the gateway that would hold the event loop — and the alarm path — for as long
// as the copy takes. Why it is safe beside the writer: the database is in WAL mode, where a reader never blocks the
// writer nor is blocked by it; the copy reads one snapshot (see `progress` below), so it is the database as it was at
// one commit: every alarm acknowledged before the backup began is in it. The token-signing key is not in the database
// (`<dataDir>-keys/`, docs/security.md): back that directory up separately, and keep it as secret as the key.
import { existsSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { checkDatabase, configuredDbFile, fail, fsyncPath } from './sqlite-files.js';

export async function backup(source: string, target: string): Promise<{ file: string; bytes: number; ms: number }> {
  const out = resolve(target);
  if (!existsSync(source)) throw new Error(`no database at ${source}: is ELDERGATE_DATA_DIR (or dataDir in the config file) the gateway's?`);
  if (existsSync(out)) throw new Error(`${out} exists: name a new file (a backup is never written over another)`);
  if (!existsSync(dirname(out))) throw new Error(`the directory ${dirname(out)} does not exist: create it or name another file`);
  const started = Date.now();
  const partial = `${out}.partial`;
  rmSync(partial, { force: true });
  const db = new Database(source, { readonly: true, fileMustExist: true });
  try {
    // The first step copies 100 pages; every later one all that remain (-1 would too). A commit by the gateway between
    // two steps restarts the copy, so copying the rest in one step — one read transaction, one WAL snapshot — is what
    // lets a backup finish while alarms keep arriving.
    await db.backup(partial, { progress: ({ remainingPages }) => Math.max(remainingPages, 1) });
  } finally {
    db.close();
  }
  const problems = checkDatabase(partial);
  if (problems.length) {
    rmSync(partial, { force: true });
    throw new Error(`the copy failed its check, nothing was kept:\n  - ${problems.join('\n  - ')}`);
  }
  fsyncPath(partial);
  renameSync(partial, out);
  return { file: out, bytes: statSync(out).size, ms: Date.now() - started };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const target = process.argv[2];
  if (!target || process.argv.length > 3) fail('usage: npm run backup -- <file>   (a new file; the gateway keeps running)');
  try {
    const { file } = configuredDbFile();
    const r = await backup(file, target);
    process.stdout.write(`backup of ${file} written to ${r.file} (${r.bytes} bytes, ${r.ms} ms); integrity checked.\n` +
      'The token-signing key is not in it: back up the <dataDir>-keys/ directory separately (docs/operations.md).\n');
  } catch (err) {
    fail(err);
  }
}
