// Which units a user may see: their unit's subtree (a steward: one grid unit), or everything without a unit.
// One source of truth with the incidents' visibility: the response network's cached tree.
import type { AuthUser } from '../core/users.js';
import type { Network } from '../response/network.js';

export function createScope(network: Pick<Network, 'subtree'>) {
  return (user: AuthUser): string[] | null => (user.unitId ? [...network.subtree(user.unitId)] : null);
}
