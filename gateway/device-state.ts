// Live state of each device (last seen, battery, position, online, supervision), kept in memory and written through
// to `device_state` inside the ingest's own transactions (only the rows that changed, in slices: a burst of changes —
// a reconnect storm — is spread over the next commits instead of one long one).
//
// Write-behind: with `writeBehindMs`, a device's row is written once its first unwritten change is that old, so a
// device that sends ten readings a second costs one row per interval instead of one per reading (bench/analysis.md,
// 5 Dec: at 10k msg/s from 1,000 terminals the writer wrote ~9,500 state rows a second, one per heartbeat). The rows
// are only what a restart starts from — every read of live state is of this memory — so a crash can take back at most
// that long of last-seen, battery, position; a restart marks every device offline in any case. An alarm's commit
// writes its own devices' rows at once (flushDevices), and shutdown writes everything (flushDirty with `all`).
//
// A write transaction that fails takes the memory back with it: between begin() and commit()/rollback() every device
// touched is snapshotted first, and a rollback restores those states and puts every row the failed commit would have
// written back into the dirty set, so memory never runs ahead of the database nor forgets a row it still owes.
import type Database from 'better-sqlite3';
import type { Observation, Position } from '../core/contracts.js';
import { isProofOfLife } from './rules/supervision.js';
import { DirtySet } from '../core/dirty-set.js';
import { createSqliteDeviceStateStore, type DeviceStateStore, type StoredState } from './state-store.js';

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

/** the state of a device nothing has been heard of */
export function blankState(): LiveState {
  return {
    online: false, lastSeen: null, connectedAt: null, battery: null, signal: null, mains: null, position: null,
    supervision: 'never-seen', unreadableCount: 0, lastUnreadableAt: null, lastUnreadableReason: null, flags: [],
  };
}

interface Before {
  /** the state as committed (a copy), or undefined if the device had none */
  state: LiveState | undefined;
  dirty: boolean;
}

export class DeviceStates {
  private readonly states = new Map<string, LiveState>();
  /** devices whose row is owed, oldest change first (not a Set: core/dirty-set.ts says why) */
  private readonly dirty = new DirtySet();
  /** while a write transaction is open: each touched device's state before it, and the rows flushed in it */
  private txn: { before: Map<string, Before>; flushed: string[] } | null = null;

  /** null: the rows are written by whoever takes them (`takeDirty`: the ingest's PostgreSQL batch) */
  private readonly store: DeviceStateStore<'sync'> | null;

  /** a row is written no sooner than this long after its first unwritten change (0: with the next commit) */
  private readonly writeBehindMs: number;

  /**
   * `source`: the store (its SQLite implementation, gateway/state-store.ts), or the connection to build it on, or the
   * rows an asynchronous store loaded (PostgreSQL: the ingest writes them in its batches through `takeDirty`).
   * `writeBehindMs`: ingest.stateWriteBehindMs (one-node SQLite; the PostgreSQL batches take what is owed).
   */
  constructor(source: Database.Database | DeviceStateStore<'sync'> | readonly StoredState[], opts: { writeBehindMs?: number } = {}) {
    this.writeBehindMs = opts.writeBehindMs ?? 0;
    const rows = Array.isArray(source) ? source as readonly StoredState[] : null;
    this.store = rows ? null : 'loadAll' in source ? source as DeviceStateStore<'sync'> : createSqliteDeviceStateStore(source as Database.Database);
    for (const { deviceId, state } of rows ?? this.store!.loadAll()) {
      // nobody is connected to a broker that just started
      this.states.set(deviceId, { ...state, online: false, connectedAt: null });
    }
  }

  /** The device's live state. Change it only through the methods below (they keep a failed commit undoable). */
  get(deviceId: string): LiveState {
    let s = this.states.get(deviceId);
    if (!s) {
      s = blankState();
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

  // the LiveStates view the transports and routes use (gateway/writer/client.ts): the same answers in-process
  isOnline(deviceId: string): boolean {
    return this.states.get(deviceId)?.online === true;
  }

  async read(deviceIds: readonly string[]): Promise<Map<string, LiveState>> {
    const out = new Map<string, LiveState>();
    for (const id of deviceIds) {
      const s = this.states.get(id);
      if (s) out.set(id, { ...s });
    }
    return out;
  }

  /** which of these devices are in this supervision state (a device without a state yet is "never-seen"), in order */
  matchSupervision(deviceIds: readonly string[], supervision: Supervision): string[] {
    return deviceIds.filter((id) => (this.states.get(id)?.supervision ?? 'never-seen') === supervision);
  }

  async withSupervision(deviceIds: readonly string[], supervision: Supervision): Promise<string[]> {
    return this.matchSupervision(deviceIds, supervision);
  }

  async readAll(): Promise<Map<string, LiveState>> {
    return new Map([...this.states].map(([id, s]) => [id, { ...s }]));
  }

  markDirty(deviceId: string): void {
    this.dirty.add(deviceId);
  }

  dirtyCount(): number {
    return this.dirty.size;
  }

  /** null: no row is owed; 0: a row is due now; otherwise how many ms until the oldest owed row is due */
  nextDueInMs(): number | null {
    const oldest = this.dirty.oldestAt();
    if (oldest === undefined) return null;
    return Math.max(0, Math.ceil(oldest + this.writeBehindMs - performance.now()));
  }

  /** A write transaction begins: changes from here on are undone by rollback(). */
  begin(): void {
    this.txn = { before: new Map(), flushed: [] };
  }

  /** The transaction is durable: nothing to undo. */
  commit(): void {
    this.txn = null;
  }

  /** The transaction failed: every state touched goes back to its committed value, every row owed stays owed. */
  rollback(): void {
    const t = this.txn;
    this.txn = null;
    if (!t) return;
    for (const [id, b] of t.before) {
      const s = this.states.get(id);
      if (!b.state) this.states.delete(id);
      // in place: rule code may hold the object
      else if (s) Object.assign(s, b.state);
      else this.states.set(id, b.state);
      if (b.dirty) this.dirty.add(id);
      else this.dirty.delete(id);
    }
    for (const id of t.flushed) this.dirty.add(id);
  }

  /** before changing a device's state inside a transaction: keep what it was */
  private touch(deviceId: string): void {
    const t = this.txn;
    if (!t || t.before.has(deviceId)) return;
    const s = this.states.get(deviceId);
    t.before.set(deviceId, { state: s && { ...s, flags: [...s.flags] }, dirty: this.dirty.has(deviceId) });
  }

  setSupervision(deviceId: string, supervision: Supervision): void {
    this.touch(deviceId);
    this.get(deviceId).supervision = supervision;
    this.dirty.add(deviceId);
  }

  /** Fold an accepted observation into the device's state. */
  apply(obs: Observation): void {
    this.touch(obs.deviceId);
    const s = this.get(obs.deviceId);
    // a Last Will, a lost link or the gateway's own observations are no sign of life
    const alive = isProofOfLife(obs);
    if (alive) s.lastSeen = obs.receivedAt;
    // an unknown panel's event passed on by a receiver (Observation.account): the receiver is alive; the panel's
    // battery, mains or position are not the receiver's
    if (obs.account === undefined) this.fold(s, obs);
    if (alive && s.supervision !== 'ok') s.supervision = 'ok';
    this.dirty.add(obs.deviceId);
  }

  /** What an observation says of its device's readings (battery, signal, mains, position). */
  private fold(s: LiveState, obs: Observation): void {
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
  }

  setOnline(deviceId: string, online: boolean, at: number): void {
    this.touch(deviceId);
    const s = this.get(deviceId);
    s.online = online;
    if (online) {
      s.connectedAt = at;
      s.lastSeen = at;
    }
    this.dirty.add(deviceId);
  }

  markUnreadable(deviceId: string, reason: string, at: number): void {
    this.touch(deviceId);
    const s = this.get(deviceId);
    s.unreadableCount++;
    s.lastUnreadableAt = at;
    s.lastUnreadableReason = reason;
    if (!s.flags.includes('sending unreadable messages')) s.flags.push('sending unreadable messages');
    this.dirty.add(deviceId);
  }

  clearFlags(deviceId: string): void {
    this.touch(deviceId);
    const s = this.get(deviceId);
    s.flags = [];
    s.unreadableCount = 0;
    s.lastUnreadableReason = null;
    this.dirty.add(deviceId);
  }

  /**
   * Up to `limit` rows owed, taken out of the dirty set for the caller to write in its transaction (a rollback puts
   * them back, as for flushDirty).
   */
  takeDirty(now: number, limit = Infinity): StoredState[] {
    const out: StoredState[] = [];
    for (let id = this.dirty.peek(); id !== undefined; id = this.dirty.peek()) {
      if (out.length >= limit) break;
      this.dirty.shift();
      this.txn?.flushed.push(id);
      const s = this.states.get(id);
      if (s) out.push({ deviceId: id, state: { ...s }, updatedAt: now });
    }
    return out;
  }

  /**
   * Write the rows owed for these devices only (an alarm's commit: its own devices' states go with it, durable with
   * it; a backlog of other devices' rows is the telemetry slices' to write, not the alarm path's).
   */
  flushDevices(ids: readonly string[], now: number): void {
    const rows = this.ownedBy(ids, now, false);
    if (rows.length === 0) return;
    if (!this.store) throw new Error('these device states are written by their owner (takeDevices), not flushed to a store');
    this.store.write(rows);
  }

  /** takeDirty for these devices only (flushDevices, for the owner that writes the rows: PostgreSQL's batch) */
  takeDevices(ids: readonly string[], now: number): StoredState[] {
    return this.ownedBy(ids, now, true);
  }

  private ownedBy(ids: readonly string[], now: number, copy: boolean): StoredState[] {
    const out: StoredState[] = [];
    if (this.dirty.size === 0) return out;
    for (const id of ids) {
      if (!this.dirty.delete(id)) continue;
      this.txn?.flushed.push(id);
      const s = this.states.get(id);
      if (s) out.push({ deviceId: id, state: copy ? { ...s } : s, updatedAt: now });
    }
    return out;
  }

  /**
   * Write up to `limit` changed rows, oldest change first, that are due (owed for writeBehindMs; `all`: every row
   * owed, as at shutdown); call inside a transaction. The rest stay dirty for a later commit (the caller schedules
   * one for nextDueInMs()). `until` (performance.now()): stop there, after at least `atLeast` rows (a writer's time
   * slice; the rows always move on).
   */
  flushDirty(now: number, limit = Infinity, until = Infinity, atLeast = 0, all = false): void {
    if (this.dirty.size === 0) return;
    if (!this.store) throw new Error('these device states are written by their owner (takeDirty), not flushed to a store');
    // rows owed since after this are not due yet (write-behind); `all`: every row owed (shutdown)
    const dueBefore = all || this.writeBehindMs === 0 ? Infinity : performance.now() - this.writeBehindMs;
    let n = 0;
    // written 16 rows at a time, the clock read between them (what was taken is written before the clock is read)
    const chunk: StoredState[] = [];
    for (let id = this.dirty.peek(); id !== undefined; id = this.dirty.peek()) {
      if (n >= limit) break;
      if ((n & 15) === 0) {
        if (chunk.length > 0) this.store.write(chunk);
        chunk.length = 0;
        if (n >= atLeast && performance.now() > until) break;
      }
      if (dueBefore !== Infinity && this.dirty.oldestAt()! > dueBefore) break;
      n++;
      this.dirty.shift();
      this.txn?.flushed.push(id);
      const s = this.states.get(id);
      if (s) chunk.push({ deviceId: id, state: s, updatedAt: now });
    }
    if (chunk.length > 0) this.store.write(chunk);
  }
}
