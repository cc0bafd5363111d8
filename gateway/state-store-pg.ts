// The device-state area in PostgreSQL (node-postgres through drizzle): cluster mode's shared store. The contract is
// gateway/state-store.ts's; a batch of rows is one multi-row upsert, so it is written whole or not at all. Migrations:
// migratePg (response/store/pg.ts) applies drizzle-pg/, where this table's are beside the incident area's.
import type pg from 'pg';
import { sql } from 'drizzle-orm';
import { drizzle, type NodePgDatabase } from 'drizzle-orm/node-postgres';
import { pgDeviceState } from './pg-schema.js';
import { supervisionOf, type DeviceStateStore, type StoredState } from './state-store.js';
import { storedText } from './stored-text.js';

const schema = { pgDeviceState };
type Db = NodePgDatabase<typeof schema>;
/** a drizzle transaction on the same schema: the caller's, when the rows belong with its other writes */
export type PgStateTx = Parameters<Parameters<Db['transaction']>[0]>[0];

export interface PgDeviceStateStore extends DeviceStateStore<'async'> {
  /** write the rows inside the caller's transaction (commits and rolls back with it) */
  writeIn(tx: PgStateTx, rows: readonly StoredState[]): Promise<void>;
  /** run `fn` in a transaction on this store's pool (for callers that write these rows with others) */
  transaction<T>(fn: (tx: PgStateTx) => Promise<T>): Promise<T>;
}

const toRow = ({ deviceId, state: s, updatedAt }: StoredState): typeof pgDeviceState.$inferInsert => ({
  deviceId, online: s.online, lastSeen: s.lastSeen, connectedAt: s.connectedAt, battery: s.battery, signal: s.signal,
  mains: s.mains, position: s.position, supervision: s.supervision, unreadableCount: s.unreadableCount,
  lastUnreadableAt: s.lastUnreadableAt, lastUnreadableReason: storedText(s.lastUnreadableReason), flags: s.flags, updatedAt,
});

/** every column but the key takes the new row's value */
const REPLACE = Object.fromEntries(
  Object.entries({
    online: 'online', lastSeen: 'last_seen', connectedAt: 'connected_at', battery: 'battery', signal: 'signal',
    mains: 'mains', position: 'position', supervision: 'supervision', unreadableCount: 'unreadable_count',
    lastUnreadableAt: 'last_unreadable_at', lastUnreadableReason: 'last_unreadable_reason', flags: 'flags',
    updatedAt: 'updated_at',
  }).map(([key, column]) => [key, sql.raw(`excluded.${column}`)]),
);

/** PostgreSQL takes at most 65,535 parameters a statement: 14 columns a row, so 4,000 rows a statement */
const ROWS_PER_STATEMENT = 4000;

export function createPgDeviceStateStore(pool: pg.Pool): PgDeviceStateStore {
  const db: Db = drizzle(pool, { schema });
  const upsert = async (t: Db | PgStateTx, rows: readonly StoredState[]) => {
    // one device twice in a batch would make PostgreSQL refuse the statement ("cannot affect row a second time"):
    // the last row of each device is the one that counts
    const last = new Map<string, StoredState>();
    for (const r of rows) last.set(r.deviceId, r);
    const unique = [...last.values()];
    for (let i = 0; i < unique.length; i += ROWS_PER_STATEMENT) {
      await t.insert(pgDeviceState).values(unique.slice(i, i + ROWS_PER_STATEMENT).map(toRow))
        .onConflictDoUpdate({ target: pgDeviceState.deviceId, set: REPLACE });
    }
  };
  return {
    mode: 'async',
    async loadAll() {
      const rows = await db.select().from(pgDeviceState);
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
      // more than one statement: one transaction, so the batch is whole or absent
      if (rows.length > ROWS_PER_STATEMENT) await db.transaction((t) => upsert(t, rows));
      else await upsert(db, rows);
    },
    async writeIn(tx, rows) {
      if (rows.length > 0) await upsert(tx, rows);
    },
    transaction: (fn) => db.transaction(fn),
  };
}
