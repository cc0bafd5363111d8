// No movement for longer than the resident's noMovementSeconds → P2 'no-movement'.
// Presence and activity observations re-arm an 'idle' timer; its expiry raises. A device that reports no-movement
// itself (a radar's own inactivity detector) raises at once. The timer is per device, armed only by devices that
// report presence or activity (radars, buttons), and only for a device bound to a resident.
// Movement again does not clear the card: a resident silent for twelve hours who moves again may be crawling to the
// phone; a person calls and resolves it.
import type { Rule } from './types.js';

export const NO_MOVEMENT = 'no-movement';
/** observations that show someone moved near the device */
export const ACTIVITY_TYPES = ['presence', 'cancel', 'check-in', 'sos', 'call-request', 'pull-cord', 'bed-exit'] as const;

function limitMs(ctx: { resident: { noMovementSeconds: number | null } | null; settings: { noMovementDefaultSeconds: number } }): number {
  const s = ctx.resident?.noMovementSeconds;
  return (typeof s === 'number' && Number.isFinite(s) && s > 0 ? s : ctx.settings.noMovementDefaultSeconds) * 1000;
}

export const noMovementRule: Rule = {
  name: 'no-movement',
  on: [...ACTIVITY_TYPES, NO_MOVEMENT],
  timers: ['idle'],
  evaluate(obs, ctx) {
    if (obs.type === 'no-movement') {
      if (obs.restore) return { handled: 'no-movement restore: closed by a person' };
      const seconds = typeof obs.seconds === 'number' && Number.isFinite(obs.seconds) ? obs.seconds : undefined;
      return {
        alarms: [{
          action: 'raise', type: NO_MOVEMENT, priority: 'P2', rule: 'no-movement',
          data: { source: 'device', ...(seconds !== undefined ? { seconds } : {}) },
        }],
      };
    }
    if (!ctx.resident) return undefined;
    return { timers: [{ set: 'idle', inMs: limitMs(ctx) }] };
  },
  onTimer(key, ctx) {
    if (key !== 'idle' || !ctx.resident) return undefined;
    return {
      alarms: [{
        action: 'raise', type: NO_MOVEMENT, priority: 'P2', rule: 'no-movement',
        data: { source: 'gateway', seconds: limitMs(ctx) / 1000 },
      }],
    };
  },
  restore(ctx, hints) {
    if (!ctx.resident || typeof hints.lastActivityAt !== 'number') return undefined;
    const inMs = hints.lastActivityAt + limitMs(ctx) - ctx.now;
    // overdue and already on the board: do not count it twice
    if (inMs <= 0 && ctx.openIncident(NO_MOVEMENT)) return undefined;
    return { timers: [{ set: 'idle', inMs: Math.max(0, inMs) }] };
  },
};
