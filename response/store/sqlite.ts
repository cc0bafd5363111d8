// The incident area in SQLite (better-sqlite3, synchronous): the one-node store. Every write transaction is
// IMMEDIATE — the writer thread (gateway/writer) writes the same file on its own connection, and a deferred
// transaction that read first would fail at once (SQLITE_BUSY_SNAPSHOT) instead of waiting its turn. An event's seq is
// its AUTOINCREMENT rowid: one writer at a time holds the file's lock, so seqs are gap-free and in commit order.
import type Database from 'better-sqlite3';
import type { IncidentEventData, IncidentEventType } from '../events.js';
import type { CommittedEvent, ActiveCursor } from '../incidents.js';
import type { IncidentRow } from '../projection.js';
import type { Position, Priority } from '../../core/contracts.js';
import { PRIO_RANK_SQL, type IncidentStore, type IncidentWriteTx, type ListQuery, type UnitScope } from './types.js';

interface IncidentDbRow {
  id: string;
  device_id: string;
  resident_id: string | null;
  account: string | null;
  unit_id: string | null;
  tier_unit_id: string | null;
  escalation_level: number;
  type: string;
  priority: Priority;
  status: IncidentRow['status'];
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
  account: r.account,
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

const params = (row: IncidentRow) => ({
  ...row,
  test: row.test ? 1 : 0,
  position: row.position === null ? null : JSON.stringify(row.position),
  stamps: JSON.stringify(row.stamps),
});

/** The subtree's units; unplaced: also no unit, or a unit no longer in the network. */
function scopeClause(scope: UnitScope): [string, string] {
  return [
    `(unit_id IN (SELECT value FROM json_each(?))${scope.unplaced ? ' OR unit_id IS NULL OR unit_id NOT IN (SELECT id FROM units)' : ''})`,
    JSON.stringify(scope.unitIds),
  ];
}

/**
 * The alarm path's question, asked for every alarm: the device's open incident of this type. Answered from the partial
 * index of open incidents (incidents_active_idx, migration 0007), whatever the device's history; a test pins the plan.
 */
export const OPEN_OF_SQL = `SELECT * FROM incidents WHERE device_id = ? AND type = ? AND test = ? AND resident_id IS ?
       AND account IS ? AND status NOT IN ('resolved', 'cancelled') ORDER BY opened_at DESC LIMIT 1`;

/** The incident list's order: read from incidents_list_idx as it stands (migration 0013), never sorted. */
export const INCIDENT_LIST_ORDER = 'ORDER BY opened_at DESC, id';

export function createSqliteIncidentStore(sqlite: Database.Database): IncidentStore<'sync'> {
  const q = {
    byId: sqlite.prepare<[string], IncidentDbRow>('SELECT * FROM incidents WHERE id = ?'),
    // one open incident per (device, type, test, resident, unknown account): a real alarm never joins a test incident,
    // nor the reverse, nor one person's alarm another's card, nor one unknown panel's alarm another's
    openOf: sqlite.prepare<[string, string, number, string | null, string | null], IncidentDbRow>(OPEN_OF_SQL),
    insertEvent: sqlite.prepare<[string, string, number, string | null, string | null, string]>(
      'INSERT INTO incident_events (incident_id, type, at, actor, unit_id, data) VALUES (?, ?, ?, ?, ?, ?)',
    ),
    insertIncident: sqlite.prepare(
      `INSERT INTO incidents (id, device_id, resident_id, account, unit_id, tier_unit_id, escalation_level, type, priority, status,
         test, count, opened_at, last_at, deadline_at, position, stamps, assignee, outcome, last_seq)
       VALUES (@id, @deviceId, @residentId, @account, @unitId, @tierUnitId, @escalationLevel, @type, @priority, @status, @test,
         @count, @openedAt, @lastAt, @deadlineAt, @position, @stamps, @assignee, @outcome, @lastSeq)`,
    ),
    updateIncident: sqlite.prepare(
      `UPDATE incidents SET tier_unit_id = @tierUnitId, escalation_level = @escalationLevel, priority = @priority,
         status = @status, count = @count, last_at = @lastAt, deadline_at = @deadlineAt, position = @position,
         stamps = @stamps, assignee = @assignee, outcome = @outcome, last_seq = @lastSeq
       WHERE id = @id`,
    ),
    // an incident moved to another unit (its resident's unit changed): the one statement that sets unit_id
    moveIncident: sqlite.prepare(
      `UPDATE incidents SET unit_id = @unitId, tier_unit_id = @tierUnitId, escalation_level = @escalationLevel, priority = @priority,
         status = @status, count = @count, last_at = @lastAt, deadline_at = @deadlineAt, position = @position,
         stamps = @stamps, assignee = @assignee, outcome = @outcome, last_seq = @lastSeq
       WHERE id = @id`,
    ),
    // the same row without the columns an index holds (status, priority, deadline_at; device_id never changes, unit_id
    // only by moveIncident): SQLite rewrites an index's entry for every indexed column in the SET list, changed or not, and most
    // events (a joined alarm, a note's seq, a stamp) move none of them
    updateUnindexed: sqlite.prepare(
      `UPDATE incidents SET tier_unit_id = @tierUnitId, escalation_level = @escalationLevel, count = @count,
         last_at = @lastAt, position = @position, stamps = @stamps, assignee = @assignee, outcome = @outcome,
         last_seq = @lastSeq
       WHERE id = @id`,
    ),
    events: sqlite.prepare<[string], EventDbRow>('SELECT * FROM incident_events WHERE incident_id = ? ORDER BY seq'),
    opened: sqlite.prepare<[string], EventDbRow>(`SELECT * FROM incident_events WHERE incident_id = ? AND type = 'opened' LIMIT 1`),
    after: sqlite.prepare<[number, number, number], EventDbRow>('SELECT * FROM incident_events WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?'),
    // (an incident moved to another unit: its `moved` is shown to the unit it left too, which then drops it)
    afterScoped: sqlite.prepare<[number, number, string, number, string, number], EventDbRow>(
      `SELECT * FROM incident_events WHERE seq > ? AND seq <= ?
         AND (unit_id IN (SELECT value FROM json_each(?))
              OR (? = 1 AND (unit_id IS NULL OR unit_id NOT IN (SELECT id FROM units)))
              OR (type = 'moved' AND json_extract(data, '$.fromUnitId') IN (SELECT value FROM json_each(?))))
       ORDER BY seq LIMIT ?`,
    ),
    openCounts: sqlite.prepare<[], { priority: Priority; n: number }>(
      `SELECT priority, count(*) AS n FROM incidents WHERE status NOT IN ('resolved', 'cancelled') AND test = 0 GROUP BY priority`,
    ),
    pending: sqlite.prepare<[], IncidentDbRow>(
      `SELECT * FROM incidents WHERE status IN ('open', 'acknowledged', 'dispatched') AND deadline_at IS NOT NULL ORDER BY deadline_at`,
    ),
    // the highest seq ever given (AUTOINCREMENT's counter), not max(seq): rows removed from the end of the log
    // (receipts moved out by migration 0006, retention) must not make the head go back, or a console's `since` looks
    // "beyond" the log
    head: sqlite.prepare<[], number>(
      `SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'incident_events'), 0), coalesce((SELECT max(seq) FROM incident_events), 0))`,
    ).pluck(),
  };

  const get = (id: string) => {
    const r = q.byId.get(id);
    return r ? toRow(r) : undefined;
  };
  const tx: IncidentWriteTx<'sync'> = {
    get,
    openOf(deviceId, type, test, residentId, account) {
      const r = q.openOf.get(deviceId, type, test ? 1 : 0, residentId, account);
      return r ? toRow(r) : undefined;
    },
    opened(incidentId) {
      const r = q.opened.get(incidentId);
      return r ? toEvent(r) : undefined;
    },
    append(e) {
      const info = q.insertEvent.run(e.incidentId, e.body.type, e.at, e.actor, e.unitId, JSON.stringify(e.body.data));
      return { seq: Number(info.lastInsertRowid), incidentId: e.incidentId, at: e.at, actor: e.actor, unitId: e.unitId, ...e.body } as CommittedEvent;
    },
    saveProjection(row, created, before) {
      if (created) q.insertIncident.run(params(row));
      else if (!before || before.unitId !== row.unitId) q.moveIncident.run(params(row));
      else if (before.status === row.status && before.priority === row.priority && before.deadlineAt === row.deadlineAt) {
        q.updateUnindexed.run(params(row));
      } else q.updateIncident.run(params(row));
    },
  };

  const writeTx = sqlite.transaction((fn: (t: typeof tx) => unknown) => fn(tx));

  const readActive = sqlite.transaction((scope: UnitScope | null, after: ActiveCursor | null, limit: number) => {
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
    const head = q.head.get() as number;
    const rows = sqlite
      .prepare(`SELECT *, ${PRIO_RANK_SQL} AS prio_rank FROM incidents WHERE ${where.join(' AND ')} ORDER BY prio_rank, opened_at, id LIMIT ?`)
      .all(...args, limit + 1) as (IncidentDbRow & { prio_rank: number })[];
    const page = rows.slice(0, limit);
    const last = page[page.length - 1];
    const next = rows.length > limit && last ? { rank: last.prio_rank, openedAt: last.opened_at, id: last.id } : null;
    return { items: page.map(toRow), head, next };
  });

  return {
    mode: 'sync',
    // better-sqlite3 nests a transaction as a savepoint, so this is atomic whether or not the caller opened one; one
    // wrapper for every call (building one per call was 3 % of the writer thread under an alarm flood)
    transaction: (fn, joinCaller) => joinCaller && sqlite.inTransaction ? fn(tx) : (writeTx.immediate(fn) as ReturnType<typeof fn>),
    get,
    events: (id) => q.events.all(id).map(toEvent),
    eventsAfter(seq, limit, scope, upTo = Number.MAX_SAFE_INTEGER) {
      if (!scope) return q.after.all(seq, upTo, limit).map(toEvent);
      const units = JSON.stringify(scope.unitIds);
      return q.afterScoped.all(seq, upTo, units, scope.unplaced ? 1 : 0, units, limit).map(toEvent);
    },
    head: () => q.head.get() as number,
    // one read transaction: the head and the page come from the same snapshot
    active: (scope, after, limit) => readActive.deferred(scope, after, limit),
    list(query: ListQuery) {
      const where: string[] = [];
      const args: unknown[] = [];
      const inList = (col: string, values: readonly unknown[]) => {
        where.push(`${col} IN (SELECT value FROM json_each(?))`);
        args.push(JSON.stringify(values));
      };
      for (const s of query.scopes) {
        const [clause, arg] = scopeClause(s);
        where.push(clause);
        args.push(arg);
      }
      if (query.status?.length) inList('status', query.status);
      if (query.priority?.length) inList('priority', query.priority);
      if (query.residentId) { where.push('resident_id = ?'); args.push(query.residentId); }
      if (query.deviceId) { where.push('device_id = ?'); args.push(query.deviceId); }
      if (query.type) { where.push('type = ?'); args.push(query.type); }
      if (query.from !== undefined) { where.push('opened_at >= ?'); args.push(query.from); }
      if (query.to !== undefined) { where.push('opened_at < ?'); args.push(query.to); }
      if (query.test !== undefined) { where.push('test = ?'); args.push(query.test ? 1 : 0); }
      const clause = where.length ? `WHERE ${where.join(' AND ')}` : '';
      const limit = Math.min(Math.max(query.limit ?? 50, 1), 500);
      const offset = Math.max(query.offset ?? 0, 0);
      const total = (sqlite.prepare(`SELECT count(*) AS n FROM incidents ${clause}`).get(...args) as { n: number }).n;
      const rows = sqlite
        .prepare(`SELECT * FROM incidents ${clause} ${INCIDENT_LIST_ORDER} LIMIT ? OFFSET ?`)
        .all(...args, limit, offset) as IncidentDbRow[];
      return { items: rows.map(toRow), total };
    },
    pendingDeadlines: () => q.pending.all().map(toRow),
    openCounts() {
      const out = { P1: 0, P2: 0, P3: 0 } as Record<Priority, number>;
      for (const r of q.openCounts.all()) out[r.priority] = r.n;
      return out;
    },
  };
}
