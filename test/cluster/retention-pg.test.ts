// Retention of the shared store's observations (core/retention-pg.ts), on a real PostgreSQL 15 started by this file:
// old observations go, an incident's evidence stays (the incident it points at still there, or named by an open
// incident's events), recent ones stay, old notification claims go; one node prunes at a time (another holding the lock: this one skips its turn).
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../core/logger.js';
import { RETENTION_LOCK, startPgRetention } from '../../core/retention-pg.js';
import { useStoreEngines } from '../helpers/postgres.js';

// band 24: no other test file's (grep `band:` and `BAND =` under test/)
const env = useStoreEngines({ name: 'retention-pg', band: 24 });
const log = createLogger('silent');
const DAY = 86_400_000;
const settings = { telemetryDays: 30, incidentsDays: 0, intervalMs: 3_600_000, batchRows: 50 };

async function observation(pool: pg.Pool, o: { ageDays: number; incidentId?: string; seq: number }): Promise<number> {
  const { rows } = await pool.query<{ id: string }>(
    `INSERT INTO observations (device_id, type, seq, device_ts, received_at, source, life_safety, data, incident_id)
     VALUES ('dev-1', 'battery', $1, $2, $2, 'mqtt', false, '{}', $3) RETURNING id`,
    [o.seq, Date.now() - o.ageDays * DAY, o.incidentId ?? null]);
  return Number(rows[0]!.id);
}

async function incident(pool: pg.Pool, id: string, status: string, seq: number, data: Record<string, unknown>): Promise<void> {
  await pool.query(
    `INSERT INTO incidents (id, device_id, type, priority, status, opened_at, last_at, last_seq) VALUES ($1, 'dev-1', 'sos', 'P1', $2, 1, 1, $3)`,
    [id, status, seq]);
  await pool.query(`INSERT INTO incident_events (seq, incident_id, type, at, data) VALUES ($1, $2, 'opened', 1, $3)`, [seq, id, data]);
}

describe('retention of the shared store\'s observations', () => {
  it('deletes old observations in batches, keeps an incident\'s evidence and recent ones; one node at a time', async () => {
    const { pool } = await env.pgs().fresh('retention');
    let seq = 0;
    for (let i = 0; i < 230; i++) await observation(pool, { ageDays: 40, seq: ++seq });
    const recent = await observation(pool, { ageDays: 1, seq: ++seq });
    await incident(pool, 'inc-closed', 'resolved', 1, {});
    const evidence = await observation(pool, { ageDays: 40, incidentId: 'inc-closed', seq: ++seq });
    const orphan = await observation(pool, { ageDays: 40, incidentId: 'inc-gone', seq: ++seq });
    const named = await observation(pool, { ageDays: 40, seq: ++seq });
    await incident(pool, 'inc-open', 'acknowledged', 2, { observationId: named });

    await pool.query('INSERT INTO notification_claims (seq, node, at) VALUES (1, $1, $2), (2, $1, $3)', ['n1', Date.now() - 40 * DAY, Date.now()]);
    // another node prunes now: this one skips its turn and deletes nothing
    const other = await pool.connect();
    await other.query('SELECT pg_advisory_lock($1)', [RETENTION_LOCK]);
    const r = startPgRetention({ pool, settings, log, schedule: false });
    const skipped = await r.runNow();
    expect(skipped).toMatchObject({ skipped: true, observations: 0 });
    await other.query('SELECT pg_advisory_unlock($1)', [RETENTION_LOCK]);
    other.release();

    const done = await r.runNow();
    expect(done.skipped).toBe(false);
    expect(done.observations).toBe(231); // the 230 old readings and the orphan
    expect(done.claims).toBe(1);
    expect((await pool.query('SELECT seq FROM notification_claims')).rows.map((x) => Number(x.seq))).toEqual([2]);
    expect(done.batches).toBeGreaterThan(4); // at most 50 rows a transaction
    const { rows } = await pool.query<{ id: string }>('SELECT id FROM observations ORDER BY id');
    expect(rows.map((x) => Number(x.id))).toEqual([recent, evidence, named]);
    expect(orphan).toBeGreaterThan(0);
    await r.close();
  });

  it('deletes closed incidents older than incidentsDays with their events and receipts; keeps open ones, recent ones, and one a writer holds until its next pass', async () => {
    const { pool } = await env.pgs().fresh('retention_incidents');
    const old = Date.now() - 400 * DAY;
    let seq = 0;
    /** an incident whose events are at `ats` (the last one its last_at) */
    const incidentAt = async (id: string, status: string, ats: number[]) => {
      await pool.query(
        `INSERT INTO incidents (id, device_id, type, priority, status, opened_at, last_at, last_seq) VALUES ($1, 'dev-1', 'sos', 'P1', $2, $3, $4, $5)`,
        [id, status, ats[0], ats.at(-1), seq + ats.length]);
      for (const [i, at] of ats.entries()) {
        await pool.query(`INSERT INTO incident_events (seq, incident_id, type, at, data) VALUES ($1, $2, $3, $4, '{}')`, [++seq, id, i === 0 ? 'opened' : 'note', at]);
      }
      await pool.query(`INSERT INTO incident_receipts (incident_id, kind, seq, at, rseq) VALUES ($1, 'pushed', $2, $3, $2)`, [id, seq - ats.length + 1, ats[0]]);
    };
    for (let i = 0; i < 12; i++) await incidentAt(`old-${i}`, i % 2 ? 'cancelled' : 'resolved', [old, old + 1000, old + 2000]);
    await incidentAt('old-open', 'acknowledged', [old]);
    await incidentAt('old-noted-lately', 'resolved', [old, Date.now() - DAY]);
    await incidentAt('old-held', 'resolved', [old]);
    // a writer holds one of them (a note being added): skipped, not waited for
    const writer = await pool.connect();
    await writer.query('BEGIN');
    await writer.query(`SELECT id FROM incidents WHERE id = 'old-held' FOR UPDATE`);
    const r = startPgRetention({ pool, settings: { ...settings, incidentsDays: 365, batchRows: 50 }, log, schedule: false });
    try {
      const first = await r.runNow();
      expect(first).toMatchObject({ incidents: 12, incidentEvents: 36, receipts: 12 });
      const left = async () => (await pool.query('SELECT id FROM incidents ORDER BY id')).rows.map((x) => x.id);
      expect(await left()).toEqual(['old-held', 'old-noted-lately', 'old-open']);
      expect((await pool.query(`SELECT count(*)::int AS n FROM incident_events WHERE incident_id LIKE 'old-%' AND incident_id NOT IN ('old-held', 'old-noted-lately', 'old-open')`)).rows[0].n).toBe(0);
      expect((await pool.query(`SELECT incident_id FROM incident_receipts ORDER BY incident_id`)).rows.map((x) => x.incident_id)).toEqual(['old-held', 'old-noted-lately', 'old-open']);
      await writer.query('COMMIT');
      // the next pass takes it
      expect(await r.runNow()).toMatchObject({ incidents: 1, incidentEvents: 1, receipts: 1 });
      expect(await left()).toEqual(['old-noted-lately', 'old-open']);
      // the log's head is untouched: a replica following it by seq goes on from where it is
    } finally {
      writer.release();
      await r.close();
    }
  });

  it('incidentsDays 0 keeps every incident', async () => {
    const { pool } = await env.pgs().fresh('retention_keep');
    await incident(pool, 'inc-ancient', 'resolved', 1, {});
    const r = startPgRetention({ pool, settings: { ...settings, incidentsDays: 0 }, log, schedule: false });
    try {
      expect(await r.runNow()).toMatchObject({ incidents: 0 });
      expect((await pool.query('SELECT count(*)::int AS n FROM incidents')).rows[0].n).toBe(1);
    } finally {
      await r.close();
    }
  });
});
