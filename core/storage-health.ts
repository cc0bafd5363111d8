// Storage faults are loud (issue 13 §3): a write that fails (disk full, I/O error, read-only file) flips /readyz to
// not-ready with the reason and sets eldergate_storage_healthy to 0 at once; a P2 "storage-failing" incident reaches
// the call centre (the root of the network) as soon as it can be written; all of it clears when writes succeed again.
//
// The incident needs a write of its own, and nothing may reach a console before it is durable: while the storage
// fails the incident is kept here, in memory (one episode at a time: bounded), and tried again every `retryMs`. It
// carries the moment the fault began (`since`, stamp `faultBegan`), whenever it is finally written. When writes work
// again it is written (if it was not yet) and resolved with a note of how long the fault lasted. /readyz and the
// metric are the signal that needs no write; the incident is the one a person acts on.
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';

export const STORAGE_INCIDENT = 'storage-failing';
/** the "device" a gateway-wide incident belongs to: the gateway itself (no resident, no unit → the network's root) */
export const GATEWAY_DEVICE_ID = 'gateway';

/** SQLite result codes that mean the storage itself fails, not a constraint or a rule (better-sqlite3 `err.code`). */
const STORAGE_CODES = /^SQLITE_(FULL|IOERR|CANTOPEN|READONLY|CORRUPT|NOTADB|PERM|NOLFS|PROTOCOL)/;

export function isStorageError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && STORAGE_CODES.test(code);
}

export interface StorageFault {
  since: number;
  reason: string;
  writer: string;
}

/**
 * How the storage incident is written (the incident service, wired in eldergate.ts). Each call is one transaction:
 * synchronous on one node's SQLite file; on PostgreSQL a promise (the writer thread writes it there).
 */
export interface StorageIncidentWriter {
  /** open the incident (or find the one open); returns its id */
  open(fault: StorageFault): string | Promise<string>;
  /** resolve it with a note */
  resolve(incidentId: string, note: string, fault: StorageFault, recoveredAt: number): void | Promise<void>;
  /** a tiny committed write: while the storage fails it tells when writes work again, even with no device sending */
  probe(): void;
}

export interface StorageHealthOptions {
  metrics: Metrics;
  log: Logger;
  /** how often a pending incident write is tried again; default 2 s */
  retryMs?: number;
  now?: () => number;
}

interface Episode { fault: StorageFault; incidentId: string | null; recoveredAt: number | null }

export class StorageHealth {
  private fault: StorageFault | null = null;
  /** the episode whose incident is still to be written (opened and/or resolved) */
  private pending: Episode | null = null;
  /**
   * the episode after it, begun while its incident was still being written (an asynchronous write takes a while):
   * written when the first is done. Bounded: an episode beginning while this one is over and not yet written joins it
   */
  private next: Episode | null = null;
  private closed = false;
  private writer: StorageIncidentWriter | null = null;
  private timer: NodeJS.Timeout | null = null;
  /** an asynchronous write of the incident in flight: one at a time; it schedules what follows when it ends */
  private writing = false;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly retryMs: number;

  /** when the storage last worked again after a fault (0: never failed) */
  private lastRecoveredAt = 0;

  constructor(private readonly o: StorageHealthOptions) {
    this.log = o.log.child({ module: 'storage' });
    this.now = o.now ?? Date.now;
    this.retryMs = o.retryMs ?? 2000;
    o.metrics.storageHealthy.set(1);
  }

  /** Set once the incident service exists (start-up order: storage → … → response). */
  attach(writer: StorageIncidentWriter): void {
    this.writer = writer;
    if (this.pending) this.flush(false);
  }

  /**
   * A write failed. `writer`: which part (ingest, incidents, …), for the metric and the log. `at`: when it failed, if
   * that was before now — the writer thread's report crosses a queue, and a failure from before the storage was seen
   * to work again belongs to the episode that ended, not to a new one.
   */
  failed(writer: string, err: unknown, at?: number): void {
    this.o.metrics.storageWriteFailures.inc({ writer });
    if (this.fault) return;
    if (at !== undefined && at < this.lastRecoveredAt) return;
    const reason = describe(err);
    this.fault = { since: this.now(), reason, writer };
    if (this.pending && this.next) {
      // a third episode while the first is still being written: it joins the second (which is over), from its start
      this.fault.since = this.next.fault.since;
      this.next = { fault: this.fault, incidentId: null, recoveredAt: null };
    } else if (this.pending) {
      this.next = { fault: this.fault, incidentId: null, recoveredAt: null };
    }
    this.o.metrics.storageHealthy.set(0);
    const fix = isSqliteError(err) || !isPostgresError(err)
      ? 'free disk space or fix the data directory'
      : 'bring PostgreSQL back, or free its disk; check postgres.url';
    this.log.error({ err, writer }, `storage failing: ${reason} — alarms are not acknowledged until writes succeed (${fix}); /readyz reports not-ready`);
    this.pending ??= { fault: this.fault, incidentId: null, recoveredAt: null };
    this.flush(false);
  }

  /** A write succeeded: if the storage was failing, it is healthy again. Cheap on the hot path. */
  succeeded(): void {
    if (!this.fault) return;
    const fault = this.fault;
    this.fault = null;
    const at = this.now();
    this.lastRecoveredAt = at;
    this.o.metrics.storageHealthy.set(1);
    this.log.warn({ writer: fault.writer, since: fault.since, lastedMs: at - fault.since }, 'storage writes succeed again: ready');
    for (const e of [this.pending, this.next]) if (e && e.fault === fault) e.recoveredAt = at;
    // after the current transaction: the incident's writes are never part of the caller's
    setImmediate(() => this.flush());
  }

  /** null when healthy */
  status(): StorageFault | null {
    return this.fault;
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** Probe while failing; write what is pending of the incident; on failure try again later. */
  private flush(probe = true): void {
    if (this.closed) return;
    // not in the moment of the failure itself: a fault is reported for at least one retry period (and not held back by
    // an incident write in flight, which may wait on the very storage that failed)
    if (probe && this.fault && this.writer) {
      try {
        this.writer.probe();
        this.succeeded();
        return;
      } catch {
        // still failing: the metric and /readyz say so
      }
    }
    // a write in flight: probed again meanwhile; what follows it is scheduled when it ends
    if (this.writing) return this.schedule();
    const p = this.pending;
    if (!p || !this.writer) return this.schedule();
    const notYet = (err: unknown) => {
      // expected while the disk is full (or PostgreSQL away): the metric and /readyz already say so
      this.log.debug({ err }, 'the storage incident could not be written yet; trying again');
    };
    try {
      const step = this.write(this.writer, p);
      if (step) {
        this.writing = true;
        step.catch(notYet).finally(() => {
          this.writing = false;
          this.schedule();
        });
        return this.schedule();
      }
    } catch (err) {
      notYet(err);
    }
    this.schedule();
  }

  /** Open the episode's incident if it is not yet, resolve it if the storage works again: at once, or a promise. */
  private write(writer: StorageIncidentWriter, p: NonNullable<StorageHealth['pending']>): void | Promise<void> {
    if (p.incidentId === null) {
      const opened = writer.open(p.fault);
      if (typeof opened !== 'string') {
        return opened.then((id) => {
          p.incidentId = id;
          return this.resolveIfRecovered(writer, p);
        });
      }
      p.incidentId = opened;
    }
    return this.resolveIfRecovered(writer, p);
  }

  private resolveIfRecovered(writer: StorageIncidentWriter, p: NonNullable<StorageHealth['pending']>): void | Promise<void> {
    if (p.recoveredAt === null || p.incidentId === null) return;
    const lastedS = Math.round((p.recoveredAt - p.fault.since) / 1000);
    const done = () => {
      if (this.pending !== p) return;
      // the episode that began while this one was written has its turn now
      this.pending = this.next;
      this.next = null;
    };
    const resolved = writer.resolve(p.incidentId, `storage writes succeed again after ${lastedS} s (${p.fault.reason}); resolved automatically`, p.fault, p.recoveredAt);
    if (resolved) return resolved.then(done);
    done();
  }

  /** again later while the storage fails or the incident is not written yet: one timer, one episode (bounded) */
  private schedule(): void {
    const incomplete = this.pending && (this.pending.incidentId === null || this.pending.recoveredAt !== null);
    if ((this.fault || incomplete) && this.writer && !this.timer && !this.closed) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.flush();
      }, this.retryMs);
      this.timer.unref();
    }
  }
}

const isSqliteError = (err: unknown): boolean => String((err as { code?: unknown } | null)?.code ?? '').startsWith('SQLITE_');

const CONNECTION_CODES = /^E(CONNREFUSED|CONNRESET|TIMEDOUT|PIPE|HOSTUNREACH|NETUNREACH)$/;
const CONNECTION_MESSAGES = /Connection terminated|not queryable|timeout exceeded when trying to connect/i;

/** PostgreSQL's errors (a SQLSTATE), or the connection to it failing (cluster mode's store) */
function isPostgresError(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | null;
  const code = typeof e?.code === 'string' ? e.code : '';
  return /^[0-9A-Z]{5}$/.test(code) || CONNECTION_CODES.test(code) || CONNECTION_MESSAGES.test(String(e?.message ?? ''));
}

/**
 * PostgreSQL cannot take writes now — the connection lost or refused, the server shutting down or out of resources
 * (SQLSTATE classes 08, 53, 57P, 58, XX) — as opposed to a statement it refuses (a constraint, bad data).
 */
export function isPostgresUnavailable(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | null;
  const code = typeof e?.code === 'string' ? e.code : '';
  return CONNECTION_CODES.test(code) || /^(08|53|57P|58|XX)/.test(code) || CONNECTION_MESSAGES.test(String(e?.message ?? ''));
}

function describe(err: unknown): string {
  const e = err as { code?: string; message?: string } | null;
  const msg = e?.message ?? String(err);
  if (!isSqliteError(err) && isPostgresError(err)) {
    if (e?.code === '53100') return `PostgreSQL's disk is full (${msg})`;
    return `PostgreSQL cannot be written (${e?.code ? `${e.code}: ` : ''}${msg})`;
  }
  if (e?.code === 'SQLITE_FULL') return `disk full: the database cannot grow (${msg})`;
  if (e?.code?.startsWith('SQLITE_READONLY')) return `the database is read-only (${msg})`;
  if (e?.code?.startsWith('SQLITE_IOERR')) return `I/O error writing the database (${e.code}: ${msg})`;
  return e?.code ? `${e.code}: ${msg}` : msg;
}
