// The resident list (GET /api/residents) at a city's size: ordered by name, ties by id, read from one index that holds
// that order with what its search and unit scope test (residents_list_idx, migration 0014). On the committed
// migrations before it, every page sorted every resident's row (safe-zone polygons and all): at 100,000 residents a
// page 50,000 deep held the main thread ~1 s. And namesakes (a city has thousands of "Wang Fang") ordered by name alone
// could repeat or skip across pages. A real SQLite file.
import { describe, expect, it } from 'vitest';
import { Bus } from '../../core/bus.js';
import { DeviceRegistry } from '../../devices/registry.js';
import { SecretHasher } from '../../devices/credentials.js';
import { useMigratedStore } from '../helpers/sqlite-plan.js';

describe('the resident list', () => {
  const { store, planOf } = useMigratedStore('eldergate-residents');
  const registry = new DeviceRegistry(store.db, new SecretHasher(Buffer.alloc(32, 7)), new Bus());

  it('pages through namesakes without repeating or skipping one', async () => {
    const names = ['Wang Fang', 'Li Na', 'Zhang Wei', 'Liu Yang', 'Chen Jing'];
    for (let i = 0; i < 300; i++) registry.createResident({ name: names[i % names.length]!, address: `${i} Jiefang Road`, unitId: `u-${i % 3}` });
    const all = (await registry.listResidents({ limit: 1000, offset: 0 })).items;
    expect(all).toHaveLength(300);
    const want = [...all].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.id < b.id ? -1 : 1)).map((r) => r.id);
    expect(all.map((r) => r.id)).toEqual(want);
    const paged: string[] = [];
    for (let offset = 0; offset < 300; offset += 7) paged.push(...(await registry.listResidents({ limit: 7, offset })).items.map((r) => r.id));
    expect(paged).toEqual(want);
    const scoped = await registry.listResidents({ limit: 1000, offset: 0, scope: { unitIds: ['u-1'], unplaced: false }, q: 'Wang' });
    expect(scoped.total).toBe(20);
    expect(scoped.items.every((r) => r.unitId === 'u-1' && r.name === 'Wang Fang')).toBe(true);
  });

  it('reads a page, a search and a unit\'s residents from its index, with no sort', () => {
    const order = 'ORDER BY name, id LIMIT 50 OFFSET 50000';
    for (const [where, args] of [
      ['', []],
      [`WHERE (name LIKE ? ESCAPE '\\' OR address LIKE ? ESCAPE '\\')`, ['%wang%', '%wang%']],
      ['WHERE (unit_id IN (?, ?) OR unit_id IS NULL OR unit_id NOT IN (SELECT id FROM units))', ['u-1', 'u-2']],
    ] as [string, unknown[]][]) {
      const plan = planOf(`SELECT * FROM residents ${where} ${order}`, ...args).join('; ');
      expect(plan).toContain('USING INDEX residents_list_idx');
      expect(plan).not.toContain('TEMP B-TREE');
    }
  });
});
