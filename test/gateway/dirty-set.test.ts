// core/dirty-set.ts against a JavaScript Set, the structure it stands in for on the writer's hot path: the same
// members and size after any run of adds, deletes and takes, each member taken once, oldest first — and a device
// state whose row a failed commit still owes is written by the next (gateway/device-state.ts; its SQLite store is
// the real one in every ingest test).
import { describe, expect, it } from 'vitest';
import { DirtySet } from '../../core/dirty-set.js';
import { DeviceStates } from '../../gateway/device-state.js';
import type { DeviceStateStore, StoredState } from '../../gateway/state-store.js';

/** a small deterministic generator (the same run every time, so a failure can be replayed) */
function rng(seed: number) {
  let x = seed >>> 0;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 2 ** 32;
  };
}

describe('DirtySet', () => {
  it('holds what a Set holds through 200,000 random adds, deletes and takes, and takes each member once', () => {
    const random = rng(42);
    const d = new DirtySet();
    const ref = new Set<string>();
    for (let i = 0; i < 200_000; i++) {
      const id = `dev-${Math.floor(random() * 300)}`;
      const r = random();
      if (r < 0.55) {
        d.add(id);
        ref.add(id);
      } else if (r < 0.7) {
        expect(d.delete(id)).toBe(ref.delete(id));
      } else {
        const taken = d.shift();
        if (ref.size === 0) expect(taken).toBeUndefined();
        else {
          // a member the Set holds, and taken out of both
          expect(ref.has(taken!)).toBe(true);
          ref.delete(taken!);
        }
      }
      expect(d.size).toBe(ref.size);
    }
    for (const id of ref) expect(d.has(id)).toBe(true);
    const rest: string[] = [];
    for (let id = d.shift(); id !== undefined; id = d.shift()) rest.push(id);
    expect(rest.sort()).toEqual([...ref].sort());
    expect(d.size).toBe(0);
    expect(d.peek()).toBeUndefined();
  });

  it('with no deletes, gives the Set\'s order exactly, across growth of its ring', () => {
    const d = new DirtySet();
    const ref = new Set<string>();
    const order: string[] = [];
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 1000; i++) {
        const id = `d${(i * 7919 + round * 13) % 1500}`;
        d.add(id);
        ref.add(id);
      }
      // take half, as a commit's slice would
      for (let i = 0; i < 400; i++) {
        const a = d.shift();
        const b = ref.values().next().value as string;
        ref.delete(b);
        expect(a).toBe(b);
        order.push(a!);
      }
    }
    expect(order).toHaveLength(2000);
    expect(d.size).toBe(ref.size);
  });

  it('an id deleted and added again is a member once: taken once, and the size counts it once', () => {
    const d = new DirtySet();
    d.add('a');
    d.add('b');
    d.delete('a');
    d.add('a');
    d.add('a');
    expect(d.size).toBe(2);
    const taken = [d.shift(), d.shift(), d.shift()];
    expect(taken.filter((x) => x === 'a')).toHaveLength(1);
    expect(taken.filter((x) => x === 'b')).toHaveLength(1);
    expect(taken[2]).toBeUndefined();
    expect(d.size).toBe(0);
  });
});

describe('DirtySet.oldestAt (write-behind: when the oldest member was added)', () => {
  it('is the oldest member\'s add time, through takes, deletes and growth of the ring', async () => {
    const d = new DirtySet();
    expect(d.oldestAt()).toBeUndefined();
    const t0 = performance.now();
    d.add('a');
    await new Promise((r) => setTimeout(r, 15));
    const t1 = performance.now();
    // 200 more: the ring grows (64 places) and keeps each place's time
    for (let i = 0; i < 200; i++) d.add(`b${i}`);
    expect(d.oldestAt()!).toBeGreaterThanOrEqual(t0);
    expect(d.oldestAt()!).toBeLessThan(t1);
    // 'a' taken: the oldest is now one of the later ones
    expect(d.shift()).toBe('a');
    expect(d.oldestAt()!).toBeGreaterThanOrEqual(t1);
    // deleted members are skipped: the oldest is the first still there
    d.delete('b0');
    expect(d.peek()).toBe('b1');
    expect(d.oldestAt()!).toBeGreaterThanOrEqual(t1);
    while (d.shift() !== undefined);
    expect(d.oldestAt()).toBeUndefined();
  });
});

describe('DeviceStates with its rows owed in a DirtySet', () => {
  it('a failed commit owes its rows again and the next commit writes them', () => {
    const written: string[][] = [];
    let fail = false;
    const store: DeviceStateStore<'sync'> = {
      loadAll: () => [],
      write: (rows: readonly StoredState[]) => {
        if (fail) throw new Error('disk full');
        written.push(rows.map((r) => r.deviceId));
      },
    } as unknown as DeviceStateStore<'sync'>;
    const states = new DeviceStates(store);
    const hb = (deviceId: string, battery: number) =>
      ({ deviceId, type: 'heartbeat', battery, receivedAt: Date.now(), source: 'mqtt' }) as never;
    states.begin();
    for (const id of ['a', 'b', 'c']) states.apply(hb(id, 50));
    states.commit();
    expect(states.dirtyCount()).toBe(3);

    // a commit that writes a and b, then fails: both owed again, with c
    states.begin();
    states.apply(hb('d', 40));
    fail = true;
    expect(() => states.flushDirty(1, 2)).toThrow('disk full');
    states.rollback();
    fail = false;
    // d's change was rolled back with its transaction: it was not owed before, and is not now
    expect(states.dirtyCount()).toBe(3);
    expect(states.peek('d')).toBeUndefined();

    states.begin();
    states.flushDirty(2);
    states.commit();
    expect(written.flat().sort()).toEqual(['a', 'b', 'c']);
    expect(states.dirtyCount()).toBe(0);

    // a device changed again after its row was written owes one row, once
    states.begin();
    states.apply(hb('a', 49));
    states.apply(hb('a', 48));
    states.flushDirty(3);
    states.commit();
    expect(written.at(-1)).toEqual(['a']);
    expect(states.peek('a')?.battery).toBe(48);
  });
});
