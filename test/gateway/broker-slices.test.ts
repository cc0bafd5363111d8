// Closes in slices, in each device's order (gateway/broker/slices.ts): the unit's contract, without a broker.
import { describe, expect, it } from 'vitest';
import { KeyOrderedSlices } from '../../gateway/broker/slices.js';

const tick = () => new Promise((r) => setImmediate(r));

describe('KeyOrderedSlices', () => {
  it('runs work in slices with a turn of the event loop between, in order', async () => {
    let clock = 0;
    const q = new KeyOrderedSlices({ sliceMs: 3, limit: 100, onError: () => undefined, now: () => clock });
    const ran: number[] = [];
    // each task "takes" 1 ms: three per slice
    for (let i = 0; i < 10; i++) q.push(`d${i}`, () => { ran.push(i); clock += 1; });
    expect(ran).toEqual([]);
    await tick();
    expect(ran).toEqual([0, 1, 2]);
    await tick();
    expect(ran).toEqual([0, 1, 2, 3, 4, 5]);
    while (q.pending > 0) await tick();
    expect(ran).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it('settle runs one device\'s queued work at once, in its order, and never twice', async () => {
    const q = new KeyOrderedSlices({ sliceMs: 1000, limit: 100, onError: () => undefined });
    const ran: string[] = [];
    q.push('a', () => ran.push('a-will'));
    q.push('b', () => ran.push('b-will'));
    q.push('a', () => ran.push('a-disconnect'));
    expect(q.has('a')).toBe(true);
    // device a came back before the slice: its earlier work runs first
    q.settle('a');
    ran.push('a-first-message');
    expect(q.has('a')).toBe(false);
    await tick();
    expect(ran).toEqual(['a-will', 'a-disconnect', 'a-first-message', 'b-will']);
    expect(q.pending).toBe(0);
  });

  it('beyond its bound runs work at once (never drops it), after the key\'s queued work', () => {
    const q = new KeyOrderedSlices({ sliceMs: 1000, limit: 2, onError: () => undefined });
    const ran: string[] = [];
    q.push('a', () => ran.push('a1'));
    q.push('b', () => ran.push('b1'));
    q.push('a', () => ran.push('a2'));
    expect(ran).toEqual(['a1', 'a2']);
    expect(q.pending).toBe(1);
    q.drain();
    expect(ran).toEqual(['a1', 'a2', 'b1']);
  });

  it('a task that throws is reported and the rest still run', async () => {
    const errors: string[] = [];
    const q = new KeyOrderedSlices({ sliceMs: 1000, limit: 10, onError: (err, key) => errors.push(`${key}: ${(err as Error).message}`) });
    const ran: string[] = [];
    q.push('a', () => { throw new Error('boom'); });
    q.push('b', () => ran.push('b'));
    await tick();
    expect(errors).toEqual(['a: boom']);
    expect(ran).toEqual(['b']);
  });
});
