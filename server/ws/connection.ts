// One console's WebSocket: subscribe → replay from the log → live, acknowledgements, keepalive, cut-off.
//
// The seam between replay and live: while replaying, live events from the hub are ignored, because the replay
// reads the log, which already holds them. The last page of the replay (the one shorter than a page) is read and
// the connection switched to live in the same tick, so no event can be dispatched in between; afterwards every
// event at or below the connection's cursor is ignored. Result: in order, no gap, no duplicate.
import type { WebSocket } from 'ws';
import type { Logger } from '../../core/logger.js';
import type { AuthUser } from '../../core/users.js';
import type { Network } from '../../response/network.js';
import type { AlarmHub, EventLog, Subscriber } from './hub.js';
import {
  BadMessage, CLOSE, PROTOCOL, closeReason, parseClientMessage,
  type ClientMessage, type ErrorCode, type ServerMessage, type StreamEvent,
} from './protocol.js';

export interface ConnectionDeps {
  hub: AlarmHub;
  events: EventLog;
  network: Network;
  /**
   * a console acknowledged frames up to and including this opening: a "delivered" receipt once per user (batched,
   * never an event, never streamed); true if newly recorded
   */
  markDelivered(incidentId: string, seq: number, at: number, userId: string, username?: string): boolean;
  /** counters (metrics): an opening written to this console; a delivery newly recorded */
  counted?: { pushed(): void; delivered(): void };
  /** re-check the token on every keepalive tick: an expired token or a disabled user ends the connection */
  reauthenticate(): AuthUser;
  log: Logger;
  maxBufferedBytes: number;
  maxPayloadBytes: number;
  pingIntervalMs: number;
  /** frames (messages and pings) a console may send per second, sustained; bursts of 4 seconds' worth pass */
  maxMessagesPerSecond?: number;
  /** events read from the log per replay page */
  pageSize?: number;
}

type State = 'idle' | 'replaying' | 'live' | 'closed';

/** Openings sent but not yet acknowledged, kept per connection; beyond this the oldest are forgotten (and logged). */
const MAX_UNACKED = 10_000;

export class ConsoleConnection implements Subscriber {
  private state: State = 'idle';
  /** every seq ≤ cursor has been sent to this console or was not for it */
  private cursor = 0;
  /** the scope unit the subscription filters on (null = everything) */
  private scopeUnit: string | null = null;
  private scopeName = '';
  private readonly unacked: { seq: number; incidentId: string }[] = [];
  private acked = 0;
  private alive = true;
  private pingTimer: NodeJS.Timeout | undefined;
  private killTimer: NodeJS.Timeout | undefined;
  private readonly log: Logger;
  private readonly pageSize: number;
  /** token bucket on what the console sends: beyond it the socket is paused (TCP pushes back on the sender) */
  private tokens: number;
  private refilledAt = Date.now();
  private resumeTimer: NodeJS.Timeout | undefined;
  private readonly rate: number;

  constructor(
    private readonly ws: WebSocket,
    private user: AuthUser,
    private readonly deps: ConnectionDeps,
  ) {
    this.log = deps.log.child({ module: 'ws', user: user.username, role: user.role });
    this.pageSize = deps.pageSize ?? 500;
    this.rate = deps.maxMessagesPerSecond ?? 500;
    this.tokens = this.rate * 4;
  }

  start(): void {
    const { ws } = this;
    ws.on('message', (data, isBinary) => {
      try {
        this.take();
        this.onMessage(data as Buffer | ArrayBuffer | Buffer[], isBinary);
      } catch (err) {
        // a bug here must cost one console its connection (it resumes), never the process
        this.log.error({ err }, 'console message handling failed');
        this.close(CLOSE.internal, 'server error: reconnect and resume with since');
      }
    });
    ws.on('pong', () => { this.alive = true; });
    // autoPong is off (server/ws/index.ts): a pong is queued like any frame, within the same byte bound
    ws.on('ping', (data) => {
      try {
        this.take();
        if (this.state === 'closed') return;
        if (this.ws.bufferedAmount + data.length > this.deps.maxBufferedBytes) return this.cutOff('pong');
        this.ws.pong(data);
      } catch (err) {
        this.log.error({ err }, 'console ping handling failed');
        this.close(CLOSE.internal, 'server error: reconnect and resume with since');
      }
    });
    ws.on('close', (code, reason) => this.onClose(code, reason.toString()));
    this.pingTimer = setInterval(() => this.keepalive(), this.deps.pingIntervalMs);
    this.pingTimer.unref();
    this.send({
      type: 'hello',
      protocol: PROTOCOL,
      user: { id: this.user.id, username: this.user.username, role: this.user.role, unitId: this.user.unitId },
      head: this.deps.hub.latest(),
      pingIntervalMs: this.deps.pingIntervalMs,
      maxPayloadBytes: this.deps.maxPayloadBytes,
    });
    this.log.info('console connected');
  }

  // ---- from the client ----------------------------------------------------------------------------------------

  private onMessage(data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean): void {
    if (this.state === 'closed') return;
    if (isBinary) return this.close(CLOSE.unsupported, 'binary frames are not supported: send JSON text frames');
    const text = Array.isArray(data) ? Buffer.concat(data).toString('utf8') : Buffer.from(data as ArrayBuffer).toString('utf8');
    let msg: ClientMessage;
    try {
      msg = parseClientMessage(text);
    } catch (err) {
      if (err instanceof BadMessage) {
        this.log.info({ reason: err.message, bytes: text.length }, 'console sent a bad message; closing');
        return this.close(err.closeCode, err.message);
      }
      throw err;
    }
    switch (msg.type) {
      case 'subscribe':
        return this.subscribe(msg.scope, msg.since);
      case 'ack':
        return this.ack(msg.seq);
      case 'ping':
        return this.send({ type: 'pong', ...(msg.id !== undefined ? { id: msg.id } : {}), head: this.deps.hub.latest(), at: Date.now() });
    }
  }

  private subscribe(scope: string, since: number | undefined): void {
    if (this.state !== 'idle') {
      return this.error('ALREADY_SUBSCRIBED', `this connection is already subscribed to "${this.scopeName}"; open a new connection for another scope`);
    }
    const { network } = this.deps;
    let scopeUnit: string | null;
    if (scope === 'all') {
      scopeUnit = this.user.unitId;
    } else {
      // an unknown unit gets the same answer as a forbidden one: a scoped user learns nothing about other units
      if (!network.getUnit(scope) || !network.canSee(this.user.unitId, scope)) {
        this.log.warn({ scope, userUnitId: this.user.unitId }, 'subscription refused: scope outside the user\'s units');
        return this.error('FORBIDDEN_SCOPE', `you may not see unit "${scope}": subscribe to "all" (your units) or to a unit below yours`, {
          scope, yourUnit: this.user.unitId,
        });
      }
      scopeUnit = scope;
    }
    const latest = this.deps.hub.latest();
    const from = since ?? latest;
    if (from > latest) {
      this.log.warn({ since: from, latest }, 'subscription refused: since beyond the latest sequence');
      return this.error('SINCE_BEYOND_LATEST',
        `since ${from} is beyond the latest sequence ${latest}: this server's log is not the one you saw (restored or replaced?). ` +
        'Drop your local state, reload the open incidents and subscribe again with since ≤ latest.',
        { since: from, latest });
    }
    this.scopeUnit = scopeUnit;
    this.scopeName = scope;
    this.cursor = from;
    this.acked = from;
    this.state = 'replaying';
    this.deps.hub.add(this);
    this.send({ type: 'subscribed', scope, since: from, head: latest });
    this.log.info({ scope, since: from, head: latest }, 'console subscribed');
    void this.replay();
  }

  private async replay(): Promise<void> {
    const { maxBufferedBytes } = this.deps;
    let count = 0;
    try {
      for (;;) {
        if (this.state !== 'replaying') return;
        const { events: page, scannedTo, atEnd } = this.deps.events.after(this.cursor, this.pageSize, this.scopeUnit);
        // a replay paces itself on the socket instead of being cut off: it reads from the log, not from memory
        let paused = false;
        for (const e of page) {
          if (this.ws.bufferedAmount > maxBufferedBytes) {
            paused = true;
            await this.drained();
            if (this.state !== 'replaying') return;
          }
          this.sendEvent(e, JSON.stringify({ type: 'incident', seq: e.seq, event: e }));
          this.cursor = e.seq;
          count++;
        }
        // Switch to live only after a short page written in the same tick as it was read: the log had nothing
        // more at that instant, so everything the hub dispatched so far is covered. After a pause, read again.
        if (page.length < this.pageSize && !paused) {
          // the stretch read ended before the log's end (a scoped console's quiet stretch): on from there, a turn later
          if (!atEnd) {
            this.cursor = Math.max(this.cursor, scannedTo);
            await new Promise((r) => setImmediate(r));
            continue;
          }
          this.cursor = Math.max(this.cursor, this.deps.hub.head);
          this.state = 'live';
          this.send({ type: 'replayed', until: this.cursor, count });
          this.log.info({ count, until: this.cursor }, 'replay done; live');
          return;
        }
        if (!paused) await this.drained();
      }
    } catch (err) {
      this.log.error({ err }, 'replay failed');
      this.close(CLOSE.internal, 'replay failed on the server: reconnect and resume with since');
    }
  }

  /** Wait until the socket has sent most of what is queued, so a replay of a long log never piles up in memory. */
  private drained(): Promise<void> {
    const low = this.deps.maxBufferedBytes / 2;
    return new Promise((resolve) => {
      const check = () => {
        if (this.state !== 'replaying' || this.ws.bufferedAmount <= low) return resolve();
        setTimeout(check, 10).unref();
      };
      setImmediate(check);
    });
  }

  private ack(seq: number): void {
    if (this.state === 'idle' || this.state === 'closed') {
      return this.error('NOT_SUBSCRIBED', 'ack before subscribe: subscribe first');
    }
    if (seq > this.cursor) {
      return this.error('BAD_ACK', `ack ${seq} is beyond the last seq sent to you (${this.cursor})`, { seq, sent: this.cursor });
    }
    if (seq <= this.acked) return;
    this.acked = seq;
    const at = Date.now();
    let n = 0;
    while (n < this.unacked.length && this.unacked[n]!.seq <= seq) n++;
    for (const o of this.unacked.splice(0, n)) {
      try {
        if (this.deps.markDelivered(o.incidentId, o.seq, at, this.user.id, this.user.username)) this.deps.counted?.delivered();
      } catch (err) {
        this.log.error({ err, incidentId: o.incidentId }, 'could not record a delivery');
      }
    }
  }

  // ---- from the hub --------------------------------------------------------------------------------------------

  offer(e: StreamEvent, frame: () => string): void {
    if (this.state !== 'live' || e.seq <= this.cursor) return;
    this.cursor = e.seq;
    // an incident moved to another unit is shown to the unit it left as well, so its consoles drop it (they ask for it
    // and are told it is no longer theirs); a console resuming later reloads its board from the server
    const seen = this.deps.network.canSee(this.scopeUnit, e.unitId) || (e.type === 'moved' && this.deps.network.canSee(this.scopeUnit, e.data.fromUnitId));
    if (!seen) return;
    // live frames queue in memory: a console that lets them pile up is cut off, never waited for
    if (this.ws.bufferedAmount > this.deps.maxBufferedBytes) return this.cutOff(`incident seq ${e.seq}`);
    this.sendEvent(e, frame());
  }

  private sendEvent(e: StreamEvent, frame: string): void {
    this.ws.send(frame);
    if (e.type === 'opened') {
      this.deps.counted?.pushed();
      this.deps.hub.notePushed(e, Date.now());
      this.unacked.push({ seq: e.seq, incidentId: e.incidentId });
      if (this.unacked.length > MAX_UNACKED) {
        const dropped = this.unacked.splice(0, this.unacked.length - MAX_UNACKED);
        this.log.warn({ dropped: dropped.length }, 'console does not acknowledge; oldest openings forgotten');
      }
    }
  }

  /**
   * A console that does not read fast enough is cut off; it reconnects and resumes from the log. Whatever the frame
   * (an incident, a pong, an error reply), nothing more is queued for it beyond maxBufferedBytes (issue 14: a client
   * sending pings and never reading grew the process by 430 MiB of queued pongs). A peer that does not read will not
   * complete the closing handshake either: it is terminated after the close grace period.
   */
  private cutOff(what: string): void {
    if (this.state === 'closed') return;
    const queued = this.ws.bufferedAmount;
    this.log.warn({ queued, limit: this.deps.maxBufferedBytes, frame: what, acked: this.acked }, 'console too slow; cut off');
    this.close(CLOSE.tooSlow, `too slow: ${queued} bytes queued; reconnect and subscribe with since = your last seq`);
  }

  /** One frame from the console: beyond the rate, stop reading its socket until a token is back. */
  private take(): void {
    const now = Date.now();
    this.tokens = Math.min(this.rate * 4, this.tokens + ((now - this.refilledAt) * this.rate) / 1000);
    this.refilledAt = now;
    this.tokens -= 1;
    if (this.tokens >= 0 || this.resumeTimer || this.state === 'closed') return;
    this.ws.pause();
    const wait = Math.ceil((-this.tokens * 1000) / this.rate) + 1;
    this.resumeTimer = setTimeout(() => {
      this.resumeTimer = undefined;
      if (this.state !== 'closed') this.ws.resume();
    }, wait);
    this.resumeTimer.unref();
  }

  // ---- keepalive, close ----------------------------------------------------------------------------------------

  private keepalive(): void {
    if (this.state === 'closed') return;
    if (!this.alive) {
      this.log.info('console did not answer the last ping; terminating');
      this.state = 'closed';
      this.ws.terminate();
      return;
    }
    try {
      this.user = this.deps.reauthenticate();
    } catch (err) {
      this.log.info({ reason: (err as Error).message }, 'console token no longer valid; closing');
      return this.close(CLOSE.unauthorized, closeReason((err as Error).message));
    }
    this.alive = false;
    this.ws.ping();
  }

  private send(msg: ServerMessage): void {
    if (this.state === 'closed') return;
    const text = JSON.stringify(msg);
    // every byte queued for a client counts against the bound: pongs and error replies too
    if (this.ws.bufferedAmount + text.length > this.deps.maxBufferedBytes) return this.cutOff(msg.type);
    this.ws.send(text);
  }

  private error(code: ErrorCode, message: string, details?: Record<string, unknown>): void {
    this.send({ type: 'error', code, message, ...(details ? { details } : {}) });
  }

  /** Close with a reason; a peer that does not complete the closing handshake is dropped after a grace period. */
  close(code: number, reason: string): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.deps.hub.remove(this);
    this.ws.close(code, closeReason(reason));
    this.killTimer = setTimeout(() => this.ws.terminate(), 10_000);
    this.killTimer.unref();
  }

  private onClose(code: number, reason: string): void {
    this.state = 'closed';
    this.deps.hub.remove(this);
    clearInterval(this.pingTimer);
    clearTimeout(this.killTimer);
    clearTimeout(this.resumeTimer);
    this.log.info({ code, reason, acked: this.acked, cursor: this.cursor }, 'console disconnected');
  }
}
