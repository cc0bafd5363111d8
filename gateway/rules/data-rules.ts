// Rules declared as data in the configuration (core/config.ts DataRuleSchema), after ThingsBoard's alarm
// conditions, compiled once at start-up into ordinary Rules:
// - simple:    `field op value` holds on a matching observation → raise; a later matching observation where it
//              does not hold → clear. Raised on the transition only, so a threshold crossed on every heartbeat
//              makes one card.
// - duration:  it holds on every matching observation for forMs → raise when the time is up; it stops holding →
//              the timer is dropped (and a raised alarm cleared).
// - repeating: it held on `count` matching observations (within withinMs, if given) → raise; the count restarts.
//              Events, so never cleared by the rule.
// - absence:   no observation of type `on` for forMs → raise; the next one clears it. The timer is armed by any
//              observation of the device (restricted by `kinds`), so set `kinds` to those that send `on`.
// A field missing from an observation, or of another type, says nothing: it neither raises nor clears.
// Semantic errors (unknown observation type, unknown field, an ordering operator on a non-number, a name used
// twice or by a built-in rule) are collected and thrown as one ConfigError listing every problem.
import { Value } from '@sinclair/typebox/value';
import { DataRuleSchema, type DataRule } from '../../core/config.js';
import { DEVICE_KINDS, OBSERVATION_TYPES, type AlarmAction, type Observation, type ObservationType } from '../../core/contracts.js';
import { ConfigError } from '../../core/errors.js';
import type { Rule, RuleContext } from './types.js';

type FieldType = 'number' | 'string' | 'boolean';
type Fields = Record<string, FieldType>;

const COMMON: Fields = { seq: 'number', deviceTs: 'number', receivedAt: 'number', source: 'string', restore: 'boolean' };
const POSITION: Fields = { 'position.lat': 'number', 'position.lon': 'number', 'position.accuracy': 'number', 'position.at': 'number' };

/** The fields each observation type has (core/contracts.ts Observation), for checking rules against. */
export const OBSERVATION_FIELDS: Record<ObservationType, Fields> = {
  sos: POSITION, panic: POSITION, medical: POSITION, fire: POSITION, gas: POSITION, smoke: POSITION,
  'pull-cord': POSITION, 'bed-exit': POSITION, 'call-request': POSITION, removed: POSITION, wander: POSITION,
  fall: { confidence: 'number', ...POSITION },
  'no-movement': { seconds: 'number' },
  cancel: {}, 'check-in': {},
  heartbeat: { battery: 'number', signal: 'number', mains: 'boolean' },
  position: { ...POSITION, battery: 'number' },
  battery: { level: 'number' },
  signal: { level: 'number' },
  presence: { present: 'boolean' },
  'power-lost': {}, 'power-restored': {}, tamper: {}, 'device-fault': {}, 'comm-lost': {}, 'comm-restored': {}, test: {},
  supervision: { code: 'string' },
  status: { online: 'boolean' },
  'command-ack': { commandId: 'string', ok: 'boolean', error: 'string' },
  unknown: { code: 'string' },
  unreadable: { count: 'number', reason: 'string', topic: 'string' },
};

type Op = '<' | '<=' | '>' | '>=' | '==' | '!=';
type Value = number | string | boolean;

/** true / false, or undefined when the observation says nothing (field missing or of another type). */
function holds(op: Op, actual: unknown, expected: Value): boolean | undefined {
  if (actual === undefined || actual === null) return undefined;
  if (typeof actual !== typeof expected) return undefined;
  if (typeof actual === 'number' && !Number.isFinite(actual)) return undefined;
  switch (op) {
    case '==': return actual === expected;
    case '!=': return actual !== expected;
    case '<': return (actual as number) < (expected as number);
    case '<=': return (actual as number) <= (expected as number);
    case '>': return (actual as number) > (expected as number);
    case '>=': return (actual as number) >= (expected as number);
  }
}

function getter(path: string): (obs: Observation) => unknown {
  const parts = path.split('.');
  return (obs) => {
    let v: unknown = obs;
    for (const p of parts) {
      if (v === null || typeof v !== 'object') return undefined;
      v = (v as Record<string, unknown>)[p];
    }
    return v;
  };
}

function check(rule: DataRule, where: string, reserved: ReadonlySet<string>, seen: Set<string>): string[] {
  const problems: string[] = [];
  const structural = [...Value.Errors(DataRuleSchema, rule)];
  if (structural.length) return structural.map((e) => `${where}${e.path.replace(/\//g, '.')}: ${e.message} (got ${JSON.stringify(e.value)})`);
  if (reserved.has(rule.name)) problems.push(`${where}: the name "${rule.name}" is a built-in rule's; choose another`);
  if (seen.has(rule.name)) problems.push(`${where}: the name "${rule.name}" is used by an earlier rule; names must be unique`);
  seen.add(rule.name);
  const fields = (OBSERVATION_FIELDS as Record<string, Fields | undefined>)[rule.on];
  if (!fields) {
    problems.push(`${where}.on: unknown observation type "${rule.on}"; use one of: ${OBSERVATION_TYPES.join(', ')}`);
  }
  for (const kind of rule.kinds ?? []) {
    if (!(DEVICE_KINDS as readonly string[]).includes(kind)) {
      problems.push(`${where}.kinds: unknown device kind "${kind}"; use one of: ${DEVICE_KINDS.join(', ')}`);
    }
  }
  const c = rule.condition;
  if (c.type !== 'absence' && fields) {
    const all = { ...fields, ...COMMON };
    const type: FieldType | 'any' | undefined = c.field.startsWith('detail.') && c.field.length > 7 ? 'any' : all[c.field];
    if (!type) {
      problems.push(
        `${where}.condition.field: "${rule.on}" observations have no field "${c.field}"; ` +
          `they have: ${Object.keys(all).join(', ')} (or detail.<name> for transport detail)`,
      );
    } else {
      const ordering = c.op !== '==' && c.op !== '!=';
      if (ordering && typeof c.value !== 'number') {
        problems.push(`${where}.condition: "${c.op}" compares numbers; the value ${JSON.stringify(c.value)} is not one`);
      }
      if (type !== 'any' && typeof c.value !== type) {
        problems.push(`${where}.condition.value: "${c.field}" is a ${type}; ${JSON.stringify(c.value)} is not`);
      } else if (ordering && type !== 'any' && type !== 'number') {
        problems.push(`${where}.condition: "${c.field}" is a ${type}; "${c.op}" needs a number field`);
      }
    }
  }
  return problems;
}

function raise(rule: DataRule, data: Record<string, unknown>): AlarmAction {
  return { action: 'raise', type: rule.alarm, priority: rule.priority, rule: rule.name, data: { dataRule: rule.name, ...data } };
}

function clear(rule: DataRule, ctx: RuleContext, reason: string): AlarmAction[] | undefined {
  return ctx.openIncident(rule.alarm) ? [{ action: 'clear', type: rule.alarm, rule: rule.name, reason }] : undefined;
}

interface ActiveMemory {
  active: boolean;
}
interface RepeatMemory {
  times: number[];
}

function compileOne(rule: DataRule): Rule {
  const kinds = rule.kinds?.length ? new Set(rule.kinds) : undefined;
  const applies = (ctx: RuleContext) => !kinds || kinds.has(ctx.device.kind);
  const c = rule.condition;
  const wasActive = (ctx: RuleContext<ActiveMemory>) => ctx.memory?.active ?? ctx.openIncident(rule.alarm) !== undefined;

  if (c.type === 'absence') {
    const absence: Rule<ActiveMemory> = {
      name: rule.name,
      on: ['*'],
      timers: ['absent'],
      evaluate(obs, ctx) {
        if (!applies(ctx)) return undefined;
        if (obs.type === rule.on) {
          const alarms = wasActive(ctx) ? clear(rule, ctx, `${rule.on} received again`) : undefined;
          return { timers: [{ set: 'absent', inMs: c.forMs }], memory: null, ...(alarms && { alarms }) };
        }
        if (wasActive(ctx) || ctx.hasTimer('absent')) return undefined;
        return { timers: [{ set: 'absent', inMs: c.forMs }] };
      },
      onTimer(_key, ctx) {
        if (!applies(ctx)) return undefined;
        return { alarms: [raise(rule, { absentMs: c.forMs, of: rule.on })], memory: { active: true } };
      },
      restore(ctx) {
        // the time of the last `on` observation is not known here: give the device a whole window from now
        if (!applies(ctx) || ctx.device.lastSeen === null || ctx.openIncident(rule.alarm)) return undefined;
        return { timers: [{ set: 'absent', inMs: c.forMs }] };
      },
    };
    return absence as Rule;
  }

  const get = getter(c.field);
  const detail = (obs: Observation) => ({ field: c.field, op: c.op, value: c.value, actual: get(obs) });

  if (c.type === 'simple') {
    const simple: Rule<ActiveMemory> = {
      name: rule.name,
      on: [rule.on],
      evaluate(obs, ctx) {
        if (!applies(ctx)) return undefined;
        const ok = holds(c.op, get(obs), c.value);
        if (ok === undefined) return undefined;
        const active = wasActive(ctx);
        if (ok && !active) return { alarms: [raise(rule, detail(obs))], memory: { active: true } };
        if (!ok && active) {
          const alarms = clear(rule, ctx, `${c.field} ${c.op} ${JSON.stringify(c.value)} no longer holds`);
          return { memory: null, ...(alarms && { alarms }) };
        }
        return ctx.memory === undefined ? { memory: { active } } : undefined;
      },
    };
    return simple as Rule;
  }

  if (c.type === 'duration') {
    const duration: Rule<ActiveMemory> = {
      name: rule.name,
      on: [rule.on],
      timers: ['hold'],
      evaluate(obs, ctx) {
        if (!applies(ctx)) return undefined;
        const ok = holds(c.op, get(obs), c.value);
        if (ok === undefined) return undefined;
        const active = wasActive(ctx);
        if (ok) return active || ctx.hasTimer('hold') ? undefined : { timers: [{ set: 'hold', inMs: c.forMs }] };
        const alarms = active ? clear(rule, ctx, `${c.field} ${c.op} ${JSON.stringify(c.value)} no longer holds`) : undefined;
        return { timers: [{ clear: 'hold' }], memory: null, ...(alarms && { alarms }) };
      },
      onTimer(_key, ctx) {
        if (!applies(ctx)) return undefined;
        return { alarms: [raise(rule, { field: c.field, op: c.op, value: c.value, forMs: c.forMs })], memory: { active: true } };
      },
    };
    return duration as Rule;
  }

  // repeating
  const repeating: Rule<RepeatMemory> = {
    name: rule.name,
    on: [rule.on],
    evaluate(obs, ctx) {
      if (!applies(ctx)) return undefined;
      if (holds(c.op, get(obs), c.value) !== true) return undefined;
      const since = c.withinMs !== undefined ? ctx.now - c.withinMs : -Infinity;
      const times = (ctx.memory?.times ?? []).filter((t) => t > since);
      times.push(ctx.now);
      if (times.length >= c.count) {
        return { alarms: [raise(rule, { ...detail(obs), count: times.length, withinMs: c.withinMs ?? null })], memory: null };
      }
      return { memory: { times } };
    },
  };
  return repeating as Rule;
}

/**
 * Compile the configured data rules into Rules, in order. `reserved` are the names of the built-in rules.
 * Throws one ConfigError listing every problem found in every rule.
 */
export function compileDataRules(rules: readonly DataRule[], reserved: Iterable<string> = []): Rule[] {
  const reservedSet = new Set(reserved);
  const seen = new Set<string>();
  const problems: string[] = [];
  rules.forEach((r, i) => {
    const name = typeof (r as { name?: unknown }).name === 'string' ? ` (${r.name})` : '';
    problems.push(...check(r, `rules[${i}]${name}`, reservedSet, seen));
  });
  if (problems.length) throw new ConfigError(problems);
  return rules.map((r) => compileOne(r));
}

