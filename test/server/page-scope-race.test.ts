// A device page is read a slice at a time (core/page-slices.ts), each slice in a turn of its own; the reader's scope
// picks the page's ids first. A device whose resident moves out of the reader's units between those two moments must
// not be shown with where it is now: each slice's rows are checked against the scope again. Real gateway, real HTTP;
// the move is made while the page is being read, between its second and third slices.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { PAGE_SLICE } from '../../core/page-slices.js';

describe('a device page read in slices and a resident moved meanwhile', () => {
  let t: TestGateway;
  beforeAll(async () => { t = await startTestGateway(); }, 60_000);
  afterAll(async () => t?.stop());

  it('leaves out the devices that left the reader\'s units after the page\'s ids were read', async () => {
    const unit = async (body: Record<string, unknown>) => {
      const r = await t.api('POST', '/api/units', body);
      expect(r.status, JSON.stringify(r.body)).toBe(201);
      return r.body.id as string;
    };
    const district = await unit({ name: 'District', tier: 'district' });
    const grid1 = await unit({ name: 'Grid 1', tier: 'grid', parentId: district });
    const grid2 = await unit({ name: 'Grid 2', tier: 'grid', parentId: district });
    expect((await t.api('POST', '/api/users', { username: 'steward1', password: 'steward1-password-123', role: 'steward', unitId: grid1 })).status).toBe(201);
    const steward = await t.token('steward1', 'steward1-password-123');

    const { registry } = t.gw;
    const size = 2 * PAGE_SLICE + 50;
    await registry.importDevices(Array.from({ length: size }, (_, i) => ({ line: i + 2, serial: `RACE-${i}`, kind: 'call-phone' as const })), 'test');
    const ids = (await t.api('GET', `/api/devices?limit=${size}`)).body.items.map((d: { id: string }) => d.id) as string[];
    expect(ids).toHaveLength(size);
    // three residents of grid 1: the page's first two slices are the first two's devices, the third slice the third's
    const residents = ['Zhao', 'Qian', 'Sun'].map((name) => registry.createResident({ name, unitId: grid1 }).id);
    ids.forEach((id, i) => registry.bind(id, residents[Math.min(2, Math.floor(i / PAGE_SLICE))]!));

    // Sun moves to grid 2 while the steward's page is read: as its second slice's rows are read, after its ids
    const rowsOf = registry.rowsOf;
    let slices = 0;
    (registry as { rowsOf: unknown }).rowsOf = Object.assign((slice: readonly string[]) => {
      if (++slices === 2) registry.updateResident(residents[2]!, { unitId: grid2 });
      return rowsOf(slice);
    }, { sql: rowsOf.sql });
    let page;
    try {
      page = await t.api('GET', `/api/devices?limit=${size}`, undefined, steward);
    } finally {
      (registry as { rowsOf: unknown }).rowsOf = rowsOf;
    }
    expect(page.status).toBe(200);
    expect(slices, 'the page was read in three slices').toBe(3);
    const shown = page.body.items as { id: string; unitId: string | null }[];
    expect(shown.map((d) => d.id)).toEqual(ids.slice(0, 2 * PAGE_SLICE));
    expect(shown.every((d) => d.unitId === grid1)).toBe(true);
    // and the next page read shows the steward none of Sun's devices, nor counts them
    const after = await t.api('GET', `/api/devices?limit=${size}`, undefined, steward);
    expect(after.body.total).toBe(2 * PAGE_SLICE);
  });
});
