import { afterEach, describe, expect, it, vi } from 'vitest';
import type { DataRule } from '../../core/config.js';
import { ConfigError } from '../../core/errors.js';
import { createLogger } from '../../core/logger.js';
import { createEngine, subjectOf, type TimerFire } from '../../gateway/engine.js';
import type { Observation } from '../../core/contracts.js';
import { createManualClock } from '../../gateway/timers.js';
import { builtinRules } from '../../gateway/rules/index.js';
import type { Rule } from '../../gateway/rules/types.js';
import { HOUR, KINDS, SUPERVISION, T0, World } from './harness.js';

const boom: Rule = {
  name: 'boom',
  on: ['*'],
  evaluate() {
    throw new Error('kaboom');
  },
};
const withoutLifeSafety = (replacement: Rule) => builtinRules.map((r) => (r.name === 'life-safety' ? replacement : r));

describe('rules engine: an alarm receiver\'s unknown accounts', () => {
  // Each unknown panel behind a receiver keeps rule memory of its own (EvaluateInput.subject), as it has cards of its
  // own: one panel's fall must not set the window another panel's cancel is measured by.
  it('keeps rule memory per account, apart from the receiver\'s own; forgetting the receiver forgets its accounts\'', () => {
    const counter: Rule<number> = {
      name: 'counter', on: ['fall'],
      evaluate: (_obs, ctx) => ({ alarms: [{ action: 'raise', type: 'fall', priority: 'P1', rule: 'counter', data: { n: (ctx.memory ?? 0) + 1 } }], memory: (ctx.memory ?? 0) + 1 }),
    };
    const engine = createEngine({ rules: [counter], kinds: KINDS, config: { supervision: SUPERVISION }, log: createLogger('silent'), clock: createManualClock(0), onTimerDue: () => {} });
    const device = { id: 'rcv', kind: 'receiver', power: 'mains' as const, residentId: null, unitId: null, lastSeen: null, lastPosition: null, battery: null, supervision: 'ok' as const, config: {} };
    const fall = { deviceId: 'rcv', type: 'fall', receivedAt: T0, source: 'serial' } as Observation;
    const n = (subject?: string) => (engine.evaluate(fall, { now: T0, device, resident: null, openIncident: () => undefined, ...(subject ? { subject } : {}) }).alarms[0] as unknown as { data: { n: number } }).data.n;
    expect([n(subjectOf('rcv', '01:1:1234')), n(subjectOf('rcv', '01:1:1234')), n(subjectOf('rcv', '01:1:5678')), n()]).toEqual([1, 2, 1, 1]);
    engine.forgetDevice('rcv');
    expect([n(subjectOf('rcv', '01:1:1234')), n()]).toEqual([1, 1]);
    engine.close();
  });
});

describe('rules engine', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('a rule that throws is logged and skipped; the rules after it still run', () => {
    const w = new World({ rules: [boom, ...builtinRules] });
    w.device('p1');
    const r = w.send('p1', { type: 'sos' });
    expect(r.errors).toEqual([{ rule: 'boom', message: 'kaboom' }]);
    expect(r.alarms).toEqual([expect.objectContaining({ type: 'sos', priority: 'P1', rule: 'life-safety' })]);
    expect(r.fallback).toBe(false);
    expect(w.errorsLogged()).toContainEqual(expect.objectContaining({ rule: 'boom', deviceId: 'p1', msg: expect.stringContaining('rule threw') }));
  });

  it('belt and braces: a life-safety observation no rule raised is raised P1 by the engine, with the stale position', () => {
    const w = new World({ rules: withoutLifeSafety({ ...boom, name: 'life-safety', on: ['sos'] }) });
    w.device('w1', { kind: 'locator', lastPosition: { lat: 39.9, lon: 116.4, at: T0 - 60_000 } });
    const r = w.send('w1', { type: 'sos' });
    expect(r.fallback).toBe(true);
    expect(r.alarms).toEqual([expect.objectContaining({
      action: 'raise', type: 'sos', priority: 'P1', rule: 'engine-fallback',
      position: expect.objectContaining({ lat: 39.9, stale: true }),
      data: expect.objectContaining({ fallback: true, ruleErrors: ['life-safety: kaboom'] }),
    })]);
    expect(w.openIncident('w1', 'sos')?.priority).toBe('P1');
  });

  it('the fallback fires even when another rule raised something else for that observation', () => {
    const other: DataRule = { name: 'sos-seen', on: 'sos', alarm: 'sos-seen', priority: 'P3', condition: { type: 'simple', field: 'restore', op: '!=', value: true } };
    const silent: Rule = { name: 'life-safety', on: ['sos'], evaluate: () => undefined };
    const w = new World({ rules: [...withoutLifeSafety(silent)], dataRules: [other] });
    w.device('p1');
    expect(w.send('p1', { type: 'sos', restore: false }).alarms.map((a) => [a.type, a.rule])).toEqual([['sos', 'engine-fallback']]);
  });

  it('no fallback for a restore, nor for a non-life-safety observation', () => {
    const silent: Rule = { name: 'life-safety', on: ['sos'], evaluate: () => undefined };
    const w = new World({ rules: withoutLifeSafety(silent) });
    w.device('p1');
    expect(w.send('p1', { type: 'sos', restore: true }).fallback).toBe(false);
    expect(w.send('p1', { type: 'heartbeat' }).fallback).toBe(false);
  });

  it('a timer the rule did not declare, or without a finite delay, is refused and logged', () => {
    const sloppy: Rule = {
      name: 'sloppy', on: ['heartbeat'], timers: ['ok'],
      evaluate: () => ({ timers: [{ set: 'undeclared', inMs: 10 }, { set: 'ok', inMs: Number.NaN }, { set: 'ok', inMs: 5 }] }),
    };
    const w = new World({ rules: [sloppy] });
    w.device('p1');
    const r = w.send('p1', { type: 'heartbeat' });
    expect(r.timers).toEqual([{ rule: 'sloppy', key: 'ok', inMs: 5 }]);
    expect(w.errorsLogged().map((l) => l.msg)).toEqual([
      expect.stringContaining('did not declare'),
      expect.stringContaining('no finite delay'),
    ]);
  });

  it('forgetDevice drops its timers and memory, and makes a fire in flight stale', () => {
    const w = new World();
    w.device('p1');
    w.send('p1', { type: 'heartbeat' });
    w.send('p1', { type: 'status', online: false }); // supervision memory
    w.holdFires = true;
    w.clock.advance(1.5 * HOUR);
    expect(w.fires).toHaveLength(1);
    w.engine.forgetDevice('p1');
    expect(w.engine.pendingTimers('p1')).toEqual([]);
    expect(w.drain()[0]).toMatchObject({ stale: true });
    expect(w.engine.timers.size).toBe(0);
  });

  it('rule names must be unique', () => {
    expect(() => createEngine({
      rules: [boom, boom], kinds: KINDS, config: { supervision: SUPERVISION }, log: createLogger('silent'), onTimerDue: () => {},
    })).toThrow(ConfigError);
  });

  it('bad rule settings are a ConfigError listing them', () => {
    expect(() => createEngine({
      kinds: KINDS, config: { supervision: SUPERVISION, ruleSettings: { nightStart: '25:00', safeZoneHysteresisM: -1 } },
      log: createLogger('silent'), onTimerDue: () => {},
    })).toThrow(/2 problem\(s\)[\s\S]*nightStart[\s\S]*safeZoneHysteresisM/);
  });

  it('an unknown device kind gets cautious defaults (life-safety sensor) and one warning', () => {
    const w = new World();
    w.device('x1', { kind: 'teapot' });
    w.send('x1', { type: 'heartbeat' });
    w.send('x1', { type: 'heartbeat' });
    expect(w.logLines.filter((l) => String(l.msg).includes('no kind information'))).toHaveLength(1);
    w.advance(3 * HOUR);
    expect(w.openIncident('x1', 'offline')?.priority).toBe('P2');
  });

  it('stamps evaluatedAt from the wall clock after the rules ran', () => {
    const w = new World();
    w.device('p1');
    w.advance(1234);
    expect(w.send('p1', { type: 'sos' }).evaluatedAt).toBe(T0 + 1234);
  });

  it('resyncDevice re-arms a device’s timers from its state (after bind or a resident change)', () => {
    const w = new World();
    w.resident('r1', { checkInBy: '10:00' });
    w.device('p1', { residentId: 'r1', config: { checkIn: true }, lastSeen: w.now, supervision: 'ok' });
    w.engine.resyncDevice(w.input('p1'));
    expect(w.engine.pendingTimers('p1').map((t) => `${t.rule}/${t.key}`).sort()).toEqual(['check-in/deadline', 'supervision/late']);
  });

  it('works with the default clock under vitest fake timers: a due timer reaches onTimerDue', () => {
    vi.useFakeTimers();
    const fires: TimerFire[] = [];
    const engine = createEngine({
      kinds: KINDS, config: { supervision: SUPERVISION }, log: createLogger('silent'), onTimerDue: (f) => fires.push(f),
    });
    const device = { id: 'p1', kind: 'call-phone', power: 'battery' as const, residentId: null, unitId: null, lastSeen: null,
      lastPosition: null, battery: null, supervision: 'never-seen' as const, config: {} };
    engine.evaluate({ deviceId: 'p1', type: 'heartbeat', receivedAt: Date.now(), source: 'mqtt' },
      { now: Date.now(), device, resident: null, openIncident: () => undefined });
    vi.advanceTimersByTime(1.5 * HOUR - 1);
    expect(fires).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(fires).toEqual([{ deviceId: 'p1', rule: 'supervision', key: 'late', gen: expect.any(Number) }]);
    const r = engine.runTimer(fires[0]!, { now: Date.now(), device: { ...device, supervision: 'ok' }, resident: null, openIncident: () => undefined });
    expect(r.state).toEqual({ supervision: 'late' });
    expect(engine.runTimer(fires[0]!, { now: Date.now(), device, resident: null, openIncident: () => undefined }).stale).toBe(true);
    engine.close();
  });

  it('the time zone defaults to the host’s offset', () => {
    const engine = createEngine({ kinds: KINDS, config: { supervision: SUPERVISION }, log: createLogger('silent'), onTimerDue: () => {} });
    expect(engine.settings.timeZoneOffsetMinutes).toBe(-new Date().getTimezoneOffset());
    engine.close();
  });
});
