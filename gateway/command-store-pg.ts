// The command area in PostgreSQL (node-postgres through drizzle): cluster mode's shared store. The contract is
// gateway/command-store.ts's; each change of state is one conditional UPDATE, so two nodes answering or expiring the
// same command move it once. `transaction()` binds the store to one transaction (a device's answer is written with the
// rest of the ingest's batch). Migrations: migratePg (response/store/pg.ts) applies drizzle-pg/.
import type pg from 'pg';
import { and, asc, desc, eq, gt, inArray, lte, sql } from 'drizzle-orm';
import { pgCommands } from './pg-schema.js';
import { onPool, type PgExecutor, type Transactional } from '../core/pg-bind.js';
import type { CommandRow, CommandStore } from './command-store.js';
import { storableId, storedText } from '../core/stored-text.js';

export type PgCommandStore = Transactional<CommandStore<'async'>>;

const LIVE = inArray(pgCommands.status, ['pending', 'sent']);
const toRow = ({ n: _n, ...r }: typeof pgCommands.$inferSelect): CommandRow => r;

export function commandStoreOn(t: PgExecutor): CommandStore<'async'> {
  return {
    mode: 'async',
    async insert(c, once) {
      const q = t.insert(pgCommands).values({ ...c, status: 'pending', attempts: 0 });
      await (once ? q.onConflictDoNothing({ target: pgCommands.id }) : q);
    },
    async get(id) {
      const [row] = await t.select().from(pgCommands).where(eq(pgCommands.id, id));
      return row && toRow(row);
    },
    async list(deviceId, limit) {
      const rows = await t.select().from(pgCommands).where(eq(pgCommands.deviceId, deviceId))
        .orderBy(desc(pgCommands.createdAt), desc(pgCommands.n)).limit(limit);
      return rows.map(toRow);
    },
    async pendingFor(deviceId, now) {
      const rows = await t.select().from(pgCommands)
        .where(and(eq(pgCommands.deviceId, deviceId), LIVE, gt(pgCommands.expiresAt, now)))
        .orderBy(asc(pgCommands.createdAt), asc(pgCommands.n));
      return rows.map(toRow);
    },
    async markSent(id, at) {
      const moved = await t.update(pgCommands).set({
        status: sql`CASE WHEN ${pgCommands.status} = 'pending' THEN 'sent' ELSE ${pgCommands.status} END`,
        attempts: sql`${pgCommands.attempts} + 1`,
        sentAt: at,
      }).where(eq(pgCommands.id, id)).returning({ id: pgCommands.id });
      return moved.length;
    },
    async answer(deviceId, id, ok, at, error) {
      // the device's ids: one holding a NUL was never given out (and PostgreSQL cannot compare it)
      if (!storableId(id) || !storableId(deviceId)) return 0;
      const moved = await t.update(pgCommands).set({ status: ok ? 'acked' : 'failed', ackedAt: at, error: storedText(error) })
        .where(and(eq(pgCommands.id, id), eq(pgCommands.deviceId, deviceId), LIVE)).returning({ id: pgCommands.id });
      return moved.length;
    },
    async expire(now) {
      const moved = await t.update(pgCommands).set({ status: 'expired' })
        .where(and(LIVE, lte(pgCommands.expiresAt, now))).returning({ id: pgCommands.id });
      return moved.length;
    },
  };
}

export function createPgCommandStore(pool: pg.Pool): PgCommandStore {
  return onPool(pool, commandStoreOn);
}
