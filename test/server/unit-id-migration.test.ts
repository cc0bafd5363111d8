// Migration 0004 on a database written before it: a unit id stored as "" (JSON bodies were type-coerced, so
// "unitId": null became "") is NULL afterwards; real unit ids are left alone. A real SQLite file, the committed
// migrations.
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { drizzle } from 'drizzle-orm/better-sqlite3';
import { migrate } from 'drizzle-orm/better-sqlite3/migrator';
import { afterAll, describe, expect, it } from 'vitest';
import { MIGRATIONS_DIR, openStore } from '../../core/db.js';

const dir = mkdtempSync(join(tmpdir(), 'eldergate-mig4-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('migration 0004: "" unit ids become NULL', () => {
  it('residents and users with unit "" have none; a real unit stays', () => {
    const before = join(dir, 'before');
    cpSync(MIGRATIONS_DIR, before, { recursive: true });
    const journal = JSON.parse(readFileSync(join(before, 'meta/_journal.json'), 'utf8')) as { entries: { tag: string }[] };
    const idx = journal.entries.findIndex((e) => e.tag.startsWith('0004'));
    expect(idx).toBeGreaterThan(0);
    journal.entries = journal.entries.slice(0, idx);
    writeFileSync(join(before, 'meta/_journal.json'), JSON.stringify(journal));
    const file = join(dir, 'old.db');
    const old = new Database(file);
    migrate(drizzle(old), { migrationsFolder: before });
    const res = old.prepare(`INSERT INTO residents (id, name, unit_id, created_at, updated_at) VALUES (?, ?, ?, 1, 1)`);
    res.run('r_empty', 'Ada', '');
    res.run('r_unit', 'Bea', 'g1');
    res.run('r_null', 'Cai', null);
    const usr = old.prepare(`INSERT INTO users (id, username, password_hash, role, unit_id, created_at) VALUES (?, ?, 'h', 'operator', ?, 1)`);
    usr.run('u_empty', 'nora', '');
    usr.run('u_unit', 'otto', 'g1');
    old.close();

    const store = openStore(file);
    try {
      const unitOf = (table: string) => Object.fromEntries((store.sqlite.prepare(`SELECT id, unit_id FROM ${table}`).all() as { id: string; unit_id: string | null }[]).map((r) => [r.id, r.unit_id]));
      expect(unitOf('residents')).toEqual({ r_empty: null, r_unit: 'g1', r_null: null });
      expect(unitOf('users')).toMatchObject({ u_empty: null, u_unit: 'g1' });
    } finally {
      store.close();
    }
  });
});
