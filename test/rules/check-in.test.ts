import { describe, expect, it } from 'vitest';
import { HOUR, MIN, T0, World } from './harness.js';

// UTC+8; checkInBy 10:00 local = 02:00 UTC. T0 is 00:00 UTC = 08:00 local on day 1.
const TZ = 480;
function world(config: Record<string, unknown> = {}) {
  const w = new World({ ruleSettings: { timeZoneOffsetMinutes: TZ } });
  w.resident('r1', { checkInBy: '10:00' });
  w.device('p1', { residentId: 'r1', config });
  return w;
}
const localHour = (w: World) => ((w.now - T0) / HOUR + 8) % 24;

describe('check-in rule', () => {
  it('a check-in arms the daily deadline; a day without one raises P2 missed-check-in at checkInBy local', () => {
    const w = world();
    w.send('p1', { type: 'check-in' }); // day 1, 08:00 local
    expect(w.advance(24 * HOUR + 2 * HOUR - 1).flatMap((r) => r.alarms).filter((a) => a.type === 'missed-check-in')).toEqual([]); // day 2, 09:59:59.999
    const fired = w.advance(1).flatMap((r) => r.alarms).filter((a) => a.type === 'missed-check-in');
    expect(localHour(w)).toBe(10);
    expect(fired).toEqual([expect.objectContaining({ action: 'raise', type: 'missed-check-in', priority: 'P2', data: expect.objectContaining({ checkInBy: '10:00' }) })]);
  });

  it('checking in before the deadline each day: no alarm, ever', () => {
    const w = world();
    w.send('p1', { type: 'check-in' });
    for (let day = 0; day < 5; day++) {
      w.advance(24 * HOUR);
      w.send('p1', { type: 'check-in' }); // 08:00 local each day
    }
    expect(w.raisedOf('missed-check-in')).toEqual([]);
  });

  it('a check-in later the same day (after the deadline) clears the card; the next day is enforced again', () => {
    const w = world();
    w.send('p1', { type: 'check-in' });
    w.advance(26 * HOUR); // day 2, 10:00 local
    expect(w.openIncident('p1', 'missed-check-in')).toBeDefined();
    w.advance(3 * HOUR); // 13:00
    expect(w.send('p1', { type: 'check-in' }).alarms).toContainEqual(expect.objectContaining({ action: 'clear', type: 'missed-check-in' }));
    w.advance(21 * HOUR); // day 3, 10:00
    expect(w.raisedOf('missed-check-in')).toHaveLength(2);
  });

  it('device config checkIn:true arms it without a first check-in, never retroactively', () => {
    const w = world({ checkIn: true });
    w.advance(3 * HOUR); // 11:00 local, today's deadline already past
    w.send('p1', { type: 'heartbeat' });
    expect(w.raisedOf('missed-check-in')).toEqual([]);
    w.advance(23 * HOUR); // day 2, 10:00
    expect(w.raisedOf('missed-check-in').map((a) => a.type)).toEqual(['missed-check-in']);
  });

  it('a device that never checked in and is not configured for it raises nothing', () => {
    const w = world();
    w.send('p1', { type: 'heartbeat' });
    w.advance(72 * HOUR);
    expect(w.raisedOf('missed-check-in')).toEqual([]);
  });

  it('a changed checkInBy re-arms for the new time', () => {
    const w = world();
    w.send('p1', { type: 'check-in' });
    w.residents.get('r1')!.checkInBy = '09:00';
    w.advance(MIN);
    w.send('p1', { type: 'heartbeat' });
    w.advance(24 * HOUR); // day 2, 08:01 local
    expect(w.raisedOf('missed-check-in')).toEqual([]);
    w.advance(59 * MIN); // 09:00
    expect(w.raisedOf('missed-check-in').map((a) => a.data?.checkInBy)).toEqual(['09:00']);
  });

  it('checkInBy removed: disarmed', () => {
    const w = world();
    w.send('p1', { type: 'check-in' });
    w.residents.get('r1')!.checkInBy = null;
    w.send('p1', { type: 'heartbeat' });
    expect(w.engine.pendingTimers('p1').filter((t) => t.rule === 'check-in')).toEqual([]);
  });

  it('restart: checked in today → tomorrow; deadline passed while down with no check-in → raised at once', () => {
    const w = world();
    w.restart(() => ({ lastCheckInAt: w.now - 10 * MIN }));
    expect(w.engine.pendingTimers('p1').find((t) => t.rule === 'check-in')?.inMs).toBe(26 * HOUR);

    const w2 = world();
    w2.advance(3 * HOUR); // 11:00 local
    w2.restart(() => ({ lastCheckInAt: w2.now - 27 * HOUR }));
    expect(w2.raisedOf('missed-check-in').map((a) => a.type)).toEqual(['missed-check-in']);
    // and a second restart does not raise it twice while it is on the board
    w2.restart(() => ({ lastCheckInAt: w2.now - 27 * HOUR }));
    expect(w2.raisedOf('missed-check-in')).toHaveLength(1);
  });
});
