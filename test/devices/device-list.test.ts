// The device list over the whole fleet: a live-state filter (GET /api/devices?online=…, ?supervision=…) reads the ids
// of every device the list would give (registry.listIds) and then one page of rows (registry.rowsOf); it read 100,000
// whole rows before, ~1 s on the main thread. Both give what list() gives, in its order. A real SQLite file.
import { describe, expect, it } from 'vitest';
import { Bus } from '../../core/bus.js';
import { desc, sql, type SQL } from 'drizzle-orm';
import { DeviceRegistry, LIST_IDS_PAGE, type DeviceFilter } from '../../devices/registry.js';
import { devices } from '../../devices/schema.js';
import { SecretHasher } from '../../devices/credentials.js';
import { useMigratedStore } from '../helpers/sqlite-plan.js';
import { PAGE_SLICE, inPageSlices } from '../../core/page-slices.js';


describe('the device list over the whole fleet (live-state filters read ids, then one page of rows)', () => {
  const { store, planOf } = useMigratedStore('eldergate-devlist');
  const registry = new DeviceRegistry(store.db, new SecretHasher(Buffer.alloc(32, 7)), new Bus());
  // more than two pages of listIds
  const FLEET = 2 * LIST_IDS_PAGE + 300;

  it('listIds gives list\'s devices in list\'s order, and rowsOf a page of them as list does', async () => {
    // two imports, each a single created_at: a page boundary inside each, and one where the newer runs out
    const rows = Array.from({ length: FLEET }, (_, i) => ({ line: i + 2, serial: `IDS-${i}`, kind: i % 2 ? 'locator' as const : 'call-phone' as const }));
    await registry.importDevices(rows.slice(0, LIST_IDS_PAGE + 200), 'tess');
    await new Promise((r) => setTimeout(r, 5));
    await registry.importDevices(rows.slice(LIST_IDS_PAGE + 200), 'tess');
    const filters = [{}, { kind: 'locator' }, { q: 'IDS-11' }, { state: 'active' }, { scope: { unitIds: ['u-nowhere'], unplaced: true } }];
    for (const filter of filters) {
      const listed = registry.list({ ...filter, limit: 100_000, offset: 0 });
      const ids = await registry.listIds(filter);
      expect(ids).toEqual(listed.items.map((d) => d.id));
      expect(ids.length).toBe(listed.total);
      expect(registry.rowsOf(ids.slice(40, 90))).toEqual(registry.list({ ...filter, limit: 50, offset: 40 }).items);
      // the API's plain pages: the page's ids and the total, its rows read after
      const page = registry.pageIds({ ...filter, limit: 1000, offset: 40 });
      const want = registry.list({ ...filter, limit: 1000, offset: 40 });
      expect(page.total).toBe(want.total);
      expect(registry.rowsOf(page.ids)).toEqual(want.items);
    }
    expect((await registry.listIds({})).length).toBe(FLEET);
    expect(registry.rowsOf(['cp-nosuchdevice', (await registry.listIds({}))[0]!])).toHaveLength(1);
  });

  it('listIds gives the event loop back between its pages', async () => {
    let turns = 0;
    let on = true;
    const tick = () => { turns++; if (on) setImmediate(tick); };
    setImmediate(tick);
    const ids = await registry.listIds({});
    on = false;
    expect(ids).toHaveLength(FLEET);
    expect(turns, 'other work ran between listIds\' pages').toBeGreaterThanOrEqual(Math.floor(FLEET / LIST_IDS_PAGE));
  });

  it('a page\'s rows are read a slice at a time, other work running between slices', async () => {
    const ids = await registry.listIds({});
    const marks: string[] = [];
    const rows = await inPageSlices(ids.slice(0, 2 * PAGE_SLICE + 50), (slice) => {
      marks.push(`slice ${slice.length}`);
      // something that came in while this slice was read: it runs before the next slice, not after the page
      setImmediate(() => marks.push('socket'));
      return registry.rowsOf(slice);
    });
    expect(rows.map((d) => d.id)).toEqual(ids.slice(0, 2 * PAGE_SLICE + 50));
    expect(marks).toEqual([`slice ${PAGE_SLICE}`, 'socket', `slice ${PAGE_SLICE}`, 'socket', 'slice 50']);
  });

  it('a page, a count and the ids are read from the list\'s index in order, without sorting the table', () => {
    // the SQL the registry runs (listWhere is what list, listIds and the count share)
    const where = (filter: DeviceFilter) => (registry as unknown as { listWhere(f: DeviceFilter): SQL | undefined }).listWhere(filter);
    const plan = (q: { sql: string; params: unknown[] }) => planOf(q.sql, ...q.params).join('; ');
    const root = { unitIds: ['u-1'], unplaced: true };
    for (const filter of [{}, { kind: 'locator' }, { state: 'active' }, { q: 'IDS-11' }, { scope: root }, { kind: 'locator', scope: root }] as DeviceFilter[]) {
      const page = store.db.select().from(devices).where(where(filter)).orderBy(desc(devices.createdAt), devices.id).limit(50).offset(5000).toSQL();
      const p = plan(page);
      expect(p, JSON.stringify(filter)).toMatch(/^SCAN devices USING (COVERING )?INDEX devices_list_idx/);
      expect(p, JSON.stringify(filter)).not.toContain('TEMP B-TREE');
      // (a count may use a smaller index that holds what it tests: any, but not the table)
      const count = store.db.select({ n: sql<number>`count(*)` }).from(devices).where(where(filter)).toSQL();
      expect(plan(count), JSON.stringify(filter)).toMatch(/^SCAN devices USING COVERING INDEX devices_(list|import)_idx/);
    }
  });
  it('a page\'s rows are looked up by key, one id at a time, never by scanning the table', () => {
    const residentRowsOf = (registry as unknown as { residentRowsOf: { sql: string } }).residentRowsOf;
    for (const [table, reader] of [['devices', registry.rowsOf], ['residents', residentRowsOf]] as const) {
      const p = planOf(reader.sql, JSON.stringify(['a', 'b'])).join('; ');
      expect(p, table).toMatch(new RegExp(`^SEARCH ${table} USING INDEX sqlite_autoindex_${table}_1 \\(id=\\?\\)`));
      expect(p, table).not.toMatch(new RegExp(`SCAN ${table}\\b`));
    }
  });

  it('a page of the same filter again prepares no statement: its ids, its count and its rows are prepared once', async () => {
    const prepare = store.sqlite.prepare.bind(store.sqlite);
    const prepared: string[] = [];
    store.sqlite.prepare = ((text: string) => { prepared.push(text); return prepare(text); }) as typeof store.sqlite.prepare;
    try {
      const scope = { unitIds: ['u-1', 'u-2'], unplaced: true };
      const pages = () => {
        const a = registry.pageIds({ kind: 'locator', limit: 1000, offset: 0 });
        const b = registry.pageIds({ scope, limit: 50, offset: 10 });
        return { a, b, rows: registry.rowsOf(a.ids.slice(0, 10)) };
      };
      const first = pages();
      const listed = await registry.listIds({ q: 'IDS-1' });
      await registry.listResidents({ limit: 100, offset: 0 });
      const before = prepared.length;
      expect(pages()).toEqual(first);
      expect(await registry.listIds({ q: 'IDS-1' })).toEqual(listed);
      await registry.listResidents({ limit: 100, offset: 0 });
      // another page of the same filter is the same statement with other parameters
      registry.pageIds({ kind: 'locator', limit: 1000, offset: 500 });
      expect(prepared.slice(before)).toEqual([]);
      // a filter of another shape is a statement of its own
      registry.pageIds({ scope: { unitIds: ['u-1', 'u-2', 'u-3'], unplaced: false }, limit: 50, offset: 0 });
      expect(prepared.length).toBeGreaterThan(before);
    } finally {
      store.sqlite.prepare = prepare;
    }
  });
});
