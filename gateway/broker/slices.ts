// Work that may wait a few milliseconds, done in slices (issue 10, "cheaper connects"). When the network under
// 3,000 devices drops, their 3,000 closes arrive in one poll phase; each close is aedes' teardown and the socket's,
// each Last Will an observation for the writer and each disconnect a state change and a bus event. Done inline, that
// was one turn of 240–640 ms (more on a busy machine; 1–2 s for 14,000 connections) during which no alarm was read.
// Queued here (the broker queues the close of a connection its device ended, then its Will and its disconnect), they
// run in slices of `sliceMs` with a setImmediate between, so alarms and CONNECTs are read between slices.
//
// Per-device order: a device's queued work must happen before anything newer from that device — its reconnect's
// CONNACK and first message — or its Will ("link dropped") would land after it was back. The broker calls `settle`
// with the device's id before it handles anything new from it: that device's queued work runs there and then, in
// its order. The queue is bounded: beyond `limit` items, new work runs at once (slower, never dropped).
export interface SliceOptions {
  sliceMs: number;
  limit: number;
  /** a task threw: it is dropped (counted and logged by the caller), the queue goes on */
  onError(err: unknown, key: string): void;
  now?: () => number;
}

interface Item {
  key: string;
  run: () => void;
  done: boolean;
}

export class KeyOrderedSlices {
  private queue: Item[] = [];
  private head = 0;
  private readonly byKey = new Map<string, Item[]>();
  private scheduled = false;
  private count = 0;
  private readonly now: () => number;

  constructor(private readonly o: SliceOptions) {
    this.now = o.now ?? (() => performance.now());
  }

  /** queue `run` after everything already queued for `key` */
  push(key: string, run: () => void): void {
    if (this.pending >= this.o.limit) {
      // no room: keep the key's order, then do it now
      this.settle(key);
      this.exec({ key, run, done: false });
      return;
    }
    const item: Item = { key, run, done: false };
    this.count++;
    this.queue.push(item);
    const list = this.byKey.get(key);
    if (list) list.push(item);
    else this.byKey.set(key, [item]);
    this.schedule();
  }

  /** run everything queued for `key` now, in its order (before something newer from that key is handled) */
  settle(key: string): void {
    const list = this.byKey.get(key);
    if (!list) return;
    this.byKey.delete(key);
    for (const item of list) {
      this.count--;
      this.exec(item);
    }
  }

  has(key: string): boolean {
    return this.byKey.has(key);
  }

  /** items queued and not yet run */
  get pending(): number {
    return this.count;
  }

  /** run everything now (shutdown) */
  drain(): void {
    for (const key of [...this.byKey.keys()]) this.settle(key);
    this.queue = [];
    this.head = 0;
  }

  private exec(item: Item): void {
    if (item.done) return;
    item.done = true;
    try {
      item.run();
    } catch (err) {
      this.o.onError(err, item.key);
    }
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.slice());
  }

  private slice(): void {
    this.scheduled = false;
    const until = this.now() + this.o.sliceMs;
    while (this.head < this.queue.length) {
      const item = this.queue[this.head++]!;
      if (item.done) continue;
      const list = this.byKey.get(item.key)!;
      // items of one key leave in order: this is the oldest of its key
      list.shift();
      if (list.length === 0) this.byKey.delete(item.key);
      this.count--;
      this.exec(item);
      if (this.now() >= until) break;
    }
    if (this.head >= this.queue.length) {
      this.queue = [];
      this.head = 0;
    } else {
      if (this.head > 4096) {
        this.queue = this.queue.slice(this.head);
        this.head = 0;
      }
      this.schedule();
    }
  }
}
