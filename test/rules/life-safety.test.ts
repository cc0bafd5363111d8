import { describe, expect, it } from 'vitest';
import { HOUR, T0, World } from './harness.js';

describe('life-safety rule', () => {
  it.each(['sos', 'panic', 'medical', 'fire', 'gas', 'smoke', 'pull-cord', 'call-request'] as const)('%s → P1 at once', (type) => {
    const w = new World();
    w.device('d1', { kind: type === 'smoke' || type === 'gas' || type === 'pull-cord' ? 'modbus' : 'call-phone' });
    const r = w.send('d1', { type });
    expect(r.alarms).toEqual([expect.objectContaining({ action: 'raise', type, priority: 'P1', rule: 'life-safety' })]);
    expect(r.fallback).toBe(false);
    expect(w.openIncident('d1', type)?.priority).toBe('P1');
  });

  it('a repeated SOS joins the open incident (one card, a counter)', () => {
    const w = new World();
    w.device('d1');
    w.send('d1', { type: 'sos' });
    w.send('d1', { type: 'sos' });
    expect(w.incidents).toHaveLength(1);
    expect(w.incidents[0]!.count).toBe(2);
  });

  it('removed (watch off the wrist) → P2', () => {
    const w = new World();
    w.device('w1', { kind: 'locator' });
    expect(w.send('w1', { type: 'removed' }).alarms[0]).toMatchObject({ type: 'removed', priority: 'P2' });
  });

  it('bed-exit is P2 at night, P3 by day, in local time', () => {
    // UTC+8: 23:30 local is 15:30 UTC; 14:00 local is 06:00 UTC
    const w = new World({ ruleSettings: { timeZoneOffsetMinutes: 480, nightStart: '22:00', nightEnd: '07:00' } });
    w.device('m1', { kind: 'modbus' });
    w.clock.set(w.clock.now() + 15.5 * HOUR);
    expect(w.send('m1', { type: 'bed-exit' }).alarms[0]).toMatchObject({ priority: 'P2', data: { night: true } });
    w.advance(14.5 * HOUR); // 14:00 local next day
    w.resolve(w.incidents[0]!);
    expect(w.send('m1', { type: 'bed-exit' }).alarms[0]).toMatchObject({ priority: 'P3', data: { night: false } });
  });

  it('bed-exit by day with bedExitDayPriority none: no incident, explicitly handled (no fallback)', () => {
    const w = new World({ ruleSettings: { bedExitDayPriority: 'none', nightStart: '22:00', nightEnd: '07:00' } });
    w.device('m1', { kind: 'modbus' });
    w.clock.set(w.clock.now() + 12 * HOUR); // noon UTC
    const r = w.send('m1', { type: 'bed-exit' });
    expect(r.alarms).toEqual([]);
    expect(r.fallback).toBe(false);
  });

  it('a restore (smoke detector back to normal) does not close the P1 and does not raise again', () => {
    const w = new World();
    w.device('m1', { kind: 'modbus' });
    w.send('m1', { type: 'smoke' });
    const r = w.send('m1', { type: 'smoke', restore: true });
    expect(r.alarms).toEqual([]);
    expect(r.fallback).toBe(false);
    expect(w.openIncident('m1', 'smoke')?.count).toBe(1);
  });
});

describe('alarm position: an SOS or a fall is never swallowed for want of a fix', () => {
  const lastFix = { lat: 39.9, lon: 116.4, accuracy: 12, at: T0 - 10 * 60_000 };

  it('uses the message fix when it is usable', () => {
    const w = new World();
    w.device('w1', { kind: 'locator', lastPosition: lastFix });
    const a = w.send('w1', { type: 'sos', position: { lat: 39.91, lon: 116.41, accuracy: 5 } }).alarms[0]!;
    expect(a).toMatchObject({ position: { lat: 39.91, lon: 116.41, accuracy: 5, stale: false }, data: { positionSource: 'message' } });
  });

  it('no fix at all → raised with the last known position, marked stale, with its age', () => {
    const w = new World();
    w.device('w1', { kind: 'locator', lastPosition: lastFix });
    const a = w.send('w1', { type: 'sos' }).alarms[0]!;
    expect(a).toMatchObject({
      action: 'raise', priority: 'P1',
      position: { lat: 39.9, lon: 116.4, stale: true },
      data: { positionSource: 'last-known', positionProblem: 'missing', positionAgeMs: 10 * 60_000 },
    });
  });

  it.each([
    ['NaN latitude', { lat: Number.NaN, lon: 116.4 }, 'malformed'],
    ['strings', { lat: '39.9', lon: '116.4' }, 'malformed'],
    ['out of range', { lat: 139.9, lon: 116.4 }, 'out-of-range'],
    ['null island (0,0: no fix yet)', { lat: 0, lon: 0 }, 'null-island'],
    ['not an object', 'somewhere', 'malformed'],
  ])('malformed fix (%s) → last known position, stale, and the problem named', (_name, position, problem) => {
    const w = new World();
    w.device('w1', { kind: 'locator', lastPosition: lastFix });
    const r = w.send('w1', { type: 'sos', position } as never);
    expect(r.alarms).toHaveLength(1);
    expect(r.alarms[0]).toMatchObject({ type: 'sos', priority: 'P1', position: { lat: 39.9, stale: true }, data: { positionProblem: problem } });
  });

  it('a fall without a fix and no last position → the resident’s home, stale', () => {
    const w = new World();
    w.resident('r1', { home: { lat: 31.2, lon: 121.5 } });
    w.device('f1', { kind: 'fall-sensor', residentId: 'r1' });
    const a = w.send('f1', { type: 'fall', position: { lat: Number.NaN, lon: 1 } } as never).alarms[0]!;
    expect(a).toMatchObject({ type: 'fall', priority: 'P1', position: { lat: 31.2, lon: 121.5, stale: true }, data: { positionSource: 'home' } });
  });

  it('nothing known at all → still raised, without a position, saying so', () => {
    const w = new World();
    w.device('p1');
    const r = w.send('p1', { type: 'sos' });
    expect(r.alarms).toEqual([expect.objectContaining({ type: 'sos', priority: 'P1', data: expect.objectContaining({ positionSource: 'none' }) })]);
    expect(r.alarms[0]).not.toHaveProperty('position');
  });
});
