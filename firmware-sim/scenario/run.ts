// Run a parsed scenario against a gateway: provision its devices (or reuse credentials), power them on, play
// the timeline at its times, check every expectation, and return the report. t = 0 is the moment every
// auto-connecting device is online, so "at: 1s" means one second after the fleet is up.
import type { GatewayApi, IncidentView } from '../api.js';
import { Rng } from '../core/prng.js';
import { formatMs } from '../core/duration.js';
import { summarize } from '../core/stats.js';
import { FallSensor } from '../devices/fall-sensor.js';
import { Locator } from '../devices/locator.js';
import type { Terminal } from '../devices/terminal.js';
import type { Credentials } from '../devices/types.js';
import { Fleet } from '../fleet.js';
import { allIncidentsSince, incidentLatencies } from '../incident-latency.js';
import { pool, provisionDevices, type DeviceRequest } from '../provision.js';
import type { RunReport, Sample, StepRecord } from '../report/types.js';
import { ACTION_KINDS_ALLOWED } from './schema.js';
import { checkExpectation, type CheckContext, type ExpectationResult } from './expect.js';
import { cleanUpRun, newRunId, type CleanupResult, type TestRunRecord } from './cleanup.js';
import type { Action, Expectation, Scenario, Step, Target } from './model.js';

export interface RunOptions {
  scenario: Scenario;
  /** logged in as admin (provisioning, incidents, acknowledging) */
  api: GatewayApi;
  mqttUrl: string;
  seed?: number;
  scale?: number;
  /** reuse these devices instead of provisioning (matched to groups by kind, in order) */
  credentials?: readonly Credentials[];
  /** called once the fleet exists (progress line) */
  onFleet?: (fleet: Fleet) => void;
  /** human-readable lines as the run goes */
  log?: (line: string) => void;
  /** longest wait for the fleet to come up before t = 0 */
  connectTimeoutMs?: number;
  /** the test run's id (default: a new one); also the prefix of the serials it provisions */
  runId?: string;
  /** leave what the run created on the gateway (--keep); default: take it away at the end */
  keep?: boolean;
  /** do not clean up before returning: the caller calls `outcome.cleanup()` (the CLI writes the report first) */
  deferCleanup?: boolean;
  /** stop the run early (Ctrl-C): the timeline stops, the report holds what happened so far */
  signal?: AbortSignal;
}

export interface RunOutcome {
  report: RunReport;
  /** the credentials used (to save for reuse) */
  credentials: Credentials[];
  /** what the run created and drove */
  run: TestRunRecord;
  /** take away what the run created (at most once; also records the result in `report.testRun.cleanup`) */
  cleanup(): Promise<CleanupResult>;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((r) => {
    if (signal?.aborted) return r();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      r();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });

/** a verdict that could not be given because the run was stopped first */
const notJudged = (e: { line: number; text: string }, scope: string, why: string): ExpectationResult =>
  ({ line: e.line, text: e.text, scope, passed: false, detail: `not judged: ${why}` });

export async function runScenario(o: RunOptions): Promise<RunOutcome> {
  const sc = o.scenario;
  const seed = o.seed ?? sc.seed ?? 1;
  const rng = new Rng(seed);
  const log = o.log ?? (() => {});
  const notes: string[] = [];
  const startedAt = new Date();
  const runId = o.runId ?? newRunId();
  const signal = o.signal;

  // ── devices: a scenario run's devices and residents are test devices and residents (issue 13 §4) ──
  const creds = o.credentials ? assignCredentials(sc, o.credentials) : await provision(sc, o.api, rng, log, runId);
  const run: TestRunRecord = {
    id: runId,
    createdDevices: o.credentials ? [] : creds.map((c) => c.id),
    createdResidents: o.credentials ? [] : creds.flatMap((c) => (c.residentId ? [c.residentId] : [])),
    devices: creds.map((c) => c.id),
  };
  log(`test run ${runId}: ${run.createdDevices.length} test device(s) and ${run.createdResidents.length} test resident(s) created${o.keep ? ' (kept after the run: --keep)' : ''}`);
  if (o.credentials) {
    // reused devices: still tell the gateway the heartbeat each group will keep
    let i = 0;
    for (const g of sc.groups) {
      const mine = creds.slice(i, (i += g.count));
      if (g.heartbeatS !== undefined) {
        await pool(mine, 8, (c) => o.api.updateDevice(c.id, { config: { heartbeatMs: Math.round((g.heartbeatS as number) * 1000) } }).then(() => undefined));
      }
    }
  }
  const groupOf = new Map<string, string>();
  const groupDevices = new Map<string, Credentials[]>();
  let k = 0;
  for (const g of sc.groups) {
    const list = creds.slice(k, k + g.count);
    k += g.count;
    groupDevices.set(g.name, list);
    for (const c of list) groupOf.set(c.id, g.name);
  }
  const groupByName = new Map(sc.groups.map((g) => [g.name, g]));
  const fleet = new Fleet({
    devices: creds,
    mqttUrl: o.mqttUrl,
    seed,
    connectRatePerS: sc.firmware.connectRate,
    terminal: {
      backoff: {
        ...(sc.firmware.backoffInitialMs !== undefined ? { initialMs: sc.firmware.backoffInitialMs } : {}),
        ...(sc.firmware.backoffMaxMs !== undefined ? { maxMs: sc.firmware.backoffMaxMs } : {}),
      },
      ackTimeoutMs: sc.firmware.ackTimeoutMs,
      willRetain: sc.firmware.willRetain,
    },
    perDevice: (c) => {
      const g = groupByName.get(groupOf.get(c.id) ?? '');
      return g
        ? { heartbeatS: g.heartbeatS, keepaliveS: g.keepaliveS, positionS: g.positionS, battery: g.battery, drainPerHour: g.drainPerHour }
        : undefined;
    },
  });
  o.onFleet?.(fleet);
  const terminalsOf = (name: string) => (groupDevices.get(name) ?? []).map((c) => fleet.byId.get(c.id) as Terminal);
  const resolve = (t: Target | undefined): Terminal[] => {
    if (!t || t.group === 'all') return fleet.terminals;
    const all = terminalsOf(t.group);
    return t.from === undefined ? all : all.slice(t.from, (t.to ?? t.from) + 1);
  };

  // ── samples for the timeline picture ──
  const rawSamples: (Omit<Sample, 't'> & { perf: number })[] = [];
  const sample = () => {
    const s = fleet.stats;
    rawSamples.push({ perf: performance.now(), connected: s.connected, alarmsSent: s.alarmsSent, alarmsAcked: s.alarmsAcked, ackCommands: s.ackCommands });
  };
  sample();
  const sampler = setInterval(sample, 250);

  const steps: StepRecord[] = [];
  const results: ExpectationResult[] = [];
  const inline: Promise<ExpectationResult>[] = [];
  const incidentLatencySamples: number[] = [];
  let t0Perf = performance.now();
  let runStartWall = Date.now();
  let interrupted: { atMs: number; reason: string } | undefined;
  const stopped = () => {
    if (signal?.aborted && !interrupted) {
      interrupted = { atMs: Math.round(performance.now() - t0Perf), reason: String(signal.reason instanceof Error ? signal.reason.message : (signal.reason ?? 'stopped')) };
    }
    return interrupted !== undefined;
  };
  const ctx: CheckContext = {
    api: o.api,
    fleet,
    devices: (e: Expectation) => ('device' in e ? resolve(e.device) : fleet.terminals),
    runStartWall,
    incidentLatencies: incidentLatencySamples,
  };

  try {
    // ── power on ──
    const auto = sc.groups.filter((g) => g.autoConnect).flatMap((g) => terminalsOf(g.name));
    if (auto.length > 0) {
      fleet.start(auto);
      const timeout = o.connectTimeoutMs ?? 60_000 + auto.length * 20;
      log(`powering on ${auto.length} device(s)…`);
      try {
        await waitUntil(() => auto.every((t) => t.online) || signal?.aborted === true, timeout);
      } catch {
        const off = auto.filter((t) => !t.online);
        const why = off[0]?.lastError ? ` (last error: ${off[0].lastError})` : '';
        throw new Error(`${off.length} of ${auto.length} device(s) did not connect within ${formatMs(timeout)}${why}: is the MQTT broker at ${o.mqttUrl}?`);
      }
    }
    t0Perf = performance.now();
    runStartWall = Date.now();
    ctx.runStartWall = runStartWall;
    log(`t=0: ${fleet.stats.connected} device(s) online`);

    // ── timeline ──
    for (const step of sc.steps) {
      if (stopped()) break;
      const due = t0Perf + step.atMs - performance.now();
      if (due > 0) await sleep(due, signal);
      if (stopped()) break;
      const wallAt = Date.now();
      const record: StepRecord = {
        index: step.index,
        line: step.line,
        label: step.label,
        plannedMs: step.atMs,
        actualMs: Math.round(performance.now() - t0Perf),
        devices: 0,
      };
      try {
        record.devices = await perform(step.action, { resolve, rng: rng.fork(`step/${step.index}`), api: o.api, fleet });
      } catch (err) {
        record.error = (err as Error).message;
        notes.push(`step at line ${step.line} (${step.label}) failed: ${record.error}`);
      }
      steps.push(record);
      log(`t=${(record.actualMs / 1000).toFixed(1)}s ${step.label}${record.error ? ` — FAILED: ${record.error}` : ''}`);
      for (const e of step.expect) inline.push(checkExpectation(ctx, e, wallAt, `line ${step.line}: ${step.label}`));
      if (step.action.kind === 'wait') await sleep(Math.max(0, t0Perf + step.atMs + step.action.ms - performance.now()), signal);
    }
    if (!stopped()) await sleep(sc.settleMs, signal);

    // ── verdicts ──
    if (stopped()) {
      // the report so far: verdicts already given stay; the rest are said to be unjudged, never guessed
      const why = `the run was stopped (${interrupted!.reason}) at t=${(interrupted!.atMs / 1000).toFixed(1)}s`;
      const pending = Symbol('pending');
      const inlineExpect = sc.steps.flatMap((st) => st.expect.map((e) => ({ e, scope: `line ${st.line}: ${st.label}` })));
      // a check already looking at the gateway gets a moment to land its verdict (one poll), not its whole window
      const graceEnd = Date.now() + STOP_GRACE_MS;
      for (const [i, p] of inline.entries()) {
        const settled = await Promise.race([p, new Promise<typeof pending>((r) => setTimeout(() => r(pending), Math.max(0, graceEnd - Date.now())))]);
        const meta = inlineExpect[i];
        results.push(settled === pending ? notJudged(meta?.e ?? { line: 0, text: 'expectation' }, meta?.scope ?? 'run', why) : settled);
      }
      // steps never reached: their expectations were not even started
      for (const m of inlineExpect.slice(inline.length)) results.push(notJudged(m.e, m.scope, why));
      results.push(...sc.expect.map((e) => notJudged(e, 'run', why)));
      notes.push(`stopped early: ${why}; ${steps.length} of ${sc.steps.length} step(s) played`);
      throw STOPPED;
    }
    results.push(...(await Promise.all(inline)));
    try {
      const incidents: IncidentView[] = await allIncidentsSince(o.api, runStartWall);
      const ours = new Set(fleet.terminals.map((t) => t.id));
      incidentLatencySamples.push(...incidentLatencies(fleet.terminals, incidents.filter((i) => ours.has(i.deviceId))));
    } catch (err) {
      notes.push(`could not list incidents for the latency picture: ${(err as Error).message}`);
    }
    const endWall = Date.now();
    results.push(...(await Promise.all(sc.expect.map((e) => checkExpectation(ctx, e, runStartWall, 'run', endWall)))));
  } catch (err) {
    if (err !== STOPPED) {
      notes.push((err as Error).message);
      results.push({ line: 0, text: 'run', scope: 'run', passed: false, detail: (err as Error).message });
    }
  } finally {
    clearInterval(sampler);
    sample();
  }
  const durationMs = Math.round(performance.now() - t0Perf);
  const stats = fleet.stats.snapshot();
  if (stats.droppedAlarms > 0) notes.push(`${stats.droppedAlarms} alarm(s) were dropped from full device buffers`);
  await fleet.stop();

  const report: RunReport = {
    tool: 'eldergate-sim',
    kind: 'scenario',
    name: sc.name,
    file: sc.file,
    description: sc.description,
    seed,
    scale: o.scale,
    gateway: { api: o.api.baseUrl, mqtt: o.mqttUrl },
    startedAt: startedAt.toISOString(),
    durationMs,
    passed: results.length > 0 ? results.every((r) => r.passed) && !steps.some((s) => s.error) : !steps.some((s) => s.error),
    groups: sc.groups.map((g) => ({ name: g.name, kind: g.kind, count: g.count, sampleIds: (groupDevices.get(g.name) ?? []).slice(0, 5).map((c) => c.id) })),
    steps,
    expectations: results.sort((a, b) => a.line - b.line),
    stats,
    latency: {
      puback: { summary: fleet.stats.puback.summary(), samples: fleet.stats.puback.toArray() },
      incident: { summary: summarize(incidentLatencySamples), samples: [...incidentLatencySamples].sort((a, b) => a - b) },
      ackCommand: { summary: fleet.stats.ackCommand.summary(), samples: fleet.stats.ackCommand.toArray() },
    },
    samples: rawSamples.map(({ perf, ...s }) => ({ t: Math.round(perf - t0Perf), ...s })),
    notes,
    testRun: { id: runId, keep: o.keep === true, ...(interrupted ? { interrupted } : {}) },
  };
  if (interrupted) report.passed = false;
  let cleaning: Promise<CleanupResult> | null = null;
  const cleanup = () => {
    cleaning ??= (async () => {
      const c = o.keep ? { devicesDecommissioned: 0, incidentsClosed: 0, residentsMarked: 0, errors: [], ms: 0 } : await cleanUpRun(o.api, run);
      if (!o.keep) report.testRun!.cleanup = c;
      return c;
    })();
    return cleaning;
  };
  if (!o.deferCleanup && !o.keep) {
    const c = await cleanup();
    log(`test run ${runId} cleaned up: ${c.devicesDecommissioned} device(s) decommissioned, ${c.incidentsClosed} test incident(s) closed`);
    if (c.errors.length) notes.push(`cleanup: ${c.errors.length} problem(s): ${c.errors.slice(0, 3).join('; ')}`);
  }
  return { report, credentials: creds, run, cleanup };
}

/** how long, once stopped, checks in progress may still take to give their verdict */
const STOP_GRACE_MS = 1500;

/** thrown inside the run when it is stopped early, caught before the report */
const STOPPED = new Error('stopped');

interface PerformContext {
  resolve: (t: Target) => Terminal[];
  rng: Rng;
  api: GatewayApi;
  fleet: Fleet;
}

/** do one action; returns how many devices it touched */
async function perform(a: Action, c: PerformContext): Promise<number> {
  if (a.kind === 'wait') return 0;
  let ts = c.resolve(a.target);
  const allowed = ACTION_KINDS_ALLOWED[a.kind];
  if (allowed) ts = ts.filter((t) => allowed.includes(t.kind));
  if (a.count !== undefined) ts = c.rng.sample(ts, a.count);
  switch (a.kind) {
    case 'connect': {
      const idle = ts.filter((t) => t.state === 'idle' || t.state === 'stopped');
      const ramp = a.rampMs ?? 0;
      idle.forEach((t, i) => t.start(idle.length > 1 ? (ramp * i) / (idle.length - 1) : 0));
      for (const t of ts) if (!idle.includes(t)) t.connect();
      break;
    }
    case 'disconnect':
      for (const t of ts) t.disconnect(a.forMs);
      break;
    case 'silence':
      for (const t of ts) t.silence(a.forMs, a.mode);
      break;
    case 'flap':
      for (const t of ts) t.flap(a.times, a.periodMs);
      break;
    case 'reboot':
      for (const t of ts) t.reboot();
      break;
    case 'sos':
      for (const t of ts) t.event('sos');
      break;
    case 'fall':
      for (const t of ts) if (t instanceof FallSensor) t.fall(a.confidence);
      break;
    case 'cancel':
      for (const t of ts) t.event('cancel');
      break;
    case 'event':
      for (const t of ts) t.event(a.type, a.data ?? {});
      break;
    case 'walk-out-of-zone':
      for (const t of ts) if (t instanceof Locator) t.walkOutOfZone(a.overMs, a.distanceM);
      break;
    case 'return-home':
      for (const t of ts) if (t instanceof Locator) t.returnHome(a.overMs);
      break;
    case 'battery':
      for (const t of ts) t.setBattery(a.level);
      break;
    case 'command':
      for (const t of ts) await c.api.sendCommand(t.id, a.type, a.params);
      break;
    case 'acknowledge': {
      let n = 0;
      for (const t of ts) {
        const open = (await c.api.incidents({ deviceId: t.id, type: a.type, status: 'open', limit: 50 })).filter((i) => i.status === 'open');
        for (const i of open) {
          await c.api.request('POST', `/api/incidents/${encodeURIComponent(i.id)}/acknowledge`);
          n++;
        }
      }
      if (n === 0) throw new Error('no open incident to acknowledge');
      break;
    }
  }
  return ts.length;
}

async function provision(sc: Scenario, api: GatewayApi, rng: Rng, log: (l: string) => void, runId: string): Promise<Credentials[]> {
  // a group's heartbeat is also the device's configuration on the gateway, which supervises against it
  const requests: DeviceRequest[] = sc.groups.map((g) => ({
    kind: g.kind,
    count: g.count,
    resident: g.resident,
    label: g.name,
    ...(g.heartbeatS !== undefined ? { config: { heartbeatMs: Math.round(g.heartbeatS * 1000) } } : {}),
  }));
  const total = requests.reduce((n, r) => n + r.count, 0);
  log(`provisioning ${total} device(s) through ${api.baseUrl}…`);
  // marked test at creation, and named after the run: its serials say which run they belong to
  return provisionDevices({ api, requests, rng: rng.fork('provision'), test: true, serialPrefix: `SIM-${runId}` });
}

/** reuse credentials: each group takes the next devices of its kind */
function assignCredentials(sc: Scenario, all: readonly Credentials[]): Credentials[] {
  const used = new Set<string>();
  const out: Credentials[] = [];
  for (const g of sc.groups) {
    const free = all.filter((c) => c.kind === g.kind && !used.has(c.id));
    if (free.length < g.count) {
      throw new Error(`group "${g.name}" needs ${g.count} ${g.kind}(s); the credentials have ${free.length} left. Provision instead (--user/--password).`);
    }
    if (g.resident && free.slice(0, g.count).some((c) => !c.residentId)) {
      throw new Error(`group "${g.name}" wants residents (safe zones, bindings), but the reused credentials have none: provision instead.`);
    }
    for (const c of free.slice(0, g.count)) {
      used.add(c.id);
      out.push(c);
    }
  }
  return out;
}

function waitUntil(cond: () => boolean, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const start = Date.now();
    const tick = () => {
      if (cond()) return resolve();
      if (Date.now() - start > timeoutMs) return reject(new Error('timeout'));
      setTimeout(tick, 50);
    };
    tick();
  });
}

export type { Step };
