// Supervision's ladder (late → offline) runs on the monotonic clock: a wall-clock step (NTP, an operator fixing the
// date) neither calls a late device offline early nor holds it back. The world's wall clock is its manual monotonic
// clock plus an offset; stepping the offset is exactly a wall-clock step.
import { describe, expect, it } from 'vitest';
import { HOUR, World } from './harness.js';

const hb = { type: 'heartbeat' } as const;
const stepWall = (w: World, ms: number) => {
  (w as unknown as { wall0: number }).wall0 += ms;
};

describe('supervision on the monotonic clock', () => {
  it('a +1 h wall-clock step while a device is silent: offline at 3 intervals of real time, not at late', () => {
    const w = new World(); // call-phone on battery: interval 1 h, late 1.5 h, offline 3 h
    w.device('p1');
    w.send('p1', hb);
    w.advance(HOUR);
    stepWall(w, HOUR);
    w.advance(0.5 * HOUR);
    expect(w.devices.get('p1')!.supervision).toBe('late');
    expect(w.incidents).toEqual([]);
    w.advance(1.5 * HOUR - 1);
    expect(w.incidents).toEqual([]);
    w.advance(1);
    expect(w.openIncident('p1', 'offline')).toBeDefined();
  });

  it('a −1 h step does not hold it back', () => {
    const w = new World();
    w.device('p1');
    w.send('p1', hb);
    w.advance(HOUR);
    stepWall(w, -HOUR);
    w.advance(2 * HOUR);
    expect(w.openIncident('p1', 'offline')).toBeDefined();
  });
});
