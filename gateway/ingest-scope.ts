// What the ingest's steps read and write through, inside the write transaction of one batch (gateway/ingest.ts): the
// observation rows, the commands, the incident log. The ingest, the rules' step (gateway/alarms.ts) and the commands'
// step (gateway/commands.ts) are written once as steps (response/store/run.ts) over a scope of either kind:
// - SQLite (below): the one-node default, synchronous; the batch is the caller's IMMEDIATE transaction on the
//   writer's connection, a savepoint is better-sqlite3's nested transaction. No statement more than before.
// - PostgreSQL (gateway/ingest-scope-pg.ts): one asynchronous transaction for the whole batch, the incident log's
//   head locked first (every node's batches take turns on it, as SQLite's writers take turns on the file).
import type Database from 'better-sqlite3';
import type { Ret, StoreMode, IncidentWriteTx } from '../response/store/types.js';
import { createSqliteIncidentStore } from '../response/store/sqlite.js';
import { runSync, type Step } from '../response/store/run.js';
import type { OpenIncidentView } from './rules/types.js';
import { createSqliteObservationStore, type ObservationStore } from './observation-store.js';
import { createSqliteCommandStore, type CommandStore } from './command-store.js';

/** A device's open incident of a type, as the rules ask (read inside the batch: alarms written before it count). */
export type OpenIncidents = (type: string) => OpenIncidentView | undefined;

/**
 * A device as its alarms' cards are kept: by whom it is bound to now (the registry's entry). A device moved to another
 * person sees only her cards, the ones its alarms would join (response/incidents.ts): her first alarm is not taken for
 * one of his still open. An alarm receiver's event from an account no device is registered to has the receiver as its
 * device and that account (Observation.account): each unknown panel sees only its own cards.
 */
export interface BoundDevice { readonly id: string; readonly residentId: string | null; readonly account?: string | null }

export interface IngestScope<M extends StoreMode = StoreMode> {
  readonly mode: M;
  readonly rows: ObservationStore<M>;
  readonly commands: CommandStore<M>;
  /** an incident's status (dedup asks whether a repeated alarm's incident is still open) */
  incidentStatus(incidentId: string): Ret<M, string | undefined>;
  /** the device's open incidents, for the rules' synchronous `openIncident` */
  openIncidents(device: BoundDevice): Ret<M, OpenIncidents>;
  /**
   * `body` in the incident log's write transaction inside this batch. `joinCaller`: the caller's savepoint holds
   * exactly this write (a lone raise of a life-safety observation), so none of its own is taken; otherwise it runs in
   * a savepoint of its own, rolled back alone if it throws.
   */
  incidentWrite<T>(body: (t: IncidentWriteTx<M>) => Step<T>, joinCaller: boolean): Ret<M, T>;
  /** `body` in a savepoint: if it throws, what it wrote is rolled back and the batch goes on */
  savepoint<T>(body: () => Step<T>): Ret<M, T>;
  /**
   * Whether the batch's transaction can still commit after a failure: SQLite rolls a whole transaction back by itself
   * on some errors (a full disk); in PostgreSQL a failed statement outside a savepoint aborts it.
   */
  usable(): boolean;
}

/** The SQLite scope on the writer's connection: the same statements the ingest ran before it had scopes. */
export function sqliteIngestScope(sqlite: Database.Database): IngestScope<'sync'> {
  const incidents = createSqliteIncidentStore(sqlite);
  const status = sqlite.prepare<[string], string>('select status from incidents where id = ?').pluck();
  // better-sqlite3 nests a transaction function as a SAVEPOINT; one wrapper for every call
  const inSavepoint = sqlite.transaction((run: () => unknown) => run());
  return {
    mode: 'sync',
    rows: createSqliteObservationStore(sqlite),
    commands: createSqliteCommandStore(sqlite),
    incidentStatus: (id) => status.get(id),
    openIncidents: sqliteOpenIncidents(sqlite),
    incidentWrite: (body, joinCaller) => incidents.transaction((t) => runSync(body(t)), joinCaller),
    savepoint: <T>(body: () => Step<T>) => inSavepoint.immediate(() => runSync(body())) as T,
    usable: () => sqlite.inTransaction,
  };
}

/**
 * A device's open incidents in SQLite, read when a rule asks, not before (most observations ask nothing). Only those
 * its alarms would join (the incident service's openOf, response/incidents.ts):
 * - real ones for a real device, test ones for a test run's device. A device put into service keeps its test run's
 *   open incidents; read as its own, a test low battery or offline card kept the real one from being raised. The
 *   device's test mark is read in the same statement, so in the same transaction as the alarm it decides; a source
 *   that is not a device is not a test;
 * - those of the resident it is bound to now (`residentId IS ?`: null, bound to nobody), as the alarm's source says;
 * - those of the receiver's unknown account the event came from (`account IS ?`: null, none).
 */
export const RULES_OPEN_SQL = `select id, opened_at as openedAt, status from incidents
    where device_id = ? and type = ? and test = coalesce((select test from devices where id = ?), 0) and resident_id is ?
      and account is ? and status not in ('resolved', 'cancelled') order by opened_at desc limit 1`;

export function sqliteOpenIncidents(sqlite: Database.Database): (device: BoundDevice) => OpenIncidents {
  const open = sqlite.prepare<[string, string, string, string | null, string | null], OpenIncidentView>(RULES_OPEN_SQL);
  return ({ id, residentId, account }) => (type) => open.get(id, type, id, residentId, account ?? null);
}

/** A step's answer: a value, or a generator to run through the scope (`yield*` it). */
export function isStep<T>(v: unknown): v is Step<T> {
  return typeof v === 'object' && v !== null && typeof (v as Step<T>).next === 'function' && typeof (v as Step<T>).throw === 'function';
}
