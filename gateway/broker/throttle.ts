// Failed CONNECTs per address (issue 14: 30,000 failed CONNECTs in 10 s wrote 7.8 MB of log and cost a parse and a
// keyed hash each). After `limit` failures within `windowMs`, the address is refused at accept — before a byte is
// parsed or logged — for `backoffMs`, counted. A success does not reset the count: an attacker with one valid
// device cannot interleave it to keep guessing. Memory: at most `maxAddresses` entries, the oldest forgotten first.
export interface ConnectThrottleOptions {
  limit: number;
  windowMs: number;
  backoffMs: number;
  maxAddresses?: number;
  now?: () => number;
}

interface Entry { start: number; failures: number; blockedUntil: number }

export class ConnectThrottle {
  private readonly entries = new Map<string, Entry>();
  private readonly max: number;
  private readonly now: () => number;

  constructor(private readonly o: ConnectThrottleOptions) {
    this.max = o.maxAddresses ?? 50_000;
    this.now = o.now ?? Date.now;
  }

  /** true while `address` is backing off (refuse its connection at accept) */
  blocked(address: string): boolean {
    if (this.o.limit === 0) return false;
    const e = this.entries.get(address);
    if (!e) return false;
    if (e.blockedUntil > this.now()) return true;
    return false;
  }

  /** A CONNECT from `address` failed. Returns true when this failure starts a back-off (log it once). */
  failed(address: string): boolean {
    if (this.o.limit === 0) return false;
    const t = this.now();
    let e = this.entries.get(address);
    if (!e || t - e.start >= this.o.windowMs) {
      if (e) this.entries.delete(address);
      if (this.entries.size >= this.max) this.entries.delete(this.entries.keys().next().value!);
      e = { start: t, failures: 0, blockedUntil: e?.blockedUntil ?? 0 };
      this.entries.set(address, e);
    }
    e.failures++;
    if (e.failures >= this.o.limit && e.blockedUntil <= t) {
      e.blockedUntil = t + this.o.backoffMs;
      // the next window starts after the back-off: failures during it are not counted anew
      e.start = e.blockedUntil;
      e.failures = 0;
      return true;
    }
    return false;
  }

  get size(): number {
    return this.entries.size;
  }
}
