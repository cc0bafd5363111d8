// The console's end of /ws: subscribe with the last seq seen, fold what comes, acknowledge it, and after any drop
// reconnect and resume from that seq — so a board that was offline for a minute shows everything that happened
// meanwhile, nothing missing, nothing twice.
import type { StreamEvent } from './api.js';

export type StreamStatus = 'connecting' | 'replaying' | 'live' | 'offline';

export interface StreamOptions {
  token(): string | null;
  /** first connection (or after a reset): load the current state; returns the log head the snapshot was read at,
   *  and the stream resumes after it (snapshot + stream, no gap) */
  initialLoad(): Promise<number>;
  onEvent(e: StreamEvent, replay: boolean): void;
  onStatus(status: StreamStatus, detail?: string): void;
  /** the token was refused (the reason is the server's): log in again */
  onUnauthorized(reason: string): void;
  /** the server's log is not the one we saw (SINCE_BEYOND_LATEST): local state must be dropped */
  onReset(): void;
  checkToken(): Promise<boolean>;
}

const PING_EVERY_MS = 10_000;
const SILENCE_LIMIT_MS = 25_000;

export class AlarmStreamClient {
  /** the highest seq folded into the local state; null until the first load */
  lastSeq: number | null = null;
  private lastAcked = 0;
  private ws: WebSocket | null = null;
  private attempt = 0;
  private retryTimer: number | undefined;
  private pingTimer: number | undefined;
  private lastHeard = 0;
  private ackTimer: number | undefined;
  private stopped = false;
  private replaying = false;
  status: StreamStatus = 'offline';

  constructor(private readonly o: StreamOptions) {
    window.addEventListener('online', () => this.reconnectSoon(0));
  }

  start(): void {
    this.stopped = false;
    this.connect();
    this.pingTimer = window.setInterval(() => this.keepalive(), PING_EVERY_MS);
  }

  stop(): void {
    this.stopped = true;
    window.clearInterval(this.pingTimer);
    window.clearTimeout(this.retryTimer);
    this.abandon();
    this.setStatus('offline');
  }

  /** A new token (renewed session): resume on a new socket that carries it, from the last seq processed. */
  reconnectNow(): void {
    if (this.stopped || this.lastSeq === null) return;
    this.connect();
  }

  private setStatus(s: StreamStatus, detail?: string): void {
    this.status = s;
    this.o.onStatus(s, detail);
  }

  private connect(): void {
    const token = this.o.token();
    if (!token) return this.o.onUnauthorized('not logged in');
    this.abandon();
    this.setStatus('connecting');
    const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
    // a browser cannot set Authorization on a WebSocket: the token rides as a second subprotocol (docs/websocket.md)
    const ws = new WebSocket(url, ['eldergate.v1', `eldergate.bearer.${token}`]);
    this.ws = ws;
    let opened = false;
    ws.onopen = () => { opened = true; this.lastHeard = Date.now(); };
    ws.onmessage = (m) => {
      if (this.ws !== ws) return;
      this.lastHeard = Date.now();
      void this.onMessage(ws, String(m.data));
    };
    ws.onclose = (c) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.stopped) return;
      if (c.code === 4401) return this.o.onUnauthorized(c.reason || 'the gateway ended the session');
      this.setStatus('offline', c.reason || (opened ? 'connection lost' : 'cannot connect'));
      if (!opened) {
        // a refused upgrade looks like any failed connection to a page: ask the API whether the token still works
        void this.o.checkToken().then((ok) => (ok ? this.reconnectSoon() : this.o.onUnauthorized('the gateway no longer accepts this session')));
        return;
      }
      this.reconnectSoon();
    };
  }

  private async onMessage(ws: WebSocket, text: string): Promise<void> {
    const msg = JSON.parse(text) as { type: string; [k: string]: unknown };
    switch (msg.type) {
      case 'hello': {
        if (this.lastSeq === null) {
          let head: number;
          try {
            head = await this.o.initialLoad();
          } catch (err) {
            this.setStatus('offline', `loading failed: ${(err as Error).message}`);
            ws.close();
            return;
          }
          if (this.ws !== ws) return;
          this.lastSeq = head;
          this.lastAcked = head;
        }
        this.replaying = true;
        this.setStatus('replaying');
        ws.send(JSON.stringify({ type: 'subscribe', scope: 'all', since: this.lastSeq }));
        return;
      }
      case 'incident': {
        const seq = msg.seq as number;
        if (this.lastSeq !== null && seq <= this.lastSeq) return; // never twice
        this.o.onEvent(msg.event as StreamEvent, this.replaying);
        this.lastSeq = seq;
        this.scheduleAck();
        return;
      }
      case 'replayed':
        this.replaying = false;
        this.attempt = 0;
        this.setStatus('live');
        return;
      case 'error':
        if (msg.code === 'SINCE_BEYOND_LATEST') {
          this.lastSeq = null;
          this.o.onReset();
          ws.close();
          return;
        }
        console.warn('alarm stream:', msg.code, msg.message);
        return;
      default:
        return;
    }
  }

  private scheduleAck(): void {
    if (this.ackTimer !== undefined) return;
    this.ackTimer = window.setTimeout(() => {
      this.ackTimer = undefined;
      if (this.ws?.readyState === WebSocket.OPEN && this.lastSeq !== null && this.lastSeq > this.lastAcked) {
        this.ws.send(JSON.stringify({ type: 'ack', seq: this.lastSeq }));
        this.lastAcked = this.lastSeq;
      }
    }, 50);
  }

  private keepalive(): void {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    if (Date.now() - this.lastHeard > SILENCE_LIMIT_MS) {
      // a dropped network can leave a socket open forever: give up on it and resume on a new one
      this.setStatus('offline', 'no answer from the gateway');
      this.abandon();
      this.reconnectSoon(0);
      return;
    }
    ws.send(JSON.stringify({ type: 'ping' }));
  }

  private abandon(): void {
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = null;
      try { ws.close(); } catch { /* already closed */ }
    }
  }

  private reconnectSoon(delayMs?: number): void {
    if (this.stopped) return;
    window.clearTimeout(this.retryTimer);
    const base = Math.min(10_000, 500 * 2 ** this.attempt++);
    const wait = delayMs ?? base / 2 + Math.random() * base / 2;
    this.retryTimer = window.setTimeout(() => this.connect(), wait);
  }

  /** for the status line: how far behind the server we are is not known, but when we last heard is */
  get heardAgoMs(): number {
    return Date.now() - this.lastHeard;
  }
}
