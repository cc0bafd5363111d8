// Incidents: alarms open or join them, people move them through their lifecycle, escalation and notifiers add to
// them. Every change is an append-only `incident_events` row (global `seq`), typed by the union in events.ts; the
// `incidents` row is the projection of those events, written in the same transaction (see projection.ts). Push and
// delivery receipts are not events: receipts.ts writes them in batches, apart from the log and the stream.
import type { Logger } from 'pino';
import type { Store } from '../core/db.js';
import type { Bus } from '../core/bus.js';
import type { Config } from '../core/config.js';
import type { AlarmAction, AlarmSource, IncidentStatus, Position, Priority } from '../core/contracts.js';
import type {
  IncidentEvent, IncidentEventBody, IncidentEventData, IncidentEventType, IncidentReceipt, InfoEventType,
} from './events.js';
import { createReceipts, type Receipts } from './receipts.js';
import { ConflictError, NotFoundError, ValidationError } from '../core/errors.js';
import type { Clock } from './clock.js';
import type { Network } from './network.js';
import { applyEvent, fold, isClosed, type IncidentRow, type OpenedData } from './projection.js';
import { newId } from './ids.js';

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

const PRIO_RANK_SQL = `CASE priority WHEN 'P1' THEN 0 WHEN 'P2' THEN 1 ELSE 2 END`;

export interface IncidentService {
  /**
   * SYNCHRONOUS, inside the caller's transaction: open, join, clear or cancel. Returns the events appended; the
   * caller hands them to `publishCommitted` once its transaction has committed.
   */
  applyAlarm(action: AlarmAction, source: AlarmSource): CommittedEvent[];
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
  act(incidentId: string, action: IncidentAction, actor: Actor): { incident: IncidentRow; events: CommittedEvent[] };
  /** escalation steps (own transaction, published); [] if the incident no longer waits on `steps[0].dueAt` */
  escalate(incidentId: string, steps: readonly EscalationStep[]): CommittedOf<'escalated'>[];
  /**
   * The gateway itself closes an incident (a test alarm that came through: "test passed"): a `resolved` event with no
   * actor, own transaction, published. Only for what needs no person; [] if the incident is already closed.
   */
  resolveBySystem(incidentId: string, outcome: string, data?: { rule?: string }): CommittedEvent[];
  /** add an information event (notification attempts, device commands, system notes); own transaction, published */
  record<K extends InfoEventType>(incidentId: string, type: K, data: IncidentEventData[K], actor?: string | null): CommittedEvent[];
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
  get(incidentId: string): IncidentRow | undefined;
  require(incidentId: string): IncidentRow;
  events(incidentId: string): CommittedEvent[];
  /** the highest seq ever given to an event (0 for an empty log); never goes back, even where rows were removed */
  head(): number;
  /** the global log after `seq` (console resume), optionally limited to what a unit may see */
  eventsAfter(seq: number, opts?: { limit?: number; scope?: string | null }): CommittedEvent[];
  list(filter?: IncidentFilter): { items: IncidentRow[]; total: number };
  /**
   * The console's snapshot: every active incident visible from `scope` (null = all; the same rule as `list` and the
   * stream), P1 first then oldest, after the keyset cursor `after`, at most `limit`; with the log's head read in the
   * same read transaction, so snapshot + stream from `head` has no gap.
   */
  active(opts: { scope: string | null; after: ActiveCursor | null; limit: number }): { items: IncidentRow[]; head: number; next: ActiveCursor | null };
  /** the state derived from the events (and the first push and delivery receipts, for those two stamps) */
  rebuild(incidentId: string): IncidentRow | null;
  /** incidents waiting for acknowledgement with a deadline, for the escalation scheduler */
  pendingDeadlines(): IncidentRow[];
  /** incidents not yet resolved or cancelled, per priority (tests excluded), for /metrics */
  openCounts(): Record<Priority, number>;
}

interface IncidentDbRow {
  id: string;
  device_id: string;
  resident_id: string | null;
  unit_id: string | null;
  tier_unit_id: string | null;
  escalation_level: number;
  type: string;
  priority: Priority;
  status: IncidentStatus;
  test: number;
  count: number;
  opened_at: number;
  last_at: number;
  deadline_at: number | null;
  position: string | null;
  stamps: string;
  assignee: string | null;
  outcome: string | null;
  last_seq: number;
}
interface EventDbRow {
  seq: number;
  incident_id: string;
  type: IncidentEventType;
  at: number;
  actor: string | null;
  unit_id: string | null;
  data: string;
}

const toRow = (r: IncidentDbRow): IncidentRow => ({
  id: r.id,
  deviceId: r.device_id,
  residentId: r.resident_id,
  unitId: r.unit_id,
  tierUnitId: r.tier_unit_id,
  escalationLevel: r.escalation_level,
  type: r.type,
  priority: r.priority,
  status: r.status,
  test: r.test === 1,
  count: r.count,
  openedAt: r.opened_at,
  lastAt: r.last_at,
  deadlineAt: r.deadline_at,
  position: r.position === null ? null : (JSON.parse(r.position) as Position | null),
  stamps: JSON.parse(r.stamps) as Record<string, number>,
  assignee: r.assignee,
  outcome: r.outcome,
  lastSeq: r.last_seq,
});
const toEvent = (r: EventDbRow): CommittedEvent => ({
  seq: r.seq,
  incidentId: r.incident_id,
  type: r.type,
  at: r.at,
  actor: r.actor,
  unitId: r.unit_id,
  // written through `append`, whose body is checked against the union (events.ts)
  data: JSON.parse(r.data) as IncidentEventData[IncidentEventType],
} as CommittedEvent);

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

export interface IncidentServiceDeps {
  store: Store;
  bus: Bus;
  config: Pick<Config, 'budgets'>;
  log: Logger;
  clock: Clock;
  network: Network;
  /** where push and delivery receipts go (created here if not given) */
  receipts?: Receipts;
}

export function createIncidentService(deps: IncidentServiceDeps): IncidentService {
  const { sqlite } = deps.store;
  const { bus, clock, network, config } = deps;
  const log = deps.log.child({ module: 'incidents' });
  const receipts = deps.receipts ?? createReceipts({ store: deps.store, log: deps.log });

  const q = {
    byId: sqlite.prepare<[string], IncidentDbRow>('SELECT * FROM incidents WHERE id = ?'),
    // one open incident per (device, type, test): a real alarm never joins a test incident, nor the reverse
    openOf: sqlite.prepare<[string, string, number], IncidentDbRow>(
      `SELECT * FROM incidents WHERE device_id = ? AND type = ? AND test = ? AND status NOT IN ('resolved', 'cancelled')
       ORDER BY opened_at DESC LIMIT 1`,
    ),
    insertEvent: sqlite.prepare<[string, string, number, string | null, string | null, string]>(
      'INSERT INTO incident_events (incident_id, type, at, actor, unit_id, data) VALUES (?, ?, ?, ?, ?, ?)',
    ),
    insertIncident: sqlite.prepare(
      `INSERT INTO incidents (id, device_id, resident_id, unit_id, tier_unit_id, escalation_level, type, priority, status,
         test, count, opened_at, last_at, deadline_at, position, stamps, assignee, outcome, last_seq)
       VALUES (@id, @deviceId, @residentId, @unitId, @tierUnitId, @escalationLevel, @type, @priority, @status, @test,
         @count, @openedAt, @lastAt, @deadlineAt, @position, @stamps, @assignee, @outcome, @lastSeq)`,
    ),
    updateIncident: sqlite.prepare(
      `UPDATE incidents SET tier_unit_id = @tierUnitId, escalation_level = @escalationLevel, priority = @priority,
         status = @status, count = @count, last_at = @lastAt, deadline_at = @deadlineAt, position = @position,
         stamps = @stamps, assignee = @assignee, outcome = @outcome, last_seq = @lastSeq
       WHERE id = @id`,
    ),
    events: sqlite.prepare<[string], EventDbRow>('SELECT * FROM incident_events WHERE incident_id = ? ORDER BY seq'),
    openedEvent: sqlite.prepare<[string], EventDbRow>(
      `SELECT * FROM incident_events WHERE incident_id = ? AND type = 'opened' LIMIT 1`,
    ),
    after: sqlite.prepare<[number, number], EventDbRow>('SELECT * FROM incident_events WHERE seq > ? ORDER BY seq LIMIT ?'),
    afterScoped: sqlite.prepare<[number, string, number, number], EventDbRow>(
      `SELECT * FROM incident_events WHERE seq > ?
         AND (unit_id IN (SELECT value FROM json_each(?))
              OR (? = 1 AND (unit_id IS NULL OR unit_id NOT IN (SELECT id FROM units))))
       ORDER BY seq LIMIT ?`,
    ),
    openCounts: sqlite.prepare<[], { priority: Priority; n: number }>(
      `SELECT priority, count(*) AS n FROM incidents WHERE status NOT IN ('resolved', 'cancelled') AND test = 0 GROUP BY priority`,
    ),
    // a test run's device (devices.test): a primary-key read inside the alarm's own transaction, microseconds
    deviceTest: sqlite.prepare<[string], number>('SELECT test FROM devices WHERE id = ?').pluck(),
    pending: sqlite.prepare<[], IncidentDbRow>(
      `SELECT * FROM incidents WHERE status = 'open' AND deadline_at IS NOT NULL ORDER BY deadline_at`,
    ),
  };

  const params = (row: IncidentRow) => ({
    ...row,
    test: row.test ? 1 : 0,
    position: row.position === null ? null : JSON.stringify(row.position),
    stamps: JSON.stringify(row.stamps),
  });

  /**
   * Append one event and move the projection with it. Must run inside a transaction. `body` is a type with its data
   * as the union (events.ts) defines them: every append site is type-checked against it.
   */
  function append(
    state: IncidentRow | null,
    incidentId: string,
    body: IncidentEventBody,
    at: number,
    actor: string | null,
    unitId: string | null,
  ): { event: CommittedEvent; state: IncidentRow } {
    const info = q.insertEvent.run(incidentId, body.type, at, actor, unitId, JSON.stringify(body.data));
    const event = { seq: Number(info.lastInsertRowid), incidentId, at, actor, unitId, ...body } as CommittedEvent;
    const next = applyEvent(state, event);
    if (state) q.updateIncident.run(params(next));
    else q.insertIncident.run(params(next));
    return { event, state: next };
  }

  // IMMEDIATE: the writer thread writes the same file on its own connection; a deferred transaction that read first
  // would fail at once (SQLITE_BUSY_SNAPSHOT) instead of waiting its turn
  const tx = <T>(fn: () => T): T => sqlite.transaction(fn).immediate();

  function getRow(id: string): IncidentRow | undefined {
    const r = q.byId.get(id);
    return r ? toRow(r) : undefined;
  }
  function requireRow(id: string): IncidentRow {
    const r = getRow(id);
    if (!r) throw new NotFoundError('incident', id);
    return r;
  }

  // Re-entrant publishing: a bus listener that itself commits and publishes (the WebSocket layer stamping a push)
  // must not make other listeners see the newer event before the older one.
  const outbox: CommittedEvent[] = [];
  let publishing = false;
  function publishCommitted(events: readonly IncidentEvent[]) {
    for (const e of events) {
      if (e.seq > published) published = e.seq;
      outbox.push('unitId' in e ? (e as CommittedEvent) : { ...e, unitId: getRow(e.incidentId)?.unitId ?? null });
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
   * Every incident of a test run's device is a test incident: shown apart on the board, never escalated or notified,
   * not in the KPIs. A device that is not in the registry (a system source) is not a test device.
   */
  function fromTestDevice(deviceId: string): boolean {
    return q.deviceTest.get(deviceId) === 1;
  }

  function budgetFor(priority: Priority): number {
    return config.budgets[priority].ackMs;
  }

  function raise(action: Extract<AlarmAction, { action: 'raise' }>, source: AlarmSource): CommittedEvent[] {
    const now = clock.now();
    const test = Boolean(action.test) || fromTestDevice(source.deviceId);
    const open = q.openOf.get(source.deviceId, action.type, test ? 1 : 0);
    if (open) {
      const state = toRow(open);
      const data: IncidentEventData['joined'] = { count: state.count + 1, rule: action.rule, priority: action.priority };
      if (action.position) data.position = action.position;
      if (source.observationId !== undefined) data.observationId = source.observationId;
      if (source.stamps.received !== undefined) data.received = source.stamps.received;
      // e.g. possible-replay: a repeat of an old observation's key, raised because it could be a new cry for help
      if (source.flags?.length) data.flags = source.flags;
      const { event } = append(state, state.id, { type: 'joined', data }, now, null, state.unitId);
      return [event];
    }
    const id = newId('inc');
    const opened: OpenedData = {
      deviceId: source.deviceId,
      residentId: source.residentId,
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
    const { event } = append(null, id, { type: 'opened', data: opened }, now, null, source.unitId);
    log.info(
      { incidentId: id, deviceId: source.deviceId, type: action.type, priority: action.priority, test, unitId: source.unitId },
      'incident opened',
    );
    return [event];
  }

  function clear(action: Extract<AlarmAction, { action: 'clear' }>, source: AlarmSource): CommittedEvent[] {
    // a test device's incidents are all test incidents: its "back online" clears its test "offline"
    const open = q.openOf.get(source.deviceId, action.type, fromTestDevice(source.deviceId) ? 1 : 0);
    if (!open) return [];
    const state = toRow(open);
    const now = clock.now();
    const { event } = append(state, state.id, {
      type: 'cleared', data: { reason: action.reason, rule: action.rule, stamps: { resolved: now } },
    }, now, null, state.unitId);
    log.info({ incidentId: state.id, deviceId: source.deviceId, reason: action.reason }, 'incident cleared');
    return [event];
  }

  function cancelByDevice(action: Extract<AlarmAction, { action: 'cancel' }>, source: AlarmSource): CommittedEvent[] {
    const open = q.openOf.get(source.deviceId, action.type, fromTestDevice(source.deviceId) ? 1 : 0);
    if (!open) return [];
    const state = toRow(open);
    const now = clock.now();
    const openedRow = q.openedEvent.get(state.id);
    const opened = openedRow ? (JSON.parse(openedRow.data) as OpenedData) : undefined;
    const windowMs = opened?.cancelWindowMs ?? null;
    // measured on the gateway's receive times of the alarm and of the cancel, so a slow queue never costs the resident
    const from = opened?.stamps.received ?? state.openedAt;
    const when = source.stamps.received ?? now;
    const elapsedMs = when - from;
    const base = { reason: action.reason, rule: action.rule, elapsedMs, cancelWindowMs: windowMs };
    if (windowMs !== null && elapsedMs <= windowMs) {
      const { event } = append(state, state.id, {
        type: 'cancelled', data: { ...base, outcome: 'cancelled by resident', stamps: { cancelled: now } },
      }, now, null, state.unitId);
      log.info({ incidentId: state.id, deviceId: source.deviceId, elapsedMs }, 'incident cancelled by resident');
      return [event];
    }
    // outside the window (or no window at all): help may already be on the way; the cancel is only noted
    const { event } = append(state, state.id, { type: 'late-cancel', data: base }, now, null, state.unitId);
    log.info({ incidentId: state.id, deviceId: source.deviceId, elapsedMs, windowMs }, 'late cancel noted');
    return [event];
  }

  function applyAlarm(action: AlarmAction, source: AlarmSource): CommittedEvent[] {
    // better-sqlite3 nests a transaction as a savepoint, so this is atomic whether or not the caller opened one
    return tx(() => {
      switch (action.action) {
        case 'raise':
          return raise(action, source);
        case 'clear':
          return clear(action, source);
        case 'cancel':
          return cancelByDevice(action, source);
      }
    });
  }

  function act(incidentId: string, action: IncidentAction, actor: Actor) {
    const result = tx(() => {
      const state = requireRow(incidentId);
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
          body = { type: 'acknowledged', data: { ...by, stamps: { acknowledged: now }, ackMs: now - state.openedAt } };
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
      const { event, state: next } = append(state, incidentId, body, now, actor.id, state.unitId);
      return { incident: next, events: [event] };
    });
    log.info({ incidentId, action: action.type, actor: actor.username ?? actor.id }, 'incident action');
    publishCommitted(result.events);
    return result;
  }

  function escalate(incidentId: string, steps: readonly EscalationStep[]): CommittedOf<'escalated'>[] {
    if (!steps.length) return [];
    const events = tx(() => {
      let state = getRow(incidentId);
      // a stale timer (acknowledged meanwhile, already escalated) changes nothing; a test incident never escalates
      if (!state || state.test || state.status !== 'open' || state.deadlineAt !== steps[0]!.dueAt) return [];
      const out: CommittedOf<'escalated'>[] = [];
      for (const s of steps) {
        const r = append(state, incidentId, { type: 'escalated', data: {
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
    publishCommitted(events);
    return events;
  }

  function resolveBySystem(incidentId: string, outcome: string, data: { rule?: string } = {}): CommittedEvent[] {
    const events = tx(() => {
      const state = getRow(incidentId);
      if (!state || isClosed(state.status)) return [];
      const now = clock.now();
      return [append(state, incidentId, {
        type: 'resolved', data: { ...data, by: 'gateway', outcome, stamps: { resolved: now } },
      }, now, null, state.unitId).event];
    });
    if (events.length) log.info({ incidentId, outcome }, 'incident resolved by the gateway');
    publishCommitted(events);
    return events;
  }

  function record<K extends InfoEventType>(incidentId: string, type: K, data: IncidentEventData[K], actor: string | null = null) {
    // TypeScript does not pair a generic K with its data inside the union on its own: the signature did the checking
    const body = { type, data } as IncidentEventBody;
    const events = tx(() => {
      const state = requireRow(incidentId);
      return [append(state, incidentId, body, clock.now(), actor, state.unitId).event];
    });
    publishCommitted(events);
    return events;
  }

  // Receipts are not events: nothing is appended, published or streamed (receipts.ts). A push or delivery of an
  // incident that no longer exists (deleted by retention meanwhile) is dropped at the batch (no row to stamp).
  function markPushed(incidentId: string, seq: number, at: number): boolean {
    return receipts.pushed(incidentId, seq, at);
  }

  function markDelivered(incidentId: string, seq: number, at: number, consoleUserId: string, username?: string): boolean {
    return receipts.delivered(incidentId, seq, at, consoleUserId, username);
  }

  /** The unit's subtree; at a root of the network also the unplaced (no unit, or a unit that does not exist). */
  function scopeClause(unitId: string): [string, string] {
    const { unitIds, unplaced } = network.scopeOf(unitId);
    return [
      `(unit_id IN (SELECT value FROM json_each(?))${unplaced ? ' OR unit_id IS NULL OR unit_id NOT IN (SELECT id FROM units)' : ''})`,
      JSON.stringify(unitIds),
    ];
  }

  // the highest seq ever given (AUTOINCREMENT's counter), not max(seq): rows removed from the end of the log (receipts
  // moved out by migration 0006, retention) must not make the head go back, or a console's `since` looks "beyond"
  const headSeq = sqlite.prepare(
    `SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'incident_events'), 0), coalesce((SELECT max(seq) FROM incident_events), 0))`,
  ).pluck();
  // what was in the log at start is durable; from then on, what has been published (publishCommitted)
  let published = headSeq.get() as number;
  const readActive = sqlite.transaction((scope: string | null, after: ActiveCursor | null, limit: number) => {
    const where = [`status NOT IN ('resolved', 'cancelled')`];
    const args: unknown[] = [];
    if (scope) {
      const [clause, arg] = scopeClause(scope);
      where.push(clause);
      args.push(arg);
    }
    if (after) {
      where.push(`(${PRIO_RANK_SQL} > ? OR (${PRIO_RANK_SQL} = ? AND (opened_at > ? OR (opened_at = ? AND id > ?))))`);
      args.push(after.rank, after.rank, after.openedAt, after.openedAt, after.id);
    }
    const head = headSeq.get() as number;
    const rows = sqlite
      .prepare(`SELECT *, ${PRIO_RANK_SQL} AS prio_rank FROM incidents WHERE ${where.join(' AND ')} ORDER BY prio_rank, opened_at, id LIMIT ?`)
      .all(...args, limit + 1) as (IncidentDbRow & { prio_rank: number })[];
    const page = rows.slice(0, limit);
    const last = page[page.length - 1];
    const next = rows.length > limit && last ? { rank: last.prio_rank, openedAt: last.opened_at, id: last.id } : null;
    return { items: page.map(toRow), head, next };
  });

  function list(filter: IncidentFilter = {}) {
    const where: string[] = [];
    const args: unknown[] = [];
    const inList = (col: string, values: readonly unknown[]) => {
      where.push(`${col} IN (SELECT value FROM json_each(?))`);
      args.push(JSON.stringify(values));
    };
    const inSubtree = (unitId: string) => {
      const [clause, arg] = scopeClause(unitId);
      where.push(clause);
      args.push(arg);
    };
    if (filter.scope) inSubtree(filter.scope);
    if (filter.unitId) inSubtree(filter.unitId);
    if (filter.status?.length) inList('status', filter.status);
    if (filter.priority?.length) inList('priority', filter.priority);
    if (filter.residentId) { where.push('resident_id = ?'); args.push(filter.residentId); }
    if (filter.deviceId) { where.push('device_id = ?'); args.push(filter.deviceId); }
    if (filter.type) { where.push('type = ?'); args.push(filter.type); }
    if (filter.from !== undefined) { where.push('opened_at >= ?'); args.push(filter.from); }
    if (filter.to !== undefined) { where.push('opened_at < ?'); args.push(filter.to); }
    if (filter.test !== undefined) { where.push('test = ?'); args.push(filter.test ? 1 : 0); }
    const clause = where.length ? `WHERE ${where.join(' AND ')}` : '';
    const limit = Math.min(Math.max(filter.limit ?? 50, 1), 500);
    const offset = Math.max(filter.offset ?? 0, 0);
    const total = (sqlite.prepare(`SELECT count(*) AS n FROM incidents ${clause}`).get(...args) as { n: number }).n;
    const rows = sqlite
      .prepare(`SELECT * FROM incidents ${clause} ORDER BY opened_at DESC, id LIMIT ? OFFSET ?`)
      .all(...args, limit, offset) as IncidentDbRow[];
    return { items: rows.map(toRow), total };
  }

  return {
    applyAlarm,
    publishCommitted,
    publishedSeq: () => published,
    act,
    escalate,
    resolveBySystem,
    record,
    markPushed,
    markDelivered,
    receipts: (incidentId) => receipts.of(incidentId),
    head: () => headSeq.get() as number,
    get: getRow,
    require: requireRow,
    events: (id) => q.events.all(id).map(toEvent),
    eventsAfter(seq, opts = {}) {
      const limit = Math.min(Math.max(opts.limit ?? 1000, 1), 10_000);
      if (!opts.scope) return q.after.all(seq, limit).map(toEvent);
      const { unitIds, unplaced } = network.scopeOf(opts.scope);
      return q.afterScoped.all(seq, JSON.stringify(unitIds), unplaced ? 1 : 0, limit).map(toEvent);
    },
    list,
    active: ({ scope, after, limit }) => readActive.deferred(scope, after, limit),
    rebuild(id) {
      const state = fold(q.events.all(id).map(toEvent));
      if (!state) return null;
      receipts.flush();
      // the receipts' first push and delivery are the stamps (set once, like every stamp)
      for (const [k, v] of Object.entries(receipts.firstStamps(id))) if (state.stamps[k] === undefined) state.stamps[k] = v;
      return state;
    },
    pendingDeadlines: () => q.pending.all().map(toRow),
    openCounts() {
      const out = { P1: 0, P2: 0, P3: 0 } as Record<Priority, number>;
      for (const r of q.openCounts.all()) out[r.priority] = r.n;
      return out;
    },
  };
}
