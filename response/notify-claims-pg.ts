// Cluster mode, several nodes: which one tells people (response/notify.ts `claim`). Every node's replica of the log
// hands its notifications every opened and escalated event; each node claims the events' seqs in PostgreSQL and sends
// only those it won, so a family contact or a unit's channel hears of an alarm once, not once per node.
// A claim that takes longer than `timeoutMs` (PostgreSQL slow or away) fails, and the node sends all the same: a P1's
// notification does not wait behind the shared store. What a node claimed and had not sent when it died is not sent
// by another (as on one node, where what was queued in memory is lost with the process): the claim is at most once.
import type pg from 'pg';

export function pgNotificationClaims(pool: pg.Pool, node: string, timeoutMs = 2_000): (seqs: number[]) => Promise<ReadonlySet<number>> {
  return async (seqs) => {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer from the shared store within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      const { rows } = await Promise.race([
        pool.query<{ seq: string }>({
          text: `INSERT INTO notification_claims (seq, node, at) SELECT s, $2, $3 FROM unnest($1::bigint[]) AS s
                 ON CONFLICT (seq) DO NOTHING RETURNING seq`,
          values: [seqs, node, Date.now()],
          query_timeout: timeoutMs,
        } as pg.QueryConfig),
        late,
      ]);
      return new Set(rows.map((r) => Number(r.seq)));
    } finally {
      clearTimeout(timer);
    }
  };
}
