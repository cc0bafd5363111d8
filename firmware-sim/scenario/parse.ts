// Read a scenario (YAML or JSON — JSON is YAML), validate it against the schema and the devices it names, and
// report every problem at once, each with its line: a test engineer fixes the file in one pass.
import { readFile } from 'node:fs/promises';
import { isMap, isSeq, LineCounter, parseDocument, type Document, type Node, type Pair } from 'yaml';
import { Value } from '@sinclair/typebox/value';
import type { TSchema } from '@sinclair/typebox';
import { parseDuration } from '../core/duration.js';
import { ScenarioError, type ScenarioProblem } from '../core/errors.js';
import { PROFILES } from '../devices/kinds.js';
import {
  ACTION_KINDS,
  ACTION_KINDS_ALLOWED,
  ACTIONS,
  EXPECTATION_KINDS,
  EXPECTATIONS,
  ScenarioShape,
  SCENARIO_KINDS,
  isProtocolKind,
  type ActionKind,
  type ExpectationKind,
  type GroupSpec,
} from './schema.js';
import type { Action, Expectation, Group, Scenario, Step, Target } from './model.js';

type Path = (string | number)[];

export interface ParseOptions {
  /** multiply the count of groups marked `scale: true` */
  scale?: number;
}

export async function loadScenario(file: string, opts: ParseOptions = {}): Promise<Scenario> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ScenarioError(file, [{ line: 0, col: 0, path: '', message: `cannot read the file: ${(err as Error).message}` }]);
  }
  return parseScenario(text, file, opts);
}

export function parseScenario(text: string, file = '<scenario>', opts: ParseOptions = {}): Scenario {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  const problems: ScenarioProblem[] = [];
  // one syntax error cascades into dozens: the first few say what is wrong
  for (const e of doc.errors.slice(0, 3)) {
    const pos = lc.linePos(e.pos[0]);
    const line = text.split(/\r?\n/)[pos.line - 1] ?? '';
    const hint = /\{[^}]*\[/.test(line) ? ' — inside { … } quote a value with brackets: device: "phones[0..9]"' : '';
    problems.push({ line: pos.line, col: pos.col, path: '', message: `YAML: ${e.message.split('\n')[0] ?? e.message}${hint}` });
  }
  if (doc.errors.length > 3) {
    const last = problems[problems.length - 1] as ScenarioProblem;
    problems.push({ ...last, message: `and ${doc.errors.length - 3} more syntax error(s) after these (usually caused by the first)` });
  }
  if (problems.length) throw new ScenarioError(file, problems);
  const raw = doc.toJS() as unknown;
  const at = (path: Path) => locate(doc, lc, path);
  const problem = (path: Path, message: string) => {
    const pos = at(path);
    problems.push({ line: pos.line, col: pos.col, path: pointer(path), message });
  };
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    problem([], 'a scenario is a mapping with name, devices, timeline and expect');
    throw new ScenarioError(file, problems);
  }

  check(ScenarioShape, raw, [], problem);
  const r = raw as Record<string, unknown>;

  // groups
  const groups: Group[] = [];
  const names = new Map<string, { count: number; kind: string | undefined }>();
  const rawGroups = Array.isArray(r['devices']) ? (r['devices'] as unknown[]) : [];
  rawGroups.forEach((g, i) => {
    if (typeof g !== 'object' || g === null) return;
    const spec = g as GroupSpec;
    if (typeof spec.name !== 'string') return;
    if (names.has(spec.name)) problem(['devices', i, 'name'], `group "${spec.name}" is defined twice`);
    if (spec.name === 'all') problem(['devices', i, 'name'], '"all" is reserved (it means every device)');
    const base = typeof spec.count === 'number' ? spec.count : 1;
    // a group with a bad kind still exists for the steps that name it (one problem, not one per step)
    const known = (SCENARIO_KINDS as readonly string[]).includes(spec.kind);
    names.set(spec.name, { count: spec.scale ? Math.max(1, Math.round(base * (opts.scale ?? 1))) : base, kind: known ? spec.kind : undefined });
    if (!known) return;
    const resident = spec.resident === true ? {} : spec.resident && typeof spec.resident === 'object' ? spec.resident : null;
    groups.push({
      name: spec.name,
      kind: spec.kind,
      count: spec.scale ? Math.max(1, Math.round(base * (opts.scale ?? 1))) : base,
      resident,
      heartbeatS: sec(spec.heartbeat),
      keepaliveS: sec(spec.keepalive),
      positionS: sec(spec.positionEvery),
      battery: spec.battery,
      drainPerHour: spec.drain,
      autoConnect: spec.autoConnect ?? true,
      line: at(['devices', i]).line,
    });
    if (spec.keepalive !== undefined && (sec(spec.keepalive) ?? 0) < 1) problem(['devices', i, 'keepalive'], 'keepalive must be at least 1s');
    if (isProtocolKind(spec.kind)) {
      // what only an MQTT terminal has: say so rather than ignore it
      for (const k of ['keepalive', 'positionEvery', 'battery', 'drain'] as const) {
        if (spec[k] !== undefined) problem(['devices', i, k], `${k} is for the MQTT kinds; a ${spec.kind} terminal does not take it`);
      }
    }
  });

  const resolveTarget = (text: unknown, path: Path): Target | undefined => {
    if (typeof text !== 'string') return undefined;
    const m = /^([a-z][a-z0-9-]*)(?:\[([0-9]+)(?:\.\.([0-9]+))?\])?$/.exec(text);
    if (!m) return undefined; // the schema already said why
    const name = m[1] as string;
    if (name === 'all') {
      if (m[2] !== undefined) problem(path, '"all" takes no index');
      return { text, group: 'all' };
    }
    const g = names.get(name);
    if (!g) {
      problem(path, `no device group "${name}" (groups: ${[...names.keys()].join(', ') || 'none'})`);
      return undefined;
    }
    const from = m[2] !== undefined ? Number(m[2]) : undefined;
    const to = m[3] !== undefined ? Number(m[3]) : from;
    if (from !== undefined && to !== undefined) {
      if (to < from) problem(path, `range ${text} runs backwards`);
      if (to >= g.count) problem(path, `group "${name}" has ${g.count} device(s): index ${to} is out of range (0..${g.count - 1})`);
    }
    return { text, group: name, from, to };
  };
  /** kinds a target covers (groups whose kind is itself invalid are left out: that problem is reported once) */
  const kindsOf = (t: Target): string[] =>
    (t.group === 'all' ? [...names.values()] : [names.get(t.group)]).map((g) => g?.kind).filter((k): k is string => k !== undefined);

  const parseExpectation = (v: unknown, path: Path, defaultDevice: Target | undefined, fromStep: boolean): Expectation | undefined => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) {
      problem(path, `an expectation is a mapping with one of: ${EXPECTATION_KINDS.join(', ')}`);
      return undefined;
    }
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o).filter((k) => (EXPECTATION_KINDS as string[]).includes(k));
    if (keys.length !== 1) {
      problem(path, keys.length === 0
        ? `an expectation needs one of: ${EXPECTATION_KINDS.join(', ')} (found: ${Object.keys(o).join(', ') || 'nothing'})`
        : `an expectation has exactly one of ${keys.join(', ')}; split it into separate items`);
      return undefined;
    }
    const kind = keys[0] as ExpectationKind;
    if (!check(EXPECTATIONS[kind], o, path, problem)) return undefined;
    const body = o[kind] as Record<string, unknown>;
    const line = at(path).line;
    const device = body['device'] !== undefined ? resolveTarget(body['device'], [...path, kind, 'device']) : defaultDevice;
    const within = o['within'] !== undefined ? parseDuration(o['within'] as string | number) : undefined;
    const text = describeExpectation(kind, body, o['within']);
    switch (kind) {
      case 'incident':
        return {
          kind, line, text, device,
          type: body['type'] as string,
          priority: body['priority'] as string | undefined,
          status: body['status'] as string | undefined,
          test: body['test'] as boolean | undefined,
          withinMs: within ?? 5000,
        };
      case 'no-incident':
        return { kind, line, text, device, type: body['type'] as string | undefined, priority: body['priority'] as string | undefined, withinMs: within };
      case 'latency': {
        if (fromStep) problem(path, 'latency bounds are about the whole run: put them in the top-level expect list');
        const bounds: Partial<Record<'p50' | 'p90' | 'p99' | 'max', number>> = {};
        for (const q of ['p50', 'p90', 'p99', 'max'] as const) {
          if (body[q] !== undefined) bounds[q] = parseDuration(body[q] as string | number);
        }
        if (Object.keys(bounds).length === 0) problem([...path, kind], 'give at least one bound: p50, p90, p99 or max');
        return { kind, line, text, metric: body['metric'] as 'puback', bounds };
      }
      case 'delivered':
        return { kind, line, text, device, withinMs: within ?? 30_000 };
      case 'connected':
        return { kind, line, text, device, count: body['count'] as number | undefined, withinMs: within ?? 30_000 };
      case 'command': {
        const dc09 = device ? kindsOf(device).includes('dc09') : [...names.values()].some((g) => g.kind === 'dc09');
        if (dc09) problem([...path, kind], 'a dc09 panel receives no command: SIA DC-09 has no downlink (the receiver only ACKs); name the other devices');
        return { kind, line, text, device, type: body['type'] as string, withinMs: within ?? 10_000 };
      }
      case 'cleared':
        return { kind, line, text, device, type: body['type'] as string, withinMs: within ?? 30_000 };
    }
  };

  // timeline
  const steps: Step[] = [];
  let cursor = 0;
  const rawSteps = Array.isArray(r['timeline']) ? (r['timeline'] as unknown[]) : [];
  rawSteps.forEach((s, i) => {
    const path: Path = ['timeline', i];
    if (typeof s !== 'object' || s === null || Array.isArray(s)) {
      problem(path, `a step is a mapping like "at: 2s" and one action: ${ACTION_KINDS.join(', ')}`);
      return;
    }
    const o = s as Record<string, unknown>;
    const keys = Object.keys(o).filter((k) => (ACTION_KINDS as string[]).includes(k));
    if (keys.length !== 1) {
      problem(path, keys.length === 0
        ? `a step needs one action: ${ACTION_KINDS.join(', ')} (found: ${Object.keys(o).join(', ') || 'nothing'})`
        : `a step has exactly one action, this one has ${keys.join(' and ')}: split it into two steps`);
      return;
    }
    const kind = keys[0] as ActionKind;
    const ok = check(ACTIONS[kind], o, path, problem);
    const atMs = o['at'] !== undefined ? parseDuration(o['at'] as string | number) : undefined;
    if (atMs !== undefined && atMs < cursor) {
      problem([...path, 'at'], `at ${o['at']} is earlier than the step before it (${cursor / 1000}s): steps are listed in time order`);
    }
    const start = atMs ?? cursor;
    const target = kind === 'wait' ? undefined : resolveTarget(o[kind], [...path, kind]);
    if (!ok) {
      cursor = start;
      return;
    }
    if (target && ACTION_KINDS_ALLOWED[kind]) {
      const allowed = ACTION_KINDS_ALLOWED[kind] as readonly string[];
      const kinds = kindsOf(target);
      const able = kinds.filter((k) => allowed.includes(k));
      if (kinds.length > 0 && able.length === 0) {
        problem([...path, kind], `${kind}: a ${kinds[0]} cannot do that (${allowed.length > 1 ? `${allowed.slice(0, -1).join(', ')} or ${allowed.at(-1)}` : allowed[0]} can)`);
      }
    }
    if (kind === 'position' && (o['lat'] === undefined) !== (o['lon'] === undefined)) {
      problem(path, 'position takes both lat and lon, or neither (the terminal reports where it is)');
    }
    if (target && kind === 'event') {
      const type = o['type'] as string;
      const unable = [...new Set(kindsOf(target))].filter((k) => k in PROFILES && !PROFILES[k as keyof typeof PROFILES].events.includes(type));
      if (unable.length) problem([...path, 'type'], `a ${unable.join('/')} cannot send "${type}" (it sends: ${PROFILES[unable[0] as keyof typeof PROFILES]?.events.join(', ')})`);
    }
    const action = buildAction(kind, o, target);
    if (!action) {
      cursor = start;
      return;
    }
    const end = action.kind === 'wait' ? start + action.ms : start;
    const stepExpect = Array.isArray(o['expect']) ? (o['expect'] as unknown[]) : [];
    const expectations = stepExpect
      .map((e, j) => parseExpectation(e, [...path, 'expect', j], target, true))
      .filter((e): e is Expectation => e !== undefined);
    steps.push({
      index: i,
      line: at(path).line,
      atMs: start,
      label: typeof o['label'] === 'string' ? o['label'] : describeAction(action),
      action,
      expect: expectations,
    });
    cursor = end;
  });

  const topExpect = (Array.isArray(r['expect']) ? (r['expect'] as unknown[]) : [])
    .map((e, j) => parseExpectation(e, ['expect', j], undefined, false))
    .filter((e): e is Expectation => e !== undefined);

  if (problems.length) {
    problems.sort((a, b) => a.line - b.line || a.col - b.col);
    throw new ScenarioError(file, dedupe(problems));
  }
  const fw = (r['firmware'] ?? {}) as Record<string, unknown>;
  return {
    file,
    name: r['name'] as string,
    description: r['description'] as string | undefined,
    seed: r['seed'] as number | undefined,
    settleMs: r['settle'] !== undefined ? (parseDuration(r['settle'] as string) as number) : 2000,
    firmware: {
      backoffInitialMs: ms(fw['backoffInitial']),
      backoffMaxMs: ms(fw['backoffMax']),
      ackTimeoutMs: ms(fw['ackTimeout']),
      connectRate: fw['connectRate'] as number | undefined,
      willRetain: fw['willRetain'] as boolean | undefined,
    },
    groups,
    steps,
    expect: topExpect,
  };
}

function buildAction(kind: ActionKind, o: Record<string, unknown>, target: Target | undefined): Action | undefined {
  const count = o['count'] as number | undefined;
  if (kind === 'wait') return { kind, ms: ms(o['wait']) ?? 0 };
  if (!target) return undefined;
  switch (kind) {
    case 'connect':
      return { kind, target, count, rampMs: ms(o['ramp']) };
    case 'disconnect':
      return { kind, target, count, forMs: ms(o['for']) };
    case 'silence':
      return { kind, target, count, forMs: ms(o['for']), mode: (o['mode'] as 'dead' | 'mute' | undefined) ?? 'dead' };
    case 'flap':
      return { kind, target, count, times: (o['times'] as number | undefined) ?? 3, periodMs: ms(o['period']) ?? 4000 };
    case 'reboot':
    case 'sos':
    case 'cancel':
      return { kind, target, count };
    case 'fall':
      return { kind, target, count, confidence: o['confidence'] as number | undefined };
    case 'event':
      return { kind, target, count, type: o['type'] as string, data: o['data'] as Record<string, unknown> | undefined };
    case 'walk-out-of-zone':
      return { kind, target, count, overMs: ms(o['over']) ?? 10_000, distanceM: o['distance'] as number | undefined };
    case 'return-home':
      return { kind, target, count, overMs: ms(o['over']) ?? 10_000 };
    case 'battery':
      return { kind, target, count, level: o['level'] as number };
    case 'position':
      return { kind, target, count, lat: o['lat'] as number | undefined, lon: o['lon'] as number | undefined };
    case 'heartbeat':
      return { kind, target, count };
    case 'command':
      return { kind, target, count, type: o['type'] as string, params: o['params'] as Record<string, unknown> | undefined };
    case 'acknowledge':
      return { kind, target, count, type: o['type'] as string | undefined };
  }
}

export function describeAction(a: Action): string {
  if (a.kind === 'wait') return `wait ${a.ms / 1000}s`;
  const n = a.count ? ` ×${a.count}` : '';
  const extra =
    a.kind === 'disconnect' && a.forMs !== undefined ? ` for ${a.forMs / 1000}s` :
    a.kind === 'silence' ? `${a.forMs !== undefined ? ` for ${a.forMs / 1000}s` : ''} (${a.mode})` :
    a.kind === 'flap' ? ` ${a.times}× every ${a.periodMs / 1000}s` :
    a.kind === 'event' || a.kind === 'command' ? ` ${a.type}` :
    a.kind === 'battery' ? ` ${a.level}%` : '';
  return `${a.kind} ${a.target.text}${n}${extra}`;
}

function describeExpectation(kind: ExpectationKind, body: Record<string, unknown>, within: unknown): string {
  const parts = Object.entries(body).map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : String(v)}`);
  return `${kind} ${parts.join(' ')}${within !== undefined ? ` within ${String(within)}` : ''}`;
}

/** validate with TypeBox and turn its errors into sentences a test engineer can act on */
function check(schema: TSchema, value: unknown, base: Path, problem: (p: Path, m: string) => void): boolean {
  let ok = true;
  const missing = new Set<string>();
  for (const e of Value.Errors(schema, value)) {
    const rel = e.path.split('/').slice(1).map((s) => (/^[0-9]+$/.test(s) ? Number(s) : s.replace(/~1/g, '/').replace(/~0/g, '~')));
    const path = [...base, ...rel];
    const key = pointer(path);
    if (missing.has(key)) continue; // "Expected required property" says it all
    ok = false;
    const custom = (e.schema as { errorMessage?: string }).errorMessage;
    const field = String(rel[rel.length - 1] ?? '');
    let msg: string;
    if (e.message === 'Expected required property') {
      missing.add(key);
      msg = `missing "${field}"`;
    } else if (e.message === 'Unexpected property') {
      const allowed = Object.keys((parentSchema(schema, rel) as { properties?: object })?.properties ?? {});
      msg = `unknown field "${field}"${allowed.length ? ` (allowed here: ${allowed.join(', ')})` : ''}`;
    } else if (custom) {
      msg = field && !/^[0-9]+$/.test(field) ? `${field} ${custom.replace(/^[a-z ]+ must/, 'must')}` : custom;
    } else {
      msg = `${field ? `${field}: ` : ''}${e.message.toLowerCase()}${e.value !== undefined ? ` (got ${JSON.stringify(e.value)})` : ''}`;
    }
    problem(path, msg);
  }
  return ok;
}

/** the object schema that holds the property at `rel` (for "allowed here: …") */
function parentSchema(schema: TSchema, rel: Path): TSchema | undefined {
  let s: TSchema | undefined = schema;
  for (const seg of rel.slice(0, -1)) {
    if (!s) return undefined;
    if (typeof seg === 'number') s = (s as { items?: TSchema }).items;
    else s = (s as { properties?: Record<string, TSchema> }).properties?.[seg];
  }
  return s;
}

/** line and column of the value at `path`, or of the nearest thing that exists (a missing key → its mapping) */
function locate(doc: Document, lc: LineCounter, path: Path): { line: number; col: number } {
  let node: unknown = doc.contents;
  let best: [number, number, number] | undefined = (node as Node | null)?.range ?? undefined;
  for (let i = 0; i < path.length; i++) {
    const seg = path[i];
    if (isMap(node)) {
      const pair = node.items.find((p: Pair) => (p.key as { value?: unknown })?.value === seg || p.key === seg);
      if (!pair) break;
      // a mapping key: point at the key's line (the value of a nested mapping starts on the next line)
      best = (pair.key as Node | null)?.range ?? best;
      node = pair.value;
    } else if (isSeq(node) && typeof seg === 'number') {
      const item = node.items[seg] as Node | undefined;
      if (!item) break;
      best = item.range ?? best;
      node = item;
    } else break;
  }
  if (!best) return { line: 1, col: 1 };
  const pos = lc.linePos(best[0]);
  return { line: pos.line, col: pos.col };
}

function pointer(path: Path): string {
  return path.length ? '/' + path.map((p) => String(p).replace(/~/g, '~0').replace(/\//g, '~1')).join('/') : '';
}

function dedupe(problems: ScenarioProblem[]): ScenarioProblem[] {
  const seen = new Set<string>();
  return problems.filter((p) => {
    const k = `${p.line}:${p.col}:${p.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

function ms(v: unknown): number | undefined {
  return v === undefined ? undefined : parseDuration(v as string | number);
}

function sec(v: unknown): number | undefined {
  const m = ms(v);
  return m === undefined ? undefined : m / 1000;
}
