import { describe, expect, it } from 'vitest';
import { Outbox } from '../../firmware-sim/devices/outbox.js';
import type { OutMessage } from '../../firmware-sim/devices/types.js';

let seq = 0;
const msg = (channel: 'events' | 'telemetry', type: string, alarm = false): OutMessage => ({
  channel, qos: channel === 'events' ? 1 : 0, type, seq: ++seq, ts: seq, json: '{}', alarm,
  createdAt: seq, firstSentAt: null, firstSentWall: null, sends: 0, acked: false, ackedAt: null, ackCommandAt: null,
});

describe('offline buffer', () => {
  it('keeps creation order', () => {
    const o = new Outbox({ max: 10, maxTelemetry: 5 });
    const a = [msg('telemetry', 'heartbeat'), msg('events', 'sos', true), msg('telemetry', 'heartbeat'), msg('events', 'cancel')];
    for (const m of a) o.push(m);
    expect(o.all()).toEqual(a);
  });

  it('sheds the oldest telemetry beyond its own limit', () => {
    const o = new Outbox({ max: 100, maxTelemetry: 3 });
    const hb = Array.from({ length: 5 }, () => msg('telemetry', 'heartbeat'));
    for (const m of hb) o.push(m);
    expect(o.all()).toEqual(hb.slice(2));
    expect(o.droppedTelemetry).toBe(2);
  });

  it('when full, drops telemetry, then minor events, and never an alarm while anything else is left', () => {
    const o = new Outbox({ max: 4, maxTelemetry: 4 });
    const hb = msg('telemetry', 'heartbeat');
    const test = msg('events', 'test');
    const sos1 = msg('events', 'sos', true);
    const cancel = msg('events', 'cancel');
    for (const m of [hb, test, sos1, cancel]) o.push(m);
    const sos2 = msg('events', 'sos', true);
    o.push(sos2); // the heartbeat goes
    expect(o.all()).toEqual([test, sos1, cancel, sos2]);
    const fall = msg('events', 'fall', true);
    o.push(fall); // then the test event
    expect(o.all()).toEqual([sos1, cancel, sos2, fall]);
    const late = msg('telemetry', 'heartbeat');
    o.push(late); // new telemetry into a buffer of alarms: the telemetry is what gives way
    expect(o.all()).toEqual([sos1, cancel, sos2, fall]);
    expect(o.droppedAlarms).toBe(0);
    const sos3 = msg('events', 'sos', true);
    o.push(sos3); // nothing but alarms: the oldest goes, and it is counted
    expect(o.all()).toEqual([cancel, sos2, fall, sos3]);
    expect(o.droppedAlarms).toBe(1);
    expect(o.droppedTelemetry).toBe(2);
    expect(o.droppedEvents).toBe(1);
  });

  it('removes acknowledged messages wherever they are', () => {
    const o = new Outbox();
    const a = msg('events', 'sos', true);
    const b = msg('telemetry', 'position');
    o.push(a);
    o.push(b);
    o.remove(a);
    expect(o.all()).toEqual([b]);
    expect(o.pendingAlarms).toBe(0);
  });
});
