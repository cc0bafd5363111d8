// Geofence per resident (circle or polygon). A locator fix outside → P2 'safe-zone-exit'; back inside → clear.
// Hysteresis: an exit needs the fix to be more than max(safeZoneHysteresisM, the fix's accuracy) outside the
// boundary; a return needs it inside the boundary. A walker along the fence, or GPS jitter of a few tens of metres,
// therefore makes one card, not one per fix. Only the inside→outside transition raises: if an operator resolves
// the card while the resident is still out, later fixes do not reopen it (the next exit after a return does).
// Without memory (after a restart) the open incident tells which side the resident was last on. A zone removed while
// she is out closes nothing: a person closes the card.
import { checkPosition, signedDistanceToZone } from '../geo.js';
import type { Rule } from './types.js';

export const SAFE_ZONE_EXIT = 'safe-zone-exit';

interface ZoneMemory {
  outside: boolean;
}

export const safeZoneRule: Rule<ZoneMemory> = {
  name: 'safe-zone',
  on: ['position'],
  evaluate(obs, ctx) {
    if (obs.type !== 'position') return undefined;
    const zone = ctx.resident?.safeZone;
    if (!zone) {
      // The zone was removed (or is being redrawn) while the resident was out: her card stays for a person to close.
      // Taking the fence away is not her coming home, and a steward may be out looking for her: a card closed at the
      // next fix would call the search off. A zone set again finds her side from the open card, as after a restart.
      return ctx.memory ? { memory: null } : undefined;
    }
    const fix = checkPosition(obs.position);
    if (!fix.ok) return undefined;
    const d = signedDistanceToZone(zone, fix.position);
    if (d === null) return undefined;
    // positions stream in: the incident is looked up only when memory is missing (start-up) or on a return
    const wasOutside = ctx.memory?.outside ?? ctx.openIncident(SAFE_ZONE_EXIT) !== undefined;
    const margin = Math.max(ctx.settings.safeZoneHysteresisM, fix.position.accuracy ?? 0);
    if (!wasOutside && d > margin) {
      return {
        alarms: [{
          action: 'raise',
          type: SAFE_ZONE_EXIT,
          priority: 'P2',
          rule: 'safe-zone',
          position: { ...fix.position, stale: false },
          data: { distanceOutsideM: Math.round(d), zone: zone.type },
        }],
        memory: { outside: true },
      };
    }
    if (wasOutside && d <= 0) {
      const open = ctx.openIncident(SAFE_ZONE_EXIT);
      return {
        ...(open && { alarms: [{ action: 'clear' as const, type: SAFE_ZONE_EXIT, rule: 'safe-zone', reason: 'back inside the safe zone' }] }),
        memory: { outside: false },
      };
    }
    // inside the band, or no change: keep the side we were on (and write memory down after a restart)
    return ctx.memory ? undefined : { memory: { outside: wasOutside } };
  },
};
