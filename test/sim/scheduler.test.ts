import { describe, expect, it } from 'vitest';
import { RealScheduler, VirtualScheduler } from '../../firmware-sim/core/scheduler.js';

describe('shared scheduler', () => {
  it('runs tasks in deadline order, ties in insertion order, at their own virtual times', () => {
    const s = new VirtualScheduler();
    const seen: string[] = [];
    s.after(30, () => seen.push(`c@${s.now()}`));
    s.after(10, () => seen.push(`a@${s.now()}`));
    s.after(10, () => seen.push(`b@${s.now()}`));
    s.advance(25);
    expect(seen).toEqual(['a@10', 'b@10']);
    s.advance(10);
    expect(seen).toEqual(['a@10', 'b@10', 'c@30']);
  });

  it('repeats periodic tasks with a phase and stops them on cancel', () => {
    const s = new VirtualScheduler();
    const at: number[] = [];
    const h = s.every(100, () => at.push(s.now()), 30);
    s.advance(350);
    expect(at).toEqual([30, 130, 230, 330]);
    s.cancel(h);
    s.advance(500);
    expect(at).toHaveLength(4);
  });

  it('stays small when most timers are cancelled (resend timers cancelled by PUBACKs)', () => {
    const s = new VirtualScheduler();
    let ran = 0;
    for (let i = 0; i < 100_000; i++) {
      const h = s.after(1000 + i, () => ran++);
      if (i % 100 !== 0) s.cancel(h);
    }
    expect(s.size).toBe(1000);
    s.advance(200_000);
    expect(ran).toBe(1000);
    expect(s.size).toBe(0);
  });

  it('a task may schedule and cancel others while running; an error does not stop the loop', () => {
    const s = new VirtualScheduler();
    const errors: unknown[] = [];
    s.onError = (e) => errors.push(e);
    const seen: number[] = [];
    const later = s.after(50, () => seen.push(50));
    s.after(10, () => {
      s.cancel(later);
      s.after(5, () => seen.push(15));
      throw new Error('boom');
    });
    s.after(20, () => seen.push(20));
    s.advance(100);
    expect(seen).toEqual([15, 20]);
    expect(errors).toHaveLength(1);
  });

  it('on wall time, one Node timer serves every deadline', async () => {
    const s = new RealScheduler();
    const seen: number[] = [];
    for (const ms of [60, 20, 40]) s.after(ms, () => seen.push(ms));
    await new Promise((r) => setTimeout(r, 300));
    expect(seen).toEqual([20, 40, 60]);
    s.clear();
  });
});
