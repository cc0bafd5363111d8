import { afterEach, describe, expect, it, vi } from 'vitest';
import { createManualClock, TimerQueue, type TimerEntry } from '../../gateway/timers.js';

function queue(clock = createManualClock(0), batch?: number) {
  const fired: { owner: string; slot: string; at: number; firedAt: number }[] = [];
  const q = new TimerQueue({
    clock,
    ...(batch !== undefined && { batch }),
    onDue: (e: TimerEntry) => fired.push({ owner: e.owner, slot: e.slot, at: e.at, firedAt: clock.now() }),
  });
  return { q, fired, clock };
}

describe('TimerQueue', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('fires in deadline order, each once, and a re-set moves a timer instead of adding one', () => {
    const { q, fired, clock } = queue();
    q.set('d1', 'a', 300);
    q.set('d2', 'a', 100);
    q.set('d3', 'a', 200);
    q.set('d2', 'a', 400); // moved later
    expect(q.size).toBe(3);
    clock.advance(1000);
    expect(fired.map((f) => f.owner)).toEqual(['d3', 'd1', 'd2']);
    expect(fired.map((f) => f.firedAt)).toEqual([200, 300, 400]);
    expect(q.size).toBe(0);
  });

  it('a cleared timer never fires; has/get/nextAt follow the heap', () => {
    const { q, fired, clock } = queue();
    q.set('d1', 'late', 100);
    q.set('d1', 'offline', 50);
    expect(q.has('d1', 'late')).toBe(true);
    expect(q.nextAt()).toBe(50);
    expect(q.clear('d1', 'offline')).toBe(true);
    expect(q.clear('d1', 'offline')).toBe(false);
    expect(q.nextAt()).toBe(100);
    expect(q.get('d1', 'late')?.at).toBe(100);
    clock.advance(1000);
    expect(fired.map((f) => f.slot)).toEqual(['late']);
  });

  it('reset and remove answer when the timer was due before (the engine\'s undo), as set and clear behave', () => {
    const { q, fired, clock } = queue();
    const id = TimerQueue.id('d1', 'offline');
    expect(q.reset(id, 'd1', 'offline', 100)).toBeUndefined();
    expect(q.reset(id, 'd1', 'offline', 300)).toBe(100);
    expect(q.size).toBe(1);
    clock.advance(50);
    expect(q.reset(id, 'd1', 'offline', 10)).toBe(300);
    expect(q.get('d1', 'offline')?.at).toBe(60);
    expect(q.remove(id)).toBe(60);
    expect(q.remove(id)).toBeUndefined();
    expect(q.clear('d1', 'offline')).toBe(false);
    clock.advance(1000);
    expect(fired).toEqual([]);
  });

  it('the generation rises on every set, so a fire can be told stale', () => {
    const { q } = queue();
    const g1 = q.set('d', 's', 10);
    const g2 = q.set('d', 's', 10);
    expect(g2).toBeGreaterThan(g1);
    expect(q.get('d', 's')?.gen).toBe(g2);
  });

  it('runDue fires what is due at a given time (manual advancing)', () => {
    const { q, fired } = queue();
    q.set('a', 's', 10);
    q.set('b', 's', 20);
    q.set('c', 's', 30);
    expect(q.runDue(20)).toBe(2);
    expect(fired.map((f) => f.owner)).toEqual(['a', 'b']);
    expect(q.size).toBe(1);
  });

  it('holds 100k devices × 3 timers correctly: random sets, re-sets and clears fire exactly the survivors, in order', () => {
    const { q, fired, clock } = queue(createManualClock(0), 1_000_000);
    let seed = 42;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const expected = new Map<string, number>();
    const slots = ['late', 'offline', 'idle'];
    for (let d = 0; d < 100_000; d++) {
      for (const s of slots) {
        const inMs = Math.floor(rnd() * 1_000_000);
        q.set(`dev-${d}`, s, inMs);
        expected.set(`dev-${d}/${s}`, inMs);
      }
    }
    expect(q.size).toBe(300_000);
    // every heartbeat re-arms: move a third of the timers, clear another third
    for (let d = 0; d < 100_000; d++) {
      const s = slots[d % 3]!;
      if (d % 2 === 0) {
        const inMs = Math.floor(rnd() * 1_000_000);
        q.set(`dev-${d}`, s, inMs);
        expected.set(`dev-${d}/${s}`, inMs);
      } else {
        q.clear(`dev-${d}`, s);
        expected.delete(`dev-${d}/${s}`);
      }
    }
    expect(q.size).toBe(expected.size);
    clock.advance(1_000_001);
    expect(fired.length).toBe(expected.size);
    // (plain loops, one assertion each: expect() per entry would dominate the run time)
    let outOfOrder = 0;
    for (let i = 1; i < fired.length; i++) if (fired[i]!.at < fired[i - 1]!.at) outOfOrder++;
    expect(outOfOrder).toBe(0);
    const wrong = fired.filter((f) => f.at !== expected.get(`${f.owner}/${f.slot}`) || f.firedAt !== f.at);
    expect(wrong).toEqual([]);
    expect(new Set(fired.map((f) => `${f.owner}/${f.slot}`)).size).toBe(fired.length);
    expect(q.size).toBe(0);
  });

  it('uses one real timer for the nearest deadline and works under vitest fake timers (performance.now faked)', () => {
    vi.useFakeTimers();
    const fired: string[] = [];
    const q = new TimerQueue({ onDue: (e) => fired.push(e.owner) });
    for (let i = 0; i < 1000; i++) q.set(`d${i}`, 's', 10_000 + i);
    q.set('early', 's', 500);
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(499);
    expect(fired).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(fired).toEqual(['early']);
    vi.advanceTimersByTime(20_000);
    expect(fired.length).toBe(1001);
    expect(vi.getTimerCount()).toBe(0);
    q.close();
  });

  it('drains a large overdue batch over several turns of the event loop, not in one', () => {
    vi.useFakeTimers();
    const fired: string[] = [];
    const q = new TimerQueue({ onDue: (e) => fired.push(e.owner), batch: 100 });
    for (let i = 0; i < 350; i++) q.set(`d${i}`, 's', 0);
    vi.advanceTimersToNextTimer();
    expect(fired.length).toBe(100);
    vi.runAllTimers();
    expect(fired.length).toBe(350);
    q.close();
  });

  it('a timer moved later again and again (a heartbeat re-arming supervision) fires once, at its last deadline, never early', () => {
    vi.useFakeTimers();
    const fired: { owner: string; at: number }[] = [];
    const q = new TimerQueue({ onDue: (e) => fired.push({ owner: e.owner, at: performance.now() }) });
    const t0 = performance.now();
    q.set('other', 's', 250);
    q.set('hb', 's', 100);
    // moved later 20 times, past 'other': it stays in the heap under its first deadline until that comes up
    for (let i = 1; i <= 20; i++) q.set('hb', 's', 100 + 20 * i);
    expect(q.get('hb', 's')!.at - t0).toBe(500);
    expect(q.nextAt()! - t0).toBe(250);
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(100); // the old deadline: nothing is due, the real timer is armed again
    expect(fired).toEqual([]);
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(400);
    expect(fired.map((f) => [f.owner, f.at - t0])).toEqual([['other', 250], ['hb', 500]]);
    q.close();
  });

  it('a timer moved later, then earlier than where it first was, fires at the earlier deadline', () => {
    const { q, fired, clock } = queue();
    q.set('a', 's', 100);
    q.set('b', 's', 60);
    q.set('a', 's', 300);
    q.set('a', 's', 50);
    clock.advance(1000);
    expect(fired.map((f) => [f.owner, f.firedAt])).toEqual([['a', 50], ['b', 60]]);
  });

  it('among equal deadlines, the one set first fires first, however it got there', () => {
    const { q, fired, clock } = queue();
    q.set('a', 's', 10);
    q.set('b', 's', 100);
    q.set('a', 's', 100); // a moved later onto b's deadline, after b was set
    clock.advance(1000);
    expect(fired.map((f) => f.owner)).toEqual(['b', 'a']);
  });

  it('a timer re-set onto the deadline it already has takes the order of its new set', () => {
    const { q, fired, clock } = queue();
    q.set('a', 's', 100);
    q.set('b', 's', 100);
    q.set('a', 's', 300);
    q.set('a', 's', 100); // set after b: fires after b
    clock.advance(1000);
    expect(fired.map((f) => f.owner)).toEqual(['b', 'a']);
  });

  it('re-placing timers moved later is bounded per turn like firing: a fleet armed together does not stall one turn', () => {
    const base = createManualClock(0);
    const zeroDelays: number[] = [];
    const clock = { ...base, setTimeout: (fn: () => void, ms: number) => {
      if (ms === 0) zeroDelays.push(ms);
      return base.setTimeout(fn, ms);
    } };
    const fired: string[] = [];
    const q = new TimerQueue({ clock, batch: 100, onDue: (e) => fired.push(e.owner) });
    for (let i = 0; i < 1000; i++) q.set(`d${i}`, 's', 10);
    for (let i = 0; i < 1000; i++) q.set(`d${i}`, 's', 5000); // every heartbeat pushed them later
    base.advance(10);
    expect(fired).toEqual([]);
    // 1000 re-placements at 100 a turn: the rest left for following turns (setTimeout 0), not done in one
    expect(zeroDelays.length).toBeGreaterThanOrEqual(9);
    base.advance(5000);
    expect(fired.length).toBe(1000);
    q.close();
  });

  it('a deadline beyond setTimeout range is re-armed, not fired early', () => {
    const { q, fired, clock } = queue();
    q.set('far', 's', 40 * 86_400_000);
    clock.advance(30 * 86_400_000);
    expect(fired).toEqual([]);
    clock.advance(10 * 86_400_000);
    expect(fired.map((f) => f.owner)).toEqual(['far']);
  });
});
