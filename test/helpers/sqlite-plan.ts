// A SQLite file with the committed migrations in a temporary directory of the test file's own (closed and removed
// after its tests), and the query plan SQLite chooses for a statement on it: for tests that pin a hot query's index.
import { afterAll } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore, type Store } from '../../core/db.js';

export function useMigratedStore(prefix: string): { store: Store; planOf(sql: string, ...args: unknown[]): string[] } {
  const dir = mkdtempSync(join(tmpdir(), `${prefix}-`));
  const store = openStore(join(dir, 'eldergate.db'));
  afterAll(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return {
    store,
    planOf: (sql, ...args) => (store.sqlite.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...args) as { detail: string }[]).map((r) => r.detail),
  };
}
