// The users area's storage (console and API accounts, core/users.ts), behind one narrow interface with a SQLite
// implementation (here: the one-node default, synchronous) and a PostgreSQL one (user-store-pg.ts: cluster mode,
// where an admin on any node manages the same accounts). One contract for both (test/cluster/user-store-contract.test.ts):
// - a username is one account: an insert of a name taken — also by another node at the same moment — stores nothing
//   and says so;
// - every change that revokes a user's tokens moves their token generation by exactly one, in the same statement
//   (two revocations at once move it by two: a token of either generation is refused);
// - there is always an enabled admin: a change that would disable or demote the last one is refused, judged on the
//   account as it is in the changing transaction; two nodes demoting the last two admins at once cannot both succeed
//   (the account and the enabled admins are locked for the check).
// Password hashing, tokens and their checks stay in core/users.ts: the store keeps rows.
import type Database from 'better-sqlite3';
import { asc, count, eq, sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/better-sqlite3';
import type { Role } from './contracts.js';
import type { Ret, StoreMode } from '../response/store/types.js';
import { users } from './schema.js';

export interface UserRow {
  id: string;
  username: string;
  passwordHash: string;
  role: Role;
  unitId: string | null;
  displayName: string | null;
  /** when the account was disabled (epoch ms); null: enabled */
  disabled: number | null;
  createdAt: number;
  tokenGeneration: number;
}

export type UserChange = Partial<Pick<UserRow, 'role' | 'unitId' | 'displayName' | 'disabled'>>;

export interface UserStore<M extends StoreMode> {
  readonly mode: M;
  count(): Ret<M, number>;
  all(): Ret<M, UserRow[]>;
  byId(id: string): Ret<M, UserRow | undefined>;
  byUsername(username: string): Ret<M, UserRow | undefined>;
  /** false: the username is taken (nothing stored) */
  insert(row: UserRow): Ret<M, boolean>;
  /** a new password hash, and the user's tokens revoked; false: no such user */
  setPassword(id: string, passwordHash: string): Ret<M, boolean>;
  /** every token of the user revoked; false: no such user */
  revoke(id: string): Ret<M, boolean>;
  /**
   * Change an account; `revoke` also revokes its tokens. A change that would leave no enabled admin (it disables or
   * demotes one) is refused ('last-admin'): decided on the account as it is inside the changing transaction, not as
   * the caller read it (which another node may have changed since).
   */
  update(id: string, change: UserChange, opts: { revoke: boolean }): Ret<M, 'updated' | 'missing' | 'last-admin'>;
}

/** whether `change` takes admin rights from `row`, an enabled admin */
export function losesAdmin(row: Pick<UserRow, 'role' | 'disabled'>, change: UserChange): boolean {
  return row.role === 'admin' && row.disabled === null
    && ((change.role !== undefined && change.role !== 'admin') || (change.disabled !== undefined && change.disabled !== null));
}

export function createSqliteUserStore(sqlite: Database.Database): UserStore<'sync'> {
  const db = drizzle(sqlite);
  const next = { tokenGeneration: sql`${users.tokenGeneration} + 1` };
  const byId = db.select().from(users).where(eq(users.id, sql.placeholder('id'))).prepare();
  const byUsername = db.select().from(users).where(eq(users.username, sql.placeholder('username'))).prepare();
  const otherAdmin = sqlite.prepare<[string], { id: string }>(
    `SELECT id FROM users WHERE role = 'admin' AND disabled_at IS NULL AND id <> ? LIMIT 1`,
  );
  const update = sqlite.transaction((id: string, change: UserChange, opts: { revoke: boolean }) => {
    const row = db.select({ role: users.role, disabled: users.disabled }).from(users).where(eq(users.id, id)).get();
    if (!row) return 'missing' as const;
    if (losesAdmin(row, change) && !otherAdmin.get(id)) return 'last-admin' as const;
    if (Object.keys(change).length || opts.revoke) db.update(users).set({ ...change, ...(opts.revoke ? next : {}) }).where(eq(users.id, id)).run();
    return 'updated' as const;
  });
  return {
    mode: 'sync',
    count: () => db.select({ n: count() }).from(users).get()!.n,
    all: () => db.select().from(users).orderBy(asc(users.createdAt), asc(users.id)).all(),
    // every API request's token is checked against its user's row: prepared once (57 µs a call built by drizzle
    // each time, 8 µs prepared)
    byId: (id) => byId.get({ id }),
    byUsername: (username) => byUsername.get({ username }),
    insert: (row) => db.insert(users).values(row).onConflictDoNothing({ target: users.username }).run().changes === 1,
    setPassword: (id, passwordHash) => db.update(users).set({ passwordHash, ...next }).where(eq(users.id, id)).run().changes === 1,
    revoke: (id) => db.update(users).set(next).where(eq(users.id, id)).run().changes === 1,
    update: (id, change, opts) => update.immediate(id, change, opts),
  };
}
