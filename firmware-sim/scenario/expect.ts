// Checking expectations against the gateway from outside: incidents through GET /api/incidents, stored
// observations through GET /api/observations, and what the simulated devices themselves saw (PUBACKs, commands).
import type { GatewayApi, IncidentView } from '../api.js';
import { formatMs } from '../core/duration.js';
import type { Terminal } from '../devices/terminal.js';
import type { Fleet } from '../fleet.js';
import type { Expectation } from './model.js';
import { ackCommandLatencies, ackLatencies, type ProtocolDevice } from './protocol-devices.js';

export interface ExpectationResult {
  line: number;
  text: string;
  /** "run" for the top-level list, or the step it belongs to */
  scope: string;
  passed: boolean;
  detail: string;
  /** incident latencies measured by this expectation, ms */
  latencies?: number[];
}

export interface CheckContext {
  api: GatewayApi;
  fleet: Fleet;
  /** the devices an expectation's target covers (no target: every device of the run) */
  devices(e: Expectation): Terminal[];
  /** the protocol terminals (watch, jt808, dc09) it covers; absent: none */
  protocolDevices?(e: Expectation): ProtocolDevice[];
  /** wall clock when the run started (after the initial connections) */
  runStartWall: number;
  /** alarm first publish → incident opened, over the whole run (for `latency: {metric: incident}`) */
  incidentLatencies: number[];
  /** how often to poll the API */
  pollMs?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** the gateway stamps incidents with its own clock; on one machine the clocks agree to well under a millisecond */
const CLOCK_SLACK_MS = 50;

function matches(i: IncidentView, e: { type?: string; priority?: string; status?: string; test?: boolean }): boolean {
  return (
    (e.type === undefined || i.type === e.type) &&
    (e.priority === undefined || i.priority === e.priority) &&
    (e.status === undefined || i.status === e.status) &&
    (e.test === undefined || Boolean(i.test) === e.test)
  );
}

async function incidentsOf(api: GatewayApi, deviceId: string, type?: string): Promise<IncidentView[]> {
  return api.incidents({ deviceId, type, limit: 500 });
}

/**
 * Check one expectation whose clock starts at `fromWall` (the step's time, or the run's start).
 * `endWall` bounds open windows (a top-level no-incident watches the whole run).
 */
export async function checkExpectation(ctx: CheckContext, e: Expectation, fromWall: number, scope: string, endWall?: number): Promise<ExpectationResult> {
  const base = { line: e.line, text: e.text, scope };
  try {
    switch (e.kind) {
      case 'incident':
        return { ...base, ...(await checkIncident(ctx, e, fromWall)) };
      case 'no-incident':
        return { ...base, ...(await checkNoIncident(ctx, e, fromWall, endWall)) };
      case 'delivered':
        return { ...base, ...(await checkDelivered(ctx, e)) };
      case 'connected':
        return { ...base, ...(await checkConnected(ctx, e)) };
      case 'command':
        return { ...base, ...(await checkCommand(ctx, e, fromWall)) };
      case 'cleared':
        return { ...base, ...(await checkCleared(ctx, e, fromWall)) };
      case 'latency':
        return { ...base, ...checkLatency(ctx, e) };
    }
  } catch (err) {
    return { ...base, passed: false, detail: `could not check: ${(err as Error).message}` };
  }
}

/** every device an expectation covers, MQTT terminals and protocol terminals alike, for the checks made through the API */
const allOf = (ctx: CheckContext, e: Expectation): { id: string }[] => [...ctx.devices(e), ...(ctx.protocolDevices?.(e) ?? [])];

async function checkIncident(ctx: CheckContext, e: Extract<Expectation, { kind: 'incident' }>, fromWall: number) {
  const devices = allOf(ctx, e);
  const deadline = fromWall + e.withinMs;
  // poll past the deadline a little: the verdict is on the gateway's timestamps, not on when we happened to look
  const giveUp = deadline + Math.max(2000, Math.min(e.withinMs, 10_000));
  const pending = new Map(devices.map((t) => [t.id, t]));
  const latencies: number[] = [];
  const late: string[] = [];
  const pollMs = ctx.pollMs ?? 100;
  while (pending.size > 0) {
    for (const id of [...pending.keys()]) {
      // when the incident reached what the expectation describes: opened (or joined) for an open one, the stamp of
      // its status otherwise (cancelled, acknowledged, …), or — with no stamp — now, as an upper bound
      const reachedAt = (i: IncidentView): number =>
        e.status && e.status !== 'open'
          ? (stampFor(i, e.status) ?? Date.now())
          : i.openedAt >= fromWall - CLOCK_SLACK_MS ? i.openedAt : i.lastAt;
      const found = (await incidentsOf(ctx.api, id, e.type))
        .filter((i) => matches(i, e))
        .map(reachedAt)
        .filter((at) => at >= fromWall - CLOCK_SLACK_MS);
      if (found.length === 0) continue;
      const best = Math.max(0, Math.min(...found) - fromWall);
      pending.delete(id);
      latencies.push(best);
      if (best > e.withinMs) late.push(`${id} after ${formatMs(best)}`);
    }
    if (pending.size === 0 || Date.now() > giveUp) break;
    await sleep(pollMs);
  }
  const what = `${e.priority ?? ''} ${e.type}${e.status ? ` (${e.status})` : ''}`.trim();
  if (pending.size > 0) {
    const ids = [...pending.keys()];
    return {
      passed: false,
      detail: `no ${what} incident for ${ids.length} of ${devices.length} device(s) (${ids.slice(0, 5).join(', ')}${ids.length > 5 ? ', …' : ''}) within ${formatMs(e.withinMs)}`,
      latencies,
    };
  }
  if (late.length > 0) {
    return { passed: false, detail: `${what} incident too late: ${late.slice(0, 5).join(', ')} (limit ${formatMs(e.withinMs)})`, latencies };
  }
  const worst = Math.max(...latencies);
  return { passed: true, detail: `${what} incident for ${devices.length} device(s), worst ${formatMs(worst)}`, latencies };
}

function stampFor(i: IncidentView, status: string): number | undefined {
  const key = status === 'on-site' ? 'onSite' : status === 'resolved' ? 'resolved' : status === 'cancelled' ? 'cancelled' : status;
  const v = i.stamps?.[key];
  return typeof v === 'number' ? v : undefined;
}

async function checkNoIncident(ctx: CheckContext, e: Extract<Expectation, { kind: 'no-incident' }>, fromWall: number, endWall?: number) {
  const until = e.withinMs !== undefined ? fromWall + e.withinMs : (endWall ?? Date.now());
  // watch to the end of the window, plus a second for the gateway to finish what it received inside it
  const wait = until + 1000 - Date.now();
  if (wait > 0) await sleep(wait);
  const bad: string[] = [];
  for (const t of allOf(ctx, e)) {
    const found = (await incidentsOf(ctx.api, t.id, e.type))
      .filter((i) => matches(i, e))
      .filter((i) => (i.openedAt >= fromWall - CLOCK_SLACK_MS && i.openedAt <= until) || (i.lastAt >= fromWall - CLOCK_SLACK_MS && i.lastAt <= until));
    for (const i of found) bad.push(`${i.priority} ${i.type} ${i.status} on ${t.id} (${i.id})`);
  }
  return bad.length
    ? { passed: false, detail: `unexpected incident(s): ${bad.slice(0, 5).join('; ')}${bad.length > 5 ? ` and ${bad.length - 5} more` : ''}` }
    : { passed: true, detail: `none in ${formatMs(until - fromWall)}` };
}

/** every event the devices created was PUBACKed, and the gateway stored each exactly once (seq and ts) */
async function checkDelivered(ctx: CheckContext, e: Extract<Expectation, { kind: 'delivered' }>) {
  const devices = ctx.devices(e);
  const deadline = Date.now() + e.withinMs;
  const unacked = () => devices.reduce((n, t) => n + t.events.filter((m) => !m.acked).length, 0);
  while (unacked() > 0 && Date.now() < deadline) await sleep(100);
  const missing: string[] = [];
  const doubled: string[] = [];
  let total = 0;
  for (const t of devices) {
    if (t.events.length === 0) continue;
    const stored = await ctx.api.observations({ deviceId: t.id, limit: 1000 });
    for (const m of t.events) {
      total++;
      const n = stored.filter((o) => o.seq === m.seq && o.deviceTs === m.ts && o.type === m.type).length;
      if (n === 0) missing.push(`${t.id} ${m.type} seq ${m.seq}${m.acked ? '' : ' (never PUBACKed)'}`);
      else if (n > 1) doubled.push(`${t.id} ${m.type} seq ${m.seq} ×${n}`);
    }
  }
  // protocol terminals: every alarm acknowledged by the protocol (only once durable), and stored
  for (const d of ctx.protocolDevices?.(e) ?? []) {
    while (d.events.some((m) => m.ackedWall === null) && Date.now() < deadline) await sleep(100);
    const sent = d.events.filter((m) => m.type !== 'position');
    if (sent.length === 0) continue;
    const stored = await ctx.api.observations({ deviceId: d.id, limit: 1000 });
    for (const type of new Set(sent.map((m) => m.type))) {
      const mine = sent.filter((m) => m.type === type);
      total += mine.length;
      const unanswered = mine.filter((m) => m.ackedWall === null).length;
      const have = stored.filter((o) => o.type === type).length;
      // a protocol alarm carries no sequence number: each one acknowledged must be there at least once
      if (unanswered) missing.push(`${d.kind} ${d.identifier} ${type}: ${unanswered} of ${mine.length} never acknowledged`);
      else if (have < mine.length) missing.push(`${d.kind} ${d.identifier} ${type}: ${mine.length} acknowledged, ${have} stored`);
    }
  }
  if (missing.length || doubled.length) {
    return {
      passed: false,
      detail: [
        missing.length ? `${missing.length} of ${total} event(s) not stored: ${missing.slice(0, 5).join('; ')}` : '',
        doubled.length ? `${doubled.length} stored more than once: ${doubled.slice(0, 5).join('; ')}` : '',
      ].filter(Boolean).join(' — '),
    };
  }
  const protocol = (ctx.protocolDevices?.(e) ?? []).length > 0;
  return { passed: true, detail: protocol ? `${total} event(s) acknowledged (PUBACK or the protocol's answer) and stored` : `${total} event(s) PUBACKed and stored exactly once` };
}

async function checkConnected(ctx: CheckContext, e: Extract<Expectation, { kind: 'connected' }>) {
  const devices: { online: boolean }[] = [...ctx.devices(e), ...(ctx.protocolDevices?.(e) ?? [])];
  const want = e.count ?? devices.length;
  const deadline = Date.now() + e.withinMs;
  const online = () => devices.filter((t) => t.online).length;
  while (online() < want && Date.now() < deadline) await sleep(100);
  const n = online();
  return n >= want
    ? { passed: true, detail: `${n}/${devices.length} online` }
    : { passed: false, detail: `only ${n} of ${want} wanted online after ${formatMs(e.withinMs)}` };
}

async function checkCommand(ctx: CheckContext, e: Extract<Expectation, { kind: 'command' }>, fromWall: number) {
  const devices = ctx.devices(e);
  const sinceSched = ctx.fleet.scheduler.now() - (Date.now() - fromWall);
  const deadline = fromWall + e.withinMs;
  const got = (t: Terminal) => t.commands.some((c) => c.cmd.type === e.type && c.at >= sinceSched - CLOCK_SLACK_MS);
  // a protocol terminal's commands as it decoded them (watch MESSAGE/CALL/CR, JT/T 808 0x8300/0x8400/0x8201), wall clock
  const terminals = ctx.protocolDevices?.(e) ?? [];
  const gotFrame = (d: ProtocolDevice) => d.received.find((c) => c.type === e.type && c.at >= fromWall - CLOCK_SLACK_MS);
  while ((devices.some((t) => !got(t)) || terminals.some((d) => !gotFrame(d))) && Date.now() < deadline) await sleep(50);
  const without = [...devices.filter((t) => !got(t)).map((t) => t.id), ...terminals.filter((d) => !gotFrame(d)).map((d) => `${d.kind} ${d.identifier}`)];
  const frames = terminals.map((d) => gotFrame(d)?.raw).filter((r): r is string => r !== undefined);
  return without.length
    ? { passed: false, detail: `no ${e.type} command reached ${without.length} device(s) (${without.slice(0, 5).join(', ')}) within ${formatMs(e.withinMs)}` }
    : { passed: true, detail: `${e.type} reached ${devices.length + terminals.length} device(s)${frames.length ? ` (e.g. ${frames[0]!.slice(0, 80)})` : ''}` };
}

/** the gateway cleared an incident of this type itself (the device is back), after the step */
async function checkCleared(ctx: CheckContext, e: Extract<Expectation, { kind: 'cleared' }>, fromWall: number) {
  const devices = allOf(ctx, e);
  const deadline = fromWall + e.withinMs;
  const giveUp = deadline + Math.max(2000, Math.min(e.withinMs, 10_000));
  const pending = new Set(devices.map((d) => d.id));
  const latencies: number[] = [];
  const late: string[] = [];
  for (;;) {
    for (const id of [...pending]) {
      const at = (await incidentsOf(ctx.api, id, e.type))
        .filter((i) => i.status === 'resolved' && String(i['outcome'] ?? '').startsWith('cleared'))
        .map((i) => stampFor(i, 'resolved') ?? i.lastAt)
        .filter((t) => t >= fromWall - CLOCK_SLACK_MS);
      if (at.length === 0) continue;
      pending.delete(id);
      const ms = Math.max(0, Math.min(...at) - fromWall);
      latencies.push(ms);
      if (ms > e.withinMs) late.push(`${id} after ${formatMs(ms)}`);
    }
    if (pending.size === 0 || Date.now() > giveUp) break;
    await sleep(ctx.pollMs ?? 100);
  }
  if (pending.size) return { passed: false, detail: `no ${e.type} incident cleared for ${[...pending].slice(0, 5).join(', ')} within ${formatMs(e.withinMs)}` };
  if (late.length) return { passed: false, detail: `${e.type} cleared too late: ${late.slice(0, 5).join(', ')} (limit ${formatMs(e.withinMs)})` };
  return { passed: true, detail: `${e.type} cleared for ${devices.length} device(s), worst ${formatMs(Math.max(...latencies))}` };
}

function checkLatency(ctx: CheckContext, e: Extract<Expectation, { kind: 'latency' }>) {
  // protocol terminals: their protocol's acknowledgement is their PUBACK; the operator's acknowledgement reaching them
  // (watch MESSAGE, JT/T 808 0x8300) their ack-command
  const terminals = ctx.protocolDevices?.(e) ?? [];
  const samples =
    e.metric === 'puback' ? [...ctx.fleet.stats.puback.toArray(), ...ackLatencies(terminals)].sort((a, b) => a - b) :
    e.metric === 'ack-command' ? [...ctx.fleet.stats.ackCommand.toArray(), ...ackCommandLatencies(terminals)].sort((a, b) => a - b) :
    [...ctx.incidentLatencies].sort((a, b) => a - b);
  if (samples.length === 0) return { passed: false, detail: `no ${e.metric} samples were measured in this run` };
  const q = (p: number) => samples[Math.min(samples.length - 1, Math.max(0, Math.ceil(p * samples.length) - 1))] as number;
  const measured: Record<string, number> = { p50: q(0.5), p90: q(0.9), p99: q(0.99), max: samples[samples.length - 1] as number };
  const over = Object.entries(e.bounds).filter(([k, bound]) => (measured[k] as number) > (bound as number));
  const shown = Object.keys(e.bounds).map((k) => `${k} ${formatMs(measured[k] as number)} (≤ ${formatMs(e.bounds[k as 'p50'] as number)})`).join(', ');
  return { passed: over.length === 0, detail: `${e.metric} over ${samples.length} sample(s): ${shown}` };
}
