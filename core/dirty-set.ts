// An insertion-ordered set of ids (oldest first) for a hot path that adds and takes ids all the time: which devices
// owe a row, say. A JavaScript Set does the job but, used that way, costs the collector: a long-lived Set's table sits
// in the old generation, and V8 allocates the table's replacement where the old one was, so every grow, shrink and
// clean-up of deleted entries as ids come and go (hundreds a second at 10k msg/s) leaves a dead table in the old
// generation, which only a full mark-compact frees (bench/analysis.md measured it: a third of what the writer thread's
// full collections freed were such tables).
//
// Here membership is a flag per id that is never deleted (one entry per id ever added: ids are devices, a bounded
// set) and the order is a ring of ids that only ever grows to the most ever waiting at once. An id taken out with
// delete() leaves its place in the ring behind, skipped when the ring gets there. An id added again meanwhile takes a
// new place at the end, but is taken from the earlier place if it is still in the ring (sooner than a Set would give
// it: for rows owed, written sooner).
//
// Each place also keeps when its id was added (monotonic ms, performance.now()), so that a caller can write an id
// only once it has waited long enough (write-behind: gateway/device-state.ts): oldestAt() is when the oldest member
// was added (for an id added again while its earlier place was still in the ring: the earlier time).
export class DirtySet {
  /** membership; false once taken or deleted (kept, so that adding it again allocates nothing) */
  private readonly member = new Map<string, boolean>();
  private ring: (string | undefined)[] = new Array<string | undefined>(64);
  /** when the id at the same place was added */
  private times: number[] = new Array<number>(64).fill(0);
  private head = 0;
  /** places in use in the ring (members, and places left behind by delete) */
  private used = 0;
  private count = 0;

  get size(): number {
    return this.count;
  }

  has(id: string): boolean {
    return this.member.get(id) === true;
  }

  add(id: string): void {
    if (this.member.get(id) === true) return;
    this.member.set(id, true);
    this.count++;
    if (this.used === this.ring.length) this.grow();
    const at = (this.head + this.used) % this.ring.length;
    this.ring[at] = id;
    this.times[at] = performance.now();
    this.used++;
  }

  /** true if it was a member */
  delete(id: string): boolean {
    if (this.member.get(id) !== true) return false;
    this.member.set(id, false);
    this.count--;
    return true;
  }

  /** the oldest member, not taken out (undefined when empty) */
  peek(): string | undefined {
    this.skipLeftBehind();
    return this.used > 0 ? this.ring[this.head] : undefined;
  }

  /** when the oldest member was added (performance.now() then), undefined when empty */
  oldestAt(): number | undefined {
    this.skipLeftBehind();
    return this.used > 0 ? this.times[this.head] : undefined;
  }

  /** the oldest member, taken out (undefined when empty) */
  shift(): string | undefined {
    const id = this.peek();
    if (id === undefined) return undefined;
    this.member.set(id, false);
    this.count--;
    this.ring[this.head] = undefined;
    this.head = (this.head + 1) % this.ring.length;
    this.used--;
    return id;
  }

  private skipLeftBehind(): void {
    while (this.used > 0) {
      const id = this.ring[this.head]!;
      if (this.member.get(id) === true) return;
      this.ring[this.head] = undefined;
      this.head = (this.head + 1) % this.ring.length;
      this.used--;
    }
  }

  private grow(): void {
    // a place left behind whose id was added again holds a duplicate: clearing them first can spare the growth
    const next = new Array<string | undefined>(this.ring.length * 2);
    const times = new Array<number>(this.ring.length * 2).fill(0);
    const seen = new Set<string>();
    let n = 0;
    for (let i = 0; i < this.used; i++) {
      const from = (this.head + i) % this.ring.length;
      const id = this.ring[from]!;
      if (this.member.get(id) !== true || seen.has(id)) continue;
      seen.add(id);
      times[n] = this.times[from]!;
      next[n++] = id;
    }
    this.ring = next;
    this.times = times;
    this.head = 0;
    this.used = n;
  }
}
