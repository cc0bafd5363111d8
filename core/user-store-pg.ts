// The users area in PostgreSQL (node-postgres through drizzle): cluster mode's shared store. The contract is
// core/user-store.ts's. A revocation is `token_generation + 1` in the UPDATE itself; the last-admin check locks the
// enabled admins (SELECT … FOR UPDATE) in the changing transaction, so two nodes demoting the last two admins at once
// are taken one after the other and the second sees that it would leave none.
import type pg from 'pg';
import { and, asc, count, eq, isNull, sql } from 'drizzle-orm';
import { pgUsers } from './pg-schema.js';
import { onPool, type Atomic, type PgExecutor, type Transactional } from '../gateway/pg-bind.js';
import type { UserStore } from './user-store.js';

export type PgUserStore = Transactional<UserStore<'async'>>;

const next = { tokenGeneration: sql`${pgUsers.tokenGeneration} + 1` };

function bound(t: PgExecutor, atomic: Atomic): UserStore<'async'> {
  const byId = async (w: PgExecutor, id: string) => (await w.select().from(pgUsers).where(eq(pgUsers.id, id)))[0];
  return {
    mode: 'async',
    async count() {
      return (await t.select({ n: count() }).from(pgUsers))[0]!.n;
    },
    all: () => t.select().from(pgUsers).orderBy(asc(pgUsers.createdAt), asc(pgUsers.id)),
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
      if (opts.keepAnAdmin) {
        // every enabled admin locked, in one order: a concurrent demotion waits here, then reads what this one left
        const admins = await w.select({ id: pgUsers.id }).from(pgUsers)
          .where(and(eq(pgUsers.role, 'admin'), isNull(pgUsers.disabled))).orderBy(asc(pgUsers.id)).for('update');
        if (!admins.some((a) => a.id !== id)) return (await byId(w, id)) ? 'last-admin' : 'missing';
      }
      if (!Object.keys(change).length && !opts.revoke) return (await byId(w, id)) ? 'updated' : 'missing';
      const moved = await w.update(pgUsers).set({ ...change, ...(opts.revoke ? next : {}) }).where(eq(pgUsers.id, id)).returning({ id: pgUsers.id });
      return moved.length ? 'updated' : 'missing';
    }),
  };
}

export function createPgUserStore(pool: pg.Pool): PgUserStore {
  return onPool(pool, bound);
}
