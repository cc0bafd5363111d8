// The audit log: who did what, when, from where. Append-only — the migration adds triggers that refuse UPDATE and
// DELETE, and core/audit.ts has no path that changes a row.
import { sqliteTable, text, integer, index } from 'drizzle-orm/sqlite-core';
import { json, ms } from './schema-helpers.js';

export const auditLog = sqliteTable(
  'audit_log',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    at: ms('at').notNull(),
    /** user id, or "system" for what the gateway did on its own (a migration, a start-up clean-up) */
    actorId: text('actor_id').notNull(),
    /** the username at the time (users can be renamed or disabled; the entry keeps what was true then) */
    actor: text('actor').notNull(),
    role: text('role'),
    /** the client address as the HTTP server saw it (behind a proxy: configure trustProxy) */
    ip: text('ip'),
    /** dotted verb: device.provision, device.import, device.account, incident.acknowledge, user.create, … */
    action: text('action').notNull(),
    targetType: text('target_type').notNull(),
    targetId: text('target_id').notNull(),
    /** what changed (before/after, counts) — never a secret: core/audit.ts strips secret-looking keys */
    details: json<Record<string, unknown>>('details').notNull().default({}),
  },
  (t) => [
    index('audit_at_idx').on(t.at),
    index('audit_target_idx').on(t.targetType, t.targetId, t.id),
    index('audit_actor_idx').on(t.actor, t.id),
    index('audit_action_idx').on(t.action, t.id),
  ],
);
