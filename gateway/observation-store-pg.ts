// The observation area in PostgreSQL (node-postgres through drizzle): cluster mode's shared store. The contract is
// gateway/observation-store.ts's. Dedup is the same unique index as SQLite's: `insert … on conflict do nothing
// returning id` answers 0 for a key stored already, whichever node stored it. Every method runs on the pool, or in the
// caller's transaction through `transaction()` (the ingest writes observations, incidents and device state in one).
// Migrations: migratePg (response/store/pg.ts) applies drizzle-pg/.
import type pg from 'pg';
import { and, desc, eq, isNull, lte, sql } from 'drizzle-orm';
import { pgObservations, pgRejects } from './pg-schema.js';
import { onPool, type PgExecutor, type Transactional } from '../core/pg-bind.js';
import { storedReject, type ObservationStore, type PriorObservation } from './observation-store.js';

export type PgObservationStore = Transactional<ObservationStore<'async'>>;

/** the columns dedup reads; `data` as the text stored (`json` keeps it as written) */
const PRIOR = {
  id: pgObservations.id,
  session: pgObservations.session,
  receivedAt: pgObservations.receivedAt,
  generation: pgObservations.generation,
  incidentId: pgObservations.incidentId,
  type: pgObservations.type,
  data: sql<string>`${pgObservations.data}::text`,
};

/**
 * The statements every observation runs, prepared under names: PostgreSQL parses and plans each once per connection,
 * not once per observation (the writer's hot path: an alarm is a handful of statements)
 */
function statements(t: PgExecutor) {
  const p = sql.placeholder;
  return {
    insert: t.insert(pgObservations).values({
      deviceId: p('deviceId'), type: p('type'), seq: p('seq'), deviceTs: p('deviceTs'), receivedAt: p('receivedAt'), source: p('source'),
      lifeSafety: p('lifeSafety'),
      // the JSON text as given: bound as text and cast, so drizzle does not serialise it a second time
      data: sql`${p('data')}::json`, flags: sql`${p('flags')}::json`,
      session: p('session'), packetId: p('packetId'), generation: p('generation'),
    } as never).onConflictDoNothing().returning({ id: pgObservations.id }).prepare('observation_insert'),
    setIncident: t.update(pgObservations).set({ incidentId: sql`${p('incidentId')}` } as never).where(eq(pgObservations.id, p('id'))).prepare('observation_set_incident'),
  };
}

export function observationStoreOn(t: PgExecutor): ObservationStore<'async'> {
  let q: ReturnType<typeof statements> | undefined;
  const prepared = () => (q ??= statements(t));
  return {
    mode: 'async',
    async insert(o) {
      const rows = await prepared().insert.execute({
        deviceId: o.deviceId, type: o.type, seq: o.seq, deviceTs: o.deviceTs, receivedAt: o.receivedAt, source: o.source,
        lifeSafety: o.lifeSafety, data: o.data, flags: o.flags, session: o.session, packetId: o.packetId, generation: o.generation,
      });
      return rows[0]?.id ?? 0;
    },
    async findKeyed(deviceId, seq, deviceTs, lifeSafety) {
      // the class as written, not a parameter, so that the planner proves the partial index's condition
      const [row] = await t.select(PRIOR).from(pgObservations)
        .where(and(eq(pgObservations.deviceId, deviceId), eq(pgObservations.seq, seq), eq(pgObservations.deviceTs, deviceTs),
          lifeSafety ? sql`${pgObservations.lifeSafety}` : sql`NOT ${pgObservations.lifeSafety}`))
        .orderBy(desc(pgObservations.generation)).limit(1);
      return row as PriorObservation | undefined;
    },
    async findKeyless(deviceId, packetId) {
      const [row] = await t.select(PRIOR).from(pgObservations)
        .where(and(eq(pgObservations.deviceId, deviceId), isNull(pgObservations.seq), eq(pgObservations.packetId, packetId)))
        .orderBy(desc(pgObservations.id)).limit(1);
      return row as PriorObservation | undefined;
    },
    async setIncident(observationId, incidentId) {
      await prepared().setIncident.execute({ id: observationId, incidentId });
    },
    async remove(observationId) {
      await t.delete(pgObservations).where(eq(pgObservations.id, observationId));
    },
    async insertRejects(rows) {
      if (rows.length === 0) return;
      await t.insert(pgRejects).values(rows.map(storedReject));
    },
    async pruneRejects(keep) {
      // the newest `keep` by id, counted (a sequence leaves gaps after a rollback: "max − keep" would keep fewer)
      const [edge] = await t.select({ id: pgRejects.id }).from(pgRejects).orderBy(desc(pgRejects.id)).offset(keep).limit(1);
      if (edge) await t.delete(pgRejects).where(lte(pgRejects.id, edge.id));
    },
  };
}

export function createPgObservationStore(pool: pg.Pool): PgObservationStore {
  return onPool(pool, observationStoreOn);
}
