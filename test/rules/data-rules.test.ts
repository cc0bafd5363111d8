import { describe, expect, it } from 'vitest';
import type { DataRule } from '../../core/config.js';
import { ConfigError } from '../../core/errors.js';
import { compileDataRules } from '../../gateway/rules/data-rules.js';
import { builtinRules, defaultRules } from '../../gateway/rules/index.js';
import { MIN, World } from './harness.js';

const rule = (r: Partial<DataRule> & Pick<DataRule, 'condition'>): DataRule =>
  ({ name: 'r', on: 'heartbeat', alarm: 'weak-signal', priority: 'P3', ...r }) as DataRule;

function world(dataRules: DataRule[]) {
  const w = new World({ dataRules });
  w.device('p1', { kind: 'call-phone', config: { heartbeatMs: 24 * 3600_000 } });
  w.device('f1', { kind: 'fall-sensor', config: { heartbeatMs: 24 * 3600_000 } });
  return w;
}
const alarmsOf = (w: World, type: string) => w.applied.filter((a) => a.alarm.type === type).map((a) => a.alarm.action);

describe('data rules', () => {
  it('simple: raised when the condition starts to hold, cleared when a matching observation says it no longer does', () => {
    const w = world([rule({ name: 'weak', condition: { type: 'simple', field: 'signal', op: '<', value: 10 } })]);
    w.send('p1', { type: 'heartbeat', signal: 20 });
    w.send('p1', { type: 'heartbeat', signal: 5 });
    w.send('p1', { type: 'heartbeat', signal: 4 }); // still holds: no second raise
    w.send('p1', { type: 'heartbeat' }); // says nothing about signal: neither
    expect(alarmsOf(w, 'weak-signal')).toEqual(['raise']);
    expect(w.openIncident('p1', 'weak-signal')).toMatchObject({ priority: 'P3', data: expect.objectContaining({ dataRule: 'weak', actual: 5 }) });
    w.send('p1', { type: 'heartbeat', signal: 30 });
    expect(alarmsOf(w, 'weak-signal')).toEqual(['raise', 'clear']);
  });

  it('duration: holds for forMs on every matching observation → raised when the time is up; broken → timer dropped', () => {
    const w = world([rule({ name: 'weak-long', condition: { type: 'duration', field: 'signal', op: '<', value: 10, forMs: 10 * MIN } })]);
    w.send('p1', { type: 'heartbeat', signal: 5 });
    w.advance(5 * MIN);
    w.send('p1', { type: 'heartbeat', signal: 50 }); // broken
    w.advance(10 * MIN);
    expect(alarmsOf(w, 'weak-signal')).toEqual([]);
    w.send('p1', { type: 'heartbeat', signal: 5 });
    w.advance(5 * MIN);
    w.send('p1', { type: 'heartbeat', signal: 3 }); // still holding: the first timer stands
    w.advance(5 * MIN);
    expect(alarmsOf(w, 'weak-signal')).toEqual(['raise']);
    expect(w.openIncident('p1', 'weak-signal')?.data).toMatchObject({ forMs: 10 * MIN });
    w.send('p1', { type: 'heartbeat', signal: 40 });
    expect(alarmsOf(w, 'weak-signal')).toEqual(['raise', 'clear']);
  });

  it('repeating: count matching observations within withinMs → raised, and the count restarts', () => {
    const w = world([rule({
      name: 'shaky', on: 'fall', alarm: 'repeated-falls', priority: 'P2',
      condition: { type: 'repeating', field: 'confidence', op: '>=', value: 0.5, count: 3, withinMs: 10 * MIN },
    })]);
    w.send('f1', { type: 'fall', confidence: 0.9 });
    w.advance(11 * MIN);
    w.send('f1', { type: 'fall', confidence: 0.9 });
    w.send('f1', { type: 'fall', confidence: 0.2 }); // does not count
    w.advance(MIN);
    w.send('f1', { type: 'fall', confidence: 0.7 });
    expect(alarmsOf(w, 'repeated-falls')).toEqual([]); // the first fell out of the window
    w.send('f1', { type: 'fall', confidence: 0.6 });
    expect(alarmsOf(w, 'repeated-falls')).toEqual(['raise']);
    expect(w.openIncident('f1', 'repeated-falls')).toMatchObject({ priority: 'P2', data: expect.objectContaining({ count: 3 }) });
    // and the fall itself was still raised P1 by the built-in rule each time
    expect(w.incidents.find((i) => i.type === 'fall')).toMatchObject({ priority: 'P1', count: 5 });
  });

  it('absence: no observation of that type for forMs → raised; the next one clears it; kinds restrict it', () => {
    const w = world([rule({ name: 'quiet-room', on: 'presence', kinds: ['fall-sensor'], alarm: 'no-presence', priority: 'P2', condition: { type: 'absence', forMs: 30 * MIN } })]);
    w.send('f1', { type: 'presence', present: true });
    w.send('p1', { type: 'heartbeat' }); // a call-phone: not a kind this rule looks at
    w.advance(20 * MIN);
    w.send('f1', { type: 'heartbeat' }); // other observations do not reset the absence timer
    w.advance(10 * MIN);
    expect(w.applied.filter((a) => a.alarm.type === 'no-presence').map((a) => [a.deviceId, a.alarm.action])).toEqual([['f1', 'raise']]);
    w.advance(60 * MIN);
    expect(alarmsOf(w, 'no-presence')).toEqual(['raise']); // not re-raised while absent
    w.send('f1', { type: 'presence', present: true });
    expect(alarmsOf(w, 'no-presence')).toEqual(['raise', 'clear']);
  });

  it('a transport detail field (detail.<name>) can be matched', () => {
    const w = world([rule({ name: 'zone-9', on: 'unknown', alarm: 'zone-9-event', condition: { type: 'simple', field: 'detail.zone', op: '==', value: '009' } })]);
    w.device('rx', { kind: 'receiver' });
    w.send('rx', { type: 'unknown', code: '999', detail: { zone: '009' } });
    expect(alarmsOf(w, 'zone-9-event')).toEqual(['raise']);
  });

  it('semantic errors are all listed in one ConfigError', () => {
    const bad = [
      rule({ name: 'a', on: 'heartbeet', condition: { type: 'simple', field: 'signal', op: '<', value: 1 } }),
      rule({ name: 'b', on: 'battery', condition: { type: 'simple', field: 'lvl', op: '<', value: 1 } }),
      rule({ name: 'c', on: 'status', condition: { type: 'simple', field: 'online', op: '<', value: 1 } }),
      rule({ name: 'd', on: 'battery', condition: { type: 'duration', field: 'level', op: '==', value: 'low', forMs: 10 } }),
      rule({ name: 'd', on: 'battery', kinds: ['toaster'], condition: { type: 'absence', forMs: 10 } }),
      rule({ name: 'supervision', condition: { type: 'absence', forMs: 10 } }),
      { name: 'e', on: 'battery', alarm: 'x', priority: 'P9', condition: { type: 'absence', forMs: 10 } } as unknown as DataRule,
    ];
    let err: unknown;
    try {
      defaultRules(bad);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const problems = (err as ConfigError).problems;
    expect(problems).toEqual([
      expect.stringMatching(/^rules\[0\] \(a\)\.on: unknown observation type "heartbeet"/),
      expect.stringMatching(/^rules\[1\] \(b\)\.condition\.field: "battery" observations have no field "lvl"; they have: level/),
      expect.stringMatching(/^rules\[2\] \(c\)\.condition\.value: "online" is a boolean; 1 is not/),
      expect.stringMatching(/^rules\[3\] \(d\)\.condition\.value: "level" is a number; "low" is not/),
      expect.stringMatching(/^rules\[4\] \(d\): the name "d" is used by an earlier rule/),
      expect.stringMatching(/^rules\[4\] \(d\)\.kinds: unknown device kind "toaster"/),
      expect.stringMatching(/^rules\[5\] \(supervision\): the name "supervision" is a built-in rule's/),
      expect.stringMatching(/^rules\[6\] \(e\)\.priority: .*\(got "P9"\)/),
    ]);
    expect((err as ConfigError).message).toContain('8 problem(s)');
  });

  it('valid rules compile, in order, after the built-in ones', () => {
    const rules = defaultRules([
      rule({ name: 'x1', condition: { type: 'simple', field: 'battery', op: '<=', value: 5 } }),
      rule({ name: 'x2', condition: { type: 'absence', forMs: 1000 } }),
    ]);
    expect(rules.map((r) => r.name)).toEqual([...builtinRules.map((r) => r.name), 'x1', 'x2']);
    expect(compileDataRules([])).toEqual([]);
  });
});
