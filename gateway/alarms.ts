// Wires the rules engine and the incident service into the single writer: for each new observation, in the
// device's order and inside the write transaction, the rules run on the device's state before the observation,
// and their alarms open, join, clear or cancel incidents. Rule timers that come due are queued behind the device's
// observations and run the same way.
import type Database from 'better-sqlite3';
import {
  POSSIBLE_REPLAY, UNKNOWN_ACCOUNT, isLifeSafety, type AlarmAction, type AlarmSource, type IncidentEvent, type Observation,
} from '../core/contracts.js';
import type { Config } from '../core/config.js';
import type { Logger } from '../core/logger.js';
import type { Metrics } from '../core/metrics.js';
import { KINDS } from '../devices/kinds/index.js';
import type { DeviceRegistry, DeviceEntry } from '../devices/registry.js';
import type { IncidentService } from '../response/incidents.js';
import type { SafeZone } from '../devices/schema.js';
import { createEngine, subjectOf, type Engine, type EvaluateInput, type EvaluateResult, type TimerFire } from './engine.js';
import type { KindInfo, ResidentView } from './rules/types.js';
import { checkPosition } from './geo.js';
import type { DeviceStates } from './device-state.js';
import { AlarmNotRecordedError, type Ingest, type StepOut } from './ingest.js';
import { isStep, sqliteOpenIncidents, type BoundDevice, type IngestScope, type OpenIncidents } from './ingest-scope.js';
import { io, type Step } from '../response/store/run.js';

export interface AlarmPipelineDeps {
  config: Config;
  log: Logger;
  metrics: Metrics;
  sqlite: Database.Database;
  registry: DeviceRegistry;
  states: DeviceStates;
  ingest: Ingest;
  incidents: Pick<IncidentService, 'alarmSteps'>;
  /**
   * A device's open incidents outside a batch (re-arming its timers after a registry change, start-up): the writer's
   * SQLite connection by default. Inside a batch the rules read them through the batch's scope.
   */
  openIncidentsOutside?: (device: BoundDevice) => OpenIncidents;
}

export function kindInfos(): Record<string, KindInfo> {
  const out: Record<string, KindInfo> = {};
  for (const k of Object.values(KINDS)) {
    out[k.kind] = {
      kind: k.kind, heartbeatMs: k.heartbeatMs, mainsHeartbeatMs: k.mainsHeartbeatMs, lifeSafetySensor: k.lifeSafetySensor,
      lowBatteryPct: k.lowBatteryPct, ...(k.cancelWindowMs !== undefined ? { cancelWindowMs: k.cancelWindowMs } : {}),
    };
  }
  return out;
}

/** A rule timer whose alarm could not be written runs again after this long (the database may be back). */
/** the resident and grid unit a device belongs to, as the database says: `get(deviceId)` → { residentId, unitId } */
export function deviceOwnerQuery(sqlite: Database.Database): Database.Statement {
  return sqlite.prepare(`select d.resident_id as residentId, r.unit_id as unitId from devices d
    left join residents r on r.id = d.resident_id where d.id = ?`);
}

export const TIMER_RETRY_MS = 5_000;

export interface AlarmPipeline {
  engine: Engine;
  /**
   * arm every device's rule timers from the stored state (start-up); `hints`: each device's last check-in and activity
   * where the observations are not in this connection's file (PostgreSQL)
   */
  restore(hints?: { checkIns: Map<string, number>; activity: Map<string, number> }): { devices: number; timers: number };
  close(): void;
}

export function createAlarmPipeline(d: AlarmPipelineDeps): AlarmPipeline {
  const log = d.log.child({ module: 'alarms' });
  const openOutside = d.openIncidentsOutside ?? sqliteOpenIncidents(d.sqlite);
  const residentStmt = d.sqlite.prepare('select id, unit_id, safe_zone, home, no_movement_s, check_in_by from residents where id = ?');
  const residents = new Map<string, ResidentView | null>();

  const resident = (id: string | null): ResidentView | null => {
    if (!id) return null;
    let r = residents.get(id);
    if (r === undefined) {
      const row = residentStmt.get(id) as Record<string, unknown> | undefined;
      r = row
        ? {
            id,
            unitId: (row.unit_id as string | null) ?? null,
            safeZone: row.safe_zone ? (JSON.parse(row.safe_zone as string) as SafeZone) : null,
            home: row.home ? (JSON.parse(row.home as string) as { lat: number; lon: number }) : null,
            noMovementSeconds: (row.no_movement_s as number | null) ?? null,
            checkInBy: (row.check_in_by as string | null) ?? null,
          }
        : null;
      residents.set(id, r);
    }
    return r;
  };

  const input = (entry: Owner, now: number, open: OpenIncidents = openOutside(entry)): EvaluateInput => {
    const s = d.states.get(entry.id);
    return {
      ...(entry.account !== undefined ? { subject: subjectOf(entry.id, entry.account) } : {}),
      now,
      device: {
        id: entry.id, kind: entry.kind, power: entry.power, residentId: entry.residentId, unitId: entry.unitId,
        lastSeen: s.lastSeen, lastPosition: s.position, battery: s.battery, mains: s.mains, supervision: s.supervision, config: entry.config,
      },
      resident: resident(entry.residentId),
      openIncident: open,
    };
  };

  /**
   * Whose an observation is: its device's registry entry; for an alarm receiver's event from an account no device
   * holds, an unknown panel's in an unknown home: the receiver's entry with that account (its own cards, rule memory and
   * timers) and nobody's resident nor unit (a stand-in bound to someone by mistake must not send help to that home; the
   * card is seen at the top of the network). Decided here once; the lookup, the rules and the incidents follow it.
   */
  const ownerOf = (obs: Observation): Owner | undefined => {
    const entry = d.registry.entry(obs.deviceId);
    return entry && obs.account !== undefined ? { ...entry, residentId: null, unitId: null, account: obs.account } : entry;
  };

  /** supervision state a rule asked for, applied once the observation is folded in */
  const pendingPatch = new Map<string, EvaluateResult['state']>();

  /**
   * Write a rule result's alarms as incidents. For a life-safety observation each alarm stands alone (a failing
   * clear must not hold back the SOS) and only a raise that fails refuses the observation. For anything else — a
   * safe-zone exit computed from a position, an offline incident from a timer — the alarms are written together or
   * not at all, and a failure refuses the trigger: the position gets no PUBACK, the timer runs again.
   */
  function* applyAlarms(
    s: IngestScope, entry: Pick<Owner, 'id' | 'residentId' | 'unitId' | 'account'>, result: Pick<EvaluateResult, 'alarms' | 'evaluatedAt'>,
    stamps: Record<string, number>, observationId?: number, lifeSafety = false, flags?: string[],
  ): Step<IncidentEvent[]> {
    const events: IncidentEvent[] = [];
    if (result.alarms.length === 0) return events;
    const source: AlarmSource = {
      deviceId: entry.id,
      residentId: entry.residentId,
      unitId: entry.unitId,
      ...(entry.account !== undefined ? { account: entry.account } : {}),
      ...(observationId !== undefined ? { observationId } : {}),
      stamps: { ...stamps, ruleEvaluated: result.evaluatedAt },
      ...(flags?.length ? { flags } : {}),
    };
    const failed = (err: unknown, alarm: AlarmAction) => {
      // an alarm that cannot become an incident is the worst failure there is: say it loudly
      log.fatal({ err, deviceId: entry.id, alarm }, 'an alarm could not be written as an incident');
      d.metrics.refused.inc({ stage: 'incident', reason: 'write failed' });
    };
    if (lifeSafety) {
      // A life-safety observation's steps run in its own savepoint (ingest's processInSavepoint), which a raise that
      // fails rolls back by throwing: a lone raise needs no savepoint of its own. Alarms beside others (a clear whose
      // failure must not take the SOS with it) keep theirs.
      const alone = result.alarms.length === 1 && result.alarms[0]!.action === 'raise';
      for (const alarm of result.alarms) {
        try {
          for (const e of yield* io(s.incidentWrite(d.incidents.alarmSteps(alarm, source), alone))) events.push(e);
        } catch (err) {
          failed(err, alarm);
          // a life-safety raise that did not become an incident: no acknowledgement, the device resends
          if (alarm.action === 'raise') throw new AlarmNotRecordedError(`incident for ${alarm.type} not written`, { cause: err });
        }
      }
    } else {
      let current: AlarmAction | undefined;
      try {
        // one savepoint for them all: on failure none of them is kept
        yield* io(s.incidentWrite(function* (t) {
          for (const alarm of result.alarms) {
            current = alarm;
            // inside this savepoint: a failure rolls them all back
            for (const e of yield* d.incidents.alarmSteps(alarm, source)(t)) events.push(e);
          }
        }, false));
      } catch (err) {
        failed(err, current!);
        throw new AlarmNotRecordedError(
          `${current?.action ?? 'alarm'} ${current?.type ?? ''} for ${entry.id} not written: its trigger is not acknowledged and will come again`,
          { cause: err },
        );
      }
    }
    d.metrics.stage.observe({ stage: 'rules' }, Math.max(0, result.evaluatedAt - (stamps.received ?? result.evaluatedAt)) / 1000);
    return events;
  }

  const deviceRow = deviceOwnerQuery(d.sqlite);

  /**
   * A life-safety observation the rules could not look at (the device is missing from the registry cache, its
   * resident's row cannot be read, the engine failed): raised P1 as it is, with what the database says of the
   * device. Throws AlarmNotRecordedError if even that cannot be written.
   */
  function* raiseWithoutRules(s: IngestScope, obs: Observation, observationId: number, stamps: Record<string, number>, reason: string): Step<IncidentEvent[]> {
    let owner: { residentId: string | null; unitId: string | null } = { residentId: null, unitId: null };
    try {
      // an unknown panel behind a receiver is nobody's the gateway knows (see `run`)
      if (obs.account === undefined) owner = (deviceRow.get(obs.deviceId) as typeof owner | undefined) ?? owner;
    } catch (err) {
      log.error({ err, deviceId: obs.deviceId }, 'could not read the device row for a fallback raise; raising it with no resident');
    }
    const where = checkPosition((obs as { position?: unknown }).position);
    const alarm: AlarmAction = {
      action: 'raise', type: obs.type, priority: 'P1', rule: 'engine-fallback',
      ...(where.ok && { position: { ...where.position, stale: false } }),
      data: { fallback: true, reason, ...(obs.flags?.length ? { flags: obs.flags } : {}) },
    };
    const now = Date.now();
    return yield* applyAlarms(s, { id: obs.deviceId, ...owner, account: obs.account }, { alarms: [alarm], evaluatedAt: now }, stamps, observationId, true, incidentFlags(obs));
  }

  const engine = createEngine({
    kinds: kindInfos(),
    config: { supervision: d.config.supervision, rules: d.config.rules, ruleSettings: d.config.ruleSettings },
    log: d.log,
    onTimerDue,
  });

  // the device's state as committed, read inside the timer's write transaction: this thread's registry copy learns a
  // suspension or a decommissioning a moment after its commit, and a timer firing in between must not open a card
  // (an offline incident for a device taken out of service, which nothing would ever clear)
  const committedState = d.sqlite.prepare('select state from devices where id = ?').pluck();

  function onTimerDue(fire: TimerFire): void {
    d.ingest.enqueueTask(fire.deviceId, function* (s): Step<IncidentEvent[] | void> {
      const entry = d.registry.entry(fire.deviceId);
      if (!entry) {
        // no such device (deleted, or an unknown account's rules behind a receiver): nothing of it is kept
        engine.forgetDevice(fire.deviceId);
        return;
      }
      const state = committedState.get(fire.deviceId) as string | undefined;
      if (state === undefined || state === 'suspended' || state === 'decommissioned') {
        engine.forgetDevice(fire.deviceId);
        return;
      }
      const now = Date.now();
      const result = engine.runTimer(fire, input(entry, now, yield* io(s.openIncidents(entry))));
      if (result.stale) return;
      const supervisionBefore = d.states.get(entry.id).supervision;
      // If this run is rolled back (its alarm not written, or the whole batch failed), nothing of it is kept — rule
      // memory, timers and state go back — and it runs again later; an observation from the device meanwhile makes
      // the fire stale, as it would have the first time.
      d.ingest.onRollback(() => {
        engine.revert(result);
        if (d.states.get(entry.id).supervision !== supervisionBefore) d.states.setSupervision(entry.id, supervisionBefore);
        log.error({ deviceId: entry.id, rule: fire.rule, timer: fire.key, retryInMs: TIMER_RETRY_MS },
          `a rule timer's alarm could not be written; it runs again in ${TIMER_RETRY_MS / 1000} s`);
        setTimeout(() => onTimerDue(fire), TIMER_RETRY_MS).unref();
      });
      const events = yield* applyAlarms(s, entry, result, { received: now });
      // the state follows the database: 'offline' only with the offline incident written
      if (result.state.supervision) d.states.setSupervision(entry.id, result.state.supervision);
      return events;
    });
  }

  /** a rollback's undo of one evaluation (passed with its result: no closure per heartbeat) */
  const revert = (result: EvaluateResult) => engine.revert(result);

  /**
   * The rules' verdict on an observation with its device's open incidents at hand. A plain value when there is no
   * alarm to write (a fleet's heartbeats: no generator, no step object per message — at 10k msg/s those were most of
   * what the writer thread allocated); a step (generator) only when incidents are written.
   */
  function judged(
    obs: Observation, observationId: number, stamps: Record<string, number>, s: IngestScope, entry: Owner, open: OpenIncidents,
  ): StepOut {
    const lifeSafety = isLifeSafety(obs.type);
    let result: EvaluateResult;
    try {
      result = engine.evaluate(obs, input(entry, Date.now(), open));
    } catch (err) {
      // a technical observation is kept (logged by ingest); an emergency is raised without the rules
      if (!lifeSafety) throw err;
      log.error({ err, deviceId: obs.deviceId, type: obs.type },
        'the rules could not evaluate a life-safety observation: raised P1 without rules; fix the cause logged here');
      return raiseWithoutRules(s, obs, observationId, stamps, `rules failed: ${err instanceof Error ? err.message : String(err)}`);
    }
    // if the observation is refused (its alarm not written) or its batch fails, it will be resent: the rules'
    // memory and timers go back to where they were, so the resend is judged as the first one was
    d.ingest.onRollback(revert, result);
    if (result.alarms.length === 0) {
      keepPatch(entry.id, result);
      return undefined;
    }
    return written(obs, observationId, stamps, s, entry, result, lifeSafety);
  }

  function* written(
    obs: Observation, observationId: number, stamps: Record<string, number>, s: IngestScope, entry: Owner,
    result: EvaluateResult, lifeSafety: boolean,
  ): Step<IncidentEvent[]> {
    // a heartbeat kept as state only has no row (observationId 0): its alarms cite none
    const events = yield* applyAlarms(s, entry, result, stamps, observationId || undefined, lifeSafety, incidentFlags(obs));
    keepPatch(entry.id, result);
    return events;
  }

  function keepPatch(deviceId: string, result: EvaluateResult): void {
    for (const _ in result.state) {
      pendingPatch.set(deviceId, result.state);
      // an observation refused after this step must not leave its patch for the device's next one
      d.ingest.onRollback(() => pendingPatch.delete(deviceId));
      return;
    }
  }

  function* judgedLater(
    obs: Observation, observationId: number, stamps: Record<string, number>, s: IngestScope, entry: Owner, open: Promise<OpenIncidents>,
  ): Step<IncidentEvent[] | void> {
    const out = judged(obs, observationId, stamps, s, entry, yield* io(open));
    return isStep<IncidentEvent[] | void>(out) ? yield* out : out;
  }

  d.ingest.use({
    name: 'rules',
    // a life-safety observation this step fails on in any way is refused (no PUBACK), never stored without incident
    raisesIncidents: true,
    run(obs: Observation, observationId: number, stamps: Record<string, number>, s: IngestScope): StepOut {
      const entry = ownerOf(obs);
      if (!entry) {
        if (isLifeSafety(obs.type)) {
          log.error({ deviceId: obs.deviceId, type: obs.type },
            'life-safety observation from a device not in the registry cache: raised P1 without rules; check how the device was provisioned');
          return raiseWithoutRules(s, obs, observationId, stamps, 'device not in the registry cache');
        }
        log.warn({ deviceId: obs.deviceId, type: obs.type }, 'observation from a device not in the registry: stored, no rules');
        return;
      }
      // SQLite answers at once; PostgreSQL's answer is awaited through the scope
      const open = s.openIncidents(entry);
      return open instanceof Promise ? judgedLater(obs, observationId, stamps, s, entry, open) : judged(obs, observationId, stamps, s, entry, open);
    },
    after(obs: Observation) {
      const patch = pendingPatch.get(obs.deviceId);
      if (!patch) return;
      pendingPatch.delete(obs.deviceId);
      if (patch.supervision) d.states.setSupervision(obs.deviceId, patch.supervision);
    },
  });

  d.registry.onChange((change) => {
    if ('residentId' in change) {
      residents.delete(change.residentId);
      for (const e of d.registry.allEntries()) if (e.residentId === change.residentId) engine.resyncDevice(input(e, Date.now()));
      return;
    }
    const e = d.registry.entry(change.deviceId);
    if (!e) return;
    if (e.state === 'suspended' || e.state === 'decommissioned') engine.forgetDevice(e.id);
    else {
      // put into service, or moved to another resident: what the rules remember (outside the test resident's or the
      // previous resident's zone, a data rule's alarm raised) would keep the first exit or alarm that is now the
      // device's from being raised; they start again from the incidents its alarms would join now
      if ('anew' in change && change.anew) engine.forgetDevice(e.id);
      engine.resyncDevice(input(e, Date.now()));
    }
  });

  return {
    engine,
    restore(hints) {
      const lastOf = (type: string) => new Map(
        (d.sqlite.prepare('select device_id, max(received_at) t from observations where type = ? group by device_id').all(type) as { device_id: string; t: number }[])
          .map((r) => [r.device_id, r.t]),
      );
      const checkIns = hints?.checkIns ?? lastOf('check-in');
      const activity = hints?.activity ?? lastOf('presence');
      const now = Date.now();
      const inputs = [];
      for (const e of d.registry.allEntries()) {
        // a device still on the shelf (provisioned, bound to nobody) is not supervised; one bound to a resident is,
        // even before its commissioning test
        if (e.state === 'suspended' || e.state === 'decommissioned' || (e.state === 'provisioned' && !e.residentId)) continue;
        inputs.push({ ...input(e, now), hints: { lastCheckInAt: checkIns.get(e.id) ?? null, lastActivityAt: activity.get(e.id) ?? null, startup: true } });
      }
      const r = engine.restoreTimers(inputs);
      log.info(r, 'rule timers restored');
      return r;
    },
    close: () => engine.close(),
  };
}

/** A device's registry entry as its observation's owner: with an unknown account behind a receiver (`ownerOf`). */
type Owner = DeviceEntry & { readonly account?: string };

/** The observation's flags an incident must show: a possible replay; an alarm from a receiver's unknown account. */
function incidentFlags(obs: Observation): string[] | undefined {
  const shown = obs.flags?.filter((f) => f === POSSIBLE_REPLAY || f === UNKNOWN_ACCOUNT);
  return shown?.length ? shown : undefined;
}
