// The incident area's storage, behind one narrow interface: what the incident service reads and appends inside a
// write transaction, and the queries the API, the consoles and escalation make. Two implementations keep the same
// contract (test/cluster/incident-store-contract.test.ts runs one suite against both):
// - SQLite (sqlite.ts): the one-node default, synchronous (better-sqlite3), used by the service today;
// - PostgreSQL (pg.ts): cluster mode's shared store, asynchronous (node-postgres through drizzle).
// `M` says which: every method returns `Ret<M, T>` — the value itself for 'sync', a Promise of it for 'async' — so one
// contract describes both without making the one-node alarm path pay for promises.
//
// The log's promise, in both: `seq` is global, gap-free and in commit order. A reader that sees seq S sees every
// event below S, so a console resumes from the last seq it saw and misses nothing. SQLite has one writer at a time
// (the file's lock) and AUTOINCREMENT; PostgreSQL takes one counter row inside the appending transaction (pg.ts).
import type { Priority } from '../../core/contracts.js';
import type { IncidentEventBody } from '../events.js';
import type { CommittedEvent, IncidentFilter, ActiveCursor } from '../incidents.js';
import type { IncidentRow } from '../projection.js';

export type StoreMode = 'sync' | 'async';
export type Ret<M extends StoreMode, T> = M extends 'sync' ? T : Promise<T>;

/** A unit's subtree as the network computes it; `unplaced`: also incidents of no unit or of a unit that is gone. */
export interface UnitScope {
  unitIds: readonly string[];
  unplaced: boolean;
}

/** An event to append; the store gives it its seq. */
export interface NewEvent {
  incidentId: string;
  body: IncidentEventBody;
  at: number;
  actor: string | null;
  unitId: string | null;
}

/** Reads and writes inside one write transaction (the store holds the write lock, or the rows read, until commit). */
export interface IncidentWriteTx<M extends StoreMode> {
  /** the incident, locked for this transaction where the engine locks rows (PostgreSQL: FOR UPDATE) */
  get(incidentId: string): Ret<M, IncidentRow | undefined>;
  /**
   * the newest incident of (device, type, test, resident, account) not resolved or cancelled, locked like `get`. The
   * resident (null: bound to nobody) is the one the device is bound to now: a device moved to another person never
   * adds her alarm to a card of the one before. The account (null: none) is an alarm receiver's account no device is
   * registered to: two unknown panels behind one receiver never share a card.
   */
  openOf(deviceId: string, type: string, test: boolean, residentId: string | null, account: string | null): Ret<M, IncidentRow | undefined>;
  /** the incident's `opened` event */
  opened(incidentId: string): Ret<M, CommittedEvent | undefined>;
  /** append one event: returns it with its seq (the next of the global log) */
  append(event: NewEvent): Ret<M, CommittedEvent>;
  /**
   * write the projection after an append (`created`: the first event, an `opened`); `before`: the projection the
   * event was applied to, so that a store may write only what moved (a joined alarm moves no indexed column)
   */
  saveProjection(row: IncidentRow, created: boolean, before?: IncidentRow | null): Ret<M, void>;
}

export interface ActivePage {
  items: IncidentRow[];
  /** the log's head read in the same snapshot as the items: snapshot + stream from `head` has no gap */
  head: number;
  next: ActiveCursor | null;
}

/** The list filter with the scopes already resolved to unit sets by the network. */
export type ListQuery = Omit<IncidentFilter, 'scope' | 'unitId'> & { scopes: UnitScope[] };

export interface IncidentStore<M extends StoreMode> {
  readonly mode: M;
  /**
   * Run `fn` in one write transaction and commit (SQLite: BEGIN IMMEDIATE, nested as a savepoint inside the caller's
   * transaction; PostgreSQL: a pooled connection, retried from the start when the engine asks — a twin open incident
   * refused by its unique index, a deadlock — so `fn` must only decide from what it reads).
   *
   * `joinCaller`: the caller's own transaction or savepoint holds exactly this write and rolls it back if `fn` throws,
   * so a synchronous store runs `fn` in it without a savepoint of its own (two statements less per alarm on the alarm
   * path). An asynchronous store always has a transaction of its own, and ignores it.
   */
  transaction<T>(fn: (tx: IncidentWriteTx<M>) => Ret<M, T>, joinCaller?: boolean): Ret<M, T>;
  get(incidentId: string): Ret<M, IncidentRow | undefined>;
  /** the incident's events in seq order */
  events(incidentId: string): Ret<M, CommittedEvent[]>;
  /** the global log after `seq`, at most `limit`, optionally only what `scope` may see */
  /** `upTo`: no event above this seq (a scoped read examines a bounded stretch of the log per call) */
  eventsAfter(seq: number, limit: number, scope?: UnitScope, upTo?: number): Ret<M, CommittedEvent[]>;
  /** the highest seq ever given (0 for an empty log); never goes back, even where rows were removed */
  head(): Ret<M, number>;
  /** active incidents visible from `scope` (null = all), P1 first then oldest, after the keyset cursor */
  active(scope: UnitScope | null, after: ActiveCursor | null, limit: number): Ret<M, ActivePage>;
  list(query: ListQuery): Ret<M, { items: IncidentRow[]; total: number }>;
  /** incidents waiting on a deadline (open: acknowledgement; acknowledged or dispatched: someone on site), soonest first */
  pendingDeadlines(): Ret<M, IncidentRow[]>;
  /** incidents not resolved or cancelled, per priority, tests excluded */
  openCounts(): Ret<M, Record<Priority, number>>;
}

/** Priority rank for ordering (P1 first): the same in both engines' SQL. */
export const PRIO_RANK_SQL = `CASE priority WHEN 'P1' THEN 0 WHEN 'P2' THEN 1 ELSE 2 END`;
