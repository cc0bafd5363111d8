// A receipt batch is not fsynced (response/receipt-store.ts): in WAL mode it commits with synchronous=NORMAL, which a
// crash of the process keeps and only a power cut can take back, until the next fsynced commit syncs it with its own.
// Receipts are best-effort by design; an fsync per batch (20 a second with consoles acking) held the writer thread,
// and an alarm that came meanwhile waited for it. Proved with the power-cut shim (an LD_PRELOAD that keeps an undo
// log of every byte written to the SQLite files and not yet synced): after the batch, bytes are unsynced; after an
// ordinary write at the connection's synchronous=FULL, none are, and the connection is back at FULL.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import { buildShim, shimEnv, unsyncedBytes } from '../gateway/power-cut/powercut.js';
import { openStore } from '../../core/db.js';
import { createSqliteReceiptStore } from '../../response/receipt-store.js';

describe('a receipt batch on SQLite', () => {
  it('goes inside a caller\'s transaction too (cluster mode\'s mirror), whose commit decides its durability', () => {
    const dir = mkdtempSync(join(tmpdir(), 'eldergate-receipt-nested-'));
    const store = openStore(join(dir, 'eldergate.db'));
    try {
      const receipts = createSqliteReceiptStore(store.sqlite);
      const batch = Array.from({ length: 3 }, (_, i) => ({ incidentId: 'inc-1', kind: 'delivered' as const, seq: 1, at: 1000 + i, userId: `u${i}`, username: null }));
      expect(store.sqlite.transaction(() => receipts.writeBatch(batch)).immediate()).toBe(3);
      expect(store.sqlite.pragma('synchronous', { simple: true })).toBe(2);
      expect(receipts.of('inc-1')).toHaveLength(3);
    } finally {
      store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });


  it('commits without an fsync; the next fsynced commit syncs it, and the connection is back at FULL', async () => {
    const base = mkdtempSync(join(tmpdir(), 'eldergate-receipt-sync-'));
    const dataDir = join(base, 'data');
    const logDir = join(base, 'undo');
    mkdirSync(dataDir);
    try {
      const so = buildShim(base);
      const child = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'receipt-sync-child.ts'), dataDir], {
        env: { ...process.env, ...shimEnv(so, dataDir, logDir) }, stdio: ['pipe', 'pipe', 'inherit'],
      });
      const exited = new Promise<number | null>((r) => child.once('exit', r));
      const out = createInterface({ input: child.stdout! });
      const next = () => new Promise<Record<string, unknown>>((resolve, reject) => {
        out.once('line', (l) => resolve(JSON.parse(l) as Record<string, unknown>));
        child.once('exit', (code) => reject(new Error(`the child exited (${code}) before it said its step`)));
      });
      const batch = await next();
      expect(batch).toEqual({ step: 'batch', written: 20, synchronousAfter: 2 });
      // the batch's WAL frames are written and not synced (an fsync of the file empties its undo log)
      const wal = (path: string) => path.endsWith('-wal');
      expect(unsyncedBytes(logDir, wal)).toBeGreaterThan(0);
      child.stdin!.end('go\n');
      expect(await next()).toEqual({ step: 'committed' });
      expect(unsyncedBytes(logDir, wal)).toBe(0);
      expect(await exited).toBe(0);
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  }, 30_000);
});
