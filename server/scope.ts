// Which units a user may see: their unit's subtree (a steward: one grid unit), or everything without a unit.
import type Database from 'better-sqlite3';
import type { AuthUser } from '../core/users.js';

export function createScope(sqlite: Database.Database) {
  const subtree = sqlite.prepare(`with recursive sub(id) as (select ? union select u.id from units u join sub on u.parent_id = sub.id)
    select id from sub`).pluck();
  return (user: AuthUser): string[] | null => (user.unitId ? (subtree.all(user.unitId) as string[]) : null);
}
