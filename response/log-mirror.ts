// A node's replica of the shared incident log (cluster mode on PostgreSQL). Every node follows the log as committed
// — LISTEN for its commits, then read what follows the replica's head, in seq order — and applies it to its own SQLite
// file: the events with the seqs the log gave them, and the projection (incidents) they move, computed by the same
// `applyEvent` the writer uses. Then it hands them to `onApplied` (the node publishes them on its bus: the consoles'
// stream, escalation, notifications).
//
// Why a replica, and not the consoles' reads sent to PostgreSQL: the stream's hub, the replays and the API read the log
// synchronously between a console's subscription and its first live event (server/ws/hub.ts), and that is what keeps
// "committed S ⇒ everything below S committed" true for a console resuming from S. A replica applied strictly in seq
// order keeps it: its head is always a prefix of the log. A console on any node sees every event once, in order,
// resumable, whichever node's writer committed it.
//
// The replica is a cache: after a crash it resumes from its own head and reads the rest again from PostgreSQL (the
// same seqs, the same events), so it needs no sync of its own. Push and delivery receipts are not part of the log
// (response/receipts.ts): they have a log of their own, followed into the same file after this one
// (response/receipt-mirror.ts), which sets the projection's `pushed`/`delivered` stamps.
import type Database from 'better-sqlite3';
import type pg from 'pg';
import type { Logger } from '../core/logger.js';
import type { CommittedEvent } from './incidents.js';
import { applyEvent, type IncidentRow } from './projection.js';
import { replicaWaiters } from './replica-waiters.js';
import { followLog } from './store/pg.js';
import { createSqliteIncidentStore } from './store/sqlite.js';
import type { IncidentStore } from './store/types.js';

export interface LogMirror {
  /** the highest seq applied to the replica */
  head(): number;
  /** resolves once the replica holds everything committed up to `seq` (tests; a node's start-up) */
  reach(seq: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export interface LogMirrorOptions {
  /** the shared log (response/store/pg.ts) */
  source: Pick<IncidentStore<'async'>, 'eventsAfter' | 'head' | 'get'>;
  /** a connection of its own for LISTEN */
  connect: () => pg.Client;
  /** the node's SQLite file, with the committed migrations */
  sqlite: Database.Database;
  /** events just applied, in seq order, each once */
  onApplied: (events: CommittedEvent[]) => void;
  log?: Logger;
  /** how often the head is read even without a notification (default 1000 ms) */
  pollMs?: number;
  /** events read per round trip (default 1000) */
  pageSize?: number;
}

export function mirrorLog(opts: LogMirrorOptions): LogMirror {
  const { sqlite } = opts;
  const local = createSqliteIncidentStore(sqlite);
  const insertEvent = sqlite.prepare<[number, string, string, number, string | null, string | null, string]>(
    'INSERT INTO incident_events (seq, incident_id, type, at, actor, unit_id, data) VALUES (?, ?, ?, ?, ?, ?, ?)',
  );
  // one transaction per page: the replica's head moves a page at a time, never to a seq whose projection is not there
  // `missing`: incidents this replica no longer has (its retention pruned them) that the page continues, as the log
  // holds them now: they are taken as they are, and the page's events for them are kept
  const applyPage = sqlite.transaction((events: readonly CommittedEvent[], missing: ReadonlyMap<string, IncidentRow>) => {
    for (const e of events) {
      insertEvent.run(e.seq, e.incidentId, e.type, e.at, e.actor, e.unitId ?? null, JSON.stringify(e.data));
      local.transaction((t) => {
        const before = t.get(e.incidentId) ?? null;
        const row = before === null && e.type !== 'opened' ? missing.get(e.incidentId) : undefined;
        if (row) t.saveProjection(row, true, null);
        else t.saveProjection(applyEvent(before, e), before === null, before);
      }, true);
    }
  });
  /** incidents a page continues that this replica does not have (pruned here): their rows from the log's store */
  const missingOf = async (page: readonly CommittedEvent[]): Promise<Map<string, IncidentRow>> => {
    const out = new Map<string, IncidentRow>();
    const seen = new Set<string>();
    for (const e of page) {
      if (seen.has(e.incidentId)) continue;
      seen.add(e.incidentId);
      if (e.type === 'opened' || local.get(e.incidentId)) continue;
      const row = await opts.source.get(e.incidentId);
      if (row) out.set(e.incidentId, row);
    }
    return out;
  };
  let head = local.head();
  let target = head;
  let pumping = false;
  let closed = false;
  let retry: NodeJS.Timeout | null = null;
  const waiters = replicaWaiters('the replica of the incident log');
  const pageSize = opts.pageSize ?? 1000;

  const pump = async (): Promise<void> => {
    if (pumping || closed) return;
    pumping = true;
    try {
      while (!closed && head < target) {
        const page = await opts.source.eventsAfter(head, Math.min(pageSize, Math.max(1, target - head)));
        if (closed || page.length === 0) break;
        const missing = await missingOf(page);
        if (closed) break;
        applyPage.immediate(page, missing);
        head = page[page.length - 1]!.seq;
        waiters.moved(head);
        try {
          opts.onApplied(page);
        } catch (err) {
          opts.log?.error({ err }, 'handing replicated incident events on failed');
        }
      }
    } catch (err) {
      // PostgreSQL away, or the replica's disk: the head stays where it is, and the next try starts from it
      opts.log?.warn({ err, head }, 'replicating the incident log failed; retried in 1 s');
      if (!closed) retry ??= setTimeout(() => { retry = null; void pump(); }, 1000);
    } finally {
      pumping = false;
    }
    // a notification that came while this page was read
    if (!closed && head < target && !retry) void pump();
  };

  const follower = followLog({
    connect: opts.connect,
    readHead: () => opts.source.head(),
    onHead: (seq) => {
      if (seq > target) target = seq;
      void pump();
    },
    log: opts.log,
    pollMs: opts.pollMs,
  });

  return {
    head: () => head,
    reach(seq, timeoutMs = 10_000) {
      if (head >= seq) return Promise.resolve();
      const reached = waiters.wait(seq, timeoutMs, () => head);
      if (seq > target) target = seq;
      void pump();
      return reached;
    },
    async close() {
      closed = true;
      if (retry) clearTimeout(retry);
      waiters.close();
      await follower.close();
    },
  };
}
