// Technical conditions → P3 (docs/design.md §3), each cleared by what ends it:
// - battery below the kind's lowBatteryPct → 'low-battery'; cleared at pct + lowBatteryHysteresisPct or above
//   (a level hovering at the threshold makes one card); raised once per episode, not once per heartbeat
// - power-lost (event, Contact ID 301, or a mains device's heartbeat with mains:false) → 'power-lost'; cleared by
//   power-restored, a restore, or a heartbeat with mains:true
// - tamper, device-fault, comm-lost, supervision (a panel's "fail to report", Contact ID 102/147/381) → raised P3
//   (comm-lost of a life-safety kind — receiver, Modbus panel, DC-09 hub — P2); cleared by their restore (and
//   comm-lost by comm-restored)
// - unknown (an unmapped Contact ID code) → 'unknown-event:<code>', one card per code, so that someone sees it and maps it
// - unreadable (the gateway refused frames from the device) → 'unreadable-messages', "terminal sends unreadable
//   messages": one card per device, later reports join it; a person closes it once the terminal was looked at
import type { AlarmAction, Observation } from '../../core/contracts.js';
import type { Rule, RuleContext, RuleOutput } from './types.js';

export const LOW_BATTERY = 'low-battery';
export const POWER_LOST = 'power-lost';
export const UNKNOWN_EVENT = 'unknown-event';
export const SUPERVISION_FAILURE = 'supervision-failure';
export const UNREADABLE_MESSAGES = 'unreadable-messages';

const RULE = 'technical';

function raise(type: string, obs: Observation, data: Record<string, unknown> = {}): RuleOutput {
  const alarm: AlarmAction = {
    action: 'raise', type, priority: 'P3', rule: RULE,
    data: { ...data, ...(obs.detail && { detail: obs.detail }), ...(obs.flags && obs.flags.length > 0 ? { flags: obs.flags } : {}) },
  };
  return { alarms: [alarm] };
}

function clear(ctx: RuleContext, type: string, reason: string): RuleOutput | undefined {
  return ctx.openIncident(type) ? { alarms: [{ action: 'clear', type, rule: RULE, reason }] } : undefined;
}

function batteryLevel(obs: Observation): number | undefined {
  const level = obs.type === 'battery' ? obs.level : obs.type === 'heartbeat' || obs.type === 'position' ? obs.battery : undefined;
  return typeof level === 'number' && Number.isFinite(level) ? level : undefined;
}

function battery(obs: Observation, ctx: RuleContext): RuleOutput | undefined {
  if (obs.type === 'battery' && obs.restore) return clear(ctx, LOW_BATTERY, 'battery restored');
  const level = batteryLevel(obs);
  if (level === undefined) return undefined;
  const pct = ctx.kind.lowBatteryPct;
  if (level < pct) return ctx.openIncident(LOW_BATTERY) ? undefined : raise(LOW_BATTERY, obs, { level, thresholdPct: pct });
  const clearAt = pct + ctx.settings.lowBatteryHysteresisPct;
  // every heartbeat carries a level: look the card up only when the previous level could have left one open
  const prev = ctx.device.battery;
  if (level >= clearAt && (prev === null || prev < clearAt)) return clear(ctx, LOW_BATTERY, `battery at ${level} %`);
  return undefined;
}

function mains(obs: Observation, ctx: RuleContext): RuleOutput | undefined {
  if (obs.type !== 'heartbeat' || typeof obs.mains !== 'boolean' || ctx.device.power !== 'mains') return undefined;
  if (!obs.mains) return ctx.openIncident(POWER_LOST) ? undefined : raise(POWER_LOST, obs, { source: 'heartbeat' });
  // mains present, as last time: nothing can be open (a lookup per heartbeat would be wasted)
  if (ctx.device.mains === true) return undefined;
  return clear(ctx, POWER_LOST, 'mains present again (heartbeat)');
}

function merge(a: RuleOutput | undefined, b: RuleOutput | undefined): RuleOutput | undefined {
  if (!a) return b;
  if (!b) return a;
  return { alarms: [...(a.alarms ?? []), ...(b.alarms ?? [])] };
}

/** The P3 an event raises, and what restore clears it. */
const RAISES: Record<string, string> = {
  'power-lost': POWER_LOST,
  tamper: 'tamper',
  'device-fault': 'device-fault',
  'comm-lost': 'comm-lost',
  supervision: SUPERVISION_FAILURE,
};

export const technicalRule: Rule = {
  name: 'technical',
  on: ['battery', 'heartbeat', 'position', ...Object.keys(RAISES), 'power-restored', 'comm-restored', 'unknown', 'unreadable'],
  evaluate(obs, ctx) {
    switch (obs.type) {
      case 'battery':
        return battery(obs, ctx);
      case 'heartbeat':
        return merge(battery(obs, ctx), mains(obs, ctx));
      case 'position':
        return battery(obs, ctx);
      case 'power-restored':
        return clear(ctx, POWER_LOST, 'power restored');
      case 'comm-restored':
        return clear(ctx, 'comm-lost', 'communication restored');
      case 'unknown':
        // one card per code (`unknown-event:732`): each unmapped code is its own question for whoever maps codes
        return raise(`${UNKNOWN_EVENT}:${obs.code}`, obs, { code: obs.code, ...(obs.restore && { restore: true }) });
      case 'unreadable':
        return raise(UNREADABLE_MESSAGES, obs, {
          title: 'terminal sends unreadable messages', refused: obs.count, reason: obs.reason,
          ...(obs.topic !== undefined && { topic: obs.topic }),
        });
      default: {
        const type = RAISES[obs.type];
        if (!type) return undefined;
        if (obs.restore) return clear(ctx, type, `${obs.type} restored`);
        const out = raise(type, obs, obs.type === 'supervision' && obs.code !== undefined ? { code: obs.code } : {});
        // a lost link to a life-safety device (a receiver, a pull-cord panel, a telecare hub) leaves residents as
        // unprotected as a dead fall sensor: P2, as supervision's offline is for those kinds
        if (obs.type === 'comm-lost' && ctx.kind.lifeSafetySensor) (out.alarms![0] as { priority: string }).priority = 'P2';
        return out;
      }
    }
  },
};
