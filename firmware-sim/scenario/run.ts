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
import { pool, provisionDevices, provisionTerminals, type DeviceRequest, type TerminalCredentials } from '../provision.js';
import type { RunReport, Sample, StepRecord } from '../report/types.js';
import { ACTION_KINDS_ALLOWED, isProtocolKind } from './schema.js';
import { ackCommandLatencies, ackLatencies, ProtocolDevice } from './protocol-devices.js';
import { checkExpectation, type CheckContext, type ExpectationResult } from './expect.js';
import { cleanUpRun, newRunId, type CleanupResult, type TestRunRecord } from './cleanup.js';
import type { Action, Expectation, Group, Scenario, Step, Target } from './model.js';

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
  /**
   * where protocol terminals (watch, jt808, dc09) connect, instead of the host in their provisioning answer (the
   * gateway's publicHost, which may name an address this machine does not reach); the port is always the answer's
   */
  terminalHost?: string;
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
  const mqttGroups = sc.groups.filter((g) => !isProtocolKind(g.kind));
  const terminalGroups = sc.groups.filter((g) => isProtocolKind(g.kind));
  // protocol terminals first (always provisioned by the run): a listener that is off stops the run before the rest exists
  const terminalCreds = terminalGroups.length ? await provisionProtocolTerminals(terminalGroups, o.api, rng, log, runId) : [];
  let creds: Credentials[];
  try {
    creds = o.credentials ? assignCredentials(mqttGroups, o.credentials) : await provision(mqttGroups, o.api, rng, log, runId);
  } catch (err) {
    await cleanUpRun(o.api, { id: runId, createdDevices: terminalCreds.map((c) => c.id), createdResidents: terminalCreds.flatMap((c) => (c.residentId ? [c.residentId] : [])), devices: terminalCreds.map((c) => c.id) });
    throw err;
  }
  const run: TestRunRecord = {
    id: runId,
    createdDevices: [...(o.credentials ? [] : creds.map((c) => c.id)), ...terminalCreds.map((c) => c.id)],
    createdResidents: [...(o.credentials ? [] : creds), ...terminalCreds].flatMap((c) => (c.residentId ? [c.residentId] : [])),
    devices: [...creds.map((c) => c.id), ...terminalCreds.map((c) => c.id)],
  };
  log(`test run ${runId}: ${run.createdDevices.length} test device(s) and ${run.createdResidents.length} test resident(s) created${o.keep ? ' (kept after the run: --keep)' : ''}`);
  if (o.credentials) {
    // reused devices: still tell the gateway the heartbeat each group will keep
    let i = 0;
    for (const g of mqttGroups) {
      const mine = creds.slice(i, (i += g.count));
      if (g.heartbeatS !== undefined) {
        await pool(mine, 8, (c) => o.api.updateDevice(c.id, { config: { heartbeatMs: Math.round((g.heartbeatS as number) * 1000) } }).then(() => undefined));
      }
    }
  }
  const groupOf = new Map<string, string>();
  const groupDevices = new Map<string, Credentials[]>();
  let k = 0;
  for (const g of mqttGroups) {
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
  // the protocol terminals, beside the MQTT fleet
  const protocolDevices: ProtocolDevice[] = [];
  const protocolOf = new Map<string, ProtocolDevice[]>();
  {
    let j = 0;
    for (const g of terminalGroups) {
      const list = terminalCreds.slice(j, (j += g.count)).map((c) => new ProtocolDevice({
        creds: c,
        group: g.name,
        host: o.terminalHost,
        heartbeatS: g.heartbeatS,
        ackTimeoutMs: sc.firmware.ackTimeoutMs,
        backoffInitialMs: sc.firmware.backoffInitialMs,
        backoffMaxMs: sc.firmware.backoffMaxMs,
      }));
      protocolOf.set(g.name, list);
      protocolDevices.push(...list);
      const first = list[0];
      if (first) log(`${g.name}: ${list.length} ${g.kind} terminal(s) (identifiers ${list.slice(0, 3).map((d) => d.identifier).join(', ')}${list.length > 3 ? ', …' : ''}) → ${o.terminalHost ?? terminalCreds.find((c) => c.id === first.id)?.host}:${terminalCreds.find((c) => c.id === first.id)?.port}`);
    }
  }
  const resolveProtocol = (t: Target | undefined): ProtocolDevice[] => {
    if (!t || t.group === 'all') return protocolDevices;
    const all = protocolOf.get(t.group) ?? [];
    return t.from === undefined ? all : all.slice(t.from, (t.to ?? t.from) + 1);
  };

  // ── samples for the timeline picture ──
  const rawSamples: (Omit<Sample, 't'> & { perf: number })[] = [];
  const sample = () => {
    const s = fleet.stats;
    let connected = 0, sent = 0, acked = 0, ackCommands = 0;
    for (const d of protocolDevices) {
      if (d.online) connected++;
      for (const m of d.events) if (m.alarm) (sent++, m.ackedWall !== null && acked++);
      for (const c of d.received) if (c.type === 'acknowledge-alarm') ackCommands++;
    }
    rawSamples.push({ perf: performance.now(), connected: s.connected + connected, alarmsSent: s.alarmsSent + sent, alarmsAcked: s.alarmsAcked + acked, ackCommands: s.ackCommands + ackCommands });
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
    protocolDevices: (e: Expectation) => ('device' in e ? resolveProtocol(e.device) : protocolDevices),
    runStartWall,
    incidentLatencies: incidentLatencySamples,
  };

  try {
    // ── power on ──
    const auto = sc.groups.filter((g) => g.autoConnect).flatMap((g) => terminalsOf(g.name));
    const autoProtocol = terminalGroups.filter((g) => g.autoConnect).flatMap((g) => protocolOf.get(g.name) ?? []);
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
    if (autoProtocol.length > 0) {
      autoProtocol.forEach((d, i) => d.start(i * 5));
      const timeout = o.connectTimeoutMs ?? 30_000 + autoProtocol.length * 20;
      log(`connecting ${autoProtocol.length} protocol terminal(s)…`);
      try {
        await waitUntil(() => autoProtocol.every((d) => d.online) || signal?.aborted === true, timeout);
      } catch {
        const off = autoProtocol.filter((d) => !d.online);
        const why = off[0]?.lastError ? ` (last error: ${off[0].lastError})` : '';
        throw new Error(`${off.length} of ${autoProtocol.length} protocol terminal(s) did not log in within ${formatMs(timeout)}${why}: is the ${off[0]?.kind} listener reachable at the host and port its provisioning answer gave (protocols.${off[0]?.kind}.port, publicHost; --terminal-host to connect elsewhere)?`);
      }
    }
    t0Perf = performance.now();
    runStartWall = Date.now();
    ctx.runStartWall = runStartWall;
    log(`t=0: ${fleet.stats.connected + protocolDevices.filter((d) => d.online).length} device(s) online`);

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
        record.devices = await perform(step.action, { resolve, resolveProtocol, rng: rng.fork(`step/${step.index}`), api: o.api, fleet });
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
      const ours = new Set([...fleet.terminals, ...protocolDevices].map((t) => t.id));
      incidentLatencySamples.push(...incidentLatencies([...fleet.terminals, ...protocolDevices], incidents.filter((i) => ours.has(i.deviceId))));
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
  const unanswered = protocolDevices.flatMap((d) => d.events.filter((m) => m.alarm && m.ackedWall === null).map((m) => `${m.type} of ${d.kind} ${d.identifier}`));
  if (unanswered.length) notes.push(`${unanswered.length} protocol alarm(s) never acknowledged by the gateway: ${unanswered.slice(0, 5).join(', ')}`);
  const protocolAck = ackLatencies(protocolDevices);
  const protocolAckCommand = ackCommandLatencies(protocolDevices);
  await Promise.all([fleet.stop(), ...protocolDevices.map((d) => d.stop())]);

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
    groups: sc.groups.map((g) => ({ name: g.name, kind: g.kind, count: g.count, sampleIds: [...(groupDevices.get(g.name) ?? []), ...(protocolOf.get(g.name) ?? [])].slice(0, 5).map((c) => c.id) })),
    steps,
    expectations: results.sort((a, b) => a.line - b.line),
    stats,
    // protocol terminals: their protocol's acknowledgement (AL reply, 0x8001, ACK) counts as their PUBACK
    latency: {
      puback: merged(fleet.stats.puback.toArray(), protocolAck, () => fleet.stats.puback.summary()),
      incident: { summary: summarize(incidentLatencySamples), samples: [...incidentLatencySamples].sort((a, b) => a - b) },
      ackCommand: merged(fleet.stats.ackCommand.toArray(), protocolAckCommand, () => fleet.stats.ackCommand.summary()),
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

/** MQTT samples as before; with protocol terminals, one summary over both */
function merged(mqtt: number[], protocol: number[], mqttSummary: () => ReturnType<typeof summarize>) {
  if (protocol.length === 0) return { summary: mqttSummary(), samples: mqtt };
  const samples = [...mqtt, ...protocol].sort((a, b) => a - b);
  return { summary: summarize(samples), samples };
}

interface PerformContext {
  resolve: (t: Target) => Terminal[];
  resolveProtocol: (t: Target) => ProtocolDevice[];
  rng: Rng;
  api: GatewayApi;
  fleet: Fleet;
}

/** do one action; returns how many devices it touched */
async function perform(a: Action, c: PerformContext): Promise<number> {
  if (a.kind === 'wait') return 0;
  let ts = c.resolve(a.target);
  let ps = c.resolveProtocol(a.target);
  const allowed = ACTION_KINDS_ALLOWED[a.kind];
  if (allowed) {
    ts = ts.filter((t) => allowed.includes(t.kind));
    ps = ps.filter((d) => allowed.includes(d.kind));
  }
  if (a.count !== undefined) {
    // the same draw as ever when there is no protocol terminal: a scenario's seed keeps meaning the same run
    if (ps.length === 0) ts = c.rng.sample(ts, a.count);
    else {
      const picked = c.rng.sample<Terminal | ProtocolDevice>([...ts, ...ps], a.count);
      ts = picked.filter((t): t is Terminal => !(t instanceof ProtocolDevice));
      ps = picked.filter((t): t is ProtocolDevice => t instanceof ProtocolDevice);
    }
  }
  if (a.kind === 'acknowledge') {
    if ((await acknowledgeOpen(c, [...ts, ...ps].map((t) => t.id), a.type)) === 0) throw new Error('no open incident to acknowledge');
    return ts.length + ps.length;
  }
  if (a.kind === 'command') {
    for (const t of [...ts, ...ps]) await c.api.sendCommand(t.id, a.type, a.params);
    return ts.length + ps.length;
  }
  performMqtt(a, ts);
  performProtocol(a, ps);
  return ts.length + ps.length;
}

/** an action on protocol terminals: what their protocol carries (the parser refused the rest) */
function performProtocol(a: Exclude<Action, { kind: 'wait' }>, ps: ProtocolDevice[]): void {
  switch (a.kind) {
    case 'connect':
      ps.forEach((d, i) => d.start(ps.length > 1 ? ((a.rampMs ?? 0) * i) / (ps.length - 1) : 0));
      break;
    case 'disconnect':
      for (const d of ps) d.drop(a.forMs);
      break;
    case 'sos':
      for (const d of ps) d.sos();
      break;
    case 'fall':
      for (const d of ps) d.fall();
      break;
    case 'position':
      for (const d of ps) d.reportPosition(a.lat !== undefined && a.lon !== undefined ? { lat: a.lat, lon: a.lon } : undefined);
      break;
    case 'heartbeat':
      for (const d of ps) d.heartbeat();
      break;
    default:
      break;
  }
}

/** acknowledge, as an operator, the open incidents of these devices; how many */
async function acknowledgeOpen(c: PerformContext, ids: readonly string[], type: string | undefined): Promise<number> {
  let n = 0;
  for (const id of ids) {
    const open = (await c.api.incidents({ deviceId: id, type, status: 'open', limit: 50 })).filter((i) => i.status === 'open');
    for (const i of open) {
      await c.api.request('POST', `/api/incidents/${encodeURIComponent(i.id)}/acknowledge`);
      n++;
    }
  }
  return n;
}

/** an action on MQTT terminals */
function performMqtt(a: Exclude<Action, { kind: 'wait' | 'acknowledge' | 'command' }>, ts: Terminal[]): void {
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
    default:
      break;
  }
}

async function provision(groups: Group[], api: GatewayApi, rng: Rng, log: (l: string) => void, runId: string): Promise<Credentials[]> {
  if (groups.length === 0) return [];
  // a group's heartbeat is also the device's configuration on the gateway, which supervises against it
  const requests: DeviceRequest[] = groups.map((g) => ({
    kind: g.kind as DeviceRequest['kind'],
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

/**
 * Protocol terminals: provisioned one by one as test devices, their identifiers of the protocol's own form, the run
 * named in their notes. A group's heartbeat is what the gateway supervises them against: `heartbeatMs` for a watch or
 * a JT/T 808 terminal (generic supervision → offline), `pollIntervalS` for a DC-09 panel (the receiver's own poll
 * supervision → comm-lost). A listener that is off: what was created is taken away again and the run stops, naming
 * the setting.
 */
async function provisionProtocolTerminals(groups: Group[], api: GatewayApi, rng: Rng, log: (l: string) => void, runId: string): Promise<TerminalCredentials[]> {
  const created: string[] = [];
  log(`provisioning ${groups.reduce((n, g) => n + g.count, 0)} protocol terminal(s) through ${api.baseUrl}…`);
  try {
    return await provisionTerminals({
      api,
      rng: rng.fork('provision-terminals'),
      test: true,
      created,
      notes: `test run ${runId}`,
      requests: groups.map((g) => ({
        kind: g.kind as TerminalCredentials['kind'],
        count: g.count,
        resident: g.resident,
        label: g.name,
        ...(g.heartbeatS !== undefined
          ? { config: g.kind === 'dc09' ? { pollIntervalS: g.heartbeatS } : { heartbeatMs: Math.round(g.heartbeatS * 1000) } }
          : {}),
      })),
    });
  } catch (err) {
    if (created.length) await cleanUpRun(api, { id: runId, createdDevices: created, createdResidents: [], devices: created });
    throw err;
  }
}

/** reuse credentials: each group takes the next devices of its kind */
function assignCredentials(groups: Group[], all: readonly Credentials[]): Credentials[] {
  const used = new Set<string>();
  const out: Credentials[] = [];
  for (const g of groups) {
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
