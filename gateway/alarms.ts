// Wires the rules engine and the incident service into the single writer: for each new observation, in the
// device's order and inside the write transaction, the rules run on the device's state before the observation,
// and their alarms open, join, clear or cancel incidents. Rule timers that come due are queued behind the device's
// observations and run the same way.
import type Database from 'better-sqlite3';
import { isLifeSafety, type AlarmAction, type AlarmSource, type IncidentEvent, type Observation } from '../core/contracts.js';
import type { Config } from '../core/config.js';
import type { Logger } from '../core/logger.js';
import type { Metrics } from '../core/metrics.js';
import { KINDS } from '../devices/kinds/index.js';
import type { DeviceRegistry, DeviceEntry } from '../devices/registry.js';
import type { IncidentService } from '../response/incidents.js';
import type { SafeZone } from '../devices/schema.js';
import { createEngine, type Engine, type EvaluateInput, type EvaluateResult, type TimerFire } from './engine.js';
import type { KindInfo, ResidentView } from './rules/types.js';
import type { DeviceStates } from './device-state.js';
import { AlarmNotRecordedError, type Ingest } from './ingest.js';

export interface AlarmPipelineDeps {
  config: Config;
  log: Logger;
  metrics: Metrics;
  sqlite: Database.Database;
  registry: DeviceRegistry;
  states: DeviceStates;
  ingest: Ingest;
  incidents: IncidentService;
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

export interface AlarmPipeline {
  engine: Engine;
  /** arm every device's rule timers from the stored state (start-up) */
  restore(): { devices: number; timers: number };
  close(): void;
}

export function createAlarmPipeline(d: AlarmPipelineDeps): AlarmPipeline {
  const log = d.log.child({ module: 'alarms' });
  const openStmt = d.sqlite.prepare(`select id, opened_at as openedAt, status from incidents
    where device_id = ? and type = ? and status not in ('resolved', 'cancelled') order by opened_at desc limit 1`);
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

  const input = (entry: DeviceEntry, now: number): EvaluateInput => {
    const s = d.states.get(entry.id);
    return {
      now,
      device: {
        id: entry.id, kind: entry.kind, power: entry.power, residentId: entry.residentId, unitId: entry.unitId,
        lastSeen: s.lastSeen, lastPosition: s.position, battery: s.battery, mains: s.mains, supervision: s.supervision, config: entry.config,
      },
      resident: resident(entry.residentId),
      openIncident: (type) => openStmt.get(entry.id, type) as { id: string; openedAt: number; status: never } | undefined,
    };
  };

  /** supervision state a rule asked for, applied once the observation is folded in */
  const pendingPatch = new Map<string, EvaluateResult['state']>();

  const applyAlarms = (entry: DeviceEntry, result: EvaluateResult, stamps: Record<string, number>, observationId?: number, lifeSafety = false): IncidentEvent[] => {
    const events: IncidentEvent[] = [];
    if (result.alarms.length === 0) return events;
    const source: AlarmSource = {
      deviceId: entry.id,
      residentId: entry.residentId,
      unitId: entry.unitId,
      ...(observationId !== undefined ? { observationId } : {}),
      stamps: { ...stamps, ruleEvaluated: result.evaluatedAt },
    };
    for (const alarm of result.alarms) {
      try {
        for (const e of d.incidents.applyAlarm(alarm as AlarmAction, source)) events.push(e);
      } catch (err) {
        // an alarm that cannot become an incident is the worst failure there is: say it loudly
        log.fatal({ err, deviceId: entry.id, alarm }, 'an alarm could not be written as an incident');
        d.metrics.refused.inc({ stage: 'incident', reason: 'write failed' });
        // a life-safety raise that did not become an incident: no acknowledgement, the device resends
        if (lifeSafety && alarm.action === 'raise') throw new AlarmNotRecordedError(`incident for ${alarm.type} not written`, { cause: err });
      }
    }
    d.metrics.stage.observe({ stage: 'rules' }, Math.max(0, result.evaluatedAt - (stamps.received ?? result.evaluatedAt)) / 1000);
    return events;
  };

  const engine = createEngine({
    kinds: kindInfos(),
    config: { supervision: d.config.supervision, rules: d.config.rules, ruleSettings: d.config.ruleSettings },
    log: d.log,
    onTimerDue(fire: TimerFire) {
      d.ingest.enqueueTask(fire.deviceId, () => {
        const entry = d.registry.entry(fire.deviceId);
        if (!entry) return;
        const now = Date.now();
        const result = engine.runTimer(fire, input(entry, now));
        if (result.stale) return;
        if (result.state.supervision) {
          d.states.get(entry.id).supervision = result.state.supervision;
          d.states.markDirty(entry.id);
        }
        return applyAlarms(entry, result, { received: now });
      });
    },
  });

  d.ingest.use({
    name: 'rules',
    run(obs: Observation, observationId: number, stamps: Record<string, number>) {
      const entry = d.registry.entry(obs.deviceId);
      if (!entry) {
        log.warn({ deviceId: obs.deviceId, type: obs.type }, 'observation from a device not in the registry: stored, no rules');
        return;
      }
      const result = engine.evaluate(obs, input(entry, Date.now()));
      if (Object.keys(result.state).length) pendingPatch.set(entry.id, result.state);
      return applyAlarms(entry, result, stamps, observationId, isLifeSafety(obs.type));
    },
    after(obs: Observation) {
      const patch = pendingPatch.get(obs.deviceId);
      if (!patch) return;
      pendingPatch.delete(obs.deviceId);
      if (patch.supervision) {
        d.states.get(obs.deviceId).supervision = patch.supervision;
        d.states.markDirty(obs.deviceId);
      }
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
    else engine.resyncDevice(input(e, Date.now()));
  });

  return {
    engine,
    restore() {
      const lastOf = (type: string) => new Map(
        (d.sqlite.prepare('select device_id, max(received_at) t from observations where type = ? group by device_id').all(type) as { device_id: string; t: number }[])
          .map((r) => [r.device_id, r.t]),
      );
      const checkIns = lastOf('check-in');
      const activity = lastOf('presence');
      const now = Date.now();
      const inputs = [];
      for (const e of d.registry.allEntries()) {
        if (e.state === 'suspended' || e.state === 'decommissioned' || e.state === 'provisioned') continue;
        inputs.push({ ...input(e, now), hints: { lastCheckInAt: checkIns.get(e.id) ?? null, lastActivityAt: activity.get(e.id) ?? null } });
      }
      const r = engine.restoreTimers(inputs);
      log.info(r, 'rule timers restored');
      return r;
    },
    close: () => engine.close(),
  };
}
