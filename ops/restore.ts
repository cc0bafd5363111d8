// `npm run restore -- <file>`: put a backup (ops/backup.ts) in place of the configured gateway's database, with the
// gateway stopped. The backup is checked whole first (PRAGMA integrity_check); a running gateway is detected by the
// lock it holds (an exclusive lock cannot be taken beside its open connection) and refused; the database replaced is
// kept aside as `<db>.before-restore-<time>` (with its -wal, if any), never deleted. On start the gateway applies any
// migration newer than the backup. The token-signing key (`<dataDir>-keys/`) is restored separately: without it,
// a new key is made and everyone logs in again; devices are not affected.
import { copyFileSync, existsSync, renameSync, rmSync, mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkDatabase, configuredDbFile, fail, fsyncPath, refuseIfInUse, refuseOtherOwner, sameOwnerAs } from './sqlite-files.js';

export function restore(backupFile: string, target: string, now = new Date()): { restored: string; keptAside: string | null } {
  const from = resolve(backupFile);
  if (!existsSync(from)) throw new Error(`no backup at ${from}: name the file \`npm run backup\` wrote`);
  const problems = checkDatabase(from);
  if (problems.length) throw new Error(`${from} is not a sound backup, nothing was changed:\n  - ${problems.join('\n  - ')}`);
  refuseIfInUse(target, 'restore');
  refuseOtherOwner(target, 'npm run restore -- <backup file>');
  mkdirSync(dirname(target), { recursive: true });
  const incoming = `${target}.restoring`;
  copyFileSync(from, incoming);
  // the restored file is the gateway's, as the one it replaces was (a restore run as root for a service user)
  if (existsSync(target)) sameOwnerAs(incoming, target);
  fsyncPath(incoming);
  let keptAside: string | null = null;
  if (existsSync(target)) {
    keptAside = `${target}.before-restore-${now.toISOString().replace(/[:.]/g, '-')}`;
    renameSync(target, keptAside);
    for (const ext of ['-wal', '-shm']) if (existsSync(target + ext)) renameSync(target + ext, keptAside + ext);
  } else {
    for (const ext of ['-wal', '-shm']) rmSync(target + ext, { force: true });
  }
  renameSync(incoming, target);
  return { restored: target, keptAside };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const file = process.argv[2];
  if (!file || process.argv.length > 3) fail('usage: npm run restore -- <backup file>   (with the gateway stopped)');
  try {
    const { file: target } = configuredDbFile();
    const r = restore(file, target);
    process.stdout.write(`restored ${resolve(file)} to ${r.restored}; integrity checked.\n` +
      (r.keptAside ? `The database it replaced is kept as ${r.keptAside} (delete it once the gateway runs well).\n` : '') +
      'Restore the token-signing key (<dataDir>-keys/) too if it was lost; otherwise everyone logs in again. Start the gateway.\n');
  } catch (err) {
    fail(err);
  }
}
