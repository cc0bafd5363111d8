// One ordered, gap-free stream of incident events for every console. The bus says "something committed"; the
// durable log is the truth. Events are dispatched strictly by `seq`: when the bus hands us seq S while the last
// one dispatched was H < S - 1 (an event committed but announced later, or never announced), the missing ones are
// read from the log first. A console therefore never sees seq 11 before 10, and never loses 10 because 11 came first.
//
// SQLite has one writer: a committed seq S means every seq below S is committed (or was rolled back and reused),
// so reading (H, S] from the log at that moment is complete.
import type { Logger } from '../../core/logger.js';
import type { Bus } from '../../core/bus.js';
import type { StreamEvent } from './protocol.js';

export interface ReplayPage {
  events: StreamEvent[];
  /** every seq up to this one was read (the last event's when the page is full) */
  scannedTo: number;
  atEnd: boolean;
}

/** What the hub reads from the durable log (response/incidents' incident_events). */
export interface EventLog {
  /** the highest committed seq (0 for an empty log) */
  latest(): number;
  /** unscoped events with after < seq ≤ upTo, in seq order */
  between(after: number, upTo: number): StreamEvent[];
  /**
   * Events after `seq` that a user of unit `scope` may see (null = all), in seq order, at most `limit`, from a stretch
   * of the log that ends at `scannedTo`; `atEnd`: that stretch reached the latest durable seq.
   */
  after(seq: number, limit: number, scope: string | null): ReplayPage;
}

/** A console connection as the hub sees it. `frame()` is the event serialised once for every console. */
export interface Subscriber {
  offer(event: StreamEvent, frame: () => string): void;
}

export interface PushStamper {
  /** the first frame of an incident's opening was written to a console socket at `at`: a receipt, not an event;
   *  true if it is the incident's first push */
  markPushed(incidentId: string, seq: number, at: number): boolean;
}

export class AlarmHub {
  /** the highest seq dispatched to subscribers (or known to be in the log when we started) */
  private headSeq: number;
  private readonly subs = new Set<Subscriber>();
  private readonly queue: StreamEvent[] = [];
  private draining = false;
  private readonly pendingPush = new Map<string, { seq: number; at: number; received?: number }>();
  private pushScheduled = false;
  private readonly listener = (e: StreamEvent) => this.onCommitted(e);
  private readonly log: Logger;

  constructor(
    private readonly events: EventLog,
    private readonly bus: Bus,
    private readonly stamper: PushStamper,
    log: Logger,
    private readonly onPushLatency?: (ms: number) => void,
  ) {
    this.log = log.child({ module: 'ws-hub' });
    this.headSeq = events.latest();
  }

  start(): void {
    this.headSeq = Math.max(this.headSeq, this.events.latest());
    this.bus.on('incident-event', this.listener);
  }

  stop(): void {
    this.bus.off('incident-event', this.listener);
    this.subs.clear();
  }

  /** the highest seq dispatched; a console subscribing now replays up to at least this from the log */
  get head(): number {
    return this.headSeq;
  }

  /** the newest seq in the log, dispatched or not yet */
  latest(): number {
    return Math.max(this.headSeq, this.events.latest());
  }

  add(sub: Subscriber): void {
    this.subs.add(sub);
  }

  remove(sub: Subscriber): void {
    this.subs.delete(sub);
  }

  get size(): number {
    return this.subs.size;
  }

  /** Re-entrant: an event published while we dispatch (by a listener that commits) is queued behind the current one. */
  onCommitted(e: StreamEvent): void {
    this.queue.push(e);
    if (this.draining) return;
    this.draining = true;
    try {
      while (this.queue.length) this.advance(this.queue.shift()!);
    } finally {
      this.draining = false;
    }
  }

  private advance(e: StreamEvent): void {
    if (e.seq <= this.headSeq) return; // already dispatched from the log
    let batch: StreamEvent[];
    if (e.seq === this.headSeq + 1) {
      batch = [e];
    } else {
      batch = this.events.between(this.headSeq, e.seq);
      if (batch[batch.length - 1]?.seq !== e.seq) batch.push(e);
      this.log.debug({ from: this.headSeq + 1, to: e.seq, read: batch.length }, 'filled a gap in the bus from the log');
    }
    for (const ev of batch) {
      if (ev.seq <= this.headSeq) continue;
      this.headSeq = ev.seq;
      let frame: string | undefined;
      const lazy = () => (frame ??= JSON.stringify({ type: 'incident', seq: ev.seq, event: ev }));
      for (const s of this.subs) {
        try {
          s.offer(ev, lazy);
        } catch (err) {
          // one broken console must not keep an alarm from the others
          this.log.error({ err, seq: ev.seq, incidentId: ev.incidentId }, 'a console failed to take an event');
        }
      }
    }
  }

  /**
   * A console socket was handed the opening of an incident. Recorded after the current dispatch, so that recording
   * never delays the frames of other consoles. The push is a receipt (batched, response/receipts.ts), never an event:
   * nothing is streamed back to the consoles for it.
   */
  notePushed(e: StreamEvent, at: number): void {
    if (e.type !== 'opened' || this.pendingPush.has(e.incidentId)) return;
    const received = e.data.stamps.received;
    this.pendingPush.set(e.incidentId, { seq: e.seq, at, ...(received !== undefined ? { received } : {}) });
    if (this.pushScheduled) return;
    this.pushScheduled = true;
    queueMicrotask(() => this.flushPushes());
  }

  private flushPushes(): void {
    this.pushScheduled = false;
    const items = [...this.pendingPush];
    this.pendingPush.clear();
    for (const [incidentId, p] of items) {
      try {
        const first = this.stamper.markPushed(incidentId, p.seq, p.at);
        if (first && p.received !== undefined) this.onPushLatency?.(p.at - p.received);
      } catch (err) {
        this.log.error({ err, incidentId }, 'could not stamp the push of an incident');
      }
    }
  }
}
