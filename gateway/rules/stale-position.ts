// Where to send help. An SOS or a fall without a usable fix is never held back for want of one (docs/design.md §3): it
// is raised with the best position there is, marked stale when it is not from this message. In order: this
// message's fix; the device's last known fix (stale, with its age); the resident's home (stale; call phones have
// no GPS, and home is where they are); none, said so in the alarm's data.
import type { Observation, Position } from '../../core/contracts.js';
import { checkPosition } from '../geo.js';
import type { RuleContext } from './types.js';

export interface AlarmPosition {
  position?: Position;
  data: {
    positionSource: 'message' | 'last-known' | 'home' | 'none';
    /** why this message's own fix was not used, when it was not */
    positionProblem?: string;
    /** age of a last-known fix at the time of the alarm, ms */
    positionAgeMs?: number;
  };
}

export function alarmPosition(obs: Observation, ctx: Pick<RuleContext, 'now' | 'device' | 'resident'>): AlarmPosition {
  const own = checkPosition((obs as { position?: unknown }).position);
  if (own.ok) return { position: { ...own.position, stale: false }, data: { positionSource: 'message' } };
  const positionProblem = own.problem;
  const last = checkPosition(ctx.device.lastPosition);
  if (last.ok) {
    const age = last.position.at !== undefined ? Math.max(0, ctx.now - last.position.at) : undefined;
    return {
      position: { ...last.position, stale: true, source: 'last-known' },
      data: { positionSource: 'last-known', positionProblem, ...(age !== undefined && { positionAgeMs: age }) },
    };
  }
  const home = checkPosition(ctx.resident?.home);
  if (home.ok) {
    return { position: { lat: home.position.lat, lon: home.position.lon, stale: true, source: 'home' }, data: { positionSource: 'home', positionProblem } };
  }
  return { data: { positionSource: 'none', positionProblem } };
}
