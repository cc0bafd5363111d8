// What a user may see. One rule for incidents, residents, devices and observations, from the response network's
// cached tree (response/network.ts): a user with no unit sees everything; a unit-bound user sees their unit's subtree
// (visibility rolls up: every tier above a unit sees it); the unplaced — no unit, or a unit that does not exist —
// belong to the roots of the network (the district call centre). Whoever may see an incident may see its resident,
// her contacts and the device that raised it.
import type { AuthUser } from '../core/users.js';
import type { Network, UnitScope } from '../response/network.js';

export interface Scope {
  /** null: everything; else the units of the user's subtree and whether the unplaced are theirs (list queries) */
  of(user: AuthUser): UnitScope | null;
  /** may the user see what belongs to this unit (null/undefined: unplaced)? */
  canSee(user: AuthUser, unitId: string | null | undefined): boolean;
  /** a 400 naming the field and listing the valid ids when the unit does not exist */
  requireUnit(field: string, unitId: string): void;
}

export function createScope(network: Pick<Network, 'scopeOf' | 'canSee' | 'requireKnownUnit'>): Scope {
  return {
    of: (user) => (user.unitId ? network.scopeOf(user.unitId) : null),
    canSee: (user, unitId) => network.canSee(user.unitId, unitId),
    requireUnit: (field, unitId) => void network.requireKnownUnit(field, unitId),
  };
}
