// Push and delivery receipts: "the opening of this incident was written to a console socket" (pushed, once per
// incident) and "this user's console confirmed it" (delivered, once per user and incident). They are not incident
// events — they change nothing a responder acts on — so they never enter the incident log nor the stream: one SOS
// seen by 20 consoles is one `opened` event and 20 frames, plus 21 receipt rows written in one or two batches.
//
// Durability is best-effort, on purpose: receipts are queued in memory and written in batches (one transaction per
// `flushMs`, or at once when `maxBatch` are waiting), not fsynced (SQLite: synchronous=NORMAL, receipt-store.ts). A
// crash loses what is still queued in memory; a power cut may also lose the batches written since the last fsynced
// commit; a failed write (disk full) drops its batch, logged. What the alarm path guarantees (the opening durable before any
// console sees it) does not depend on them. The incident's `pushed` / `delivered` latency stamps are the first
// receipt of each kind, set on the incident row in the same batch, so lists, KPIs and the API read them as before.
// Where they are stored: response/receipt-store.ts (SQLite here; PostgreSQL for cluster mode in receipt-store-pg.ts,
// where the gateway's `write` resolves once this node's replica of every node's receipts holds the batch:
// response/receipt-mirror.ts).
import type { Logger } from 'pino';
import type { Store } from '../core/db.js';
import type { IncidentReceipt } from './events.js';
import { createSqliteReceiptStore, receiptKey } from './receipt-store.js';

export interface ReceiptsOptions {
  store: Store;
  log: Logger;
  /**
   * Where a batch is written: this thread's connection if not given. The gateway hands batches to its writer thread
   * (the thread with the consoles' sockets never waits for SQLite's write lock); resolves with the receipts written.
   */
  write?: (batch: readonly IncidentReceipt[]) => Promise<number>;
  /** how long a receipt may wait for its batch */
  flushMs?: number;
  /** a batch is written at once when this many are waiting */
  maxBatch?: number;
}

export interface Receipts {
  /** the incident's opening was written to a console at `at`; true if it is the first push known (queued) */
  pushed(incidentId: string, seq: number, at: number): boolean;
  /** `userId`'s console confirmed the opening; true if it is that user's first delivery known (queued) */
  delivered(incidentId: string, seq: number, at: number, userId: string, username?: string): boolean;
  /** the incident's receipts, oldest first: written ones, then those still queued (a read never forces a write) */
  of(incidentId: string): IncidentReceipt[];
  /** the first push and the first delivery, as stamps */
  firstStamps(incidentId: string): { pushed?: number; delivered?: number };
  /** write what is queued now; returns the receipts written (new rows) */
  flush(): number;
  /** resolves once every batch handed to `write` so far has been answered (written or dropped) */
  settled(): Promise<void>;
  /** write what is queued and stop the timer */
  close(): void;
}

/** Bounds: remembered keys (beyond them memory forgets and the unique indexes decide) and queued receipts. */
const MAX_KNOWN = 100_000;
const MAX_QUEUED = 50_000;

export function createReceipts(opts: ReceiptsOptions): Receipts {
  const stored = createSqliteReceiptStore(opts.store.sqlite);
  const log = opts.log.child({ module: 'receipts' });
  const flushMs = opts.flushMs ?? 50;
  const maxBatch = opts.maxBatch ?? 500;

  let queue: IncidentReceipt[] = [];
  let timer: NodeJS.Timeout | undefined;
  let immediate: NodeJS.Immediate | undefined;
  let closed = false;
  let failing = false;
  const pushedKnown = new Set<string>();
  const deliveredKnown = new Set<string>();

  const writeHere = opts.write ? null : stored.writeBatch;
  /** batches handed to the writer and not answered yet: still shown by `of` and `firstStamps` */
  const inFlight = new Set<readonly IncidentReceipt[]>();
  /** their writes' promises (settled() waits for them) */
  const writing = new Set<Promise<unknown>>();

  const wrote = (written: number) => {
    if (failing) log.info({ written }, 'receipts are written again');
    failing = false;
  };
  const dropped = (err: unknown, batch: readonly IncidentReceipt[]) => {
    // best-effort: a receipt is not an alarm; the batch is dropped, once logged per failing spell
    if (!failing) log.error({ err, dropped: batch.length }, 'could not write push/delivery receipts; dropped (best-effort)');
    else log.debug({ dropped: batch.length }, 'receipts dropped: storage still failing');
    failing = true;
  };

  /** Write what is queued: here, the receipts written; handed to the writer, 0 (they are in flight, still shown). */
  function flush(): number {
    clearTimeout(timer);
    timer = undefined;
    if (immediate) clearImmediate(immediate);
    immediate = undefined;
    if (!queue.length) return 0;
    const batch = queue;
    queue = [];
    if (opts.write) {
      inFlight.add(batch);
      const w: Promise<unknown> = opts.write(batch).then(wrote, (err: unknown) => dropped(err, batch)).finally(() => {
        inFlight.delete(batch);
        writing.delete(w);
      });
      writing.add(w);
      return 0;
    }
    try {
      const written = writeHere!(batch);
      wrote(written);
      return written;
    } catch (err) {
      dropped(err, batch);
      return 0;
    }
  }
  /** what is not in the table yet: queued here, or handed to the writer */
  const unwritten = (incidentId: string) => [...[...inFlight].flat(), ...queue].filter((r) => r.incidentId === incidentId);

  function enqueue(r: IncidentReceipt): void {
    if (closed) return;
    if (queue.length >= MAX_QUEUED) {
      log.warn({ queued: queue.length }, 'receipt queue full; a receipt was dropped');
      return;
    }
    queue.push(r);
    if (queue.length >= maxBatch) {
      // not inside the caller's turn: the caller may be writing frames to other consoles
      immediate ??= setImmediate(flush);
      return;
    }
    if (!timer) {
      timer = setTimeout(flush, flushMs);
      timer.unref();
    }
  }

  const remember = (set: Set<string>, key: string): boolean => {
    if (set.has(key)) return false;
    if (set.size >= MAX_KNOWN) set.clear();
    set.add(key);
    return true;
  };

  return {
    pushed(incidentId, seq, at) {
      if (!remember(pushedKnown, incidentId)) return false;
      enqueue({ incidentId, kind: 'pushed', seq, at, userId: null, username: null });
      return true;
    },
    delivered(incidentId, seq, at, userId, username) {
      if (!remember(deliveredKnown, `${incidentId}\u0000${userId}`)) return false;
      enqueue({ incidentId, kind: 'delivered', seq, at, userId, username: username ?? null });
      return true;
    },
    of(incidentId) {
      const written = stored.of(incidentId);
      const seen = new Set(written.map(receiptKey));
      return [...written, ...unwritten(incidentId).filter((r) => !seen.has(receiptKey(r)))];
    },
    firstStamps(incidentId) {
      const out = stored.firsts(incidentId);
      for (const r of unwritten(incidentId)) if (out[r.kind] === undefined || r.at < out[r.kind]!) out[r.kind] = r.at;
      return out;
    },
    flush,
    async settled() {
      await Promise.allSettled([...writing]);
    },
    close() {
      flush();
      closed = true;
    },
  };
}
