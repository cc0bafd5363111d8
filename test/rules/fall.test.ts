import { describe, expect, it } from 'vitest';
import { CANCEL_AFTER_WINDOW, CANCELLED_BY_RESIDENT } from '../../gateway/rules/fall.js';
import { T0, World } from './harness.js';

function world() {
  const w = new World();
  w.resident('r1');
  w.device('f1', { kind: 'fall-sensor', residentId: 'r1' }); // kind window: 30 s
  return w;
}

describe('fall rule', () => {
  it('a fall is P1 at once, with the kind’s cancel window exposed in the alarm and its data', () => {
    const w = world();
    const r = w.send('f1', { type: 'fall', confidence: 0.93 });
    expect(r.alarms).toEqual([expect.objectContaining({
      action: 'raise', type: 'fall', priority: 'P1', cancelWindowMs: 30_000,
      data: expect.objectContaining({ confidence: 0.93, cancelUntil: T0 + 30_000 }),
    })]);
  });

  it('a cancel inside the window cancels it "cancelled by resident"', () => {
    const w = world();
    w.send('f1', { type: 'fall' });
    w.advance(29_000);
    const r = w.send('f1', { type: 'cancel' });
    expect(r.alarms).toEqual([{ action: 'cancel', type: 'fall', rule: 'fall', reason: CANCELLED_BY_RESIDENT }]);
    expect(w.incidents[0]).toMatchObject({ status: 'cancelled', closedReason: 'cancelled by resident' });
  });

  it('a cancel after the window is passed on as such: noted, the incident stays open', () => {
    const w = world();
    w.send('f1', { type: 'fall' });
    w.advance(31_000);
    const r = w.send('f1', { type: 'cancel' });
    expect(r.alarms).toEqual([{ action: 'cancel', type: 'fall', rule: 'fall', reason: CANCEL_AFTER_WINDOW }]);
    expect(w.incidents[0]).toMatchObject({ status: 'open', notes: [CANCEL_AFTER_WINDOW] });
  });

  it('the device’s own cancelWindowMs overrides the kind’s', () => {
    const w = world();
    w.devices.get('f1')!.config = { cancelWindowMs: 60_000 };
    expect(w.send('f1', { type: 'fall' }).alarms[0]).toMatchObject({ cancelWindowMs: 60_000 });
    w.advance(45_000);
    expect(w.send('f1', { type: 'cancel' }).alarms[0]).toMatchObject({ reason: CANCELLED_BY_RESIDENT });
  });

  it('a second fall joins the card and does not give a late cancel a fresh window', () => {
    const w = world();
    w.send('f1', { type: 'fall' });
    w.advance(25_000);
    const again = w.send('f1', { type: 'fall' });
    expect(again.alarms[0]).toMatchObject({ data: expect.objectContaining({ cancelUntil: T0 + 30_000 }) });
    w.advance(10_000); // 35 s after the first fall, 10 s after the second
    expect(w.send('f1', { type: 'cancel' }).alarms[0]).toMatchObject({ reason: CANCEL_AFTER_WINDOW });
    expect(w.incidents).toHaveLength(1);
    expect(w.incidents[0]).toMatchObject({ status: 'open', count: 2 });
  });

  it('a cancel with no fall open does nothing', () => {
    const w = world();
    expect(w.send('f1', { type: 'cancel' }).alarms).toEqual([]);
  });

  it('after a restart (memory gone) the window is measured from the incident’s opening', () => {
    const w = world();
    w.send('f1', { type: 'fall' });
    w.restart();
    w.advance(10_000);
    expect(w.send('f1', { type: 'cancel' }).alarms[0]).toMatchObject({ reason: CANCELLED_BY_RESIDENT });
  });
});
