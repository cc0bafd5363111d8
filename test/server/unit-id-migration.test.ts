// Migration 0004 on a database written before it: a unit id stored as "" (JSON bodies were type-coerced, so
// "unitId": null became "") is NULL afterwards; real unit ids are left alone. A real SQLite file, the committed
// migrations.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openStore } from '../../core/db.js';
import { databaseBefore } from '../helpers/migrations.js';

const dir = mkdtempSync(join(tmpdir(), 'eldergate-mig4-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('migration 0004: "" unit ids become NULL', () => {
  it('residents and users with unit "" have none; a real unit stays', () => {
    const { db: old, file } = databaseBefore('0004', dir);
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
