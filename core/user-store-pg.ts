// The users area in PostgreSQL (node-postgres through drizzle): cluster mode's shared store. The contract is
// core/user-store.ts's. A revocation is `token_generation + 1` in the UPDATE itself; a change locks its account and the
// enabled admins (SELECT … FOR UPDATE) and decides the last-admin question on them, so two nodes demoting the last two
// admins at once are taken one after the other and the second sees that it would leave none.
import type pg from 'pg';
import { and, asc, count, eq, isNull, or, sql } from 'drizzle-orm';
import { pgUsers } from './pg-schema.js';
import { onPool, type Atomic, type PgExecutor, type Transactional } from './pg-bind.js';
import { losesAdmin, type UserStore } from './user-store.js';

export type PgUserStore = Transactional<UserStore<'async'>>;

const next = { tokenGeneration: sql`${pgUsers.tokenGeneration} + 1` };

function bound(t: PgExecutor, atomic: Atomic): UserStore<'async'> {
  const byId = async (w: PgExecutor, id: string) => (await w.select().from(pgUsers).where(eq(pgUsers.id, id)))[0];
  return {
    mode: 'async',
    async count() {
      return (await t.select({ n: count() }).from(pgUsers))[0]!.n;
    },
    // ids compared as bytes, as SQLite does (not by the database's collation)
    all: () => t.select().from(pgUsers).orderBy(asc(pgUsers.createdAt), sql`${pgUsers.id} COLLATE "C"`),
    byId: (id) => byId(t, id),
    async byUsername(username) {
      return (await t.select().from(pgUsers).where(eq(pgUsers.username, username)))[0];
    },
    async insert(row) {
      const stored = await t.insert(pgUsers).values(row).onConflictDoNothing({ target: pgUsers.username }).returning({ id: pgUsers.id });
      return stored.length === 1;
    },
    async setPassword(id, passwordHash) {
      return (await t.update(pgUsers).set({ passwordHash, ...next }).where(eq(pgUsers.id, id)).returning({ id: pgUsers.id })).length === 1;
    },
    async revoke(id) {
      return (await t.update(pgUsers).set(next).where(eq(pgUsers.id, id)).returning({ id: pgUsers.id })).length === 1;
    },
    update: (id, change, opts) => atomic(async (w) => {
      // the account and every enabled admin locked, in one order: a concurrent change of any of them waits here, and
      // the decision is made on the rows as they are now
      const locked = await w.select({ id: pgUsers.id, role: pgUsers.role, disabled: pgUsers.disabled }).from(pgUsers)
        .where(or(eq(pgUsers.id, id), and(eq(pgUsers.role, 'admin'), isNull(pgUsers.disabled))))
        .orderBy(sql`${pgUsers.id} COLLATE "C"`).for('update');
      const row = locked.find((r) => r.id === id);
      if (!row) return 'missing';
      if (losesAdmin(row, change) && !locked.some((r) => r.id !== id && r.role === 'admin' && r.disabled === null)) return 'last-admin';
      if (Object.keys(change).length || opts.revoke) await w.update(pgUsers).set({ ...change, ...(opts.revoke ? next : {}) }).where(eq(pgUsers.id, id));
      return 'updated';
    }),
  };
}

export function createPgUserStore(pool: pg.Pool): PgUserStore {
  return onPool(pool, bound);
}
