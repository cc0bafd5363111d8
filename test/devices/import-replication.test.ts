// A 50,000-device import hands its devices to the writer thread's copy of the registry one slice at a time, and each
// slice waits until the writer has taken the last: the writer's port is one queue, and an SOS posted behind a backlog
// of replication waited for all of it (0.6–0.9 s in `npm run bench -- --only=6` before). A real SQLite file with the
// committed migrations; the replica is this test, so that what the import sends, and when, can be watched.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openStore } from '../../core/db.js';
import { ConflictError } from '../../core/errors.js';
import { Bus } from '../../core/bus.js';
import { DeviceRegistry, type RegistryReplication } from '../../devices/registry.js';
import { SecretHasher } from '../../devices/credentials.js';
import { IMPORT_MAX_ROWS } from '../../devices/import.js';

const dir = mkdtempSync(join(tmpdir(), 'eldergate-imprep-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('an import replicated to the writer thread', () => {
  it('sends no slice while the replica has not taken the one before, and every device in the end', async () => {
    const store = openStore(join(dir, 'g.db'));
    const registry = new DeviceRegistry(store.db, new SecretHasher(Buffer.alloc(32, 7)), new Bus());
    const sent: { ids: number; whileBehind: boolean }[] = [];
    let behind = false;
    let waits = 0;
    registry.replicateTo(
      (r: RegistryReplication) => sent.push({ ids: r.entries.filter(([, e]) => e !== null).length, whileBehind: behind }),
      // the replica is slow: 5 ms to take what it was sent
      async () => {
        waits++;
        behind = true;
        await new Promise((r) => setTimeout(r, 5));
        behind = false;
      },
    );
    const rows = Array.from({ length: IMPORT_MAX_ROWS }, (_, i) => ({ line: i + 2, serial: `REP-${i}`, kind: 'call-phone' as const }));
    const { created } = await registry.importDevices(rows, 'tess');
    expect(created).toHaveLength(IMPORT_MAX_ROWS);

    const slices = sent.filter((s) => s.ids > 0);
    expect(slices.reduce((n, s) => n + s.ids, 0), 'every imported device reaches the replica').toBe(IMPORT_MAX_ROWS);
    expect(slices.filter((s) => s.whileBehind), 'slices sent while the replica was still taking the one before').toEqual([]);
    expect(slices.length, 'the import\'s memory step in more than one slice').toBeGreaterThan(1);
    expect(waits, 'the import waited for the replica between slices').toBeGreaterThanOrEqual(slices.length - 1);
    store.close();
  }, 120_000);

  it('imports take turns: the next waits for the one running, and its serials are checked after it', async () => {
    const store = openStore(join(dir, 'turns.db'));
    const registry = new DeviceRegistry(store.db, new SecretHasher(Buffer.alloc(32, 7)), new Bus());
    const file = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => ({ line: i + 2, serial: `${prefix}-${i}`, kind: 'locator' as const }));
    // five at once: one runs, four wait (two test engineers' simulator runs and an admin were refused before: 409);
    // the fifth repeats a serial of the first and is refused for that, naming it, once the first has written it
    const results = await Promise.allSettled([
      registry.importDevices(file('ONE', 3000), 'tess'),
      registry.importDevices(file('TWO', 10), 'sim-a'),
      registry.importDevices(file('THREE', 10), 'sim-b'),
      registry.importDevices(file('FOUR', 10), 'sim-c'),
      registry.importDevices([{ line: 2, serial: 'ONE-7', kind: 'locator' }], 'sim-d'),
    ]);
    expect(results.slice(0, 4).map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled', 'fulfilled']);
    const last = results[4]!;
    expect(last.status).toBe('rejected');
    expect((last as PromiseRejectedResult).reason).toBeInstanceOf(ConflictError);
    expect(String((last as PromiseRejectedResult).reason.message)).toContain('already provisioned: line 2: ONE-7');
    expect(registry.size()).toBe(3030);

    // a sixth while five are queued is refused at once, saying why
    const queued = Array.from({ length: 5 }, (_, k) => registry.importDevices(file(`Q${k}`, 200), 'tess'));
    await expect(registry.importDevices(file('SIX', 1), 'tess')).rejects.toThrow(/another device import is running and 4 more are waiting their turn: try again/);
    await Promise.all(queued);
    expect(registry.size()).toBe(4030);
    store.close();
  }, 120_000);
});
