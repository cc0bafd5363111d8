// The rules engine: runs the rules in order over each observation of a device, keeps their timers and per-device
// memory, and hands back the alarms for the incident service. Ingest calls it one device at a time, in order.
//
// Timers and ordering: when a rule's timer comes due the engine does not evaluate it on the spot — the device may
// have an observation in flight that changes the answer (a heartbeat that arrived just before the offline
// deadline). It calls onTimerDue(fire); ingest queues the fire behind that device's observations and, at its turn,
// calls runTimer(fire, input) with the device's current state. A fire whose timer was set again or cleared in the
// meantime is stale and does nothing.
//
// Belt and braces: a rule that throws is logged and skipped, never stopping the others; and a life-safety
// observation that no rule turned into an alarm (nor explicitly handled) is raised P1 by the engine itself.
import type { AlarmAction, Observation } from '../core/contracts.js';
import { isLifeSafety } from '../core/contracts.js';
import type { Config, DataRule } from '../core/config.js';
import { ConfigError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { defaultRules } from './rules/index.js';
import { resolveRuleSettings, type RuleSettings } from './rules/settings.js';
import { alarmPosition } from './rules/stale-position.js';
import type {
  DeviceStatePatch,
  DeviceView,
  EngineSettings,
  KindInfo,
  OpenIncidentView,
  ResidentView,
  RestoreHints,
  Rule,
  RuleContext,
  RuleOutput,
  TimerRequest,
} from './rules/types.js';
import { TimerQueue, type Clock, type TimerEntry } from './timers.js';

/** What ingest supplies for one evaluation: the device as it is before this observation is applied. */
export interface EvaluateInput {
  /** gateway wall clock, epoch ms (Date.now() when processing) */
  now: number;
  device: DeviceView;
  resident: ResidentView | null;
  /** the device's not-yet-closed incident of this type, including alarms applied earlier in the same transaction */
  openIncident(type: string): OpenIncidentView | undefined;
  /**
   * Whose rule memory and timers these are, when not the device's own: an alarm receiver's unknown account
   * (`subjectOf(deviceId, account)`). Each unknown panel behind a receiver has its own, as it has its own cards: one
   * panel's fall must not set the cancel window another's cancel is measured by.
   */
  subject?: string;
}

/** The rules' memory key of an alarm receiver's unknown account (EvaluateInput.subject). */
export const subjectOf = (deviceId: string, account: string): string => `${deviceId}\u0000${account}`;
/** The receiver whose unknown account a memory key is (subjectOf), or undefined for a device's own key. */
const receiverOfSubject = (key: string): string | undefined => {
  const cut = key.indexOf('\u0000');
  return cut > 0 ? key.slice(0, cut) : undefined;
};

export interface RestoreInput extends EvaluateInput {
  hints?: RestoreHints;
}

/** A rule timer that came due; pass it back to runTimer in the device's order. */
export interface TimerFire {
  deviceId: string;
  rule: string;
  key: string;
  /** generation of the timer when it fired (a re-set or clear since makes the fire stale) */
  gen: number;
}

export type AppliedTimer = { rule: string; key: string; inMs: number } | { rule: string; key: string; clear: true };

export interface EvaluateResult {
  /** in rule order; apply them in this order */
  alarms: AlarmAction[];
  /** the timer changes already applied (for logs and tests) */
  timers: AppliedTimer[];
  /** device state changes to persist after ingest's own (supervision) */
  state: DeviceStatePatch;
  /** wall clock when the rules had run, epoch ms: the incident's `ruleEvaluated` stamp */
  evaluatedAt: number;
  /** rules that threw (logged); the others still ran */
  errors: { rule: string; message: string }[];
  /** the engine raised a life-safety observation P1 itself because no rule did */
  fallback: boolean;
  /** runTimer only: the timer was set again or cleared after it fired, so nothing was evaluated */
  stale?: boolean;
}

export interface EngineOptions {
  /** default: the built-in rules followed by config.rules compiled */
  rules?: readonly Rule[];
  /** what rules need about each device kind, by kind name */
  kinds: Readonly<Record<string, KindInfo>>;
  config: {
    supervision: Config['supervision'];
    rules?: readonly DataRule[];
    ruleSettings?: Partial<RuleSettings>;
  };
  log: Logger;
  /** monotonic clock and scheduler for timers; default performance.now + setTimeout (vitest fake timers apply) */
  clock?: Clock;
  /** wall clock for stamps; default Date.now */
  wallClock?: () => number;
  /** timers handled per turn of the event loop */
  timerBatch?: number;
  /** a rule timer came due: queue `fire` behind the device's observations, then call runTimer(fire, input) */
  onTimerDue(fire: TimerFire): void;
}

export interface Engine {
  evaluate(obs: Observation, input: EvaluateInput): EvaluateResult;
  runTimer(fire: TimerFire, input: EvaluateInput): EvaluateResult;
  /**
   * Undo what evaluate/runTimer changed in rule memory and timers (and make a consumed timer fire valid again), for
   * when the alarms of that result could not be written: memory must not move ahead of the database (a safe-zone
   * rule that believes the resident is already outside would never raise the exit again).
   */
  revert(result: EvaluateResult): void;
  /** start-up: arm every rule's timers from stored state (overdue ones come due at once) */
  restoreTimers(inputs: Iterable<RestoreInput>): { devices: number; timers: number; errors: number };
  /** a device, its binding or its resident changed (bind, PATCH resident, resume): re-arm its timers */
  resyncDevice(input: RestoreInput): void;
  /** suspended, decommissioned or deleted: drop its timers and memory */
  forgetDevice(deviceId: string): void;
  /** a device's pending timers, ms from now (diagnosis, fleet board) */
  pendingTimers(deviceId: string): { rule: string; key: string; inMs: number }[];
  readonly timers: TimerQueue;
  readonly rules: readonly Rule[];
  readonly settings: Readonly<EngineSettings>;
  /** stop the real timer (shutdown) */
  close(): void;
}

const FALLBACK_KIND: Omit<KindInfo, 'kind'> = {
  // unknown kind: supervise loosely but treat as a life-safety sensor (an unknown device is not assumed harmless)
  heartbeatMs: 3600_000,
  lifeSafetySensor: true,
  lowBatteryPct: 20,
};

/** a timer a rule declared: its slot (the heap key's second half) and its index among every rule's slots */
interface SlotRef {
  slot: string;
  index: number;
}

/** a rule with its declared timers resolved once (keyed by the timer's key) */
interface RuleEntry {
  rule: Rule;
  slots: Map<string, SlotRef>;
}

export function createEngine(options: EngineOptions): Engine {
  const log = options.log.child({ module: 'rules-engine' });
  const wallClock = options.wallClock ?? Date.now;
  const rules = options.rules ?? defaultRules(options.config.rules ?? []);
  const ruleSettings = resolveRuleSettings(options.config.ruleSettings);
  const settings: EngineSettings = Object.freeze({
    ...ruleSettings,
    timeZoneOffsetMinutes: ruleSettings.timeZoneOffsetMinutes ?? -new Date(wallClock()).getTimezoneOffset(),
    supervision: options.config.supervision,
  });

  // Each rule with its timer slots resolved once: the slot string (the heap key's second half) and a small index for
  // the device's timer ids. Every heartbeat re-arms its device's supervision timers through here, and with the rules
  // found by name in maps each request cost seven Map lookups (a third of the engine's time per heartbeat: bench/analysis.md)
  const slotInfo = new Map<string, { rule: Rule; key: string }>();
  let slotCount = 0;
  const entries: RuleEntry[] = rules.map((rule) => {
    const slots = new Map<string, SlotRef>();
    for (const key of rule.timers ?? []) {
      if (slots.has(key)) continue;
      const slot = `${rule.name}/${key}`;
      slots.set(key, { slot, index: slotCount++ });
      slotInfo.set(slot, { rule, key });
    }
    return { rule, slots };
  });
  // rule names key timers and memory: they must be unique
  const entryByName = new Map<string, RuleEntry>();
  const dupes = entries.filter((e) => (entryByName.has(e.rule.name) ? true : (entryByName.set(e.rule.name, e), false))).map((e) => e.rule.name);
  if (dupes.length) throw new ConfigError(dupes.map((n) => `rule name "${n}" is used twice; rule names must be unique`));

  // rules per observation type, in order; '*' rules take part everywhere
  const wildcard = entries.filter((e) => e.rule.on.includes('*'));
  const byType = new Map<string, RuleEntry[]>();
  for (const type of new Set(rules.flatMap((r) => r.on))) {
    if (type !== '*') byType.set(type, entries.filter((e) => e.rule.on.includes(type) || e.rule.on.includes('*')));
  }

  const memory = new Map<string, Map<string, unknown>>();
  /** what an evaluation changed, to put back if its alarms are not written (kept off the result's visible shape) */
  interface Undo {
    memory: { deviceId: string; rule: string; prev: unknown }[];
    timers: { deviceId: string; slot: string; prev: number | undefined }[];
    firing: { id: string; gen: number | undefined }[];
  }
  /**
   * A result that carries its undo in a private field: invisible to its readers (and to a test's deep equality), an
   * ordinary in-object field for V8. A WeakMap keyed by the result, and then a hidden property defined on it, each cost
   * the writer thread a few per cent at 90k msg/s (the WeakMap's ephemeron entries, one per heartbeat, also outlived
   * the young generation's collections: a heap profile of the writer counted them among what it promoted).
   */
  class Result implements EvaluateResult {
    alarms: AlarmAction[] = [];
    timers: AppliedTimer[] = [];
    state: DeviceStatePatch = {};
    evaluatedAt = 0;
    errors: { rule: string; message: string }[] = [];
    fallback = false;
    declare stale?: boolean;
    #undo: Undo | undefined;

    static keep(result: EvaluateResult, u: Undo): void {
      if (#undo in result) (result as Result).#undo = u;
    }

    /** the undo, once: a second revert finds nothing */
    static take(result: EvaluateResult): Undo | undefined {
      if (!(#undo in result)) return undefined;
      const u = (result as Result).#undo;
      (result as Result).#undo = undefined;
      return u;
    }
  }
  let undo: Undo | null = null;
  /** fired timers not yet run, by heap id → generation */
  const firing = new Map<string, number>();
  const warnedKinds = new Set<string>();

  const timers = new TimerQueue({
    ...(options.clock && { clock: options.clock }),
    ...(options.timerBatch !== undefined && { batch: options.timerBatch }),
    onDue(entry: TimerEntry) {
      const info = slotInfo.get(entry.slot);
      if (!info) return;
      firing.set(entry.id, entry.gen);
      try {
        options.onTimerDue({ deviceId: entry.owner, rule: info.rule.name, key: info.key, gen: entry.gen });
      } catch (err) {
        log.error({ err, deviceId: entry.owner, rule: info.rule.name, key: info.key }, 'onTimerDue threw; the timer is lost');
      }
    },
  });

  function kindOf(device: DeviceView): KindInfo {
    const k = options.kinds[device.kind];
    if (k) return k;
    if (!warnedKinds.has(device.kind)) {
      warnedKinds.add(device.kind);
      log.warn({ kind: device.kind, deviceId: device.id }, 'no kind information for this device kind; using cautious defaults');
    }
    return { kind: device.kind, ...FALLBACK_KIND };
  }

  /** `deviceMemory`: the device's rules' memory; an evaluation looks it up once for all its rules and passes it */
  function context(
    entry: RuleEntry, input: EvaluateInput, kind: KindInfo, deviceMemory = memory.get(input.subject ?? input.device.id),
  ): RuleContext {
    const deviceId = input.subject ?? input.device.id;
    const ruleSlots = entry.slots;
    return {
      now: input.now,
      device: input.device,
      resident: input.resident,
      kind,
      settings,
      memory: deviceMemory?.get(entry.rule.name),
      openIncident: input.openIncident,
      hasTimer(key) {
        const ref = ruleSlots.get(key);
        return ref !== undefined && timers.has(deviceId, ref.slot);
      },
    };
  }

  /** timer ids by device, by slot index: a heartbeat re-arms its device's timer without building the id's string again */
  const timerIds = new Map<string, (string | undefined)[]>();
  function timerId(deviceId: string, ref: SlotRef): string {
    let ids = timerIds.get(deviceId);
    if (!ids) timerIds.set(deviceId, (ids = []));
    return (ids[ref.index] ??= TimerQueue.id(deviceId, ref.slot));
  }

  function applyTimers(entry: RuleEntry, deviceId: string, requests: readonly TimerRequest[] | undefined, applied: AppliedTimer[]): void {
    if (!requests) return;
    const rule = entry.rule;
    for (const req of requests) {
      const key = 'set' in req ? req.set : req.clear;
      const ref = entry.slots.get(key);
      if (ref === undefined) {
        log.error({ rule: rule.name, key, deviceId }, 'rule asked for a timer it did not declare; ignored (declare it in `timers`)');
        continue;
      }
      // made once per device and slot: every heartbeat comes through here (supervision re-armed)
      const id = timerId(deviceId, ref);
      // (fired timers waiting to run are few and usually none: no lookup then)
      const firingGen = firing.size > 0 ? firing.get(id) : undefined;
      undo?.firing.push({ id, gen: firingGen });
      if (firingGen !== undefined) firing.delete(id);
      if ('set' in req) {
        const inMs = Number.isFinite(req.inMs) ? Math.max(0, req.inMs) : NaN;
        if (Number.isNaN(inMs)) {
          log.error({ rule: rule.name, key, deviceId, inMs: req.inMs }, 'rule asked for a timer with no finite delay; ignored');
          continue;
        }
        // one lookup in the heap's index: the deadline it had (for the undo) comes back from the set itself
        const prev = timers.reset(id, deviceId, ref.slot, inMs);
        undo?.timers.push({ deviceId, slot: ref.slot, prev });
        applied.push({ rule: rule.name, key, inMs });
      } else {
        const prev = timers.remove(id);
        undo?.timers.push({ deviceId, slot: ref.slot, prev });
        if (prev !== undefined) applied.push({ rule: rule.name, key, clear: true });
      }
    }
  }

  /**
   * A receiver's unknown accounts whose rules keep memory (receiver → its subjects' keys), so that forgetting the
   * receiver forgets them without a walk over every device's memory (an import binding 50,000 devices forgets each).
   */
  const subjects = new Map<string, Set<string>>();
  function newMemory(key: string): Map<string, unknown> {
    const owner = receiverOfSubject(key);
    if (owner !== undefined) {
      let set = subjects.get(owner);
      if (!set) subjects.set(owner, (set = new Set()));
      set.add(key);
    }
    return new Map();
  }

  function applyMemory(rule: Rule, deviceId: string, value: unknown): void {
    if (value === undefined) return;
    let m = memory.get(deviceId);
    undo?.memory.push({ deviceId, rule: rule.name, prev: m?.get(rule.name) });
    if (value === null) {
      if (m?.delete(rule.name) && m.size === 0) memory.delete(deviceId);
      return;
    }
    if (!m) memory.set(deviceId, (m = newMemory(deviceId)));
    m.set(rule.name, value);
  }

  function emptyResult(): EvaluateResult {
    return new Result();
  }

  /** Apply one rule's output to the result and the engine's state. Returns its `handled` note. */
  function apply(entry: RuleEntry, deviceId: string, out: RuleOutput | undefined, result: EvaluateResult): string | undefined {
    if (!out) return undefined;
    if (out.alarms) for (const a of out.alarms) result.alarms.push(a);
    applyTimers(entry, deviceId, out.timers, result.timers);
    if (out.state) Object.assign(result.state, out.state);
    applyMemory(entry.rule, deviceId, out.memory);
    return out.handled;
  }

  function failed(rule: Rule, err: unknown, fields: Record<string, unknown>, result: EvaluateResult): void {
    const message = err instanceof Error ? err.message : String(err);
    result.errors.push({ rule: rule.name, message });
    log.error({ err, rule: rule.name, ...fields }, 'rule threw; skipped, the other rules still run');
  }

  function evaluate(obs: Observation, input: EvaluateInput): EvaluateResult {
    const result = emptyResult();
    undo = { memory: [], timers: [], firing: [] };
    Result.keep(result, undo);
    try {
      return evaluateRules(obs, input, result);
    } finally {
      undo = null;
    }
  }

  function evaluateRules(obs: Observation, input: EvaluateInput, result: EvaluateResult): EvaluateResult {
    const deviceId = input.subject ?? input.device.id;
    const kind = kindOf(input.device);
    let handled: string | undefined;
    let deviceMemory = memory.get(deviceId);
    for (const entry of byType.get(obs.type) ?? wildcard) {
      const rule = entry.rule;
      try {
        const out = rule.evaluate(obs, context(entry, input, kind, deviceMemory));
        handled = apply(entry, deviceId, out, result) ?? handled;
        // a rule that kept or dropped memory may have made or removed the device's map
        if (out?.memory !== undefined) deviceMemory = memory.get(deviceId);
      } catch (err) {
        failed(rule, err, { deviceId, type: obs.type }, result);
      }
    }
    if (isLifeSafety(obs.type) && !obs.restore && handled === undefined &&
        !result.alarms.some((a) => a.action === 'raise' && a.type === obs.type)) {
      result.alarms.push(fallbackRaise(obs, input, result));
      result.fallback = true;
    }
    result.evaluatedAt = wallClock();
    return result;
  }

  function fallbackRaise(obs: Observation, input: EvaluateInput, result: EvaluateResult): AlarmAction {
    log.error({ deviceId: input.device.id, type: obs.type, errors: result.errors }, 'no rule raised this life-safety observation; raising it P1');
    let where: ReturnType<typeof alarmPosition> | undefined;
    try {
      where = alarmPosition(obs, input);
    } catch {
      where = undefined;
    }
    return {
      action: 'raise',
      type: obs.type,
      priority: 'P1',
      rule: 'engine-fallback',
      ...(where?.position && { position: where.position }),
      data: { ...where?.data, fallback: true, ruleErrors: result.errors.map((e) => `${e.rule}: ${e.message}`) },
    };
  }

  function runTimer(fire: TimerFire, input: EvaluateInput): EvaluateResult {
    const result = emptyResult();
    const entry = entryByName.get(fire.rule);
    const ref = entry?.slots.get(fire.key);
    const id = ref !== undefined ? TimerQueue.id(fire.deviceId, ref.slot) : undefined;
    if (!entry || id === undefined || firing.get(id) !== fire.gen) {
      result.stale = true;
      result.evaluatedAt = wallClock();
      return result;
    }
    if (input.device.id !== fire.deviceId) throw new Error(`runTimer: fire is for ${fire.deviceId}, input for ${input.device.id}`);
    firing.delete(id);
    undo = { memory: [], timers: [], firing: [{ id, gen: fire.gen }] };
    Result.keep(result, undo);
    try {
      const out = entry.rule.onTimer?.(fire.key, context(entry, input, kindOf(input.device)));
      apply(entry, fire.deviceId, out, result);
    } catch (err) {
      failed(entry.rule, err, { deviceId: fire.deviceId, timer: fire.key }, result);
    } finally {
      undo = null;
    }
    result.evaluatedAt = wallClock();
    return result;
  }

  function revert(result: EvaluateResult): void {
    const u = Result.take(result);
    if (!u) return;
    // newest first, so a value changed twice ends as it was before the first change
    for (let i = u.memory.length - 1; i >= 0; i--) {
      const { deviceId, rule, prev } = u.memory[i]!;
      let m = memory.get(deviceId);
      if (prev === undefined) {
        if (m?.delete(rule) && m.size === 0) memory.delete(deviceId);
      } else {
        if (!m) memory.set(deviceId, (m = newMemory(deviceId)));
        m.set(rule, prev);
      }
    }
    for (let i = u.timers.length - 1; i >= 0; i--) {
      const { deviceId, slot, prev } = u.timers[i]!;
      if (prev === undefined) timers.clear(deviceId, slot);
      else timers.set(deviceId, slot, Math.max(0, prev - timers.now()));
    }
    for (let i = u.firing.length - 1; i >= 0; i--) {
      const { id, gen } = u.firing[i]!;
      if (gen === undefined) firing.delete(id);
      else firing.set(id, gen);
    }
  }

  function restoreOne(input: RestoreInput): { timers: number; errors: number } {
    const applied: AppliedTimer[] = [];
    let errors = 0;
    const kind = kindOf(input.device);
    for (const entry of entries) {
      const rule = entry.rule;
      if (!rule.restore) continue;
      try {
        const out = rule.restore(context(entry, input, kind), input.hints ?? {});
        if (out) {
          applyTimers(entry, input.device.id, out.timers, applied);
          applyMemory(rule, input.device.id, out.memory);
        }
      } catch (err) {
        errors++;
        log.error({ err, rule: rule.name, deviceId: input.device.id }, 'rule restore threw; its timers for this device are not armed');
      }
    }
    return { timers: applied.length, errors };
  }

  return {
    evaluate,
    runTimer,
    revert,
    restoreTimers(inputs) {
      const total = { devices: 0, timers: 0, errors: 0 };
      for (const input of inputs) {
        const r = restoreOne(input);
        total.devices++;
        total.timers += r.timers;
        total.errors += r.errors;
      }
      log.info(total, 'rule timers restored');
      return total;
    },
    resyncDevice(input) {
      restoreOne(input);
    },
    forgetDevice(deviceId) {
      for (const [slot] of slotInfo) {
        timers.clear(deviceId, slot);
        firing.delete(TimerQueue.id(deviceId, slot));
      }
      memory.delete(deviceId);
      timerIds.delete(deviceId);
      // and what its unknown accounts' rules kept (their timers are forgotten as they fire: no such device)
      for (const key of subjects.get(deviceId) ?? []) {
        memory.delete(key);
        timerIds.delete(key);
      }
      subjects.delete(deviceId);
      const receiver = receiverOfSubject(deviceId);
      if (receiver !== undefined) subjects.get(receiver)?.delete(deviceId);
    },
    pendingTimers(deviceId) {
      const now = timers.now();
      const out: { rule: string; key: string; inMs: number }[] = [];
      for (const [slot, info] of slotInfo) {
        const t = timers.get(deviceId, slot);
        if (t) out.push({ rule: info.rule.name, key: info.key, inMs: Math.max(0, t.at - now) });
      }
      return out;
    },
    timers,
    rules,
    settings,
    close() {
      timers.close();
    },
  };
}
