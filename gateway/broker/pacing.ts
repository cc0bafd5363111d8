// Per-device publish pacing (docs/security.md, "A device that floods"). A device may publish mqtt.publishRatePerS
// messages a second after a burst of mqtt.publishBurst; beyond that its connection is not read until it is back
// within its rate. Nothing it sent is dropped or reordered: a message over the rate has already been decoded and
// handed to the writer (in arrival order) when it is paced — only its `done` (aedes' PUBACK, and aedes' next read of
// the connection) waits for a token.
//
// How reading stops. aedes reads a connection's next chunk when every packet of the previous chunk has called back,
// or on a 'readable' event of the socket (client.js `nextBatch`, listened to as `conn.on('readable', nextBatch)`): a
// withheld callback alone does not stop a device whose packets arrive in separate segments. So while a connection has
// paced messages, that listener is taken off the socket; the socket's own buffer then fills and TCP pushes back on the
// device. It is put back when the last paced message is let go. This reaches into aedes (`_nextBatch`, `conn`), as
// the connection guard does: test/security/publish-pacing.test.ts fails if an aedes upgrade moves it.
//
// A device that stays over its rate for mqtt.publishOverRateCloseMs is disconnected: what it queued behind its flood
// (its own alarm among it, in its socket buffers) would otherwise wait for the flood at its rate; on a new connection
// it resends what was not acknowledged. Its bucket is kept by device id across connections (a reconnect does not
// refill it), and forgotten once it would have refilled.
import type { Socket } from 'node:net';
import type { Client } from 'aedes';
import { TokenBucket } from 'limiter';

export interface PacingOptions {
  ratePerS: number;
  burst: number;
  /** over the rate for this long (ms) without getting back under it: the connection is closed; 0 = never */
  overRateCloseMs: number;
  /** a publish was paced (count it; say so, rate-bound) */
  onPaced(client: Client): void;
  /** a connection was closed for staying over its rate */
  onClosed(client: Client, overMs: number): void;
  now?: () => number;
}

interface Held {
  /** the paced messages' callbacks, in arrival order */
  queue: (() => void)[];
  timer: NodeJS.Timeout | null;
  /** aedes' read callback, while it is off the socket */
  detached: (() => void) | null;
}

interface Bucket {
  bucket: TokenBucket;
  /** over the rate since (0: within it) */
  overSince: number;
  /** forgets the bucket once it would have refilled after the device's last connection closed */
  forget: NodeJS.Timeout | null;
}

type AedesClient = Client & { conn?: Socket; _nextBatch?: () => void; closed?: boolean };

export class PublishPacer {
  private readonly buckets = new Map<string, Bucket>();
  private readonly held = new WeakMap<Client, Held>();
  private readonly now: () => number;

  constructor(private readonly o: PacingOptions) {
    this.now = o.now ?? (() => performance.now());
  }

  get enabled(): boolean {
    return this.o.ratePerS > 0;
  }

  /** The publish was handled; `done` lets aedes acknowledge it and read on — now, or once the device has a token. */
  pace(client: Client, done: () => void): void {
    if (!this.enabled) return done();
    const b = this.bucketOf(client.id);
    let h = this.held.get(client);
    // once anything waits, what comes after waits behind it: no token is taken out of turn
    if ((!h || h.queue.length === 0) && b.bucket.tryRemoveTokens(1)) {
      if (b.overSince && b.bucket.content >= this.o.burst / 2) b.overSince = 0;
      return done();
    }
    this.o.onPaced(client);
    if (!b.overSince) b.overSince = this.now();
    if (!h) {
      h = { queue: [], timer: null, detached: null };
      this.held.set(client, h);
    }
    if (h.queue.length === 0) this.stopReading(client as AedesClient, h);
    h.queue.push(done);
    this.schedule(client as AedesClient, h, b);
  }

  /** the connection closed: what it held is let go (aedes finishes its packets), its bucket is forgotten in time */
  closed(client: Client): void {
    const h = this.held.get(client);
    if (h) this.release(client as AedesClient, h);
    const b = this.buckets.get(client.id);
    if (b && !b.forget) {
      const refillMs = (this.o.burst / this.o.ratePerS) * 1000;
      b.forget = setTimeout(() => this.buckets.delete(client.id), refillMs);
      b.forget.unref();
    }
  }

  private bucketOf(deviceId: string): Bucket {
    let b = this.buckets.get(deviceId);
    if (!b) {
      const bucket = new TokenBucket({ bucketSize: this.o.burst, tokensPerInterval: this.o.ratePerS, interval: 'second' });
      bucket.content = this.o.burst; // limiter starts a bucket empty
      b = { bucket, overSince: 0, forget: null };
      this.buckets.set(deviceId, b);
    } else if (b.forget) {
      clearTimeout(b.forget);
      b.forget = null;
    }
    return b;
  }

  private stopReading(client: AedesClient, h: Held): void {
    const read = client._nextBatch;
    const conn = client.conn;
    if (!read || !conn || typeof conn.removeListener !== 'function') {
      throw new Error('aedes client has no conn/_nextBatch: publish pacing must be updated for this aedes version');
    }
    conn.removeListener('readable', read);
    h.detached = read;
  }

  private resumeReading(client: AedesClient, h: Held): void {
    const read = h.detached;
    h.detached = null;
    if (read && client.conn && !client.closed) client.conn.on('readable', read);
  }

  private schedule(client: AedesClient, h: Held, b: Bucket): void {
    if (h.timer) return;
    const waitMs = Math.max(5, b.bucket.getWaitTime(1));
    h.timer = setTimeout(() => {
      h.timer = null;
      while (h.queue.length && b.bucket.tryRemoveTokens(1)) h.queue.shift()!();
      if (h.queue.length === 0) return this.resumeReading(client, h);
      const overMs = this.now() - b.overSince;
      if (this.o.overRateCloseMs > 0 && b.overSince && overMs >= this.o.overRateCloseMs) {
        this.o.onClosed(client, overMs);
        // over its rate for too long: let its messages go and close it (closed() is called by the disconnect)
        this.release(client, h);
        client.close();
        return;
      }
      this.schedule(client, h, b);
    }, waitMs);
  }

  private release(client: AedesClient, h: Held): void {
    if (h.timer) clearTimeout(h.timer);
    h.timer = null;
    const queue = h.queue;
    h.queue = [];
    for (const done of queue) done();
    this.resumeReading(client, h);
  }
}
