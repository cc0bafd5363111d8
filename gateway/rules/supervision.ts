// Supervision (docs/design.md §3): a device silent for interval × lateFactor is 'late' (state only: one missed heartbeat
// is routine on a cellular link); for interval × offlineFactor it is 'offline', an incident: P2 for life-safety
// sensors (a dead fall sensor is a resident without protection), P3 for the rest. Back online clears it.
//
// The interval: device config `heartbeatMs` if set (a DC-09 panel: else its `pollIntervalS`), else the kind's —
// `mainsHeartbeatMs` for mains-powered devices (they can afford to report often, so they are held to a shorter
// interval) — scaled by supervision.intervalScale.
//
// A Last Will (`status {online:false}`) counts as a drop for flap damping but does not start an offline incident
// by itself: a Will fires on every TCP reset (cell handover, NAT timeout) and most devices are back within seconds;
// the interval already bounds how long a dead device goes unnoticed, and a Will cannot shorten it reliably because
// a device that loses power often sends none. So supervision waits for the interval either way.
//
// Flap damping: a device with more than flapCount drops within flapWindowMs keeps its offline card open when it
// comes back (the next drop joins the same card, it does not open a new one) until it has stayed up for a whole
// flapWindowMs ('stable' timer); then the card is cleared.
//
// A path supervised by its protocol (a DC-09 panel: its NULL polls, gateway/protocols/dc09/supervision.ts) gets one
// card for one fault: the protocol's `comm-lost` (EN 50136 reporting path, per account, cleared by the next poll).
// Supervision still keeps the device's state (late / offline, from the panel's own `pollIntervalS`) but raises no
// `offline` card of its own for it; an offline card left open from before is still cleared when the device is back.
//
// Start-up grace: after a gateway outage every device was silent for as long as the gateway was down, through no
// fault of its own, and a fleet on long reconnect back-off comes back over minutes. So at start-up no device is
// called offline before max(supervision.startupGraceMs, its interval) from the restart; one that speaks within it
// never is. (The 'late' state still shows at once: it opens nothing.)
import type { Observation } from '../../core/contracts.js';
import type { Rule, RuleContext, RuleOutput, TimerRequest } from './types.js';

export const OFFLINE = 'offline';

/** kinds whose protocol supervises the reporting path and raises its own card (comm-lost): no second card here */
const PATH_SUPERVISED_KINDS: ReadonlySet<string> = new Set(['dc09']);

interface SupervisionMemory {
  /** times of recent drops (Last Will, or offline by timer), oldest first, within flapWindowMs */
  drops: number[];
  /** a drop has been counted since the device was last heard from (one outage counts once) */
  down: boolean;
}

/** The supervision interval of this device, ms (already scaled). */
export function supervisionIntervalMs(ctx: Pick<RuleContext, 'device' | 'kind' | 'settings'>): number {
  // a DC-09 panel polls at its own interval (device config pollIntervalS, as the DC-09 supervisor reads it)
  const poll = ctx.kind.kind === 'dc09' ? ctx.device.config.pollIntervalS : undefined;
  const own = ctx.device.config.heartbeatMs ?? (typeof poll === 'number' && Number.isFinite(poll) && poll > 0 ? poll * 1000 : undefined);
  const base =
    typeof own === 'number' && Number.isFinite(own) && own > 0
      ? own
      : ctx.device.power === 'mains'
        ? (ctx.kind.mainsHeartbeatMs ?? ctx.kind.heartbeatMs)
        : ctx.kind.heartbeatMs;
  return base * ctx.settings.supervision.intervalScale;
}

/** After a start-up: how long before a device may be called offline, ms (at least one supervision interval). */
export function startupGraceMs(ctx: Pick<RuleContext, 'device' | 'kind' | 'settings'>): number {
  return Math.max(ctx.settings.supervision.startupGraceMs ?? 0, supervisionIntervalMs(ctx));
}

function limits(ctx: RuleContext): { intervalMs: number; lateMs: number; offlineMs: number } {
  const intervalMs = supervisionIntervalMs(ctx);
  const { lateFactor, offlineFactor } = ctx.settings.supervision;
  const lateMs = intervalMs * lateFactor;
  return { intervalMs, lateMs, offlineMs: Math.max(lateMs, intervalMs * offlineFactor) };
}

/** Whether an observation shows the device itself is alive. A Will, a lost link or a gateway-made one does not. */
export function isProofOfLife(obs: Observation): boolean {
  if (obs.source === 'gateway') return false;
  if (obs.type === 'status') return obs.online;
  return obs.type !== 'comm-lost';
}

function recordDrop(ctx: RuleContext<SupervisionMemory>): SupervisionMemory {
  const windowStart = ctx.now - ctx.settings.supervision.flapWindowMs;
  const prev = ctx.memory;
  if (prev?.down) return prev;
  const drops = (prev?.drops ?? []).filter((t) => t > windowStart);
  drops.push(ctx.now);
  // more than flapCount+1 entries never changes the verdict
  while (drops.length > ctx.settings.supervision.flapCount + 1) drops.shift();
  return { drops, down: true };
}

function isFlapping(ctx: RuleContext<SupervisionMemory>, mem: SupervisionMemory | undefined): boolean {
  const windowStart = ctx.now - ctx.settings.supervision.flapWindowMs;
  return (mem?.drops.filter((t) => t > windowStart).length ?? 0) > ctx.settings.supervision.flapCount;
}

function clearOffline(reason: string): RuleOutput<SupervisionMemory> {
  return { alarms: [{ action: 'clear', type: OFFLINE, rule: 'supervision', reason }] };
}

export const supervisionRule: Rule<SupervisionMemory> = {
  name: 'supervision',
  on: ['*'],
  timers: ['late', 'offline', 'stable'],
  evaluate(obs, ctx) {
    // Not proof of life: supervision stays what it was. Said explicitly, so that an ingest folding every
    // observation into the state as "seen, ok" does not turn an offline device 'ok' on its Last Will.
    const keep = ctx.device.supervision !== 'ok' ? { state: { supervision: ctx.device.supervision } } : {};
    if (obs.type === 'status' && !obs.online) return { memory: recordDrop(ctx), ...keep };
    if (!isProofOfLife(obs)) return ctx.device.supervision !== 'ok' ? keep : undefined;
    const out: RuleOutput<SupervisionMemory> = {
      timers: [{ set: 'late', inMs: limits(ctx).lateMs }, { clear: 'offline' }],
    };
    if (ctx.device.supervision !== 'ok') out.state = { supervision: 'ok' };
    const mem = ctx.memory;
    if (mem) {
      const windowStart = ctx.now - ctx.settings.supervision.flapWindowMs;
      const drops = mem.drops.filter((t) => t > windowStart);
      // keep per-device memory only while it matters (100k devices: small objects, and few of them)
      if (mem.down || drops.length !== mem.drops.length) out.memory = drops.length ? { drops, down: false } : null;
    }
    // only a device that was not 'ok' can have an offline card to clear; heartbeats of healthy devices stop above
    if (ctx.device.supervision === 'offline' || ctx.device.supervision === 'late') {
      const open = ctx.openIncident(OFFLINE);
      if (open) {
        if (isFlapping(ctx, mem)) {
          if (!ctx.hasTimer('stable')) out.timers!.push({ set: 'stable', inMs: ctx.settings.supervision.flapWindowMs });
        } else {
          Object.assign(out, clearOffline('device back online'));
          out.timers!.push({ clear: 'stable' });
        }
      }
    }
    return out;
  },
  onTimer(key, ctx) {
    const { intervalMs, lateMs, offlineMs } = limits(ctx);
    if (key === 'late') {
      // the rest of the ladder on the monotonic clock, never from lastSeen: a wall-clock step must not shorten it.
      // A device already late when its timers were restored got its 'offline' timer from restore: it stands.
      if (ctx.hasTimer('offline')) return { state: { supervision: 'late' } };
      return { state: { supervision: 'late' }, timers: [{ set: 'offline', inMs: offlineMs - lateMs }] };
    }
    if (key === 'offline') {
      const memory = recordDrop(ctx);
      const flapping = isFlapping(ctx, memory);
      if (PATH_SUPERVISED_KINDS.has(ctx.kind.kind)) return { state: { supervision: 'offline' }, timers: [{ clear: 'stable' }], memory };
      return {
        state: { supervision: 'offline' },
        timers: [{ clear: 'stable' }],
        memory,
        alarms: [{
          action: 'raise',
          type: OFFLINE,
          priority: ctx.kind.lifeSafetySensor ? 'P2' : 'P3',
          rule: 'supervision',
          data: {
            intervalMs,
            lastSeen: ctx.device.lastSeen,
            silentMs: ctx.device.lastSeen !== null ? ctx.now - ctx.device.lastSeen : null,
            power: ctx.device.power,
            ...(flapping && { flapping: true }),
          },
        }],
      };
    }
    if (key === 'stable') {
      if (ctx.device.supervision !== 'ok' || !ctx.openIncident(OFFLINE)) return undefined;
      return { ...clearOffline(`stable again: no drop for ${Math.round(ctx.settings.supervision.flapWindowMs / 1000)} s after flapping`), memory: null };
    }
    return undefined;
  },
  restore(ctx, hints) {
    const lastSeen = ctx.device.lastSeen;
    if (lastSeen === null) return undefined; // never seen: nothing to supervise yet
    const open = ctx.openIncident(OFFLINE);
    // offline already and on the board (or resolved by a person): wait for the device to speak
    if (ctx.device.supervision === 'offline') return undefined;
    const { lateMs, offlineMs } = limits(ctx);
    const silent = ctx.now - lastSeen;
    const graceMs = hints.startup ? startupGraceMs(ctx) : 0;
    const offlineIn = offlineMs - silent;
    let timers: TimerRequest[];
    if (offlineIn <= 0 && graceMs === 0) {
      timers = [{ set: 'offline', inMs: 0 }];
    } else if (silent >= lateMs || offlineIn < graceMs) {
      // late already (or offline inside the grace): both timers from lastSeen, 'offline' never within the grace
      timers = [{ set: 'late', inMs: Math.max(0, lateMs - silent) }, { set: 'offline', inMs: Math.max(offlineIn, graceMs) }];
    } else {
      timers = [{ set: 'late', inMs: lateMs - silent }, { clear: 'offline' }];
    }
    // an offline card left open for a device that is up again (memory of its flapping lost in the restart)
    if (open) timers.push({ set: 'stable', inMs: ctx.settings.supervision.flapWindowMs });
    return { timers };
  },
};
