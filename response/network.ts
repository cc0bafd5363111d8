// The response network: district centre → street centre → community station → grid unit, and its staff.
// The tree is small and read on every alarm and every list, so it is cached in memory and rebuilt on change.
import type { Logger } from 'pino';
import type { Store } from '../core/db.js';
import type { Clock } from './clock.js';
import { ConflictError, NotFoundError, ValidationError } from '../core/errors.js';
import { STAFF_ROLES, UNIT_TIERS, type UnitTier } from './schema.js';
import { newId, UNIT_ID_PATTERN } from './ids.js';
import type { UnitScope } from '../core/unit-scope.js';
import { isChannelName } from './notifiers/channels.js';

export type { UnitScope };

export type StaffRole = (typeof STAFF_ROLES)[number];

export interface Unit {
  id: string;
  name: string;
  tier: UnitTier;
  parentId: string | null;
  phone: string | null;
  webhook: string | null;
  createdAt: number;
}

export interface Staff {
  id: string;
  name: string;
  role: StaffRole;
  unitId: string;
  phone: string | null;
  userId: string | null;
  onDuty: boolean;
  createdAt: number;
}

export interface UnitInput {
  id?: string;
  name: string;
  tier: UnitTier;
  parentId?: string | null;
  phone?: string | null;
  webhook?: string | null;
}
export type UnitPatch = Partial<Omit<UnitInput, 'id'>>;

export interface StaffInput {
  id?: string;
  name: string;
  role: StaffRole;
  unitId: string;
  phone?: string | null;
  userId?: string | null;
  onDuty?: boolean;
}
export type StaffPatch = Partial<Omit<StaffInput, 'id'>>;

export interface Network {
  /** reload the tree from the database (after a change made outside this module) */
  refresh(): void;
  getUnit(id: string): Unit | undefined;
  requireUnit(id: string): Unit;
  /** units a user whose unit is `scope` may see (its subtree); `null` = all */
  listUnits(scope?: string | null): Unit[];
  createUnit(input: UnitInput): Unit;
  updateUnit(id: string, patch: UnitPatch): Unit;
  deleteUnit(id: string): void;
  parentOf(id: string): Unit | undefined;
  /** the chain above a unit, nearest first, without the unit itself */
  ancestors(id: string): Unit[];
  /** the unit and everything below it; empty for an unknown unit */
  subtree(id: string): ReadonlySet<string>;
  /**
   * May a user of unit `userUnitId` see an incident (resident, device) of unit `incidentUnitId`? No user unit = sees
   * all. Visibility rolls up: every tier above a unit sees it. Something with no unit, or with a unit that no longer
   * exists (data from before units were checked), is unplaced and belongs to the root of the network (the district
   * call centre), never to nobody.
   */
  canSee(userUnitId: string | null | undefined, incidentUnitId: string | null | undefined): boolean;
  /** Is this unit a root of the network (a district call centre, or a unit with no parent)? Roots see the unplaced. */
  isRoot(id: string): boolean;
  /** What a user of unit `scope` may see, for list queries: their subtree, and the unplaced if their unit is a root. */
  scopeOf(scope: string): UnitScope;
  /** 400 naming the field and listing the valid ids when `unitId` is not a unit of the network. */
  requireKnownUnit(field: string, unitId: string): Unit;
  listStaff(filter?: { unitId?: string; onDuty?: boolean; scope?: string | null }): Staff[];
  getStaff(id: string): Staff | undefined;
  requireStaff(id: string): Staff;
  createStaff(input: StaffInput): Staff;
  updateStaff(id: string, patch: StaffPatch): Staff;
  deleteStaff(id: string): void;
  setOnDuty(id: string, onDuty: boolean): Staff;
}

const tierIndex = (t: UnitTier) => UNIT_TIERS.indexOf(t);

interface UnitDbRow {
  id: string;
  name: string;
  tier: UnitTier;
  parent_id: string | null;
  phone: string | null;
  webhook: string | null;
  created_at: number;
}
interface StaffDbRow {
  id: string;
  name: string;
  role: StaffRole;
  unit_id: string;
  phone: string | null;
  user_id: string | null;
  on_duty: number;
  created_at: number;
}

const toUnit = (r: UnitDbRow): Unit => ({
  id: r.id, name: r.name, tier: r.tier, parentId: r.parent_id, phone: r.phone, webhook: r.webhook, createdAt: r.created_at,
});
const toStaff = (r: StaffDbRow): Staff => ({
  id: r.id, name: r.name, role: r.role, unitId: r.unit_id, phone: r.phone, userId: r.user_id, onDuty: r.on_duty === 1,
  createdAt: r.created_at,
});

// a unit's webhook names a notification channel (response/notifiers/channels.ts); the route checks that the
// channel is configured. Checked when given, so a URL stored before channels does not block other edits.
function checkWebhook(value: string | null | undefined, field: string) {
  if (value === null || value === undefined || value === '') return;
  if (!isChannelName(value)) {
    throw new ValidationError(
      `${field}: give the name of a notification channel an admin configured (notifiers.channels), not a URL`,
      { field },
    );
  }
}

export function createNetwork(deps: { store: Store; log: Logger; clock: Clock }): Network {
  const { sqlite } = deps.store;
  const log = deps.log.child({ module: 'network' });
  const q = {
    units: sqlite.prepare<[], UnitDbRow>('SELECT * FROM units'),
    insertUnit: sqlite.prepare(
      'INSERT INTO units (id, name, tier, parent_id, phone, webhook, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
    ),
    updateUnit: sqlite.prepare('UPDATE units SET name = ?, tier = ?, parent_id = ?, phone = ?, webhook = ? WHERE id = ?'),
    deleteUnit: sqlite.prepare('DELETE FROM units WHERE id = ?'),
    staffOfUnit: sqlite.prepare<[string], { n: number }>('SELECT count(*) AS n FROM staff WHERE unit_id = ?'),
    residentsOfUnit: sqlite.prepare<[string], { n: number }>('SELECT count(*) AS n FROM residents WHERE unit_id = ?'),
    usersOfUnit: sqlite.prepare<[string], { n: number }>('SELECT count(*) AS n FROM users WHERE unit_id = ?'),
    openIncidentsOfUnit: sqlite.prepare<[string, string], { n: number }>(
      `SELECT count(*) AS n FROM incidents WHERE (unit_id = ? OR tier_unit_id = ?) AND status NOT IN ('resolved', 'cancelled')`,
    ),
    staff: sqlite.prepare<[string], StaffDbRow>('SELECT * FROM staff WHERE id = ?'),
    allStaff: sqlite.prepare<[], StaffDbRow>('SELECT * FROM staff ORDER BY unit_id, name'),
    insertStaff: sqlite.prepare(
      'INSERT INTO staff (id, name, role, unit_id, phone, user_id, on_duty, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
    ),
    updateStaff: sqlite.prepare(
      'UPDATE staff SET name = ?, role = ?, unit_id = ?, phone = ?, user_id = ?, on_duty = ? WHERE id = ?',
    ),
    deleteStaff: sqlite.prepare('DELETE FROM staff WHERE id = ?'),
    setOnDuty: sqlite.prepare('UPDATE staff SET on_duty = ? WHERE id = ?'),
  };

  let units = new Map<string, Unit>();
  let children = new Map<string, string[]>();
  const subtrees = new Map<string, ReadonlySet<string>>();

  function refresh() {
    units = new Map(q.units.all().map((r) => [r.id, toUnit(r)]));
    children = new Map();
    for (const u of units.values()) {
      if (!u.parentId) continue;
      const list = children.get(u.parentId) ?? [];
      list.push(u.id);
      children.set(u.parentId, list);
    }
    subtrees.clear();
  }
  refresh();

  function subtree(id: string): ReadonlySet<string> {
    const cached = subtrees.get(id);
    if (cached) return cached;
    const out = new Set<string>();
    if (units.has(id)) {
      const stack = [id];
      while (stack.length) {
        const cur = stack.pop()!;
        if (out.has(cur)) continue; // a cycle cannot be created through this module; guard anyway
        out.add(cur);
        stack.push(...(children.get(cur) ?? []));
      }
    }
    subtrees.set(id, out);
    return out;
  }

  function isRoot(id: string): boolean {
    const u = units.get(id);
    return !!u && (u.tier === 'district' || !u.parentId || !units.has(u.parentId));
  }

  function ancestors(id: string): Unit[] {
    const out: Unit[] = [];
    const seen = new Set([id]);
    let cur = units.get(id)?.parentId;
    while (cur && !seen.has(cur)) {
      const u = units.get(cur);
      if (!u) break;
      out.push(u);
      seen.add(cur);
      cur = u.parentId;
    }
    return out;
  }

  function requireUnit(id: string): Unit {
    const u = units.get(id);
    if (!u) throw new NotFoundError('unit', id);
    return u;
  }

  /** Tier order: a district has no parent; anything else hangs under a unit of a higher tier. */
  function checkPlacement(id: string | undefined, tier: UnitTier, parentId: string | null) {
    if (!UNIT_TIERS.includes(tier)) {
      throw new ValidationError(`tier: must be one of ${UNIT_TIERS.join(', ')}`, { field: 'tier' });
    }
    if (tier === 'district') {
      if (parentId) throw new ValidationError('parentId: a district centre is the top tier and has no parent', { field: 'parentId' });
      return;
    }
    if (!parentId) {
      throw new ValidationError(
        `parentId: a ${tier} unit needs a parent of a higher tier (${UNIT_TIERS.slice(0, tierIndex(tier)).join(', ')})`,
        { field: 'parentId' },
      );
    }
    const parent = units.get(parentId);
    if (!parent) throw new ValidationError(`parentId: unit "${parentId}" does not exist; create it first`, { field: 'parentId' });
    if (parent.id === id) throw new ValidationError('parentId: a unit cannot be its own parent', { field: 'parentId' });
    if (tierIndex(parent.tier) >= tierIndex(tier)) {
      throw new ValidationError(
        `parentId: a ${tier} unit cannot hang under a ${parent.tier} unit; tiers go ${UNIT_TIERS.join(' → ')}`,
        { field: 'parentId', parentTier: parent.tier },
      );
    }
    if (id) {
      for (const childId of children.get(id) ?? []) {
        const child = units.get(childId)!;
        if (tierIndex(child.tier) <= tierIndex(tier)) {
          throw new ValidationError(`tier: unit "${childId}" below it is a ${child.tier} unit; a ${tier} unit cannot hold it`, {
            field: 'tier',
          });
        }
      }
    }
  }

  function checkName(name: unknown) {
    if (typeof name !== 'string' || !name.trim()) throw new ValidationError('name: give the unit a name', { field: 'name' });
  }

  function listStaff(filter: { unitId?: string; onDuty?: boolean; scope?: string | null } = {}): Staff[] {
    let rows = q.allStaff.all().map(toStaff);
    if (filter.unitId) rows = rows.filter((s) => s.unitId === filter.unitId);
    if (filter.onDuty !== undefined) rows = rows.filter((s) => s.onDuty === filter.onDuty);
    if (filter.scope) {
      const visible = subtree(filter.scope);
      rows = rows.filter((s) => visible.has(s.unitId));
    }
    return rows;
  }

  function requireStaff(id: string): Staff {
    const r = q.staff.get(id);
    if (!r) throw new NotFoundError('staff member', id);
    return toStaff(r);
  }

  function requireKnownUnit(field: string, unitId: string): Unit {
    const u = units.get(unitId);
    if (u) return u;
    const ids = [...units.keys()].sort();
    const named = ids.slice(0, 40).map((id) => `${id} (${units.get(id)!.name})`).join(', ');
    const shown = ids.length > 40 ? `${named} … and ${ids.length - 40} more (GET /api/units)` : named;
    throw new ValidationError(
      ids.length
        ? `${field}: unit "${unitId}" does not exist; use one of: ${shown}`
        : `${field}: unit "${unitId}" does not exist, and the network has no units yet: create them first (POST /api/units)`,
      { field, validUnitIds: ids.slice(0, 500) },
    );
  }

  function checkStaff(s: { name: string; role: StaffRole; unitId: string }) {
    if (typeof s.name !== 'string' || !s.name.trim()) throw new ValidationError('name: give the staff member a name', { field: 'name' });
    if (!STAFF_ROLES.includes(s.role)) {
      throw new ValidationError(`role: must be one of ${STAFF_ROLES.join(', ')}`, { field: 'role' });
    }
    requireKnownUnit('unitId', s.unitId);
  }

  return {
    refresh,
    getUnit: (id) => units.get(id),
    requireUnit,
    listUnits(scope) {
      const all = [...units.values()].sort(
        (a, b) => tierIndex(a.tier) - tierIndex(b.tier) || a.name.localeCompare(b.name) || a.id.localeCompare(b.id),
      );
      if (!scope) return all;
      const visible = subtree(scope);
      return all.filter((u) => visible.has(u.id));
    },
    createUnit(input) {
      checkName(input.name);
      const id = input.id ?? newId('unit');
      if (!new RegExp(UNIT_ID_PATTERN).test(id)) {
        throw new ValidationError('id: 1–64 letters, digits, ".", "_" or "-", starting with a letter or digit', { field: 'id' });
      }
      if (units.has(id)) throw new ConflictError(`unit "${id}" already exists`, { id });
      const parentId = input.parentId ?? null;
      checkPlacement(undefined, input.tier, parentId);
      checkWebhook(input.webhook, 'webhook');
      const unit: Unit = {
        id, name: input.name.trim(), tier: input.tier, parentId, phone: input.phone ?? null, webhook: input.webhook || null,
        createdAt: deps.clock.now(),
      };
      q.insertUnit.run(unit.id, unit.name, unit.tier, unit.parentId, unit.phone, unit.webhook, unit.createdAt);
      refresh();
      log.info({ unitId: id, tier: unit.tier, parentId }, 'unit created');
      return unit;
    },
    updateUnit(id, patch) {
      const cur = requireUnit(id);
      const next: Unit = {
        ...cur,
        ...(patch.name !== undefined ? { name: patch.name } : {}),
        ...(patch.tier !== undefined ? { tier: patch.tier } : {}),
        ...(patch.parentId !== undefined ? { parentId: patch.parentId } : {}),
        ...(patch.phone !== undefined ? { phone: patch.phone } : {}),
        ...(patch.webhook !== undefined ? { webhook: patch.webhook || null } : {}),
      };
      checkName(next.name);
      checkPlacement(id, next.tier, next.parentId);
      // strict tier order already rules out cycles; a parent inside the unit's own subtree is refused explicitly
      if (next.parentId && subtree(id).has(next.parentId)) {
        throw new ValidationError('parentId: a unit cannot hang under its own descendant', { field: 'parentId' });
      }
      if (patch.webhook !== undefined) checkWebhook(patch.webhook, 'webhook');
      q.updateUnit.run(next.name.trim(), next.tier, next.parentId, next.phone, next.webhook, id);
      refresh();
      log.info({ unitId: id }, 'unit updated');
      return units.get(id)!;
    },
    deleteUnit(id) {
      requireUnit(id);
      const blockers = {
        units: (children.get(id) ?? []).length,
        staff: q.staffOfUnit.get(id)!.n,
        residents: q.residentsOfUnit.get(id)!.n,
        users: q.usersOfUnit.get(id)!.n,
        openIncidents: q.openIncidentsOfUnit.get(id, id)!.n,
      };
      if (Object.values(blockers).some((n) => n > 0)) {
        throw new ConflictError(
          `unit "${id}" is still in use; move or remove what hangs on it first`,
          { id, ...blockers },
        );
      }
      q.deleteUnit.run(id);
      refresh();
      log.info({ unitId: id }, 'unit deleted');
    },
    parentOf: (id) => {
      const p = units.get(id)?.parentId;
      return p ? units.get(p) : undefined;
    },
    ancestors,
    subtree,
    canSee(userUnitId, incidentUnitId) {
      if (!userUnitId) return true;
      if (!incidentUnitId || !units.has(incidentUnitId)) return isRoot(userUnitId);
      return subtree(userUnitId).has(incidentUnitId);
    },
    isRoot,
    scopeOf: (scope) => ({ unitIds: [...subtree(scope)], unplaced: isRoot(scope) }),
    requireKnownUnit,
    listStaff,
    getStaff: (id) => {
      const r = q.staff.get(id);
      return r ? toStaff(r) : undefined;
    },
    requireStaff,
    createStaff(input) {
      checkStaff(input);
      const s: Staff = {
        id: input.id ?? newId('stf'),
        name: input.name.trim(),
        role: input.role,
        unitId: input.unitId,
        phone: input.phone ?? null,
        userId: input.userId ?? null,
        onDuty: input.onDuty ?? false,
        createdAt: deps.clock.now(),
      };
      if (q.staff.get(s.id)) throw new ConflictError(`staff member "${s.id}" already exists`, { id: s.id });
      q.insertStaff.run(s.id, s.name, s.role, s.unitId, s.phone, s.userId, s.onDuty ? 1 : 0, s.createdAt);
      log.info({ staffId: s.id, unitId: s.unitId }, 'staff created');
      return s;
    },
    updateStaff(id, patch) {
      const cur = requireStaff(id);
      const next: Staff = {
        ...cur,
        ...(patch.name !== undefined ? { name: patch.name } : {}),
        ...(patch.role !== undefined ? { role: patch.role } : {}),
        ...(patch.unitId !== undefined ? { unitId: patch.unitId } : {}),
        ...(patch.phone !== undefined ? { phone: patch.phone } : {}),
        ...(patch.userId !== undefined ? { userId: patch.userId } : {}),
        ...(patch.onDuty !== undefined ? { onDuty: patch.onDuty } : {}),
      };
      checkStaff(next);
      q.updateStaff.run(next.name.trim(), next.role, next.unitId, next.phone, next.userId, next.onDuty ? 1 : 0, id);
      return requireStaff(id);
    },
    deleteStaff(id) {
      requireStaff(id);
      q.deleteStaff.run(id);
      log.info({ staffId: id }, 'staff deleted');
    },
    setOnDuty(id, onDuty) {
      requireStaff(id);
      q.setOnDuty.run(onDuty ? 1 : 0, id);
      log.info({ staffId: id, onDuty }, 'staff duty changed');
      return requireStaff(id);
    },
  };
}
