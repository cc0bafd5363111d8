// A node's replica of every node's push and delivery receipts (cluster mode on PostgreSQL). A console on node 1 that
// shows an alarm stamps it `pushed`; its operator's confirmation stamps it `delivered` for that operator. Those rows
// and stamps are read by the incident API (`receipts`, `stamps`) and by the KPIs on any node, from that node's SQLite
// file: so every node applies every node's receipts there, as the log's replica applies its events
// (response/log-mirror.ts).
//
// The receipts have a log of their own in PostgreSQL (response/receipt-store-pg.ts: `rseq`, numbered under a head row,
// committed in order). The replica follows it — LISTEN `receipt_log`, and the head read after every reconnect and every
// second — and applies what follows its head in rseq order, with the same SQLite statements one node uses
// (response/receipt-store.ts: stored once; the first of each kind stamps the incident), so every replica stamps what
// PostgreSQL stamped. Its head is kept in the same transaction (`receipt_replica`), so a restart resumes where it was.
//
// A receipt is about an incident's opening (its `seq`). One whose opening this node's log replica does not hold yet
// waits for it (`logHead`; `poke` when the log replica moves): applied earlier it would stamp nothing, and the
// incident would stay without its stamp on this node.
import type Database from 'better-sqlite3';
import type pg from 'pg';
import type { Logger } from '../core/logger.js';
import { createSqliteReceiptStore } from './receipt-store.js';
import { RECEIPT_CHANNEL, type LoggedReceipt, type PgReceiptStore } from './receipt-store-pg.js';
import { replicaWaiters } from './replica-waiters.js';
import { followLog } from './store/pg.js';

export interface ReceiptMirror {
  /** the highest rseq applied here */
  head(): number;
  /** resolves once every receipt up to `rseq` is applied here (or rejects after `timeoutMs`) */
  reach(rseq: number, timeoutMs?: number): Promise<void>;
  /** the log replica moved: receipts waiting for an opening may apply now */
  poke(): void;
  close(): Promise<void>;
}

export interface ReceiptMirrorOptions {
  source: Pick<PgReceiptStore, 'head' | 'after'>;
  connect: () => pg.Client;
  sqlite: Database.Database;
  /** the seq this node's log replica holds (response/log-mirror.ts) */
  logHead: () => number;
  log?: Logger;
  /** how often the head is read even without a notification (default 1000 ms) */
  pollMs?: number;
  /** receipts read per round trip (default 1000) */
  pageSize?: number;
}

export function mirrorReceipts(opts: ReceiptMirrorOptions): ReceiptMirror {
  const { sqlite } = opts;
  const local = createSqliteReceiptStore(sqlite);
  const readHead = sqlite.prepare<[], { head: number }>('SELECT head FROM receipt_replica WHERE id = 1');
  const writeHead = sqlite.prepare<[number]>(
    'INSERT INTO receipt_replica (id, head) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET head = excluded.head',
  );
  const pageSize = opts.pageSize ?? 1000;
  let head = readHead.get()?.head ?? 0;
  let target = head;
  let pumping = false;
  let closed = false;
  let retry: NodeJS.Timeout | null = null;
  let waitingForLog = false;
  const waiters = replicaWaiters('the receipts\' replica');

  const apply = sqlite.transaction((rows: readonly LoggedReceipt[]) => {
    local.writeBatch(rows);
    writeHead.run(rows[rows.length - 1]!.rseq);
  });

  const pump = async (): Promise<void> => {
    if (pumping || closed) return;
    pumping = true;
    waitingForLog = false;
    try {
      while (!closed && head < target) {
        // the head this read goes up to: committed (a notification or a read of the head), so every receipt at or below
        // it is there to read; the target may move on while the read is out
        const upTo = target;
        const page = await opts.source.after(head, upTo, pageSize);
        if (closed) break;
        if (page.length === 0) {
          // the numbers up to it that no receipt took (a receipt already stored by another batch)
          writeHead.run(upTo);
          head = upTo;
          continue;
        }
        // in rseq order, up to the first receipt whose opening the log replica does not hold yet
        const logHead = opts.logHead();
        const stop = page.findIndex((r) => r.seq > logHead);
        const ready = stop === -1 ? page : page.slice(0, stop);
        if (ready.length) {
          apply.immediate(ready);
          head = ready[ready.length - 1]!.rseq;
        }
        if (stop !== -1) {
          waitingForLog = true;
          break;
        }
        if (page.length < pageSize) {
          // nothing more up to it: its last numbers were gaps
          writeHead.run(upTo);
          head = upTo;
        }
      }
      waiters.moved(head);
    } catch (err) {
      // PostgreSQL away, or this node's disk: the head stays where it is, and the next try starts from it
      opts.log?.warn({ err, head }, 'replicating push and delivery receipts failed; retried in 1 s');
      if (!closed) retry ??= setTimeout(() => { retry = null; void pump(); }, 1000);
    } finally {
      pumping = false;
    }
    if (!closed && head < target && !retry && !waitingForLog) void pump();
  };

  const follower = followLog({
    connect: opts.connect,
    readHead: () => opts.source.head(),
    onHead: (rseq) => {
      if (rseq > target) target = rseq;
      void pump();
    },
    log: opts.log,
    pollMs: opts.pollMs,
    channel: RECEIPT_CHANNEL,
    what: 'the receipts\' log',
  });

  return {
    head: () => head,
    reach(rseq, timeoutMs = 10_000) {
      if (head >= rseq) return Promise.resolve();
      if (closed) return Promise.reject(new Error('the receipts\' replica is closed'));
      // (the target moves only with a committed head, from the channel or a read: a number from elsewhere could be a
      // transaction's not yet committed, and the replica would step over receipts still to come)
      return waiters.wait(rseq, timeoutMs, () => head);
    },
    poke() {
      if (waitingForLog) void pump();
    },
    async close() {
      closed = true;
      if (retry) clearTimeout(retry);
      waiters.close();
      await follower.close();
    },
  };
}
