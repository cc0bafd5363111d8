// The power-cut shim (shim.c) for a child process: build it with the system's gcc, the environment that loads it,
// and the cut itself — after the process was killed, play every undo log backwards so that each SQLite file holds
// exactly what had been synced.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, openSync, closeSync, fstatSync, readFileSync, readdirSync, ftruncateSync, statSync, writeSync, rmSync } from 'node:fs';
import { join } from 'node:path';

/** Compile the shim into `dir`; throws (the test fails, never skips) when gcc is missing. */
export function buildShim(dir: string): string {
  const out = join(dir, 'powercut.so');
  execFileSync('gcc', ['-shared', '-fPIC', '-O2', '-o', out, join(import.meta.dirname, 'shim.c'), '-ldl', '-lpthread']);
  return out;
}

/** environment for a child whose SQLite files under `dataDir` lose what they did not sync when the power is cut */
export function shimEnv(so: string, dataDir: string, logDir: string): Record<string, string> {
  mkdirSync(logDir, { recursive: true });
  return { LD_PRELOAD: so, POWERCUT_DIR: dataDir, POWERCUT_LOG: logDir };
}

/** Bytes written to the tracked files (those `only` keeps, by path) since their last sync (what a power cut now would take). */
export function unsyncedBytes(logDir: string, only: (path: string) => boolean = () => true): number {
  let total = 0;
  for (const name of readdirSync(logDir)) {
    if (!name.endsWith('.undo')) continue;
    try {
      const log = readFileSync(join(logDir, name));
      const synced = Number(log.readBigUInt64LE(0));
      const path = log.subarray(12, 12 + log.readUInt32LE(8)).toString('utf8');
      const records = log.length - (12 + log.readUInt32LE(8));
      if (only(path) && existsSync(path)) total += Math.max(0, statSync(path).size - synced) + records;
    } catch {
      // a log being rewritten at this moment: ask again
    }
  }
  return total;
}

/**
 * The power cut (call after SIGKILL): every tracked file back to its last synced content. Returns what was undone per
 * file (a test can tell that something unsynced was there to lose).
 */
export function cutPower(logDir: string): Record<string, { undoneWrites: number; sizeBefore: number; truncatedTo: number }> {
  const report: Record<string, { undoneWrites: number; sizeBefore: number; truncatedTo: number }> = {};
  for (const name of readdirSync(logDir)) {
    if (!name.endsWith('.undo')) continue;
    const log = readFileSync(join(logDir, name));
    const synced = Number(log.readBigUInt64LE(0));
    const n = log.readUInt32LE(8);
    const path = log.subarray(12, 12 + n).toString('utf8');
    const records: { off: number; bytes: Buffer }[] = [];
    for (let at = 12 + n; at + 12 <= log.length;) {
      const off = Number(log.readBigUInt64LE(at));
      const len = log.readUInt32LE(at + 8);
      records.push({ off, bytes: log.subarray(at + 12, at + 12 + len) });
      at += 12 + len;
    }
    rmSync(join(logDir, name));
    if (!existsSync(path)) continue;
    const fd = openSync(path, 'r+');
    const sizeBefore = fstatSync(fd).size;
    try {
      // newest first: each byte ends as the oldest saved copy, the one from before the first change after the sync
      for (let i = records.length - 1; i >= 0; i--) writeSync(fd, records[i]!.bytes, 0, records[i]!.bytes.length, records[i]!.off);
      ftruncateSync(fd, synced);
    } finally {
      closeSync(fd);
    }
    report[path] = { undoneWrites: records.length, sizeBefore, truncatedTo: synced };
  }
  return report;
}
