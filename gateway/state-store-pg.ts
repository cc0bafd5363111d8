// The device-state area in PostgreSQL (node-postgres through drizzle): cluster mode's shared store. The contract is
// gateway/state-store.ts's; a batch of rows is one multi-row upsert, so it is written whole or not at all. Migrations:
// migratePg (response/store/pg.ts) applies drizzle-pg/, where this table's are beside the incident area's.
import type pg from 'pg';
import { getTableColumns, sql } from 'drizzle-orm';
import { pgDeviceState } from './pg-schema.js';
import { onPool, type Atomic, type PgExecutor, type Transactional } from '../core/pg-bind.js';
import { supervisionOf, type DeviceStateStore, type StoredState } from './state-store.js';
import { storedText } from '../core/stored-text.js';

export type PgDeviceStateStore = Transactional<DeviceStateStore<'async'>>;

const toRow = ({ deviceId, state: s, updatedAt }: StoredState): typeof pgDeviceState.$inferInsert => ({
  deviceId, online: s.online, lastSeen: s.lastSeen, connectedAt: s.connectedAt, battery: s.battery, signal: s.signal,
  mains: s.mains, position: s.position, supervision: s.supervision, unreadableCount: s.unreadableCount,
  lastUnreadableAt: s.lastUnreadableAt, lastUnreadableReason: storedText(s.lastUnreadableReason), flags: s.flags, updatedAt,
});

/** every column but the key takes the new row's value */
const REPLACE = Object.fromEntries(
  Object.entries(getTableColumns(pgDeviceState))
    .filter(([key]) => key !== 'deviceId')
    .map(([key, column]) => [key, sql.raw(`excluded.${column.name}`)]),
);

/** PostgreSQL takes at most 65,535 parameters a statement: 14 columns a row, so 4,000 rows a statement */
const ROWS_PER_STATEMENT = 4000;

export function deviceStateStoreOn(t: PgExecutor, atomic: Atomic): DeviceStateStore<'async'> {
  const upsert = async (on: PgExecutor, rows: readonly StoredState[]) => {
    // one device twice in a batch would make PostgreSQL refuse the statement ("cannot affect row a second time"):
    // the last row of each device is the one that counts
    const last = new Map<string, StoredState>();
    for (const r of rows) last.set(r.deviceId, r);
    const unique = [...last.values()];
    for (let i = 0; i < unique.length; i += ROWS_PER_STATEMENT) {
      await on.insert(pgDeviceState).values(unique.slice(i, i + ROWS_PER_STATEMENT).map(toRow))
        .onConflictDoUpdate({ target: pgDeviceState.deviceId, set: REPLACE });
    }
  };
  return {
    mode: 'async',
    async loadAll() {
      const rows = await t.select().from(pgDeviceState);
      return rows.map((r) => ({
        deviceId: r.deviceId,
        updatedAt: r.updatedAt,
        state: {
          online: r.online,
          lastSeen: r.lastSeen,
          connectedAt: r.connectedAt,
          battery: r.battery,
          signal: r.signal,
          mains: r.mains,
          position: r.position ?? null,
          supervision: supervisionOf(r.supervision),
          unreadableCount: r.unreadableCount,
          lastUnreadableAt: r.lastUnreadableAt,
          lastUnreadableReason: r.lastUnreadableReason,
          flags: r.flags,
        },
      }));
    },
    async write(rows) {
      if (rows.length === 0) return;
      // more than one statement: in one transaction (the caller's, where bound to one), so the batch is whole or absent
      if (rows.length > ROWS_PER_STATEMENT) await atomic((w) => upsert(w, rows));
      else await upsert(t, rows);
    },
  };
}

export function createPgDeviceStateStore(pool: pg.Pool): PgDeviceStateStore {
  return onPool(pool, deviceStateStoreOn);
}
