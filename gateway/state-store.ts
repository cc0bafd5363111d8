// The device-state area's storage, behind one narrow interface: what DeviceStates (gateway/device-state.ts) loads at
// start and writes through in the ingest's transactions. Two implementations keep the same contract
// (test/cluster/device-state-store-contract.test.ts runs one suite against both), as the incident area does
// (response/store/types.ts):
// - SQLite (below): the one-node default, synchronous, written inside the caller's transaction;
// - PostgreSQL (gateway/state-store-pg.ts): cluster mode's shared store, asynchronous.
// A row is the whole live state of one device; writing it replaces what was stored (last write wins: one writer per
// device, the ingest's, decides what it is). The unreadable message's reason quotes device bytes: through storedText.
import type Database from 'better-sqlite3';
import type { Position } from '../core/contracts.js';
import type { Ret, StoreMode } from '../response/store/types.js';
import type { LiveState, Supervision } from './device-state.js';
import { storedText } from '../core/stored-text.js';

export interface StoredState {
  deviceId: string;
  state: LiveState;
  /** when this row was written (wall-clock ms) */
  updatedAt: number;
}

export interface DeviceStateStore<M extends StoreMode> {
  readonly mode: M;
  /** every stored state, as written (the caller decides what a restart means for `online` and `connectedAt`) */
  loadAll(): Ret<M, StoredState[]>;
  /** insert or replace these rows; SQLite: in the caller's transaction (call inside one); PostgreSQL: atomically */
  write(rows: readonly StoredState[]): Ret<M, void>;
}

/** every supervision state (gateway/device-state.ts Supervision) */
export const SUPERVISION_STATES: readonly Supervision[] = ['ok', 'late', 'offline', 'never-seen'];

/** a stored supervision value, or 'never-seen' for anything this version does not know */
export function supervisionOf(v: unknown): Supervision {
  return SUPERVISION_STATES.includes(v as Supervision) ? (v as Supervision) : 'never-seen';
}

export function createSqliteDeviceStateStore(sqlite: Database.Database): DeviceStateStore<'sync'> {
  const all = sqlite.prepare('select * from device_state');
  // Only for a device the registry holds (device_state's foreign key): an observation from a device that is not there
  // (a Modbus or serial adapter configured with a device id nobody provisioned, a device deleted meanwhile) is stored
  // and shown, and its state row is not written. Written anyway, the key failed the whole transaction, and an SOS from
  // another device committed in the same batch with it was not acknowledged.
  const upsert = sqlite.prepare(`insert into device_state (device_id, online, last_seen, connected_at, battery, signal,
      mains, position, supervision, unreadable_count, last_unreadable_at, last_unreadable_reason, flags, updated_at)
    select @deviceId, @online, @lastSeen, @connectedAt, @battery, @signal, @mains, @position, @supervision,
      @unreadableCount, @lastUnreadableAt, @lastUnreadableReason, @flags, @updatedAt
    where exists (select 1 from devices where id = @deviceId)
    on conflict(device_id) do update set online=excluded.online, last_seen=excluded.last_seen,
      connected_at=excluded.connected_at, battery=excluded.battery, signal=excluded.signal, mains=excluded.mains,
      position=excluded.position, supervision=excluded.supervision, unreadable_count=excluded.unreadable_count,
      last_unreadable_at=excluded.last_unreadable_at, last_unreadable_reason=excluded.last_unreadable_reason,
      flags=excluded.flags, updated_at=excluded.updated_at`);
  return {
    mode: 'sync',
    loadAll() {
      return (all.all() as Record<string, unknown>[]).map((r) => ({
        deviceId: r.device_id as string,
        updatedAt: r.updated_at as number,
        state: {
          online: r.online === 1,
          lastSeen: (r.last_seen as number | null) ?? null,
          connectedAt: (r.connected_at as number | null) ?? null,
          battery: (r.battery as number | null) ?? null,
          signal: (r.signal as number | null) ?? null,
          mains: r.mains === null || r.mains === undefined ? null : Boolean(r.mains),
          position: r.position ? (JSON.parse(r.position as string) as Position) : null,
          supervision: supervisionOf(r.supervision),
          unreadableCount: (r.unreadable_count as number) ?? 0,
          lastUnreadableAt: (r.last_unreadable_at as number | null) ?? null,
          lastUnreadableReason: (r.last_unreadable_reason as string | null) ?? null,
          flags: r.flags ? (JSON.parse(r.flags as string) as string[]) : [],
        },
      }));
    },
    write(rows) {
      for (const { deviceId, state: s, updatedAt } of rows) {
        upsert.run({
          deviceId,
          online: s.online ? 1 : 0,
          lastSeen: s.lastSeen,
          connectedAt: s.connectedAt,
          battery: s.battery,
          signal: s.signal,
          mains: s.mains === null ? null : s.mains ? 1 : 0,
          position: s.position ? JSON.stringify(s.position) : null,
          supervision: s.supervision,
          unreadableCount: s.unreadableCount,
          lastUnreadableAt: s.lastUnreadableAt,
          lastUnreadableReason: storedText(s.lastUnreadableReason),
          flags: s.flags.length === 0 ? '[]' : JSON.stringify(s.flags),
          updatedAt,
        });
      }
    },
  };
}
