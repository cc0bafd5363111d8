// Incidents: alarms open or join them, people move them through their lifecycle, escalation and notifiers add to
// them. Every change is an append-only `incident_events` row (global `seq`), typed by the union in events.ts; the
// `incidents` row is the projection of those events, written in the same transaction (see projection.ts). Push and
// delivery receipts are not events: receipts.ts writes them in batches, apart from the log and the stream.
import type Database from 'better-sqlite3';
import type { Logger } from 'pino';
import type { Store } from '../core/db.js';
import type { Bus } from '../core/bus.js';
import type { Config } from '../core/config.js';
import { PRIORITIES, type AlarmAction, type AlarmSource, type IncidentStatus, type Priority } from '../core/contracts.js';
import type {
  IncidentEvent, IncidentEventBody, IncidentEventData, IncidentEventType, IncidentReceipt, InfoEventType,
} from './events.js';
import { createReceipts, type Receipts } from './receipts.js';
import { ConflictError, NotFoundError, ValidationError } from '../core/errors.js';
import type { Clock } from './clock.js';
import type { Network } from './network.js';
import { applyEvent, fold, isClosed, type IncidentRow, type OpenedData } from './projection.js';
import { newId } from './ids.js';
import { createSqliteIncidentStore } from './store/sqlite.js';
import type { ActivePage, IncidentStore, IncidentWriteTx, Ret, StoreMode } from './store/types.js';
import { io, runnerFor, type Step } from './store/run.js';

/** events read from the log in one call of eventsAfter, at most */
export const EVENTS_READ_MAX = 10_000;
import { andThen } from '../core/maybe.js';

/** a write transaction of either kind of store, as the domain sees it */
type Tx = IncidentWriteTx<StoreMode>;

export type { IncidentRow } from './projection.js';

/** An event as committed: with the grid unit whose subtree (and ancestors) may see it. */
export type CommittedEvent = IncidentEvent & { unitId: string | null };
/** A committed event of one type. */
export type CommittedOf<K extends IncidentEventType> = Extract<CommittedEvent, { type: K }>;

export interface Actor {
  id: string;
  username?: string;
}

export type IncidentAction =
  | { type: 'acknowledge' }
  | { type: 'dispatch'; staffId: string }
  | { type: 'on-site' }
  | { type: 'resolve'; outcome: string }
  | { type: 'note'; text: string }
  | { type: 'cancel'; reason: string };
export type IncidentActionType = IncidentAction['type'];

/** One escalation step as decided by escalation.ts. */
export interface EscalationStep {
  /** the deadline that expired (the step applies only while the incident still has exactly this deadline) */
  dueAt: number;
  fromUnitId: string | null;
  toUnitId: string | null;
  toTier: string | null;
  /** already at the top tier: the same unit is notified again */
  renotify: boolean;
  /** the next deadline */
  deadlineAt: number;
  /** when the step is written (real time, also for steps caught up after a restart) */
  at: number;
  /** how late the step is against its budget, measured on the monotonic clock; absent: `at - dueAt` */
  lateMs?: number;
  catchUp?: boolean;
}

export type { InfoEventType } from './events.js';

export interface IncidentFilter {
  status?: IncidentStatus[];
  priority?: Priority[];
  /** incidents of this unit's subtree */
  unitId?: string;
  residentId?: string;
  deviceId?: string;
  type?: string;
  /** opened at or after, epoch ms */
  from?: number;
  /** opened before, epoch ms */
  to?: number;
  test?: boolean;
  limit?: number;
  offset?: number;
  /** the caller's own unit (null/undefined = sees everything) */
  scope?: string | null;
}

/** Where a page of the active snapshot ends: priority rank (P1 = 0), opening time, id. */
export interface ActiveCursor { rank: number; openedAt: number; id: string }

/**
 * The incident service over a store of mode M: 'sync' (SQLite, the one-node store — every method returns its value,
 * and `applyAlarm` runs inside the caller's transaction) or 'async' (PostgreSQL — methods that touch the store return
 * promises). The domain is written once (response/store/run.ts).
 */
export interface IncidentServiceOf<M extends StoreMode> {
  /**
   * SYNCHRONOUS, inside the caller's transaction: open, join, clear or cancel. Returns the events appended; the
   * caller hands them to `publishCommitted` once its transaction has committed. `joinCaller`: the caller's own
   * savepoint holds exactly this alarm and rolls it back if this throws (IncidentStore.transaction).
   */
  applyAlarm(action: AlarmAction, source: AlarmSource, joinCaller?: boolean): Ret<M, CommittedEvent[]>;
  /**
   * What `applyAlarm` runs, as a step over a write transaction the caller holds (the ingest's batch over PostgreSQL:
   * gateway/ingest-scope-pg.ts, where one transaction holds the observations, the incidents and the device states).
   */
  alarmSteps(action: AlarmAction, source: AlarmSource): (t: IncidentWriteTx<StoreMode>) => Step<CommittedEvent[]>;
  /**
   * Emit committed events on the bus, in seq order (re-entrant: events published by a listener are queued until
   * the current ones reached every listener). Events without `unitId` get their incident's.
   */
  publishCommitted(events: readonly IncidentEvent[]): void;
  /**
   * The highest seq published (the log's head at start): durable, and everything below it with it — both threads
   * publish only after the commit and its sync (gateway/writer). The consoles' stream reads no further.
   */
  publishedSeq(): number;
  /** a person's action, in its own transaction, published after commit */
  act(incidentId: string, action: IncidentAction, actor: Actor): Ret<M, { incident: IncidentRow; events: CommittedEvent[] }>;
  /** escalation steps (own transaction, published); [] if the incident no longer waits on `steps[0].dueAt` */
  escalate(incidentId: string, steps: readonly EscalationStep[]): Ret<M, CommittedOf<'escalated'>[]>;
  /**
   * The gateway itself closes an incident (a test alarm that came through: "test passed"): a `resolved` event with no
   * actor, own transaction, published. Only for what needs no person; [] if the incident is already closed.
   */
  resolveBySystem(incidentId: string, outcome: string, data?: { rule?: string }): Ret<M, CommittedEvent[]>;
  /**
   * The incident follows its resident to `to.unitId` (her unit was changed): a `moved` event, own transaction,
   * published; [] if it is no longer open (taken: its handlers keep it) or already there. The tier its escalation had reached is kept if it is one of
   * `to.above` (the new unit's parents, read by the caller from its network, which the writer thread's copy may lag).
   */
  move(incidentId: string, to: { unitId: string | null; above: readonly string[] }, reason: string): Ret<M, CommittedEvent[]>;
  /**
   * Acknowledged or dispatched, its follow-up (`dueAt`) passed and nobody on site: an `overdue` event, the next
   * follow-up one reach budget later; own transaction, published. [] if it no longer waits on `dueAt`.
   */
  followUp(incidentId: string, dueAt: number, opts?: { catchUp?: boolean }): Ret<M, CommittedOf<'overdue'>[]>;
  /** add an information event (notification attempts, device commands, system notes); own transaction, published */
  record<K extends InfoEventType>(incidentId: string, type: K, data: IncidentEventData[K], actor?: string | null): Ret<M, CommittedEvent[]>;
  /**
   * The WebSocket layer wrote the opening of this incident to a console: a `pushed` receipt (batched, not an event,
   * not streamed); the first stamps `pushed`. True for the first push known.
   */
  markPushed(incidentId: string, seq: number, at: number): boolean;
  /**
   * A console confirmed the opening: one `delivered` receipt per console user (batched, not an event, not streamed);
   * the first stamps `delivered`. `username` is kept so the timeline names the person. True if newly recorded.
   */
  markDelivered(incidentId: string, seq: number, at: number, consoleUserId: string, username?: string): boolean;
  /** the incident's push and delivery receipts, oldest first (queued ones included) */
  receipts(incidentId: string): IncidentReceipt[];
  get(incidentId: string): Ret<M, IncidentRow | undefined>;
  require(incidentId: string): Ret<M, IncidentRow>;
  events(incidentId: string): Ret<M, CommittedEvent[]>;
  /** the highest seq ever given to an event (0 for an empty log); never goes back, even where rows were removed */
  head(): Ret<M, number>;
  /** the global log after `seq` (console resume), optionally limited to what a unit may see */
  eventsAfter(seq: number, opts?: { limit?: number; scope?: string | null; upTo?: number }): Ret<M, CommittedEvent[]>;
  list(filter?: IncidentFilter): Ret<M, { items: IncidentRow[]; total: number }>;
  /**
   * The console's snapshot: every active incident visible from `scope` (null = all; the same rule as `list` and the
   * stream), P1 first then oldest, after the keyset cursor `after`, at most `limit`; with the log's head read in the
   * same read transaction, so snapshot + stream from `head` has no gap.
   */
  active(opts: { scope: string | null; after: ActiveCursor | null; limit: number }): Ret<M, ActivePage>;
  /** the state derived from the events (and the first push and delivery receipts, for those two stamps) */
  rebuild(incidentId: string): Ret<M, IncidentRow | null>;
  /** incidents waiting on a deadline (acknowledgement, or someone on site), for the escalation scheduler */
  pendingDeadlines(): Ret<M, IncidentRow[]>;
  /** incidents not yet resolved or cancelled, per priority (tests excluded), for /metrics */
  openCounts(): Ret<M, Record<Priority, number>>;
}

/** The one-node service (SQLite): what the gateway uses today. */
export type IncidentService = IncidentServiceOf<'sync'>;

/** The log's writes that may run elsewhere than where they are asked for (the writer thread): a value or a promise. */
export type IncidentWrites = Pick<IncidentServiceOf<StoreMode>, 'act' | 'escalate' | 'resolveBySystem' | 'record' | 'move' | 'followUp'>;
/**
 * The incident service as the response side uses it: reads at once from this thread's connection, writes perhaps
 * handed to the log's one writer (the gateway routes them to its writer thread; eldergate.ts).
 */
export type IncidentApi = Omit<IncidentService, keyof IncidentWrites> & IncidentWrites;

/** Which statuses each action may start from; anything else is a 409 with the current state. */
const ALLOWED_FROM: Record<IncidentActionType, readonly IncidentStatus[]> = {
  acknowledge: ['open'],
  dispatch: ['acknowledged', 'dispatched'],
  'on-site': ['acknowledged', 'dispatched'],
  resolve: ['acknowledged', 'dispatched', 'on-site'],
  cancel: ['open', 'acknowledged', 'dispatched', 'on-site'],
  note: ['open', 'acknowledged', 'dispatched', 'on-site', 'resolved', 'cancelled'],
};

const MAX_TEXT = 2000;
function text(value: unknown, field: string, what: string): string {
  if (typeof value !== 'string' || !value.trim()) throw new ValidationError(`${field}: ${what}`, { field });
  if (value.length > MAX_TEXT) throw new ValidationError(`${field}: at most ${MAX_TEXT} characters`, { field });
  return value.trim();
}

export interface IncidentServiceDeps<M extends StoreMode = 'sync'> {
  store: Store;
  bus: Bus;
  config: Pick<Config, 'budgets'>;
  log: Logger;
  clock: Clock;
  network: Network;
  /** where push and delivery receipts go (created here if not given) */
  receipts?: Receipts;
  /** the incident area's storage (SQLite over `store` if not given) */
  incidentStore?: IncidentStore<M>;
  /** whether a device belongs to a test run (devices.test; read from `store` if not given) */
  isTestDevice?: (deviceId: string) => boolean | Promise<boolean>;
}

/**
 * What an incident's deadline waits for decides its budget: acknowledgement while open (escalation), someone on site
 * once acknowledged or dispatched (the follow-up). One rule for the incident service and the escalation timers.
 */
export function deadlineBudgetMs(budgets: Config['budgets'], priority: Priority, status: IncidentStatus): number {
  return status === 'open' ? budgets[priority].ackMs : budgets[priority].reachMs;
}

/**
 * A device's test mark (devices.test) as the incident service reads it: a primary-key read, inside the caller's
 * transaction when there is one. A source that is not a device is not a test.
 */
export function testMarkOf(sqlite: Database.Database): (deviceId: string) => boolean {
  const deviceTest = sqlite.prepare<[string], number>('SELECT test FROM devices WHERE id = ?').pluck();
  return (deviceId) => deviceTest.get(deviceId) === 1;
}

export function createIncidentService(deps: IncidentServiceDeps<'sync'>): IncidentService;
export function createIncidentService<M extends StoreMode>(deps: IncidentServiceDeps<M> & { incidentStore: IncidentStore<M> }): IncidentServiceOf<M>;
export function createIncidentService(deps: IncidentServiceDeps<StoreMode>): IncidentServiceOf<StoreMode> {
  const { sqlite } = deps.store;
  const { bus, clock, network, config } = deps;
  const log = deps.log.child({ module: 'incidents' });
  const receipts = deps.receipts ?? createReceipts({ store: deps.store, log: deps.log });

  // the incident area's storage (response/store): every read and append of the log goes through it; the domain
  // below is written once and run synchronously over SQLite, awaited over PostgreSQL (store/run.ts)
  const store: IncidentStore<StoreMode> = deps.incidentStore ?? createSqliteIncidentStore(sqlite);
  const run = runnerFor(store.mode);
  // a test run's device (devices.test): the device area's, a primary-key read inside the alarm's own transaction
  const isTestDevice = deps.isTestDevice ?? testMarkOf(sqlite);

  /**
   * Append one event and move the projection with it, inside `tx`. `body` is a type with its data as the union
   * (events.ts) defines them: every append site is type-checked against it.
   */
  function* append(
    t: Tx,
    state: IncidentRow | null,
    incidentId: string,
    body: IncidentEventBody,
    at: number,
    actor: string | null,
    unitId: string | null,
  ): Step<{ event: CommittedEvent; state: IncidentRow }> {
    const event = yield* io(t.append({ incidentId, body, at, actor, unitId }));
    const next = applyEvent(state, event);
    yield* io(t.saveProjection(next, state === null, state));
    return { event, state: next };
  }

  /** `body` in one write transaction of the store, run by the store's runner (`joinCaller`: see IncidentStore) */
  const tx = <T>(body: (t: Tx) => Step<T>, joinCaller?: boolean): T | Promise<T> => store.transaction((t) => run(body(t)), joinCaller);

  function* requireIn(t: Tx, id: string): Step<IncidentRow> {
    const state = yield* io(t.get(id));
    if (!state) throw new NotFoundError('incident', id);
    return state;
  }

  // Re-entrant publishing: a bus listener that itself commits and publishes (the WebSocket layer stamping a push)
  // must not make other listeners see the newer event before the older one.
  const outbox: CommittedEvent[] = [];
  let publishing = false;
  function publishCommitted(events: readonly IncidentEvent[]) {
    for (const e of events) {
      if (e.seq > published) published = e.seq;
      logCommitted(e);
      outbox.push('unitId' in e ? (e as CommittedEvent) : { ...e, unitId: unitIdOf(e.incidentId) });
    }
    if (publishing) return;
    publishing = true;
    try {
      while (outbox.length) {
        const e = outbox.shift()!;
        // each listener on its own: EventEmitter stops at the first that throws, and a faulty listener must not
        // stop the others (the consoles' stream among them) from hearing about an alarm
        for (const listener of bus.listeners('incident-event')) {
          try {
            (listener as (ev: CommittedEvent) => void)(e);
          } catch (err) {
            log.error({ err, incidentId: e.incidentId, seq: e.seq }, 'an incident-event listener failed');
          }
        }
      }
    } finally {
      publishing = false;
    }
  }

  /**
   * An event handed over without its unit (the writer thread's, from before unitId was sent with it) takes its
   * incident's. Only the synchronous store can be read here; the asynchronous one returns every event with its unit.
   */
  /**
   * What the device's alarms did, logged once committed: a transaction that fails (a full disk) opened, cleared and
   * cancelled nothing, and a log saying otherwise would send whoever reads it after the wrong incident.
   */
  function logCommitted(e: IncidentEvent): void {
    if (e.type === 'opened') {
      const o = e.data as OpenedData;
      log.info({ incidentId: e.incidentId, deviceId: o.deviceId, type: o.type, priority: o.priority, test: o.test, unitId: o.unitId }, 'incident opened');
    } else if (e.type === 'cleared') {
      const d = e.data as { reason?: string };
      log.info({ incidentId: e.incidentId, reason: d.reason }, 'incident cleared');
    } else if (e.type === 'cancelled' && (e.data as { outcome?: string }).outcome === 'cancelled by resident') {
      log.info({ incidentId: e.incidentId, elapsedMs: (e.data as { elapsedMs?: number }).elapsedMs }, 'incident cancelled by resident');
    } else if (e.type === 'late-cancel') {
      const d = e.data as { elapsedMs?: number; cancelWindowMs?: number | null };
      log.info({ incidentId: e.incidentId, elapsedMs: d.elapsedMs, windowMs: d.cancelWindowMs }, 'late cancel noted');
    }
  }

  function unitIdOf(incidentId: string): string | null {
    if (store.mode !== 'sync') return null;
    return (store as IncidentStore<'sync'>).get(incidentId)?.unitId ?? null;
  }

  const waitFor = (priority: Priority, status: IncidentStatus) => deadlineBudgetMs(config.budgets, priority, status);

  function budgetFor(priority: Priority): number {
    return config.budgets[priority].ackMs;
  }

  /**
   * Every incident of a test run's device is a test incident: shown apart on the board, never escalated or notified,
   * not in the KPIs. A device that is not in the registry (a system source) is not a test device.
   */
  function* raise(t: Tx, action: Extract<AlarmAction, { action: 'raise' }>, source: AlarmSource): Step<CommittedEvent[]> {
    const now = clock.now();
    const test = Boolean(action.test) || (yield* io(isTestDevice(source.deviceId)));
    const state = yield* io(t.openOf(source.deviceId, action.type, test, source.residentId ?? null, source.account ?? null));
    if (state) {
      const data: IncidentEventData['joined'] = { count: state.count + 1, rule: action.rule, priority: action.priority };
      // more urgent than the card: it takes the priority, and waits no longer than the new priority allows from now
      // (for acknowledgement while open, for someone on site once acknowledged)
      if (PRIORITIES.indexOf(action.priority) < PRIORITIES.indexOf(state.priority)) {
        const deadlineAt = state.deadlineAt === null ? null : Math.min(state.deadlineAt, now + waitFor(action.priority, state.status));
        data.raised = { from: state.priority, deadlineAt };
      }
      if (action.position) data.position = action.position;
      if (source.observationId !== undefined) data.observationId = source.observationId;
      if (source.stamps.received !== undefined) data.received = source.stamps.received;
      // e.g. possible-replay: a repeat of an old observation's key, raised because it could be a new cry for help
      if (source.flags?.length) data.flags = source.flags;
      const { event } = yield* append(t, state, state.id, { type: 'joined', data }, now, null, state.unitId);
      return [event];
    }
    const id = newId('inc');
    const opened: OpenedData = {
      deviceId: source.deviceId,
      residentId: source.residentId,
      ...(source.account !== undefined ? { account: source.account } : {}),
      unitId: source.unitId,
      tierUnitId: source.unitId,
      type: action.type,
      priority: action.priority,
      test,
      position: action.position ?? null,
      // test alarms are recorded, not escalated
      deadlineAt: test ? null : now + budgetFor(action.priority),
      cancelWindowMs: action.cancelWindowMs ?? null,
      rule: action.rule,
      // `durable`: written in the transaction that makes the incident durable (the caller commits right after)
      stamps: { ...source.stamps, durable: source.stamps.durable ?? now },
      ...(source.observationId !== undefined ? { observationId: source.observationId } : {}),
      ...(source.flags?.length ? { flags: source.flags } : {}),
      ...(action.data ? { data: action.data } : {}),
    };
    // logged once committed (publishCommitted): a raise whose transaction fails (disk full) opened nothing
    const { event } = yield* append(t, null, id, { type: 'opened', data: opened }, now, null, source.unitId);
    return [event];
  }

  function* clear(t: Tx, action: Extract<AlarmAction, { action: 'clear' }>, source: AlarmSource): Step<CommittedEvent[]> {
    // a test device's incidents are all test incidents: its "back online" clears its test "offline"
    const state = yield* io(t.openOf(source.deviceId, action.type, yield* io(isTestDevice(source.deviceId)), source.residentId ?? null, source.account ?? null));
    if (!state) return [];
    const now = clock.now();
    const { event } = yield* append(t, state, state.id, {
      type: 'cleared', data: { reason: action.reason, rule: action.rule, stamps: { resolved: now } },
    }, now, null, state.unitId);
    return [event];
  }

  function* cancelByDevice(t: Tx, action: Extract<AlarmAction, { action: 'cancel' }>, source: AlarmSource): Step<CommittedEvent[]> {
    const state = yield* io(t.openOf(source.deviceId, action.type, yield* io(isTestDevice(source.deviceId)), source.residentId ?? null, source.account ?? null));
    if (!state) return [];
    const now = clock.now();
    const openedEvent = yield* io(t.opened(state.id));
    const opened = openedEvent?.type === 'opened' ? openedEvent.data : undefined;
    const windowMs = opened?.cancelWindowMs ?? null;
    // measured on the gateway's receive times of the alarm and of the cancel, so a slow queue never costs the resident
    const from = opened?.stamps.received ?? state.openedAt;
    const when = source.stamps.received ?? now;
    const elapsedMs = when - from;
    const base = { reason: action.reason, rule: action.rule, elapsedMs, cancelWindowMs: windowMs };
    if (windowMs !== null && elapsedMs <= windowMs) {
      const { event } = yield* append(t, state, state.id, {
        type: 'cancelled', data: { ...base, outcome: 'cancelled by resident', stamps: { cancelled: now } },
      }, now, null, state.unitId);
      return [event];
    }
    // outside the window (or no window at all): help may already be on the way; the cancel is only noted
    const { event } = yield* append(t, state, state.id, { type: 'late-cancel', data: base }, now, null, state.unitId);
    return [event];
  }

  function alarmSteps(action: AlarmAction, source: AlarmSource): (t: Tx) => Step<CommittedEvent[]> {
    return (t) => {
      switch (action.action) {
        case 'raise':
          return raise(t, action, source);
        case 'clear':
          return clear(t, action, source);
        case 'cancel':
          return cancelByDevice(t, action, source);
      }
    };
  }

  function applyAlarm(action: AlarmAction, source: AlarmSource, joinCaller?: boolean) {
    // better-sqlite3 nests a transaction as a savepoint, so this is atomic whether or not the caller opened one
    return tx(alarmSteps(action, source), joinCaller);
  }

  function act(incidentId: string, action: IncidentAction, actor: Actor) {
    const committed = tx(function* (t) {
      const state = yield* requireIn(t, incidentId);
      const allowed = ALLOWED_FROM[action.type];
      if (!allowed) throw new ValidationError(`action: unknown action "${String((action as { type: unknown }).type)}"`);
      if (!allowed.includes(state.status)) {
        const hint =
          state.status === 'open'
            ? 'acknowledge it first'
            : isClosed(state.status)
              ? 'it is closed; add a note instead'
              : `allowed from: ${allowed.join(', ')}`;
        throw new ConflictError(`cannot ${action.type} incident ${incidentId}: it is ${state.status}; ${hint}`, {
          incidentId,
          status: state.status,
          assignee: state.assignee,
          acknowledgedAt: state.stamps.acknowledged ?? null,
          lastSeq: state.lastSeq,
        });
      }
      const now = clock.now();
      const by: { username?: string } = actor.username ? { username: actor.username } : {};
      let body: IncidentEventBody;
      switch (action.type) {
        case 'acknowledge':
          body = {
            type: 'acknowledged',
            data: {
              ...by, stamps: { acknowledged: now }, ackMs: now - state.openedAt,
              // not left waiting on whoever took it: if nobody is on site within the reach budget, it comes back
              // the reach budget counts from the opening (the service circle, as the on-site KPI and the board count
              // it); taken late, whoever took it still gets an acknowledgement budget before the follow-up
              ...(state.test ? {} : { followUpAt: Math.max(state.openedAt + config.budgets[state.priority].reachMs, now + budgetFor(state.priority)) }),
            },
          };
          break;
        case 'dispatch': {
          const staffId = text(action.staffId, 'staffId', 'name the staff member to dispatch');
          const staff = network.getStaff(staffId);
          if (!staff) throw new ValidationError(`staffId: staff member "${staffId}" does not exist`, { field: 'staffId' });
          // dispatching someone off duty or from another unit is allowed (a life may depend on it) but flagged
          body = {
            type: 'dispatched',
            data: {
              ...by, staffId, staffName: staff.name, staffRole: staff.role, staffUnitId: staff.unitId, onDuty: staff.onDuty,
              stamps: { dispatched: now },
            },
          };
          break;
        }
        case 'on-site':
          body = { type: 'on-site', data: { ...by, stamps: { onSite: now }, onSiteMs: now - state.openedAt } };
          break;
        case 'resolve':
          body = {
            type: 'resolved',
            data: { ...by, outcome: text(action.outcome, 'outcome', 'say how it ended (an outcome code or text)'), stamps: { resolved: now } },
          };
          break;
        case 'cancel': {
          const reason = text(action.reason, 'reason', 'say why it is cancelled');
          body = { type: 'cancelled', data: { ...by, reason, outcome: `cancelled: ${reason}`, stamps: { cancelled: now } } };
          break;
        }
        case 'note':
          body = { type: 'note', data: { ...by, text: text(action.text, 'text', 'the note is empty') } };
          break;
      }
      const { event, state: next } = yield* append(t, state, incidentId, body, now, actor.id, state.unitId);
      return { incident: next, events: [event] };
    });
    return andThen(committed, (result) => {
      log.info({ incidentId, action: action.type, actor: actor.username ?? actor.id }, 'incident action');
      publishCommitted(result.events);
      return result;
    });
  }

  function escalate(incidentId: string, steps: readonly EscalationStep[]) {
    if (!steps.length) return run((function* (): Step<CommittedOf<'escalated'>[]> { return []; })());
    const committed = tx(function* (t): Step<CommittedOf<'escalated'>[]> {
      const found = yield* io(t.get(incidentId));
      // a stale timer (acknowledged meanwhile, already escalated) changes nothing; a test incident never escalates
      if (!found || found.test || found.status !== 'open' || found.deadlineAt !== steps[0]!.dueAt) return [];
      let state: IncidentRow = found;
      const out: CommittedOf<'escalated'>[] = [];
      for (const s of steps) {
        const r: { event: CommittedEvent; state: IncidentRow } = yield* append(t, state, incidentId, { type: 'escalated', data: {
          fromUnitId: s.fromUnitId,
          toUnitId: s.toUnitId,
          toTier: s.toTier,
          level: state.escalationLevel + 1,
          renotify: s.renotify,
          breach: true,
          dueAt: s.dueAt,
          lateMs: s.lateMs ?? s.at - s.dueAt,
          deadlineAt: s.deadlineAt,
          ...(s.catchUp ? { catchUp: true } : {}),
        } }, s.at, null, state.unitId);
        state = r.state;
        out.push(r.event as CommittedOf<'escalated'>);
      }
      return out;
    });
    return andThen(committed, (events) => {
      publishCommitted(events);
      return events;
    });
  }

  function resolveBySystem(incidentId: string, outcome: string, data: { rule?: string } = {}) {
    const committed = tx(function* (t): Step<CommittedEvent[]> {
      const state = yield* io(t.get(incidentId));
      if (!state || isClosed(state.status)) return [];
      const now = clock.now();
      return [(yield* append(t, state, incidentId, {
        type: 'resolved', data: { ...data, by: 'gateway', outcome, stamps: { resolved: now } },
      }, now, null, state.unitId)).event];
    });
    return andThen(committed, (events) => {
      if (events.length) log.info({ incidentId, outcome }, 'incident resolved by the gateway');
      publishCommitted(events);
      return events;
    });
  }

  function move(incidentId: string, to: { unitId: string | null; above: readonly string[] }, reason: string) {
    const toUnitId = to.unitId;
    const committed = tx(function* (t): Step<CommittedEvent[]> {
      const state = yield* io(t.get(incidentId));
      // only a card nobody has taken yet: one acknowledged is being handled by people of the unit it was in, who keep it
      // (and its follow-up) until it is closed; her next alarms join it there
      if (!state || state.status !== 'open' || state.unitId === toUnitId) return [];
      // an escalation that reached a tier above her new unit goes on from there (its people see the new unit's cards
      // too); otherwise from the new unit, with what is left of the current deadline
      const tierUnitId = state.tierUnitId !== null && to.above.includes(state.tierUnitId) ? state.tierUnitId : toUnitId;
      return [(yield* append(t, state, incidentId, {
        type: 'moved', data: { fromUnitId: state.unitId, toUnitId, tierUnitId, reason },
      }, clock.now(), null, toUnitId)).event];
    });
    return andThen(committed, (events) => {
      if (events.length) log.info({ incidentId, toUnitId, reason }, 'incident moved to another unit');
      publishCommitted(events);
      return events;
    });
  }

  function followUp(incidentId: string, dueAt: number, opts: { catchUp?: boolean } = {}) {
    const committed = tx(function* (t): Step<CommittedOf<'overdue'>[]> {
      const state = yield* io(t.get(incidentId));
      if (!state || state.test || (state.status !== 'acknowledged' && state.status !== 'dispatched') || state.deadlineAt !== dueAt) return [];
      const now = clock.now();
      const { event } = yield* append(t, state, incidentId, {
        type: 'overdue',
        data: {
          status: state.status, dueAt, lateMs: Math.max(0, now - dueAt), deadlineAt: now + waitFor(state.priority, state.status),
          toUnitId: state.tierUnitId ?? state.unitId, ...(opts.catchUp ? { catchUp: true } : {}),
        },
      }, now, null, state.unitId);
      return [event as CommittedOf<'overdue'>];
    });
    return andThen(committed, (events) => {
      for (const e of events) log.warn({ incidentId, status: e.data.status, lateMs: e.data.lateMs }, 'nobody on site within the reach budget: incident overdue, its people told again');
      publishCommitted(events);
      return events;
    });
  }

  function record<K extends InfoEventType>(incidentId: string, type: K, data: IncidentEventData[K], actor: string | null = null) {
    // TypeScript does not pair a generic K with its data inside the union on its own: the signature did the checking
    const body = { type, data } as IncidentEventBody;
    const committed = tx(function* (t) {
      const state = yield* requireIn(t, incidentId);
      return [(yield* append(t, state, incidentId, body, clock.now(), actor, state.unitId)).event];
    });
    return andThen(committed, (events) => {
      publishCommitted(events);
      return events;
    });
  }

  // Receipts are not events: nothing is appended, published or streamed (receipts.ts). A push or delivery of an
  // incident that no longer exists (deleted by retention meanwhile) is dropped at the batch (no row to stamp).
  function markPushed(incidentId: string, seq: number, at: number): boolean {
    return receipts.pushed(incidentId, seq, at);
  }

  function markDelivered(incidentId: string, seq: number, at: number, consoleUserId: string, username?: string): boolean {
    return receipts.delivered(incidentId, seq, at, consoleUserId, username);
  }

  // what was in the log at start is durable; from then on, what has been published (publishCommitted)
  let published = 0;
  const started = andThen(store.head(), (head) => { if (head > published) published = head; });
  if (started instanceof Promise) started.catch((err) => log.error({ err }, 'reading the incident log head failed'));

  function list(filter: IncidentFilter = {}) {
    const { scope, unitId, ...rest } = filter;
    const scopes = [scope, unitId].filter((u): u is string => Boolean(u)).map((u) => network.scopeOf(u));
    return store.list({ ...rest, scopes });
  }

  return {
    applyAlarm,
    alarmSteps,
    publishCommitted,
    publishedSeq: () => published,
    act,
    escalate,
    resolveBySystem,
    move,
    followUp,
    record,
    markPushed,
    markDelivered,
    receipts: (incidentId) => receipts.of(incidentId),
    head: () => store.head(),
    get: (id) => store.get(id),
    require: (id) => andThen(store.get(id), (row) => {
      if (!row) throw new NotFoundError('incident', id);
      return row;
    }),
    events: (id) => store.events(id),
    eventsAfter(seq, opts = {}) {
      const limit = Math.min(Math.max(opts.limit ?? 1000, 1), EVENTS_READ_MAX);
      return store.eventsAfter(seq, limit, opts.scope ? network.scopeOf(opts.scope) : undefined, opts.upTo);
    },
    list,
    active: ({ scope, after, limit }) => store.active(scope ? network.scopeOf(scope) : null, after, limit),
    rebuild: (id) => andThen(store.events(id), (events) => {
      const state = fold(events);
      if (!state) return null;
      receipts.flush();
      // the receipts' first push and delivery are the stamps (set once, like every stamp)
      for (const [k, v] of Object.entries(receipts.firstStamps(id))) if (state.stamps[k] === undefined) state.stamps[k] = v;
      return state;
    }),
    pendingDeadlines: () => store.pendingDeadlines(),
    openCounts: () => store.openCounts(),
  } as IncidentServiceOf<StoreMode>;
}
