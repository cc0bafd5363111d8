import { sql } from 'drizzle-orm';
import { sqliteTable, text, integer, index, uniqueIndex } from 'drizzle-orm/sqlite-core';
import { INCIDENT_EVENT_TYPES, PRIORITIES, type Position } from '../core/contracts.js';
import { RECEIPT_KINDS } from './events.js';
import { json, ms } from '../core/schema-helpers.js';

export const UNIT_TIERS = ['district', 'street', 'community', 'grid'] as const;
export type UnitTier = (typeof UNIT_TIERS)[number];

/** The response network: district centre → street centre → community station → grid unit. */
export const units = sqliteTable(
  'units',
  {
    id: text('id').primaryKey(),
    name: text('name').notNull(),
    tier: text('tier', { enum: UNIT_TIERS }).notNull(),
    parentId: text('parent_id'),
    phone: text('phone'),
    webhook: text('webhook'),
    createdAt: ms('created_at').notNull(),
  },
  (t) => [index('units_parent_idx').on(t.parentId)],
);

export const STAFF_ROLES = ['chief-steward', 'nurse', 'operator', 'steward', 'doctor'] as const;

export const staff = sqliteTable(
  'staff',
  {
    id: text('id').primaryKey(),
    name: text('name').notNull(),
    role: text('role', { enum: STAFF_ROLES }).notNull(),
    unitId: text('unit_id').notNull(),
    phone: text('phone'),
    userId: text('user_id'),
    onDuty: integer('on_duty', { mode: 'boolean' }).notNull().default(false),
    createdAt: ms('created_at').notNull(),
  },
  (t) => [index('staff_unit_idx').on(t.unitId)],
);

/**
 * Projection of an incident's events (rebuildable from incident_events). Kept in the same transaction as the
 * events so that lists and filters are cheap.
 */
export const incidents = sqliteTable(
  'incidents',
  {
    id: text('id').primaryKey(),
    deviceId: text('device_id').notNull(),
    residentId: text('resident_id'),
    /** an alarm receiver's account no device is registered to: the card is that unknown panel's (see OpenedData) */
    account: text('account'),
    /** the grid unit the resident belongs to */
    unitId: text('unit_id'),
    /** the unit currently responsible (rises on escalation) */
    tierUnitId: text('tier_unit_id'),
    escalationLevel: integer('escalation_level').notNull().default(0),
    type: text('type').notNull(),
    priority: text('priority', { enum: PRIORITIES }).notNull(),
    status: text('status', {
      enum: ['open', 'acknowledged', 'dispatched', 'on-site', 'resolved', 'cancelled'],
    }).notNull(),
    test: integer('test', { mode: 'boolean' }).notNull().default(false),
    count: integer('count').notNull().default(1),
    openedAt: ms('opened_at').notNull(),
    lastAt: ms('last_at').notNull(),
    /** wall-clock epoch ms: while open, the next escalation; acknowledged or dispatched, the follow-up if nobody is on site; null on site, closed, or a test */
    deadlineAt: ms('deadline_at'),
    position: json<Position | null>('position'),
    stamps: json<Record<string, number>>('stamps').notNull().default({}),
    assignee: text('assignee'),
    outcome: text('outcome'),
    lastSeq: integer('last_seq').notNull(),
  },
  (t) => [
    index('incidents_open_idx').on(t.deviceId, t.type, t.status),
    // the alarm path's question, "this device's open incident of this type?" (store openOf), answered from the
    // incidents still open only, newest first: without it every alarm read the device's whole history of that type
    // and sorted it, a cost that grew with every incident the device ever had
    index('incidents_active_idx').on(t.deviceId, t.type, t.test, t.openedAt).where(sql`${t.status} NOT IN ('resolved', 'cancelled')`),
    index('incidents_status_prio_idx').on(t.status, t.priority),
    index('incidents_unit_idx').on(t.unitId),
    index('incidents_deadline_idx').on(t.deadlineAt),
    // the incident list's order (store list: opened_at DESC, id) and the KPIs' ranges of opening time: a page deep in a
    // year's history is walked in the index, never by reading the rows it skips (300,000 incidents, 100,000 deep: 220-240
    // ms of the main thread on the index of opened_at alone, ~4 ms on this one)
    index('incidents_list_idx').on(sql`${t.openedAt} desc`, t.id),
  ],
);

/** Append-only log; `seq` is the global sequence consoles resume from. */
export const incidentEvents = sqliteTable(
  'incident_events',
  {
    seq: integer('seq').primaryKey({ autoIncrement: true }),
    incidentId: text('incident_id').notNull(),
    type: text('type', { enum: INCIDENT_EVENT_TYPES }).notNull(),
    at: ms('at').notNull(),
    actor: text('actor'),
    /** unit whose subtree may see this event (denormalised for scope filtering on replay) */
    unitId: text('unit_id'),
    data: json<Record<string, unknown>>('data').notNull(),
  },
  (t) => [index('incident_events_incident_idx').on(t.incidentId, t.seq)],
);

/**
 * Push and delivery receipts (response/receipts.ts): not incident events, so not in the log nor on the stream.
 * Written in batches, best-effort (a crash may lose the last few hundred milliseconds of them). At most one `pushed`
 * per incident and one `delivered` per incident and console user; the incident's `pushed`/`delivered` stamps are
 * the first of each, set in the same batch.
 */
/**
 * Cluster mode on PostgreSQL: how far this node's replica has applied the receipts' log (response/receipt-mirror.ts).
 * One row (id 1); absent on a node that never ran with postgres.url.
 */
export const receiptReplica = sqliteTable('receipt_replica', {
  id: integer('id').primaryKey(),
  head: integer('head', { mode: 'number' }).notNull(),
});

export const incidentReceipts = sqliteTable(
  'incident_receipts',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    incidentId: text('incident_id').notNull(),
    kind: text('kind', { enum: RECEIPT_KINDS }).notNull(),
    /** the seq of the event the receipt is about (the incident's opening) */
    seq: integer('seq').notNull(),
    at: ms('at').notNull(),
    /** the console user who confirmed (delivered); null for pushed */
    userId: text('user_id'),
    username: text('username'),
  },
  (t) => [
    index('incident_receipts_incident_idx').on(t.incidentId, t.at),
    uniqueIndex('incident_receipts_pushed_once').on(t.incidentId).where(sql`kind = 'pushed'`),
    uniqueIndex('incident_receipts_delivered_once').on(t.incidentId, t.userId).where(sql`kind = 'delivered'`),
  ],
);
