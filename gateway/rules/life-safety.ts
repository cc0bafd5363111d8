// Emergencies for a person (docs/design.md §3). Raised at once, whatever else is wrong with the message.
// - sos, panic, medical, fire, gas, smoke, pull-cord, call-request → P1
// - removed (a locator taken off the wrist) → P2: the resident may be without protection, not necessarily in danger
// - wander (a telecare unit's own "wanderer" alarm, Contact ID 732) → P2, like a safe-zone exit
// - bed-exit → P2 during the night hours (settings.nightStart..nightEnd, local time); by day P3, or no incident when
//   settings.bedExitDayPriority is 'none' (getting up from a nap is not an emergency, and a card per nap would teach
//   stewards to ignore the board)
// A restore (detector back to normal, cord reset) never closes a life-safety incident: a person closes it.
import type { AlarmAction, Observation, Priority } from '../../core/contracts.js';
import { inWindow, localMinuteOfDay, parseHhmm } from './settings.js';
import { alarmPosition } from './stale-position.js';
import type { Rule, RuleContext, RuleOutput } from './types.js';

export const P1_TYPES = ['sos', 'panic', 'medical', 'fire', 'gas', 'smoke', 'pull-cord', 'call-request'] as const;

export function isNight(ctx: Pick<RuleContext, 'now' | 'settings'>): boolean {
  const start = parseHhmm(ctx.settings.nightStart) ?? 22 * 60;
  const end = parseHhmm(ctx.settings.nightEnd) ?? 7 * 60;
  return inWindow(localMinuteOfDay(ctx.now, ctx.settings.timeZoneOffsetMinutes), start, end);
}

function raise(obs: Observation, ctx: RuleContext, priority: Priority, extra: Record<string, unknown> = {}): RuleOutput {
  const where = alarmPosition(obs, ctx);
  const alarm: AlarmAction = {
    action: 'raise',
    type: obs.type,
    priority,
    rule: 'life-safety',
    ...(where.position && { position: where.position }),
    data: { ...where.data, ...extra, ...(obs.flags && obs.flags.length > 0 ? { flags: obs.flags } : {}), ...(obs.detail && { detail: obs.detail }) },
  };
  return { alarms: [alarm] };
}

export const lifeSafetyRule: Rule = {
  name: 'life-safety',
  on: [...P1_TYPES, 'removed', 'wander', 'bed-exit'],
  evaluate(obs, ctx) {
    if (obs.restore) return { handled: `${obs.type} restore: a life-safety incident is closed by a person, not by the sensor` };
    if (obs.type === 'removed' || obs.type === 'wander') return raise(obs, ctx, 'P2');
    if (obs.type === 'bed-exit') {
      if (isNight(ctx)) return raise(obs, ctx, 'P2', { night: true });
      if (ctx.settings.bedExitDayPriority === 'none') return { handled: 'bed-exit outside night hours: recorded, no incident (bedExitDayPriority none)' };
      return raise(obs, ctx, 'P3', { night: false });
    }
    return raise(obs, ctx, 'P1');
  },
};
