import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConflictError, NotFoundError, ValidationError } from '../../core/errors.js';
import { createNetwork } from '../../response/network.js';
import { systemClock } from '../../response/clock.js';
import { buildTree, ingest, log, openHarness, source, sos, type Harness } from './helpers.js';

describe('network: units in tiers, staff, visibility', () => {
  let h: Harness;
  beforeEach(() => {
    h = openHarness({ start: false });
    buildTree(h.response.network);
  });
  afterEach(async () => {
    await h.close();
  });

  it('ancestors, subtree and canSee follow the tree', () => {
    const n = h.response.network;
    expect(n.ancestors('g1').map((u) => u.id)).toEqual(['c1', 's1', 'd1']);
    expect(n.ancestors('d1')).toEqual([]);
    expect(n.parentOf('g3')?.id).toBe('c2');
    expect([...n.subtree('s1')].sort()).toEqual(['c1', 'g1', 'g2', 's1']);
    expect([...n.subtree('d1')].sort()).toEqual(['c1', 'c2', 'd1', 'g1', 'g2', 'g3', 's1', 's2']);
    expect(n.subtree('nope').size).toBe(0);
    // no unit: sees all; a unit: its subtree only
    expect(n.canSee(null, 'g4')).toBe(true);
    expect(n.canSee('g1', 'g1')).toBe(true);
    expect(n.canSee('g1', 'g2')).toBe(false);
    expect(n.canSee('c1', 'g2')).toBe(true);
    expect(n.canSee('d1', 'g3')).toBe(true);
    expect(n.canSee('d1', 'g4')).toBe(false);
    // an incident of an unplaced resident belongs to every district centre, to nobody below
    expect(n.canSee('d2', null)).toBe(true);
    expect(n.canSee('s1', null)).toBe(false);
    expect(n.listUnits('c1').map((u) => u.id)).toEqual(['c1', 'g1', 'g2']);
    expect(n.listUnits()).toHaveLength(12);
  });

  it('validates tier order and parents, with errors naming the field', () => {
    const n = h.response.network;
    const fails = (fn: () => unknown) => {
      try {
        fn();
      } catch (e) {
        return e as ValidationError;
      }
      throw new Error('expected a failure');
    };
    expect(fails(() => n.createUnit({ name: 'x', tier: 'grid' })).details).toMatchObject({ field: 'parentId' });
    expect(fails(() => n.createUnit({ name: 'x', tier: 'district', parentId: 'd1' })).message).toMatch(/top tier/);
    expect(fails(() => n.createUnit({ name: 'x', tier: 'street', parentId: 'g1' })).message).toMatch(/cannot hang under a grid/);
    expect(fails(() => n.createUnit({ name: 'x', tier: 'community', parentId: 'c1' })).message).toMatch(/cannot hang under a community/);
    expect(fails(() => n.createUnit({ name: 'x', tier: 'grid', parentId: 'ghost' })).message).toMatch(/does not exist/);
    expect(fails(() => n.createUnit({ name: 'x', tier: 'bogus' as never, parentId: 'c1' })).details).toMatchObject({ field: 'tier' });
    expect(fails(() => n.createUnit({ name: 'x', tier: 'grid', parentId: 'c1', webhook: 'ftp://x' })).details).toMatchObject({ field: 'webhook' });
    expect(fails(() => n.createUnit({ id: 'g1', name: 'x', tier: 'grid', parentId: 'c1' }))).toBeInstanceOf(ConflictError);
    expect(fails(() => n.createUnit({ id: 'bad id!', name: 'x', tier: 'grid', parentId: 'c1' })).details).toMatchObject({ field: 'id' });
    // skipping a tier is allowed (a community station straight under a district), the order is not
    expect(n.createUnit({ id: 'c9', name: 'c9', tier: 'community', parentId: 'd2' }).parentId).toBe('d2');
    // a unit cannot become a tier that no longer fits its children
    expect(fails(() => n.updateUnit('c1', { tier: 'grid' })).message).toMatch(/cannot hold it/);
    expect(fails(() => n.updateUnit('nope', { name: 'x' }))).toBeInstanceOf(NotFoundError);
  });

  it('moving a unit refreshes the cached tree at once', () => {
    const n = h.response.network;
    expect(n.canSee('s1', 'g3')).toBe(false);
    n.updateUnit('c2', { parentId: 's1' });
    expect(n.canSee('s1', 'g3')).toBe(true);
    expect(n.ancestors('g3').map((u) => u.id)).toEqual(['c2', 's1', 'd1']);
    // a second service over the same file sees the change after refresh()
    const other = createNetwork({ store: h.store, log, clock: systemClock });
    expect(other.ancestors('g3')[1]!.id).toBe('s1');
  });

  it('refuses to delete a unit that is still in use', () => {
    const n = h.response.network;
    expect(() => n.deleteUnit('c1')).toThrow(ConflictError);
    const s = n.createStaff({ name: 'Wang', role: 'chief-steward', unitId: 'g2' });
    try {
      n.deleteUnit('g2');
      throw new Error('expected a conflict');
    } catch (e) {
      expect((e as ConflictError).details).toMatchObject({ staff: 1, units: 0 });
    }
    ingest(h, sos(), source({ unitId: 'g3' }, h.clock.now()));
    expect(() => n.deleteUnit('g3')).toThrow(/still in use/);
    n.deleteStaff(s.id);
    n.deleteUnit('g2');
    expect(n.getUnit('g2')).toBeUndefined();
    expect(n.subtree('c1').has('g2')).toBe(false);
  });

  it('staff with roles and an on-duty flag, listed by unit, duty and visibility', () => {
    const n = h.response.network;
    const a = n.createStaff({ name: 'Zhang', role: 'chief-steward', unitId: 'g1', onDuty: true });
    const b = n.createStaff({ name: 'Li', role: 'nurse', unitId: 'g1' });
    n.createStaff({ name: 'Chen', role: 'nurse', unitId: 'g3', onDuty: true });
    expect(b.onDuty).toBe(false);
    expect(n.setOnDuty(b.id, true).onDuty).toBe(true);
    expect(n.listStaff({ unitId: 'g1', onDuty: true }).map((s) => s.name).sort()).toEqual(['Li', 'Zhang']);
    expect(n.listStaff({ scope: 's1' }).map((s) => s.name).sort()).toEqual(['Li', 'Zhang']);
    expect(n.listStaff({ onDuty: true })).toHaveLength(3);
    expect(n.updateStaff(a.id, { role: 'nurse', unitId: 'g2' })).toMatchObject({ role: 'nurse', unitId: 'g2', onDuty: true });
    expect(() => n.createStaff({ name: 'X', role: 'janitor' as never, unitId: 'g1' })).toThrow(/role/);
    expect(() => n.createStaff({ name: 'X', role: 'nurse', unitId: 'ghost' })).toThrow(/unitId/);
    expect(() => n.setOnDuty('nope', true)).toThrow(NotFoundError);
  });
});
