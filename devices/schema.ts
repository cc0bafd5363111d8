import { sql } from 'drizzle-orm';
import { sqliteTable, text, integer, index, uniqueIndex } from 'drizzle-orm/sqlite-core';
import { DEVICE_KINDS, DEVICE_STATES, type Position } from '../core/contracts.js';
import { json, ms } from '../core/schema-helpers.js';

/** Schemes of account identifiers: how a device is named on a channel it shares with others. */
export const ACCOUNT_SCHEMES = ['contact-id', 'dc09', 'watch', 'jt808'] as const;
export type AccountScheme = (typeof ACCOUNT_SCHEMES)[number];

export interface Contact {
  name: string;
  relation?: string;
  phone?: string;
  webhook?: string;
}

export type SafeZone =
  | { type: 'circle'; center: { lat: number; lon: number }; radiusM: number }
  | { type: 'polygon'; points: { lat: number; lon: number }[] };

export const residents = sqliteTable(
  'residents',
  {
    id: text('id').primaryKey(),
    name: text('name').notNull(),
    address: text('address'),
    unitId: text('unit_id'),
    contacts: json<Contact[]>('contacts').notNull().default([]),
    safeZone: json<SafeZone | null>('safe_zone'),
    home: json<{ lat: number; lon: number } | null>('home'),
    /** seconds without movement before a no-movement alarm; null = rule default */
    noMovementSeconds: integer('no_movement_s'),
    /** local time "HH:MM" by which the daily check-in is due; null = no check-in service */
    checkInBy: text('check_in_by'),
    notes: text('notes'),
    /** created by a test run (firmware-sim scenario): not a person in care; removable after the run */
    test: integer('test', { mode: 'boolean' }).notNull().default(false),
    createdAt: ms('created_at').notNull(),
    updatedAt: ms('updated_at').notNull(),
  },
  (t) => [
    index('residents_unit_idx').on(t.unitId),
    // the resident list's order (by name; ties by id, so that pages never repeat or skip a namesake) with what its
    // search and scope test: at 100,000 residents a page 50,000 deep held the main thread ~1 s (a sort of every row,
    // safe-zone polygons and all), the first page ~70 ms, a search ~150 ms; 3, 1 and 14 ms on this index
    index('residents_list_idx').on(t.name, t.id, t.address, t.unitId),
  ],
);

export const devices = sqliteTable(
  'devices',
  {
    id: text('id').primaryKey(),
    kind: text('kind', { enum: DEVICE_KINDS }).notNull(),
    serial: text('serial').notNull(),
    model: text('model'),
    firmware: text('firmware'),
    state: text('state', { enum: DEVICE_STATES }).notNull(),
    residentId: text('resident_id').references(() => residents.id),
    /** keyed hash (HMAC-SHA256) of the device secret; the secret itself is never stored */
    secretHash: text('secret_hash').notNull(),
    secretRotatedAt: ms('secret_rotated_at').notNull(),
    /** mains-powered devices are supervised more tightly than battery ones */
    power: text('power', { enum: ['battery', 'mains'] }).notNull().default('battery'),
    /** per-device configuration (heartbeat interval, fall sensitivity, safe zone overrides, Modbus address) */
    config: json<Record<string, unknown>>('config').notNull().default({}),
    notes: text('notes'),
    /**
     * The account identifier the device's alarms arrive under on a shared channel (a serial receiver's Contact ID
     * account; later DC-09 accounts, watch ids, JT/T 808 numbers), typed by scheme. Unique per scheme across the
     * registry (the index below): one account can never lead to two devices. Set by admins only, audited.
     */
    accountScheme: text('account_scheme', { enum: ACCOUNT_SCHEMES }),
    account: text('account'),
    /** the CSV import that created the device; while that import is still running the device does not exist yet */
    importId: text('import_id'),
    /**
     * A test engineer's device (a firmware-sim scenario run): its every incident is a test incident — shown apart,
     * never escalated or notified, not in the KPIs. A column, not `config`, so that no configuration PATCH can drop
     * it and no device can be turned into a test device by accident. Set only at provisioning (admin/technician).
     */
    test: integer('test', { mode: 'boolean' }).notNull().default(false),
    createdAt: ms('created_at').notNull(),
    updatedAt: ms('updated_at').notNull(),
  },
  (t) => [
    uniqueIndex('devices_serial_uq').on(t.serial),
    uniqueIndex('devices_account_uq').on(t.accountScheme, t.account),
    index('devices_import_idx').on(t.importId),
    index('devices_resident_idx').on(t.residentId),
    // the device list's order with every column its filters test (registry.list/listIds): a page, a count or every id
    // of 100,000 devices is read from this index alone, in order, never a sort of the table (~170 ms, every socket
    // waiting); it also serves the kind and state filters the index it replaced served
    index('devices_list_idx').on(sql`${t.createdAt} desc`, t.id, t.importId, t.kind, t.state, t.residentId, t.serial),
  ],
);

/**
 * CSV imports. Rows are written in short slices so the alarm path never waits; the import becomes visible at once
 * when its status turns 'done' (one row, one short transaction). A failed or interrupted import's devices are
 * deleted (at start-up for one cut short by a crash).
 */
export const deviceImports = sqliteTable('device_imports', {
  id: text('id').primaryKey(),
  status: text('status', { enum: ['importing', 'done', 'failed', 'abandoned'] }).notNull(),
  count: integer('count').notNull(),
  actor: text('actor'),
  error: text('error'),
  startedAt: ms('started_at').notNull(),
  finishedAt: ms('finished_at'),
});

/** Live state of each device, kept in memory and written through in batches. */
export const deviceState = sqliteTable('device_state', {
  deviceId: text('device_id').primaryKey().references(() => devices.id),
  online: integer('online', { mode: 'boolean' }).notNull().default(false),
  lastSeen: ms('last_seen'),
  connectedAt: ms('connected_at'),
  battery: integer('battery'),
  signal: integer('signal'),
  mains: integer('mains', { mode: 'boolean' }),
  position: json<Position | null>('position'),
  supervision: text('supervision', { enum: ['ok', 'late', 'offline', 'never-seen'] }).notNull().default('never-seen'),
  unreadableCount: integer('unreadable_count').notNull().default(0),
  lastUnreadableAt: ms('last_unreadable_at'),
  lastUnreadableReason: text('last_unreadable_reason'),
  flags: json<string[]>('flags').notNull().default([]),
  updatedAt: ms('updated_at').notNull(),
});

export const observations = sqliteTable(
  'observations',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    deviceId: text('device_id').notNull(),
    type: text('type').notNull(),
    seq: integer('seq'),
    deviceTs: ms('device_ts'),
    receivedAt: ms('received_at').notNull(),
    source: text('source').notNull(),
    lifeSafety: integer('life_safety', { mode: 'boolean' }).notNull(),
    data: json<Record<string, unknown>>('data').notNull(),
    flags: json<string[] | null>('flags'),
    /** the transport connection it came on (MQTT: client id and connect time); null for other transports */
    session: text('session'),
    /** MQTT packet id (QoS 1): with the session and arrival order, how a resend of a keyless envelope is recognised */
    packetId: integer('packet_id'),
    /** 0, or n when the same (seq, ts) came back n times as a possible replay (a device whose clock and counter reset) */
    generation: integer('generation').notNull().default(0),
    /** the incident a life-safety observation opened or joined (dedup asks whether it is still open) */
    incidentId: text('incident_id'),
  },
  (t) => [
    // at-least-once on the wire, exactly-once here: a resend repeats seq *and* ts (docs/design.md §2); a possible replay of
    // the same key is kept as the next generation. A key is unique within its class (life-safety or not: a resend never
    // changes its type), one partial index per class, so that an alarm's row dirties one leaf keyed by device, not two:
    // the alarms' index is also how a device's alarms are listed (few per device: an index-only scan, sorted by id),
    // and only the other rows have a (device, id) index (migration 0010, bench/analysis.md).
    uniqueIndex('observations_alarm_key_uq').on(t.deviceId, t.seq, t.deviceTs, t.generation).where(sql`${t.lifeSafety} = 1`),
    uniqueIndex('observations_other_key_uq').on(t.deviceId, t.seq, t.deviceTs, t.generation).where(sql`${t.lifeSafety} = 0`),
    // resends of envelopes without ts/seq: looked up by packet id (only those rows are indexed)
    index('observations_keyless_idx').on(t.deviceId, t.packetId).where(sql`${t.seq} IS NULL AND ${t.packetId} IS NOT NULL`),
    index('observations_other_device_idx').on(t.deviceId, t.id).where(sql`${t.lifeSafety} = 0`),
    index('observations_received_idx').on(t.receivedAt),
  ],
);

/** Frames refused after authentication (malformed JSON, schema violations, oversized): kept raw, bounded. */
export const rejects = sqliteTable(
  'rejects',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    deviceId: text('device_id'),
    source: text('source').notNull(),
    topic: text('topic'),
    reason: text('reason').notNull(),
    raw: text('raw').notNull(),
    at: ms('at').notNull(),
  },
  (t) => [index('rejects_device_idx').on(t.deviceId, t.id)],
);

export const commands = sqliteTable(
  'commands',
  {
    id: text('id').primaryKey(),
    deviceId: text('device_id').notNull(),
    type: text('type').notNull(),
    params: json<Record<string, unknown>>('params').notNull().default({}),
    incidentId: text('incident_id'),
    status: text('status', { enum: ['pending', 'sent', 'acked', 'failed', 'expired'] }).notNull(),
    attempts: integer('attempts').notNull().default(0),
    createdAt: ms('created_at').notNull(),
    sentAt: ms('sent_at'),
    ackedAt: ms('acked_at'),
    expiresAt: ms('expires_at').notNull(),
    error: text('error'),
  },
  (t) => [index('commands_device_status_idx').on(t.deviceId, t.status)],
);
