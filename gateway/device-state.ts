// Live state of each device (last seen, battery, position, online, supervision), kept in memory and written through
// to `device_state` inside the ingest's own transactions (only the rows that changed).
import type Database from 'better-sqlite3';
import type { Observation, Position } from '../core/contracts.js';
import { isProofOfLife } from './rules/supervision.js';

export type Supervision = 'ok' | 'late' | 'offline' | 'never-seen';

export interface LiveState {
  online: boolean;
  lastSeen: number | null;
  connectedAt: number | null;
  battery: number | null;
  signal: number | null;
  mains: boolean | null;
  position: Position | null;
  supervision: Supervision;
  unreadableCount: number;
  lastUnreadableAt: number | null;
  lastUnreadableReason: string | null;
  flags: string[];
}

export class DeviceStates {
  private readonly states = new Map<string, LiveState>();
  private readonly dirty = new Set<string>();
  private readonly upsert: Database.Statement;

  constructor(private readonly sqlite: Database.Database) {
    for (const r of sqlite.prepare('select * from device_state').all() as Record<string, unknown>[]) {
      this.states.set(r.device_id as string, {
        // nobody is connected to a broker that just started
        online: false,
        lastSeen: (r.last_seen as number | null) ?? null,
        connectedAt: null,
        battery: (r.battery as number | null) ?? null,
        signal: (r.signal as number | null) ?? null,
        mains: r.mains === null || r.mains === undefined ? null : Boolean(r.mains),
        position: r.position ? (JSON.parse(r.position as string) as Position) : null,
        supervision: (r.supervision as Supervision) ?? 'never-seen',
        unreadableCount: (r.unreadable_count as number) ?? 0,
        lastUnreadableAt: (r.last_unreadable_at as number | null) ?? null,
        lastUnreadableReason: (r.last_unreadable_reason as string | null) ?? null,
        flags: r.flags ? (JSON.parse(r.flags as string) as string[]) : [],
      });
    }
    this.upsert = sqlite.prepare(`insert into device_state (device_id, online, last_seen, connected_at, battery, signal,
        mains, position, supervision, unreadable_count, last_unreadable_at, last_unreadable_reason, flags, updated_at)
      values (@deviceId, @online, @lastSeen, @connectedAt, @battery, @signal, @mains, @position, @supervision,
        @unreadableCount, @lastUnreadableAt, @lastUnreadableReason, @flags, @updatedAt)
      on conflict(device_id) do update set online=excluded.online, last_seen=excluded.last_seen,
        connected_at=excluded.connected_at, battery=excluded.battery, signal=excluded.signal, mains=excluded.mains,
        position=excluded.position, supervision=excluded.supervision, unreadable_count=excluded.unreadable_count,
        last_unreadable_at=excluded.last_unreadable_at, last_unreadable_reason=excluded.last_unreadable_reason,
        flags=excluded.flags, updated_at=excluded.updated_at`);
  }

  get(deviceId: string): LiveState {
    let s = this.states.get(deviceId);
    if (!s) {
      s = {
        online: false, lastSeen: null, connectedAt: null, battery: null, signal: null, mains: null, position: null,
        supervision: 'never-seen', unreadableCount: 0, lastUnreadableAt: null, lastUnreadableReason: null, flags: [],
      };
      this.states.set(deviceId, s);
    }
    return s;
  }

  peek(deviceId: string): LiveState | undefined {
    return this.states.get(deviceId);
  }

  entries(): IterableIterator<[string, LiveState]> {
    return this.states.entries();
  }

  markDirty(deviceId: string): void {
    this.dirty.add(deviceId);
  }

  /** Fold an accepted observation into the device's state. */
  apply(obs: Observation): void {
    const s = this.get(obs.deviceId);
    // a Last Will, a lost link or the gateway's own observations are no sign of life
    const alive = isProofOfLife(obs);
    if (alive) s.lastSeen = obs.receivedAt;
    switch (obs.type) {
      case 'heartbeat':
        if (obs.battery !== undefined) s.battery = obs.battery;
        if (obs.signal !== undefined) s.signal = obs.signal;
        if (obs.mains !== undefined) s.mains = obs.mains;
        break;
      case 'battery':
        s.battery = obs.level;
        break;
      case 'signal':
        s.signal = obs.level;
        break;
      case 'position':
        s.position = { ...obs.position, at: obs.position.at ?? obs.deviceTs ?? obs.receivedAt };
        if (obs.battery !== undefined) s.battery = obs.battery;
        break;
      case 'power-lost':
        s.mains = false;
        break;
      case 'power-restored':
        s.mains = true;
        break;
      case 'status':
        // the Last Will says the link dropped; the broker's own disconnect event is the authority on online
        break;
      default:
        if ('position' in obs && obs.position && !obs.position.stale) {
          s.position = { ...obs.position, at: obs.position.at ?? obs.deviceTs ?? obs.receivedAt };
        }
    }
    if (alive && s.supervision !== 'ok') s.supervision = 'ok';
    this.dirty.add(obs.deviceId);
  }

  setOnline(deviceId: string, online: boolean, at: number): void {
    const s = this.get(deviceId);
    s.online = online;
    if (online) {
      s.connectedAt = at;
      s.lastSeen = at;
    }
    this.dirty.add(deviceId);
  }

  markUnreadable(deviceId: string, reason: string, at: number): void {
    const s = this.get(deviceId);
    s.unreadableCount++;
    s.lastUnreadableAt = at;
    s.lastUnreadableReason = reason;
    if (!s.flags.includes('sending unreadable messages')) s.flags.push('sending unreadable messages');
    this.dirty.add(deviceId);
  }

  clearFlags(deviceId: string): void {
    const s = this.get(deviceId);
    s.flags = [];
    s.unreadableCount = 0;
    s.lastUnreadableReason = null;
    this.dirty.add(deviceId);
  }

  /** Write the changed rows; call inside a transaction. */
  flushDirty(now: number): void {
    if (this.dirty.size === 0) return;
    for (const id of this.dirty) {
      const s = this.states.get(id);
      if (!s) continue;
      this.upsert.run({
        deviceId: id,
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
        lastUnreadableReason: s.lastUnreadableReason,
        flags: JSON.stringify(s.flags),
        updatedAt: now,
      });
    }
    this.dirty.clear();
  }
}
