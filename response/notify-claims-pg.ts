// Cluster mode, several nodes: which one tells people (response/notify.ts `claim`). Every node's replica of the log
// hands its notifications every opened and escalated event; each node claims the events' seqs in PostgreSQL and sends
// only those it won, so a family contact or a unit's channel hears of an alarm once, not once per node.
import type pg from 'pg';

export function pgNotificationClaims(pool: pg.Pool, node: string): (seqs: number[]) => Promise<ReadonlySet<number>> {
  return async (seqs) => {
    const { rows } = await pool.query<{ seq: string }>(
      `INSERT INTO notification_claims (seq, node, at) SELECT s, $2, $3 FROM unnest($1::bigint[]) AS s
       ON CONFLICT (seq) DO NOTHING RETURNING seq`,
      [seqs, node, Date.now()]);
    return new Set(rows.map((r) => Number(r.seq)));
  };
}
