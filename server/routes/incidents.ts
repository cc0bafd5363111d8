// Incidents over HTTP: list/filter, detail with timeline and stamps, and the people's actions. Reads are open to
// every role within the units a user may see; actions to operators, stewards (their own unit only) and admins.
// Actions honour `Idempotency-Key`: a retried request gets the first answer again instead of a 409.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import type Database from 'better-sqlite3';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { INCIDENT_EVENT_TYPES, INCIDENT_STATUSES, PRIORITIES, type IncidentStatus, type Priority } from '../../core/contracts.js';
import { EldergateError, ForbiddenError, NotFoundError, ValidationError } from '../../core/errors.js';
import type { AuthUser } from '../../core/users.js';
import type { Config } from '../../core/config.js';
import type { ActiveCursor, IncidentAction, IncidentApi, IncidentRow } from '../../response/incidents.js';
import type { Network } from '../../response/network.js';
import type { AppDeps } from '../deps.js';
import { requireRole } from '../plugins/auth.js';
import { AuditEntryBody, ErrorBody, IdParam, Paging } from './common.js';
import { MAX_PAGE_ROWS } from '../../core/limits.js';
import { auditActor } from '../../core/audit.js';
import { writeWhenFree } from '../../core/db.js';

const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);
const Status = Type.Union(INCIDENT_STATUSES.map((s) => Type.Literal(s)));
const PriorityT = Type.Union(PRIORITIES.map((p) => Type.Literal(p)));

export const PositionBody = Type.Object({
  lat: Type.Number(),
  lon: Type.Number(),
  accuracy: Type.Optional(Type.Number()),
  at: Type.Optional(Type.Number()),
  stale: Type.Optional(Type.Boolean()),
  source: Type.Optional(Type.Union([Type.Literal('last-known'), Type.Literal('home')], {
    description: "a stale position's origin: the device's last known fix, or the resident's home address (no fix)",
  })),
});

export const IncidentBody = Type.Object({
  id: Type.String(),
  deviceId: Type.String(),
  residentId: Nullable(Type.String()),
  account: Nullable(Type.String({
    description: "an alarm receiver's account no device is registered to (receiver:line:account): the receiver is the device, and each such account has cards of its own; register the account on the panel's device",
  })),
  unitId: Nullable(Type.String({ description: "the resident's grid unit" })),
  tierUnitId: Nullable(Type.String({ description: 'the unit responsible now (rises on escalation)' })),
  escalationLevel: Type.Integer(),
  type: Type.String(),
  priority: PriorityT,
  status: Status,
  test: Type.Boolean(),
  count: Type.Integer({ description: 'alarms joined into this incident' }),
  openedAt: Type.Integer(),
  lastAt: Type.Integer(),
  deadlineAt: Nullable(Type.Integer({ description: 'wall clock epoch ms: while open, the next escalation; acknowledged or dispatched, when it is followed up if nobody is on site (an overdue event); null on site, closed, or a test' })),
  position: Nullable(PositionBody),
  stamps: Type.Record(Type.String(), Type.Number(), {
    description: 'deviceTs, received, ruleEvaluated, durable, pushed, delivered, acknowledged, dispatched, onSite, resolved|cancelled',
  }),
  assignee: Nullable(Type.String()),
  outcome: Nullable(Type.String()),
  lastSeq: Type.Integer(),
});

export const IncidentEventBody = Type.Object({
  seq: Type.Integer(),
  incidentId: Type.String(),
  type: Type.Union(INCIDENT_EVENT_TYPES.map((t) => Type.Literal(t))),
  at: Type.Integer(),
  actor: Nullable(Type.String()),
  unitId: Nullable(Type.String()),
  data: Type.Object({}, { additionalProperties: true }),
});

export const ReceiptBody = Type.Object({
  kind: Type.Union([Type.Literal('pushed'), Type.Literal('delivered')], {
    description: 'pushed: the opening was first written to a console socket; delivered: a console user confirmed it (ack)',
  }),
  seq: Type.Integer({ description: 'the seq of the event the receipt is about (the opening)' }),
  at: Type.Integer(),
  userId: Nullable(Type.String({ description: 'the console user who confirmed (delivered)' })),
  username: Nullable(Type.String()),
});

const Budget = Type.Object({ pushMs: Type.Integer(), ackMs: Type.Integer(), reachMs: Type.Integer() });

const IncidentDetail = Type.Object({
  ...IncidentBody.properties,
  budget: Budget,
  events: Type.Array(IncidentEventBody, { description: 'the incident log: every state-changing event, in seq order' }),
  receipts: Type.Array(ReceiptBody, {
    description: 'push and delivery receipts, oldest first: not events (never on the stream); the first of each kind is the pushed/delivered stamp',
  }),
  audit: Type.Array(AuditEntryBody, { description: "who acted on this incident, when and from where (the audit log's entries for it)" }),
});

const ActionAnswer = Type.Object({ incident: IncidentBody, events: Type.Array(IncidentEventBody) });

/** Accepts `a,b` and repeated `x=a&x=b` alike. */
const ListParam = Type.Optional(Type.Array(Type.String({ maxLength: 200 }), { maxItems: 20 }));

const ListQuery = Type.Object({
  status: ListParam,
  priority: ListParam,
  unitId: Type.Optional(Type.String({ maxLength: 64 })),
  residentId: Type.Optional(Type.String({ maxLength: 64 })),
  deviceId: Type.Optional(Type.String({ maxLength: 64 })),
  type: Type.Optional(Type.String({ maxLength: 64 })),
  from: Type.Optional(Type.String({ maxLength: 40, description: 'opened at or after: epoch ms or ISO 8601' })),
  to: Type.Optional(Type.String({ maxLength: 40, description: 'opened before: epoch ms or ISO 8601' })),
  test: Type.Optional(Type.Boolean()),
  limit: Type.Integer({ minimum: 1, maximum: 500, default: 50 }),
  offset: Paging.offset,
});

const ActiveQuery = Type.Object({
  after: Type.Optional(Type.String({ maxLength: 300, description: 'the `next` cursor of the previous page' })),
  limit: Type.Integer({ minimum: 1, maximum: MAX_PAGE_ROWS, default: 500 }),
});

const ActivePage = Type.Object({
  items: Type.Array(IncidentBody),
  head: Type.Integer({ description: 'the latest seq of the event log when this page was read: subscribe to /ws with since = the first page\'s head' }),
  next: Nullable(Type.String({ description: 'cursor for the next page; null when the snapshot is complete' })),
});

/** The board's order: P1 first, then the oldest first (immutable fields, so a keyset cursor never skips a row). */

function encodeCursor(c: ActiveCursor): string {
  return Buffer.from(JSON.stringify([c.rank, c.openedAt, c.id])).toString('base64url');
}

function decodeCursor(raw: string): ActiveCursor {
  try {
    const [rank, openedAt, id] = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8')) as unknown[];
    if (typeof rank === 'number' && typeof openedAt === 'number' && typeof id === 'string') return { rank, openedAt, id };
  } catch { /* answered below */ }
  throw new ValidationError('after: not a cursor from this endpoint; pass the `next` value of the previous page, or omit it to start', { field: 'after' });
}

export function splitList<T extends string>(values: string[] | undefined, allowed: readonly T[], field: string): T[] | undefined {
  if (!values) return undefined;
  const out = values.flatMap((v) => v.split(',')).map((v) => v.trim()).filter(Boolean);
  const bad = out.filter((v) => !(allowed as readonly string[]).includes(v));
  if (bad.length) throw new ValidationError(`${field}: unknown value(s) ${bad.join(', ')}; use ${allowed.join(', ')}`, { field });
  return out.length ? (out as T[]) : undefined;
}

export function parseTime(value: string | undefined, field: string): number | undefined {
  if (value === undefined || value === '') return undefined;
  const t = /^\d+$/.test(value) ? Number(value) : Date.parse(value);
  if (!Number.isFinite(t)) throw new ValidationError(`${field}: "${value}" is neither epoch milliseconds nor an ISO 8601 date`, { field });
  return t;
}

// ---- idempotency: the first answer to (user, key, route) is stored and replayed --------------------------------

const KEY_PATTERN = /^[\x21-\x7e]{1,200}$/;
const KEEP_KEYS_MS = 24 * 3600_000;

export function createIdempotency(sqlite: Database.Database) {
  const find = sqlite.prepare<[string, string, string], { status: number; body: string }>(
    'SELECT status, body FROM idempotency_keys WHERE user_id = ? AND key = ? AND route = ?',
  );
  const save = sqlite.prepare('INSERT OR IGNORE INTO idempotency_keys (key, user_id, route, status, body, at) VALUES (?, ?, ?, ?, ?, ?)');
  const prune = sqlite.prepare(`DELETE FROM idempotency_keys WHERE at < ? AND route LIKE '/api/incidents/%'`);
  let saves = 0;
  /** answers being worked out, by user, key and route: a second request with the key waits for the first's */
  const inflight = new Map<string, Promise<{ status: number; body: string }>>();
  /**
   * Run `fn` once per key. The action itself may be written by another thread (the gateway's writer), so a second
   * request with the same key that arrives meanwhile waits for the first one's answer and replays it. Answers below
   * 500 are stored (a 409 is replayed as a 409).
   */
  return async function once<T>(req: FastifyRequest, reply: FastifyReply, fn: () => T | Promise<T>): Promise<T> {
    const raw = req.headers['idempotency-key'];
    if (raw === undefined) return fn();
    const key = Array.isArray(raw) ? raw[0]! : raw;
    if (!KEY_PATTERN.test(key)) {
      throw new ValidationError('Idempotency-Key: 1–200 visible ASCII characters (a UUID is a good choice)', { field: 'Idempotency-Key' });
    }
    const route = req.url.split('?')[0]!;
    const slot = JSON.stringify([req.user.id, key, route]);
    const replay = (prior: { status: number; body: string }): T => {
      reply.header('idempotent-replayed', 'true');
      const body = JSON.parse(prior.body) as unknown;
      if (prior.status >= 400) {
        const e = body as { code: string; message: string; details?: unknown };
        throw new EldergateError(e.code, e.message, { status: prior.status, details: e.details });
      }
      reply.status(prior.status);
      return body as T;
    };
    const pending = inflight.get(slot);
    if (pending) return replay(await pending);
    const prior = find.get(req.user.id, key, route);
    if (prior) return replay(prior);
    const now = Date.now();
    const pruneNow = ++saves % 200 === 0;
    // the answer is kept once the action is done, taking the lock without holding the event loop (core/db.ts); a key
    // that cannot be kept does not turn a done action into an error: a repeat then meets the action's own 409
    const keep = async (a: { status: number; body: string }) => {
      try {
        await writeWhenFree(sqlite, () => {
          if (pruneNow) prune.run(now - KEEP_KEYS_MS);
          save.run(key, req.user.id, route, a.status, a.body, now);
        });
      } catch (err) {
        req.log.error({ err, route }, 'the answer of an Idempotency-Key could not be kept: a repeat of this request is answered by the action itself');
      }
    };
    let settled!: (answer: { status: number; body: string }) => void;
    inflight.set(slot, new Promise((resolve) => { settled = resolve; }));
    // what a request waiting on this one is told if nothing better is known (always settled: nobody waits forever)
    let answer = { status: 500, body: JSON.stringify({ code: 'INTERNAL', message: 'internal error: the details are in the gateway log' }) };
    try {
      const result = await fn();
      answer = { status: 200, body: JSON.stringify(result) };
      await keep(answer);
      return result;
    } catch (err) {
      if (err instanceof EldergateError) {
        answer = { status: err.status, body: JSON.stringify({ code: err.code, message: err.message, ...(err.details && err.status < 500 ? { details: err.details } : {}) }) };
        // a 5xx is not stored: tried again later it may work
        if (err.status < 500) await keep(answer);
      }
      throw err;
    } finally {
      settled(answer);
      inflight.delete(slot);
    }
  };
}

// ---- routes ---------------------------------------------------------------------------------------------------

export interface IncidentRouteDeps {
  incidents: IncidentApi;
  network: Network;
}

const ACTIONS = {
  acknowledge: { body: null, action: () => ({ type: 'acknowledge' }) },
  dispatch: {
    body: Type.Object({ staffId: Type.String({ minLength: 1, maxLength: 64 }) }, { additionalProperties: false }),
    action: (b: { staffId: string }) => ({ type: 'dispatch', staffId: b.staffId }),
  },
  'on-site': { body: null, action: () => ({ type: 'on-site' }) },
  resolve: {
    body: Type.Object({ outcome: Type.String({ minLength: 1, maxLength: 2000 }) }, { additionalProperties: false }),
    action: (b: { outcome: string }) => ({ type: 'resolve', outcome: b.outcome }),
  },
  note: {
    body: Type.Object({ text: Type.String({ minLength: 1, maxLength: 2000 }) }, { additionalProperties: false }),
    action: (b: { text: string }) => ({ type: 'note', text: b.text }),
  },
  cancel: {
    body: Type.Object({ reason: Type.String({ minLength: 1, maxLength: 2000 }) }, { additionalProperties: false }),
    action: (b: { reason: string }) => ({ type: 'cancel', reason: b.reason }),
  },
} as const;

/** The incidents plugin; register it through buildApp's `extra` routes. */
export function incidentRoutes(r: IncidentRouteDeps): FastifyPluginAsyncTypebox<{ deps: AppDeps }> {
  return async (app, { deps }) => {
    const { incidents, network } = r;
    const budgets: Config['budgets'] = deps.config.budgets;
    const readers = requireRole(app, 'admin', 'operator', 'steward', 'technician');
    // technicians act only on test alarms (a commissioning test is theirs to close)
    const actors = requireRole(app, 'admin', 'operator', 'steward', 'technician');
    const once = createIdempotency(deps.store.sqlite);

    /** Invisible incidents are answered as missing: a scoped user learns nothing about other units. */
    const visible = (user: AuthUser, id: string): IncidentRow => {
      const inc = incidents.get(id);
      if (!inc || !network.canSee(user.unitId, inc.unitId)) throw new NotFoundError('incident', id);
      return inc;
    };

    app.get('/api/incidents', {
      schema: {
        tags: ['incidents'], summary: 'List incidents, filtered by status, priority, unit, resident, device, type or opening time, a page at a time',
        querystring: ListQuery,
        response: { 200: Type.Object({ items: Type.Array(IncidentBody), total: Type.Integer() }), 400: ErrorBody, 401: ErrorBody },
      },
      onRequest: readers,
    }, async (req) => {
      const q = req.query;
      const status = splitList<IncidentStatus>(q.status, INCIDENT_STATUSES, 'status');
      const priority = splitList<Priority>(q.priority, PRIORITIES, 'priority');
      const from = parseTime(q.from, 'from');
      const to = parseTime(q.to, 'to');
      return incidents.list({
        ...(status ? { status } : {}),
        ...(priority ? { priority } : {}),
        ...(q.unitId ? { unitId: q.unitId } : {}),
        ...(q.residentId ? { residentId: q.residentId } : {}),
        ...(q.deviceId ? { deviceId: q.deviceId } : {}),
        ...(q.type ? { type: q.type } : {}),
        ...(from !== undefined ? { from } : {}),
        ...(to !== undefined ? { to } : {}),
        ...(q.test !== undefined ? { test: q.test } : {}),
        limit: q.limit,
        offset: q.offset,
        scope: req.user.unitId,
      });
    });

    app.get('/api/incidents/active', {
      schema: {
        tags: ['incidents'],
        summary: 'Snapshot of every active incident the user may see (P1 first, then oldest first), with the stream head',
        querystring: ActiveQuery,
        response: { 200: ActivePage, 400: ErrorBody, 401: ErrorBody },
      },
      onRequest: readers,
    }, async (req) => {
      // the same scope as the list and the stream; the head is read with the rows
      const page = incidents.active({ scope: req.user.unitId, after: req.query.after ? decodeCursor(req.query.after) : null, limit: req.query.limit });
      return { items: page.items, head: page.head, next: page.next ? encodeCursor(page.next) : null };
    });

    app.get('/api/incidents/:id', {
      schema: { tags: ['incidents'], summary: 'One incident with its events and its push/delivery receipts', params: IdParam, response: { 200: IncidentDetail, 401: ErrorBody, 404: ErrorBody } },
      onRequest: readers,
    }, async (req) => {
      const inc = visible(req.user, req.params.id);
      const receipts = incidents.receipts(inc.id);
      // a receipt still in its batch (≤ a few tens of ms) is already the stamp it will set
      const stamps = { ...inc.stamps };
      for (const r of receipts) stamps[r.kind] ??= r.at;
      return {
        ...inc,
        stamps,
        budget: budgets[inc.priority],
        events: incidents.events(inc.id),
        // joined here, not streamed: a console's timeline shows "delivered to <name>" from this answer
        receipts: receipts.map(({ kind, seq, at, userId, username }) => ({ kind, seq, at, userId, username })),
        audit: await deps.audit.forTarget('incident', inc.id),
      };
    });

    for (const [name, spec] of Object.entries(ACTIONS)) {
      app.post(`/api/incidents/:id/${name}`, {
        schema: {
          tags: ['incidents'],
          summary: `${name} an incident`,
          params: IdParam,
          headers: Type.Object({ 'idempotency-key': Type.Optional(Type.String({ maxLength: 200 })) }),
          ...(spec.body ? { body: spec.body } : {}),
          response: { 200: ActionAnswer, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 409: ErrorBody },
        },
        onRequest: actors,
      }, async (req, reply) => {
        const user = req.user;
        const inc = visible(user, req.params.id);
        if (user.role === 'technician' && !inc.test) {
          throw new ForbiddenError('technicians may act only on test alarms; an emergency is for operators and stewards');
        }
        if (user.role === 'steward') {
          // a steward acts for one grid unit: theirs
          if (!user.unitId) throw new ForbiddenError('a steward without a unit cannot act on incidents: ask an admin to set your unit');
          if (!inc.unitId || !network.subtree(user.unitId).has(inc.unitId)) {
            throw new ForbiddenError(`incident ${inc.id} belongs to unit ${inc.unitId ?? '(none)'}, not to yours`);
          }
        }
        const action = (spec.action as (b: unknown) => IncidentAction)(req.body ?? {});
        return once(req, reply, async () => {
          const result = await incidents.act(inc.id, action, { id: user.id, username: user.username });
          await deps.audit.append({ actor: auditActor(req), action: `incident.${name}`, target: { type: 'incident', id: inc.id }, details: { ...action, status: result.incident.status } }, req.log);
          return { incident: result.incident, events: result.events };
        });
      });
    }
  };
}

export type IncidentListQuery = Static<typeof ListQuery>;
