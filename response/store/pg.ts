// The incident area in PostgreSQL (node-postgres through drizzle): cluster mode's shared store, where several
// eldergate nodes append to one log. What SQLite gets from having one writer at a time is made explicit:
// - one write transaction at a time over the log: each begins by locking the head row (`incident_log_head`, SELECT …
//   FOR UPDATE), counts its seqs from it and writes the new head back at its end. Seqs are gap-free and in commit
//   order across nodes — a reader that sees S sees everything below S — and, since the head is always the first lock,
//   no two write transactions can deadlock on incident rows. The price: write transactions are serial, so the log's
//   rate is one transaction per commit-and-fsync; a node's writer puts a turn's alarms in one transaction
//   (docs/benchmarks-pg-log.md measures it).
// - one open incident per (device, type, test, resident, unknown account) is also an index (`incidents_one_open`): should a write ever bypass the
//   head lock, a twin is refused and the transaction run again, finding the other incident to join (as a
//   serialization failure or a deadlock would be). `fn` only decides from what it read, so running it again is safe.
// - every commit that appended notifies `incident_log` with its last seq; `followLog` LISTENs, so each node learns of
//   other nodes' events and serves its consoles from the log.
// The write path's statements are named: prepared once per connection, then only bound and run.
import { resolve } from 'node:path';
import pg from 'pg';
import { and, asc, count, desc, eq, getTableColumns, gt, gte, inArray, isNull, lt, lte, notInArray, or, sql, type SQL } from 'drizzle-orm';
import { drizzle, type NodePgDatabase } from 'drizzle-orm/node-postgres';
import { migrate } from 'drizzle-orm/node-postgres/migrator';
import type { Logger } from 'pino';
import type { Priority } from '../../core/contracts.js';
import { sourceDir } from '../../core/paths.js';
import type { CommittedEvent, ActiveCursor } from '../incidents.js';
import type { IncidentRow } from '../projection.js';
import { pgIncidentEvents, pgIncidentLogHead, pgIncidents } from './pg-schema.js';
import type { PgExecutor } from '../../core/pg-bind.js';
import { PRIO_RANK_SQL, type IncidentStore, type IncidentWriteTx, type ListQuery, type UnitScope } from './types.js';

export const PG_MIGRATIONS_DIR = resolve(sourceDir(import.meta.url), '..', '..', 'drizzle-pg');
/** The channel every appending commit notifies, with its last seq as the payload. */
export const LOG_CHANNEL = 'incident_log';
/** Any number: the advisory lock nodes take while one of them applies the migrations. */
const MIGRATION_LOCK = 0x656c6467; // "eldg"

const schema = { pgIncidents, pgIncidentEvents, pgIncidentLogHead };
type Db = NodePgDatabase<typeof schema>;
type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];

const OPEN = sql`${pgIncidents.status} NOT IN ('resolved', 'cancelled')`;

/** Every column of the projection (IncidentRow's fields), and those an event after the opening may change. */
const PROJECTION_COLUMNS = Object.keys(getTableColumns(pgIncidents)) as (keyof IncidentRow)[];
// (unitId changes when the incident follows its resident to another unit: a `moved` event)
const FIXED_AT_OPENING: readonly (keyof IncidentRow)[] = ['id', 'deviceId', 'residentId', 'account', 'type', 'test', 'openedAt'];
const CHANGING_COLUMNS = PROJECTION_COLUMNS.filter((c) => !FIXED_AT_OPENING.includes(c));

/** SQLSTATEs after which the whole transaction is run again: unique violation (a twin), serialization, deadlock. */
const RETRYABLE = new Set(['23505', '40001', '40P01']);
function sqlState(err: unknown): string | undefined {
  // drizzle wraps the driver's error (DrizzleQueryError): the code is on its cause
  for (let e = err as { code?: unknown; cause?: unknown } | undefined, i = 0; e && i < 4; e = e.cause as typeof e, i++) {
    if (typeof e.code === 'string') return e.code;
  }
  return undefined;
}

function constraintOf(err: unknown): string | undefined {
  for (let e = err as { constraint?: unknown; cause?: unknown } | undefined, i = 0; e && i < 4; e = e.cause as typeof e, i++) {
    if (typeof e.constraint === 'string') return e.constraint;
  }
  return undefined;
}

/**
 * Apply the committed migrations (drizzle-pg/). Nodes starting together take turns on an advisory lock, so two
 * never run the same migration at once. (`folder`: tests of an upgrade apply an older release's migrations first.)
 */
export async function migratePg(pool: pg.Pool, folder = PG_MIGRATIONS_DIR): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    try {
      await migrate(drizzle(client), { migrationsFolder: folder });
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]);
    }
  } finally {
    client.release();
  }
}

export interface PgIncidentStoreOptions {
  pool: pg.Pool;
  /**
   * Every unit of the network, for a root scope's "unplaced" (no unit, or a unit no longer in the network). The
   * network's units are not in this store yet; SQLite reads its `units` table for the same rule.
   */
  knownUnitIds: () => readonly string[];
  log?: Logger;
  /** how many times a transaction is run when the engine asks for it again (default 8) */
  maxAttempts?: number;
}

/**
 * The log's writes inside a transaction the caller holds (the ingest's batch, gateway/ingest-scope-pg.ts): the head
 * row is locked when it is made, before the batch reads anything, as in `transaction`; the caller calls `finish()`
 * last, before its commit. Savepoints the caller rolls back take their seqs back with `rewind(mark())`.
 */
/** An incident not resolved or cancelled, as the rules of a batch see it (whose card it is, and its kind) */
export interface OpenOfDeviceRow {
  id: string;
  deviceId: string;
  residentId: string | null;
  account: string | null;
  type: string;
  openedAt: number;
  status: IncidentRow['status'];
  test: boolean;
}

export interface IncidentBatch {
  readonly tx: IncidentWriteTx<'async'>;
  /** the last seq given in this batch so far */
  mark(): number;
  /** a savepoint taken at `mark` was rolled back: the seqs given since are given again */
  rewind(mark: number): void;
  /** these devices' incidents not resolved or cancelled, newest first (the rules' "open incident of this type") */
  openOfDevice(deviceIds: readonly string[]): Promise<OpenOfDeviceRow[]>;
  /** an incident's status, or undefined */
  status(incidentId: string): Promise<IncidentRow['status'] | undefined>;
  /** write the new head and notify (nothing if nothing was appended): the batch's last statement */
  finish(): Promise<void>;
}

export type PgIncidentStore = IncidentStore<'async'> & {
  /** the log's writes in the caller's transaction `t` (its head locked first) */
  within(t: PgExecutor): Promise<IncidentBatch>;
};

export function createPgIncidentStore(opts: PgIncidentStoreOptions): PgIncidentStore {
  const db: Db = drizzle(opts.pool, { schema });
  // an idle pooled connection that the server closes (a restart, a failover) is an 'error' on the pool: with no
  // listener it would end the process; the pool drops that connection and opens another on the next query
  if (opts.pool.listenerCount('error') === 0) {
    opts.pool.on('error', (err) => opts.log?.warn({ err }, 'a PostgreSQL connection of the pool was lost; the next query opens another'));
    // a connection lost while checked out (mid-transaction: a failover, a terminated backend) errs on the client, whose
    // pool listener is removed while it is out: the query in progress fails, the process does not
    opts.pool.on('connect', (client) => client.on('error', (err) => opts.log?.warn({ err }, 'a PostgreSQL connection in use was lost; its transaction fails and is not acknowledged')));
  }
  const maxAttempts = opts.maxAttempts ?? 8;

  /** What `s` may see, on the unit column of either table (incidents or their events): the same rule for both. */
  const inScope = (column: typeof pgIncidents.unitId | typeof pgIncidentEvents.unitId, s: UnitScope): SQL => {
    const inSubtree = inArray(column, [...s.unitIds]);
    if (!s.unplaced) return inSubtree;
    return or(inSubtree, isNull(column), notInArray(column, [...opts.knownUnitIds()]))!;
  };
  const scopeCondition = (s: UnitScope): SQL => inScope(pgIncidents.unitId, s);
  const toEvent = (r: typeof pgIncidentEvents.$inferSelect): CommittedEvent => r as unknown as CommittedEvent;
  const get = async (t: Db | Tx, id: string, lock: boolean): Promise<IncidentRow | undefined> => {
    const q = t.select().from(pgIncidents).where(eq(pgIncidents.id, id));
    const [row] = lock ? await q.for('update') : await q;
    return row;
  };

  const p = sql.placeholder;
  const statements = (t: Tx) => ({
    getForUpdate: t.select().from(pgIncidents).where(eq(pgIncidents.id, p('id'))).for('update').prepare('incident_get_for_update'),
    openOf: t.select().from(pgIncidents)
      .where(and(eq(pgIncidents.deviceId, p('deviceId')), eq(pgIncidents.type, p('type')), eq(pgIncidents.test, p('test')),
        sql`${pgIncidents.residentId} IS NOT DISTINCT FROM ${p('residentId')}::text`,
        sql`${pgIncidents.account} IS NOT DISTINCT FROM ${p('account')}::text`, OPEN))
      .orderBy(desc(pgIncidents.openedAt)).limit(1).for('update').prepare('incident_open_of'),
    opened: t.select().from(pgIncidentEvents)
      .where(and(eq(pgIncidentEvents.incidentId, p('incidentId')), eq(pgIncidentEvents.type, 'opened'))).limit(1).prepare('incident_opened'),
    lockHead: t.select({ seq: pgIncidentLogHead.seq }).from(pgIncidentLogHead).where(eq(pgIncidentLogHead.id, 1)).for('update').prepare('incident_log_lock_head'),
    insertEvent: t.insert(pgIncidentEvents).values({
      seq: p('seq'), incidentId: p('incidentId'), type: p('type'), at: p('at'), actor: p('actor'), unitId: p('unitId'), data: p('data'),
    }).prepare('incident_event_insert'),
    insertIncident: t.insert(pgIncidents).values(Object.fromEntries(PROJECTION_COLUMNS.map((c) => [c, p(c)])) as never).prepare('incident_insert'),
    updateIncident: t.update(pgIncidents).set(Object.fromEntries(CHANGING_COLUMNS.map((c) => [c, p(c)])) as never)
      .where(eq(pgIncidents.id, p('id'))).prepare('incident_update'),
    // (an array bound as one parameter: one statement, prepared once, for any number of devices)
    openOfDevices: t.select({
      id: pgIncidents.id, deviceId: pgIncidents.deviceId, type: pgIncidents.type, openedAt: pgIncidents.openedAt, status: pgIncidents.status,
      test: pgIncidents.test, residentId: pgIncidents.residentId, account: pgIncidents.account,
    })
      .from(pgIncidents).where(and(sql`${pgIncidents.deviceId} = ANY(${p('deviceIds')}::text[])`, OPEN)).orderBy(desc(pgIncidents.openedAt))
      .prepare('incident_open_of_devices'),
  });

  /** Seqs within one transaction: counted from the head read (and locked) when it began, written back at its end. */
  function writeTx(t: Tx, q: ReturnType<typeof statements>, appended: { base: number; last: number }): IncidentWriteTx<'async'> {
    return {
      async get(id) {
        const [row] = await q.getForUpdate.execute({ id });
        return row;
      },
      async openOf(deviceId, type, test, residentId, account) {
        const [row] = await q.openOf.execute({ deviceId, type, test, residentId, account });
        return row;
      },
      async opened(incidentId) {
        const [row] = await q.opened.execute({ incidentId });
        return row ? toEvent(row) : undefined;
      },
      async append(e) {
        const seq = ++appended.last;
        await q.insertEvent.execute({
          seq, incidentId: e.incidentId, type: e.body.type, at: e.at, actor: e.actor, unitId: e.unitId, data: e.body.data,
        });
        return { seq, incidentId: e.incidentId, at: e.at, actor: e.actor, unitId: e.unitId, ...e.body } as CommittedEvent;
      },
      async saveProjection(row, created) {
        await (created ? q.insertIncident : q.updateIncident).execute(row as unknown as Record<string, unknown>);
      },
    };
  }

  /** the new head, and the notification delivered to every listener at commit (never for a rollback) */
  const writeHead = (t: Tx, seq: number) => t.execute(sql`WITH h AS (UPDATE incident_log_head SET seq = ${seq} WHERE id = 1 RETURNING seq)
    SELECT pg_notify(${LOG_CHANNEL}, seq::text) FROM h`);
  const lockHead = async (q: ReturnType<typeof statements>) => {
    const [head] = await q.lockHead.execute();
    if (!head) throw new Error('incident_log_head has no row: the migrations were not applied to this database');
    return { base: head.seq, last: head.seq };
  };

  return {
    mode: 'async',
    async within(executor) {
      const t = executor as unknown as Tx;
      const q = statements(t);
      const appended = await lockHead(q);
      return {
        tx: writeTx(t, q, appended),
        mark: () => appended.last,
        rewind(mark) {
          appended.last = mark;
        },
        async openOfDevice(deviceIds) {
          return q.openOfDevices.execute({ deviceIds: [...deviceIds] });
        },
        async status(incidentId) {
          const [row] = await t.select({ status: pgIncidents.status }).from(pgIncidents).where(eq(pgIncidents.id, incidentId));
          return row?.status;
        },
        async finish() {
          if (appended.last > appended.base) await writeHead(t, appended.last);
        },
      };
    },
    async transaction(fn) {
      for (let attempt = 1; ; attempt++) {
        try {
          return await db.transaction(async (t) => {
            const q = statements(t);
            // the head row first, before any read: one write transaction at a time over the whole log, on every node
            // (as SQLite's one writer), so seqs follow commit order and no two transactions can wait on each other's
            // rows (a lock taken after the head's could deadlock, and PostgreSQL would break it only after a second)
            const appended = await lockHead(q);
            const result = await fn(writeTx(t, q, appended));
            if (appended.last > appended.base) await writeHead(t, appended.last);
            return result;
          });
        } catch (err) {
          const code = sqlState(err);
          // a unique violation is run again only for the twin-incident index: any other is a bug, not a race
          const again = code === '23505' ? constraintOf(err) === 'incidents_one_open' : code !== undefined && RETRYABLE.has(code);
          if (!again || attempt >= maxAttempts) throw err;
          opts.log?.debug({ code, attempt }, 'incident transaction run again');
        }
      }
    },
    get: (id) => get(db, id, false),
    async events(incidentId) {
      const rows = await db.select().from(pgIncidentEvents).where(eq(pgIncidentEvents.incidentId, incidentId)).orderBy(asc(pgIncidentEvents.seq));
      return rows.map(toEvent);
    },
    async eventsAfter(seq, limit, scope, upTo) {
      const range = and(gt(pgIncidentEvents.seq, seq), upTo === undefined ? undefined : lte(pgIncidentEvents.seq, upTo));
      const rows = await db.select().from(pgIncidentEvents)
        .where(scope
          ? and(range, or(inScope(pgIncidentEvents.unitId, scope),
            // an incident moved to another unit: its `moved` is shown to the unit it left too, which then drops it
            and(eq(pgIncidentEvents.type, 'moved'), inArray(sql`${pgIncidentEvents.data}->>'fromUnitId'`, [...scope.unitIds]))))
          : range)
        .orderBy(asc(pgIncidentEvents.seq)).limit(limit);
      return rows.map(toEvent);
    },
    async head() {
      const [row] = await db.select({ seq: pgIncidentLogHead.seq }).from(pgIncidentLogHead).where(eq(pgIncidentLogHead.id, 1));
      return row?.seq ?? 0;
    },
    active(scope, after: ActiveCursor | null, limit) {
      // one snapshot for the head and the page (REPEATABLE READ): every event up to `head` is in what the page shows
      return db.transaction(async (t) => {
        const [h] = await t.select({ seq: pgIncidentLogHead.seq }).from(pgIncidentLogHead).where(eq(pgIncidentLogHead.id, 1));
        const rank = sql.raw(PRIO_RANK_SQL);
        const where: SQL[] = [OPEN];
        if (scope) where.push(scopeCondition(scope));
        if (after) {
          where.push(sql`(${rank} > ${after.rank} OR (${rank} = ${after.rank} AND (${pgIncidents.openedAt} > ${after.openedAt}
            OR (${pgIncidents.openedAt} = ${after.openedAt} AND ${pgIncidents.id} > ${after.id}))))`);
        }
        const rows = await t.select({ row: pgIncidents, rank: sql<number>`${rank}`.mapWith(Number) }).from(pgIncidents)
          .where(and(...where)).orderBy(rank, asc(pgIncidents.openedAt), asc(pgIncidents.id)).limit(limit + 1);
        const page = rows.slice(0, limit);
        const last = page[page.length - 1];
        const next = rows.length > limit && last ? { rank: last.rank, openedAt: last.row.openedAt, id: last.row.id } : null;
        return { items: page.map((r) => r.row), head: h?.seq ?? 0, next };
      }, { isolationLevel: 'repeatable read', accessMode: 'read only' });
    },
    async list(query: ListQuery) {
      const where: SQL[] = query.scopes.map(scopeCondition);
      if (query.status?.length) where.push(inArray(pgIncidents.status, query.status));
      if (query.priority?.length) where.push(inArray(pgIncidents.priority, query.priority));
      if (query.residentId) where.push(eq(pgIncidents.residentId, query.residentId));
      if (query.deviceId) where.push(eq(pgIncidents.deviceId, query.deviceId));
      if (query.type) where.push(eq(pgIncidents.type, query.type));
      if (query.from !== undefined) where.push(gte(pgIncidents.openedAt, query.from));
      if (query.to !== undefined) where.push(lt(pgIncidents.openedAt, query.to));
      if (query.test !== undefined) where.push(eq(pgIncidents.test, query.test));
      const clause = where.length ? and(...where) : undefined;
      const limit = Math.min(Math.max(query.limit ?? 50, 1), 500);
      const offset = Math.max(query.offset ?? 0, 0);
      const [total] = await db.select({ n: count() }).from(pgIncidents).where(clause);
      const items = await db.select().from(pgIncidents).where(clause)
        .orderBy(desc(pgIncidents.openedAt), asc(pgIncidents.id)).limit(limit).offset(offset);
      return { items, total: total?.n ?? 0 };
    },
    pendingDeadlines() {
      return db.select().from(pgIncidents)
        .where(and(inArray(pgIncidents.status, ['open', 'acknowledged', 'dispatched']), sql`${pgIncidents.deadlineAt} IS NOT NULL`)).orderBy(asc(pgIncidents.deadlineAt));
    },
    async openCounts() {
      const out = { P1: 0, P2: 0, P3: 0 } as Record<Priority, number>;
      const rows = await db.select({ priority: pgIncidents.priority, n: count() }).from(pgIncidents)
        .where(and(OPEN, eq(pgIncidents.test, false))).groupBy(pgIncidents.priority);
      for (const r of rows) out[r.priority] = r.n;
      return out;
    },
  };
}

export interface LogFollower {
  /** the highest seq this node knows is committed (from a notification or a read of the head) */
  head(): number;
  close(): Promise<void>;
}

/**
 * LISTEN for the log's commits on a connection of its own and call `onHead` with each new head, in increasing order.
 * A notification can be missed (the connection dropped, the node was busy reconnecting): after every (re)connect
 * the head is read, and every `pollMs` too, so a node catches up within that bound whatever happened to the channel.
 */
export function followLog(opts: {
  connect: () => pg.Client;
  /** reads the head through the store (the same number a notification carries) */
  readHead: () => Promise<number>;
  onHead: (seq: number) => void;
  log?: Logger;
  pollMs?: number;
  /** the channel (default the incident log's) and what the log messages call it (core/shared-tables.ts follows its own) */
  channel?: string;
  what?: string;
}): LogFollower {
  const channel = opts.channel ?? LOG_CHANNEL;
  const what = opts.what ?? 'the incident log';
  let known = 0;
  let closed = false;
  let client: pg.Client | null = null;
  let backoff = 100;
  const advance = (seq: number) => {
    if (!Number.isSafeInteger(seq) || seq <= known) return;
    known = seq;
    opts.onHead(seq);
  };
  const poll = async () => {
    try {
      advance(await opts.readHead());
    } catch (err) {
      opts.log?.warn({ err }, `reading ${what}'s head failed; retried`);
    }
  };
  const timer = setInterval(() => void poll(), opts.pollMs ?? 1000);
  timer.unref();

  async function connect(): Promise<void> {
    while (!closed) {
      const c = opts.connect();
      c.on('notification', (n) => { if (n.channel === channel) advance(Number(n.payload)); });
      // registered before connecting: an 'error' event with no listener would end the process
      c.on('error', (err) => opts.log?.warn({ err }, `${what}'s listener lost its connection; reconnecting`));
      try {
        await c.connect();
        await c.query(`LISTEN ${channel}`);
        if (closed) {
          // closed while connecting: this connection is nobody's
          await c.end().catch(() => {});
          return;
        }
        client = c;
        backoff = 100;
        c.on('end', () => { if (client === c) client = null; if (!closed) void connect(); });
        // what was committed while nobody listened
        await poll();
        return;
      } catch (err) {
        opts.log?.warn({ err, retryInMs: backoff }, `${what}'s listener could not connect; retrying`);
        await c.end().catch(() => {});
        await new Promise((r) => setTimeout(r, backoff));
        backoff = Math.min(backoff * 2, 5000);
      }
    }
  }
  void connect();

  return {
    head: () => known,
    async close() {
      closed = true;
      clearInterval(timer);
      const c = client;
      client = null;
      await c?.end().catch(() => {});
    },
  };
}
