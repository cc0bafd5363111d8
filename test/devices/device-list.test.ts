// The device list over the whole fleet: a live-state filter (GET /api/devices?online=…, ?supervision=…) reads the ids
// of every device the list would give (registry.listIds) and then one page of rows (registry.rowsOf); it read 100,000
// whole rows before, ~1 s on the main thread. Both give what list() gives, in its order. A real SQLite file.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openStore } from '../../core/db.js';
import { Bus } from '../../core/bus.js';
import { DeviceRegistry } from '../../devices/registry.js';
import { SecretHasher } from '../../devices/credentials.js';

const dir = mkdtempSync(join(tmpdir(), 'eldergate-devlist-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the device list over the whole fleet (live-state filters read ids, then one page of rows)', () => {
  it('listIds gives list\'s devices in list\'s order, and rowsOf a page of them as list does', async () => {
    const store = openStore(join(dir, 'ids.db'));
    const registry = new DeviceRegistry(store.db, new SecretHasher(Buffer.alloc(32, 7)), new Bus());
    await registry.importDevices(Array.from({ length: 1200 }, (_, i) => ({ line: i + 2, serial: `IDS-${i}`, kind: i % 2 ? 'locator' as const : 'call-phone' as const })), 'tess');
    for (const filter of [{}, { kind: 'locator' }, { q: 'IDS-11' }]) {
      const listed = registry.list({ ...filter, limit: 100_000, offset: 0 });
      const ids = registry.listIds(filter);
      expect(ids).toEqual(listed.items.map((d) => d.id));
      expect(registry.rowsOf(ids.slice(40, 90))).toEqual(registry.list({ ...filter, limit: 50, offset: 40 }).items);
    }
    expect(registry.rowsOf(['cp-nosuchdevice', registry.listIds({})[0]!])).toHaveLength(1);
    store.close();
  });
});
