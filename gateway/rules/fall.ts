// A fall is P1 at once, shown with its cancel window (device config `cancelWindowMs`, else the kind's, else the
// default setting). A `cancel` inside the window cancels the incident "cancelled by resident"; after it, the cancel
// is passed on with a reason saying so and the incident service only notes it: by then help may be on its way,
// and a late press can as well be a confused one.
// The window is anchored at the first fall of the open incident: a second fall joins the card and must not give
// a late cancel a fresh window.
import type { AlarmAction } from '../../core/contracts.js';
import { alarmPosition } from './stale-position.js';
import type { Rule, RuleContext } from './types.js';

export const CANCELLED_BY_RESIDENT = 'cancelled by resident';
export const CANCEL_AFTER_WINDOW = 'cancel after the window: noted, the incident stays open';

interface FallMemory {
  fallAt: number;
  windowMs: number;
}

export function cancelWindowMs(ctx: Pick<RuleContext, 'device' | 'kind' | 'settings'>): number {
  const own = ctx.device.config.cancelWindowMs;
  if (typeof own === 'number' && Number.isFinite(own) && own >= 0) return own;
  return ctx.kind.cancelWindowMs ?? ctx.settings.defaultCancelWindowMs;
}

export const fallRule: Rule<FallMemory> = {
  name: 'fall',
  on: ['fall', 'cancel'],
  evaluate(obs, ctx) {
    const open = ctx.openIncident('fall');
    if (obs.type === 'fall') {
      if (obs.restore) return { handled: 'fall restore: a fall incident is closed by a person or a cancel' };
      const keep = open && ctx.memory ? ctx.memory : undefined;
      const windowMs = keep?.windowMs ?? cancelWindowMs(ctx);
      // gateway receive times, as the incident service measures them, so both agree on which side of the window
      const fallAt = keep?.fallAt ?? obs.receivedAt;
      const where = alarmPosition(obs, ctx);
      const confidence = typeof obs.confidence === 'number' && Number.isFinite(obs.confidence) ? obs.confidence : undefined;
      const alarm: AlarmAction = {
        action: 'raise',
        type: 'fall',
        priority: 'P1',
        rule: 'fall',
        cancelWindowMs: windowMs,
        ...(where.position && { position: where.position }),
        data: {
          ...where.data,
          cancelUntil: fallAt + windowMs,
          ...(confidence !== undefined ? { confidence } : {}),
          ...(obs.flags && obs.flags.length > 0 ? { flags: obs.flags } : {}),
        },
      };
      return { alarms: [alarm], memory: { fallAt, windowMs } };
    }
    // cancel
    if (!open) return { memory: null };
    const fallAt = ctx.memory?.fallAt ?? open.openedAt;
    const windowMs = ctx.memory?.windowMs ?? cancelWindowMs(ctx);
    const inside = obs.receivedAt - fallAt <= windowMs;
    return {
      alarms: [{ action: 'cancel', type: 'fall', rule: 'fall', reason: inside ? CANCELLED_BY_RESIDENT : CANCEL_AFTER_WINDOW }],
      memory: inside ? null : { fallAt, windowMs },
    };
  },
};
