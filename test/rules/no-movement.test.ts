import { describe, expect, it } from 'vitest';
import { HOUR, MIN, World } from './harness.js';

function world(noMovementSeconds: number | null = 2 * 3600) {
  const w = new World({ ruleSettings: { noMovementDefaultSeconds: 12 * 3600 } });
  w.resident('r1', { noMovementSeconds });
  w.device('f1', { kind: 'fall-sensor', residentId: 'r1' });
  return w;
}

describe('no-movement rule', () => {
  it('presence arms a timer of the resident’s noMovementSeconds; its expiry raises P2 no-movement', () => {
    const w = world();
    w.send('f1', { type: 'presence', present: true });
    expect(w.advance(2 * HOUR - 1).flatMap((r) => r.alarms).filter((a) => a.type === 'no-movement')).toEqual([]);
    const fired = w.advance(1).flatMap((r) => r.alarms).filter((a) => a.type === 'no-movement');
    expect(fired).toEqual([expect.objectContaining({ action: 'raise', type: 'no-movement', priority: 'P2', data: { source: 'gateway', seconds: 7200 } })]);
  });

  it('movement before expiry re-arms the timer', () => {
    const w = world();
    w.send('f1', { type: 'presence', present: true });
    w.advance(90 * MIN);
    w.send('f1', { type: 'presence', present: false });
    w.advance(90 * MIN);
    expect(w.raisedOf('no-movement')).toEqual([]);
    w.advance(30 * MIN);
    expect(w.raisedOf('no-movement').map((a) => a.type)).toEqual(['no-movement']);
  });

  it('heartbeats are not movement', () => {
    const w = world();
    w.send('f1', { type: 'presence', present: true });
    w.advance(HOUR);
    w.send('f1', { type: 'heartbeat', battery: 80 });
    w.advance(HOUR);
    expect(w.raisedOf('no-movement').map((a) => a.type)).toEqual(['no-movement']);
  });

  it('null noMovementSeconds uses the default setting', () => {
    const w = world(null);
    w.send('f1', { type: 'presence', present: true });
    w.advance(12 * HOUR - 1);
    expect(w.raisedOf('no-movement')).toEqual([]);
    w.advance(1);
    expect(w.raisedOf('no-movement')).toHaveLength(1);
  });

  it('a device-reported no-movement is P2 at once', () => {
    const w = world();
    const r = w.send('f1', { type: 'no-movement', seconds: 5400 });
    expect(r.alarms).toEqual([expect.objectContaining({ type: 'no-movement', priority: 'P2', data: { source: 'device', seconds: 5400 } })]);
    expect(r.fallback).toBe(false);
  });

  it('a device bound to nobody is not armed', () => {
    const w = world();
    w.devices.get('f1')!.residentId = null;
    w.send('f1', { type: 'presence', present: true });
    expect(w.engine.pendingTimers('f1').filter((t) => t.rule === 'no-movement')).toEqual([]);
  });

  it('restore re-arms from the last activity in the history; overdue fires at once', () => {
    const w = world();
    w.restart(() => ({ lastActivityAt: w.now - 30 * MIN }));
    expect(w.engine.pendingTimers('f1').find((t) => t.rule === 'no-movement')?.inMs).toBe(90 * MIN);
    const w2 = world();
    w2.restart(() => ({ lastActivityAt: w2.now - 3 * HOUR }));
    expect(w2.raisedOf('no-movement').map((a) => a.type)).toEqual(['no-movement']);
  });
});
