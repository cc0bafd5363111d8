// The daily "I am fine": a resident with checkInBy 'HH:MM' who has not checked in on a local day by that time
// raises P2 'missed-check-in'. A check-in any time on a local day counts for that day's deadline; a late one
// clears the card (the resident said they are fine). Local time is settings.timeZoneOffsetMinutes.
// The service runs on the device the resident checks in with: it is armed by that device's first check-in, or by
// device config `checkIn: true` (commissioning), and re-armed at start-up from the last check-in in the history.
// A device that never checked in is not armed, so a resident's other devices do not raise missed check-ins.
import type { Rule, RuleContext } from './types.js';
import { atLocal, localDay, parseHhmm } from './settings.js';

export const MISSED_CHECK_IN = 'missed-check-in';

interface CheckInMemory {
  lastCheckInAt?: number;
  /** the checkInBy the pending timer was armed for (re-armed when the resident's setting changes) */
  armedFor?: string;
  /** epoch ms of the deadline the pending timer enforces */
  deadlineAt?: number;
}

/** The first deadline strictly after `after`. */
export function nextDeadline(after: number, minuteOfDay: number, tz: number): number {
  const day = localDay(after, tz);
  const d = atLocal(day, minuteOfDay, tz);
  return d > after ? d : atLocal(day + 1, minuteOfDay, tz);
}

function arm(ctx: RuleContext<CheckInMemory>, checkInBy: string, deadlineAt: number, last: number | undefined) {
  return {
    timers: [{ set: 'deadline', inMs: Math.max(0, deadlineAt - ctx.now) }],
    memory: { ...(last !== undefined && { lastCheckInAt: last }), armedFor: checkInBy, deadlineAt },
  };
}

export const checkInRule: Rule<CheckInMemory> = {
  name: 'check-in',
  on: ['*'],
  timers: ['deadline'],
  evaluate(obs, ctx) {
    const checkInBy = ctx.resident?.checkInBy ?? null;
    const by = parseHhmm(checkInBy);
    const tz = ctx.settings.timeZoneOffsetMinutes;
    if (by === null || checkInBy === null) {
      // no check-in service (any more): disarm
      return ctx.memory ? { timers: [{ clear: 'deadline' }], memory: null } : undefined;
    }
    const today = localDay(ctx.now, tz);
    if (obs.type === 'check-in') {
      const open = ctx.openIncident(MISSED_CHECK_IN);
      return {
        ...arm(ctx, checkInBy, atLocal(today + 1, by, tz), ctx.now),
        ...(open && { alarms: [{ action: 'clear' as const, type: MISSED_CHECK_IN, rule: 'check-in', reason: 'the resident checked in' }] }),
      };
    }
    const last = ctx.memory?.lastCheckInAt;
    const enabled = ctx.device.config.checkIn === true || last !== undefined;
    if (!enabled) return undefined;
    if (ctx.memory?.armedFor === checkInBy && ctx.hasTimer('deadline')) return undefined;
    // (re-)arming while running: never retroactively for a deadline already past
    const checkedToday = last !== undefined && localDay(last, tz) === today;
    const deadlineAt = checkedToday ? atLocal(today + 1, by, tz) : nextDeadline(ctx.now, by, tz);
    return arm(ctx, checkInBy, deadlineAt, last);
  },
  onTimer(key, ctx) {
    const checkInBy = ctx.resident?.checkInBy ?? null;
    const by = parseHhmm(checkInBy);
    if (key !== 'deadline' || by === null || checkInBy === null) return { memory: null };
    const tz = ctx.settings.timeZoneOffsetMinutes;
    const dueAt = ctx.memory?.deadlineAt ?? ctx.now;
    const dueDay = localDay(dueAt, tz);
    const last = ctx.memory?.lastCheckInAt;
    const checked = last !== undefined && localDay(last, tz) === dueDay;
    let next = atLocal(dueDay + 1, by, tz);
    if (next <= ctx.now) next = nextDeadline(ctx.now, by, tz);
    return {
      ...arm(ctx, checkInBy, next, last),
      ...(!checked && {
        alarms: [{
          action: 'raise' as const, type: MISSED_CHECK_IN, priority: 'P2' as const, rule: 'check-in',
          data: { checkInBy, dueAt, lastCheckInAt: last ?? null },
        }],
      }),
    };
  },
  restore(ctx, hints) {
    const checkInBy = ctx.resident?.checkInBy ?? null;
    const by = parseHhmm(checkInBy);
    const last = typeof hints.lastCheckInAt === 'number' ? hints.lastCheckInAt : ctx.memory?.lastCheckInAt;
    if (by === null || checkInBy === null || (ctx.device.config.checkIn !== true && last === undefined)) return undefined;
    const tz = ctx.settings.timeZoneOffsetMinutes;
    const today = localDay(ctx.now, tz);
    const todays = atLocal(today, by, tz);
    const checkedToday = last !== undefined && localDay(last, tz) === today;
    // today's deadline already enforced while running (a resync, not a start-up)
    const enforced = ctx.memory?.deadlineAt !== undefined && ctx.memory.deadlineAt > todays;
    // today's deadline passed while we were down and nobody checked in: raise now, unless it is already on the board
    const onBoard = todays <= ctx.now && ctx.openIncident(MISSED_CHECK_IN) !== undefined;
    const deadlineAt = checkedToday || enforced || onBoard ? atLocal(today + 1, by, tz) : todays;
    return arm(ctx, checkInBy, deadlineAt, last);
  },
};
