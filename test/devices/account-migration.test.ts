// Migration 0003 on a database written before it: Contact ID accounts in config.account move to the unique column;
// where two devices claimed one account (or a claim named an older device's serial) the oldest keeps it, the others
// are flagged (config.accountConflict), audited and logged at start-up. A real SQLite file, the committed migrations.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openStore } from '../../core/db.js';
import { databaseBefore } from '../helpers/migrations.js';
import { Bus } from '../../core/bus.js';
import { DeviceRegistry } from '../../devices/registry.js';
import { SecretHasher } from '../../devices/credentials.js';

const dir = mkdtempSync(join(tmpdir(), 'eldergate-mig-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('migration 0003: account identifiers', () => {
  it('keeps the oldest claim, flags and audits the rest', () => {
    // the migrations as they were before 0003
    const { db: old, file } = databaseBefore('0003', dir);
    const ins = old.prepare(`INSERT INTO devices (id, kind, serial, state, secret_hash, secret_rotated_at, power, config, created_at, updated_at)
      VALUES (?, 'call-phone', ?, ?, 'h', 1, 'battery', ?, ?, 1)`);
    ins.run('cp-oldest', 'S-1', 'in-service', JSON.stringify({ account: '1234', heartbeatS: 60 }), 1000);
    ins.run('cp-younger', 'S-2', 'in-service', JSON.stringify({ account: '1234' }), 2000); // the rerouting of the issue
    ins.run('cp-numeric', 'S-3', 'in-service', JSON.stringify({ account: 5555 }), 3000);
    ins.run('cp-serialthief', 'S-4', 'in-service', JSON.stringify({ account: 'S-1' }), 4000); // another device's serial
    ins.run('cp-retired', 'S-5', 'decommissioned', JSON.stringify({ account: '5555' }), 500);
    old.close();

    const store = openStore(file);
    const rows = store.sqlite.prepare('SELECT id, account_scheme AS scheme, account, config FROM devices ORDER BY id').all() as { id: string; scheme: string | null; account: string | null; config: string }[];
    const by = Object.fromEntries(rows.map((r) => [r.id, { ...r, config: JSON.parse(r.config) }]));
    expect(by['cp-oldest']).toMatchObject({ scheme: 'contact-id', account: '1234', config: { heartbeatS: 60 } });
    expect(by['cp-oldest']!.config).not.toHaveProperty('account');
    expect(by['cp-younger']).toMatchObject({ scheme: null, account: null, config: { accountConflict: '1234' } });
    expect(by['cp-numeric']).toMatchObject({ scheme: 'contact-id', account: '5555' });
    expect(by['cp-serialthief']).toMatchObject({ account: null, config: { accountConflict: 'S-1' } });
    expect(by['cp-retired']).toMatchObject({ account: null, config: { account: '5555' } });
    const audit = store.sqlite.prepare(`SELECT target_id AS id, actor, action, details FROM audit_log ORDER BY target_id`).all() as { id: string; actor: string; action: string; details: string }[];
    expect(audit.map((a) => [a.id, a.action, JSON.parse(a.details).heldBy])).toEqual([
      ['cp-serialthief', 'device.account-conflict', 'cp-oldest'],
      ['cp-younger', 'device.account-conflict', 'cp-oldest'],
    ]);

    const registry = new DeviceRegistry(store.db, new SecretHasher(Buffer.alloc(32, 7)), new Bus());
    expect(registry.deviceForAccount('1234')).toBe('cp-oldest');
    expect(registry.deviceForAccount('S-1')).toBe('cp-oldest');
    expect(registry.deviceForAccount('5555')).toBe('cp-numeric');
    expect(registry.startupNotes.accountConflicts.map((c) => c.deviceId).sort()).toEqual(['cp-serialthief', 'cp-younger']);
    store.close();
  });

  it('an import cut short by a crash leaves no device behind at the next start', () => {
    const file = join(dir, 'crash.db');
    let store = openStore(file);
    let registry = new DeviceRegistry(store.db, new SecretHasher(Buffer.alloc(32, 7)), new Bus());
    store.sqlite.prepare(`INSERT INTO device_imports (id, status, count, actor, started_at) VALUES ('imp_x', 'importing', 2, 'tess', 1)`).run();
    const ins = store.sqlite.prepare(`INSERT INTO devices (id, kind, serial, state, secret_hash, secret_rotated_at, power, config, import_id, created_at, updated_at)
      VALUES (?, 'locator', ?, 'provisioned', 'h', 1, 'battery', '{}', 'imp_x', 1, 1)`);
    ins.run('lc-half1', 'HALF-1');
    ins.run('lc-half2', 'HALF-2');
    // while it runs, nobody sees them
    expect(registry.list({ limit: 10, offset: 0 }).total).toBe(0);
    expect(() => registry.get('lc-half1')).toThrow(/does not exist/);
    expect(registry.deviceForAccount('HALF-1')).toBeUndefined();
    store.close();
    store = openStore(file);
    registry = new DeviceRegistry(store.db, new SecretHasher(Buffer.alloc(32, 7)), new Bus());
    expect(registry.startupNotes.abandonedImports).toEqual([{ id: 'imp_x', count: 2 }]);
    expect(store.sqlite.prepare('SELECT count(*) AS n FROM devices').get()).toEqual({ n: 0 });
    expect(registry.entry('lc-half1')).toBeUndefined();
    expect(store.sqlite.prepare(`SELECT status FROM device_imports WHERE id = 'imp_x'`).get()).toEqual({ status: 'abandoned' });
    store.close();
  });
});
