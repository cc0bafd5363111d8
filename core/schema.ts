// Users and the service's own state. Devices and the response network have their own schema modules.
import { sqliteTable, text, integer, index, uniqueIndex } from 'drizzle-orm/sqlite-core';
import { ROLES } from './contracts.js';
import { ms } from './schema-helpers.js';

export const users = sqliteTable(
  'users',
  {
    id: text('id').primaryKey(),
    username: text('username').notNull(),
    passwordHash: text('password_hash').notNull(),
    role: text('role', { enum: ROLES }).notNull(),
    /** the network unit whose subtree this user may see; null = everything (admin, district operators) */
    unitId: text('unit_id'),
    displayName: text('display_name'),
    disabled: ms('disabled_at'),
    createdAt: ms('created_at').notNull(),
    /**
     * the generation of this user's tokens: a token carries the generation it was issued in and is refused once this
     * moves on (logout, password change or reset, disable, role or unit change revoke every token at once). A counter,
     * not a timestamp, so that a wall-clock step can neither revive nor kill a session.
     */
    tokenGeneration: integer('token_generation', { mode: 'number' }).notNull().default(0),
  },
  (t) => [uniqueIndex('users_username_uq').on(t.username)],
);

/** Service secrets created at first start (the device-secret hashing key; the token-signing key lives outside the database, core/token-keys.ts). Never logged. */
export const secrets = sqliteTable('secrets', {
  name: text('name').primaryKey(),
  value: text('value').notNull(),
  createdAt: ms('created_at').notNull(),
});

/** Responses of mutations keyed by the client's Idempotency-Key, so a retried action returns the first answer. */
export const idempotency = sqliteTable(
  'idempotency_keys',
  {
    key: text('key').notNull(),
    userId: text('user_id').notNull(),
    route: text('route').notNull(),
    status: ms('status').notNull(),
    body: text('body').notNull(),
    at: ms('at').notNull(),
  },
  (t) => [uniqueIndex('idempotency_uq').on(t.userId, t.key, t.route), index('idempotency_at_idx').on(t.at)],
);

/**
 * Cluster mode's shared tables (core/shared-tables.ts): which PostgreSQL database this file's copy of the registry,
 * the network and the accounts follows (`cluster`, the shared database's id) and how far it has applied it (`head`).
 * One row; absent on a node that never ran with postgres.url.
 */
export const sharedSync = sqliteTable('shared_sync', {
  id: integer('id').primaryKey(),
  cluster: text('cluster').notNull(),
  head: integer('head', { mode: 'number' }).notNull(),
  /** 1 while a session is open: its changes not yet in PostgreSQL after a crash are put back, not pushed */
  session: integer('session', { mode: 'number' }).notNull().default(0),
});

/**
 * Rows of the shared tables changed here and not yet in PostgreSQL, noted by triggers in the changing transaction (so
 * a crash cannot lose the note). `failed`: the change's push failed; the row is put back as PostgreSQL holds it.
 */
export const sharedPending = sqliteTable(
  'shared_pending',
  {
    tbl: text('tbl').notNull(),
    key: text('key').notNull(),
    failed: integer('failed', { mode: 'number' }).notNull().default(0),
  },
  (t) => [uniqueIndex('shared_pending_uq').on(t.tbl, t.key)],
);
