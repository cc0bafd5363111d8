// The incident area's tables in PostgreSQL (the incidents, their log, and their push and delivery receipts) (cluster mode's shared store), migrations in drizzle-pg/ (generated from
// this file by `npm run db:generate:pg`). The same columns as the SQLite schema (response/schema.ts) with PostgreSQL's
// types: epoch ms as bigint read as a JS number (safe to 2^53), JSON as jsonb, flags as boolean.
//
// Two things SQLite gets from having one writer at a time are explicit here:
// - `incident_log_head`: one row holding the log's head. An appending transaction takes it (UPDATE … RETURNING) and
//   holds its row lock to commit, so seqs are gap-free and in commit order across every node (a sequence is neither:
//   a rolled-back nextval leaves a gap, and a later nextval can commit first).
// - `incidents_one_open`: at most one open incident per (device, type, test, resident, unknown account). Two nodes raising for the same
//   device at once cannot both open one: the second insert fails, its transaction is retried and joins the first.
import { sql } from 'drizzle-orm';
import { bigint, bigserial, boolean, check, index, integer, jsonb, pgTable, smallint, text, uniqueIndex } from 'drizzle-orm/pg-core';
import { INCIDENT_EVENT_TYPES, PRIORITIES, type Position } from '../../core/contracts.js';
import { RECEIPT_KINDS } from '../events.js';
import { ms } from '../../core/pg-schema.js';


export const pgIncidents = pgTable(
  'incidents',
  {
    id: text('id').primaryKey(),
    deviceId: text('device_id').notNull(),
    residentId: text('resident_id'),
    account: text('account'),
    unitId: text('unit_id'),
    tierUnitId: text('tier_unit_id'),
    escalationLevel: integer('escalation_level').notNull().default(0),
    type: text('type').notNull(),
    priority: text('priority', { enum: PRIORITIES }).notNull(),
    status: text('status', { enum: ['open', 'acknowledged', 'dispatched', 'on-site', 'resolved', 'cancelled'] }).notNull(),
    test: boolean('test').notNull().default(false),
    count: integer('count').notNull().default(1),
    openedAt: ms('opened_at').notNull(),
    lastAt: ms('last_at').notNull(),
    deadlineAt: ms('deadline_at'),
    position: jsonb('position').$type<Position | null>(),
    stamps: jsonb('stamps').$type<Record<string, number>>().notNull().default({}),
    assignee: text('assignee'),
    outcome: text('outcome'),
    lastSeq: bigint('last_seq', { mode: 'number' }).notNull(),
  },
  (t) => [
    index('incidents_open_idx').on(t.deviceId, t.type, t.status),
    // a device's resident is part of a card's identity, and so is a receiver's unknown account; bound to nobody (null)
    // counts as one binding, no account as one account, hence coalesce
    uniqueIndex('incidents_one_open').on(t.deviceId, t.type, t.test, sql`coalesce(${t.residentId}, '')`, sql`coalesce(${t.account}, '')`).where(sql`status NOT IN ('resolved', 'cancelled')`),
    index('incidents_status_prio_idx').on(t.status, t.priority),
    index('incidents_unit_idx').on(t.unitId),
    index('incidents_deadline_idx').on(t.deadlineAt),
    index('incidents_opened_idx').on(t.openedAt),
  ],
);

/** Append-only log; `seq` is given from `incident_log_head` in the appending transaction. */
export const pgIncidentEvents = pgTable(
  'incident_events',
  {
    seq: bigint('seq', { mode: 'number' }).primaryKey(),
    incidentId: text('incident_id').notNull(),
    type: text('type', { enum: INCIDENT_EVENT_TYPES }).notNull(),
    at: ms('at').notNull(),
    actor: text('actor'),
    unitId: text('unit_id'),
    data: jsonb('data').$type<Record<string, unknown>>().notNull(),
  },
  (t) => [index('incident_events_incident_idx').on(t.incidentId, t.seq)],
);

/** The log's head: exactly one row (id 1), inserted by the first migration. */
export const pgIncidentLogHead = pgTable(
  'incident_log_head',
  {
    id: smallint('id').primaryKey().default(1),
    seq: bigint('seq', { mode: 'number' }).notNull().default(0),
  },
  (t) => [check('incident_log_head_one_row', sql`${t.id} = 1`)],
);

/** The receipts' log head: one row (id 1). A batch of receipts takes it FOR UPDATE, numbers its rows after it, and moves it. */
export const pgReceiptLogHead = pgTable(
  'receipt_log_head',
  {
    id: smallint('id').primaryKey().default(1),
    seq: bigint('seq', { mode: 'number' }).notNull().default(0),
  },
  (t) => [check('receipt_log_head_one_row', sql`${t.id} = 1`)],
);

/**
 * Push and delivery receipts (response/receipt-store.ts): at most one `pushed` per incident and one `delivered` per
 * incident and console user, whichever node writes it first (the partial unique indexes decide).
 */
export const pgIncidentReceipts = pgTable(
  'incident_receipts',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    incidentId: text('incident_id').notNull(),
    kind: text('kind', { enum: RECEIPT_KINDS }).notNull(),
    seq: bigint('seq', { mode: 'number' }).notNull(),
    at: ms('at').notNull(),
    userId: text('user_id'),
    username: text('username'),
    /**
     * The receipt's place in the receipts' own log: taken from `receipt_log_head` in the writing transaction, so
     * "head H committed => every receipt at or below H committed" (every node's replica follows it: response/receipt-mirror.ts)
     */
    rseq: bigint('rseq', { mode: 'number' }).notNull(),
  },
  (t) => [
    index('incident_receipts_incident_idx').on(t.incidentId, t.at),
    uniqueIndex('incident_receipts_rseq_idx').on(t.rseq),
    uniqueIndex('incident_receipts_pushed_once').on(t.incidentId).where(sql`kind = 'pushed'`),
    uniqueIndex('incident_receipts_delivered_once').on(t.incidentId, t.userId).where(sql`kind = 'delivered'`),
  ],
);

/**
 * Which node tells people of an opened or escalated incident (cluster mode, several nodes; response/notify.ts): every
 * node's replica hands it every event of the log, and the node whose insert of the event's seq stores a row sends.
 */
export const pgNotificationClaims = pgTable('notification_claims', {
  seq: bigint('seq', { mode: 'number' }).primaryKey(),
  node: text('node').notNull(),
  at: ms('at').notNull(),
});
