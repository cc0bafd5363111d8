// Register maps are data (docs/design.md §2, PROTOCOLS "Modbus"): which table, which address, which bit, what scaling,
// and which observation a value or a change of it means. A map that does not validate is a start-up error that
// names every bad field by its JSON path, so the technician fixes the file, not the code.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { Value, type ValueError } from '@sinclair/typebox/value';
import { isLifeSafety, LIFE_SAFETY_TYPES } from '../../../core/contracts.js';
import { EldergateError } from '../../../core/errors.js';
import { sourceDir } from '../../../core/paths.js';

const NAME_PATTERN = '^[a-z0-9][a-z0-9-]*$';

export const MODBUS_TABLES = ['coil', 'discrete', 'holding', 'input'] as const;
export type ModbusTable = (typeof MODBUS_TABLES)[number];

/** Observation types a Modbus point may mean (a subset of the shared vocabulary in core/contracts.ts). */
export const MODBUS_OBSERVATION_TYPES = [
  ...LIFE_SAFETY_TYPES,
  'device-fault', 'tamper', 'power-lost', 'battery', 'signal', 'presence', 'test',
] as const;
export type ModbusObservationType = (typeof MODBUS_OBSERVATION_TYPES)[number];
/** types whose observation carries the point's scaled value as `level` */
export const LEVEL_TYPES: readonly string[] = ['battery', 'signal'];

const literals = <T extends readonly string[]>(values: T, options: Record<string, unknown> = {}) =>
  Type.Union(values.map((v) => Type.Literal(v)), options);

export const TriggerSchema = Type.Union(
  [
    Type.Literal('rising'),
    Type.Literal('falling'),
    Type.Literal('change'),
    Type.Object({ above: Type.Number() }, { additionalProperties: false }),
    Type.Object({ below: Type.Number() }, { additionalProperties: false }),
  ],
  {
    description:
      "rising: active while the value is 1 (non-zero); falling: active while it is 0 (normally-closed contacts); " +
      'change: every change is reported (levels, presence); {above}/{below}: active beyond a threshold on the scaled value',
  },
);
export type Trigger = Static<typeof TriggerSchema>;

export const PointSchema = Type.Object(
  {
    name: Type.String({ pattern: NAME_PATTERN, maxLength: 64 }),
    description: Type.Optional(Type.String()),
    table: literals(MODBUS_TABLES),
    /** zero-based protocol address (holding register 40001 is address 0) */
    address: Type.Integer({ minimum: 0, maximum: 65535 }),
    /** one bit of a 16-bit register, 0 = least significant */
    bit: Type.Optional(Type.Integer({ minimum: 0, maximum: 15 })),
    /** the register holds a two's-complement int16 */
    signed: Type.Optional(Type.Boolean()),
    /** engineering value = raw × scale + offset (a detector that reports 10.5 ppm as 105 has scale 0.1) */
    scale: Type.Optional(Type.Number()),
    offset: Type.Optional(Type.Number()),
    unit: Type.Optional(Type.String()),
    observation: literals(MODBUS_OBSERVATION_TYPES),
    trigger: TriggerSchema,
    /** thresholds only: the condition ends only this far back across the threshold, so a value hovering at the limit does not flap */
    hysteresis: Type.Optional(Type.Number({ minimum: 0 })),
    /** report the end of the condition as a restore of the same type (default true; false for momentary events such as a test button) */
    restore: Type.Optional(Type.Boolean()),
    /** which input of a multi-channel device (bed 2, cord 5): the link configuration maps channels to device ids */
    channel: Type.Optional(Type.Union([Type.Integer({ minimum: 0 }), Type.String({ minLength: 1 })])),
    /** the engineering value in the quiet state (documentation; simulators start from it) */
    normal: Type.Optional(Type.Number()),
    /** how the device's latched alarm is reset at the device (a carer at the panel, or a future acknowledge command) */
    reset: Type.Optional(
      Type.Object(
        {
          table: literals(['coil', 'holding'] as const),
          address: Type.Integer({ minimum: 0, maximum: 65535 }),
          value: Type.Integer({ minimum: 0, maximum: 65535 }),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);
export type RegisterPoint = Static<typeof PointSchema>;

export const RegisterMapSchema = Type.Object(
  {
    $schema: Type.Optional(Type.String()),
    name: Type.String({ pattern: NAME_PATTERN, maxLength: 64 }),
    model: Type.String({ minLength: 1 }),
    vendor: Type.Optional(Type.String()),
    description: Type.Optional(Type.String()),
    /** default poll period; a link may override it */
    pollMs: Type.Integer({ minimum: 20, maximum: 3_600_000 }),
    points: Type.Array(PointSchema, { minItems: 1, maxItems: 4000 }),
  },
  { additionalProperties: false },
);
export type RegisterMap = Static<typeof RegisterMapSchema>;

export interface MapProblem {
  /** JSON pointer of the field, e.g. `/points/3/bit` */
  path: string;
  message: string;
}

export type MapValidation = { ok: true; map: RegisterMap; problems: [] } | { ok: false; problems: MapProblem[] };

export class RegisterMapError extends EldergateError {
  constructor(
    readonly source: string,
    readonly problems: MapProblem[],
  ) {
    super(
      'MODBUS_MAP_INVALID',
      `register map ${source} has ${problems.length} problem(s):\n  - ${problems.map((p) => formatProblem(source, p)).join('\n  - ')}\n` +
        'Fix the map file (fields are named by JSON path) and start again.',
      { details: problems },
    );
  }
}

export const formatProblem = (source: string, p: MapProblem) => `${source}${p.path}: ${p.message}`;

export const isBitPoint = (p: Pick<RegisterPoint, 'table' | 'bit'>) =>
  p.table === 'coil' || p.table === 'discrete' || p.bit !== undefined;

/** A readable message for one TypeBox error: unions of literals list what is allowed. */
function describe(e: ValueError): string {
  const schema = e.schema as TSchema & { anyOf?: TSchema[] };
  if (schema.anyOf && schema.anyOf.every((s) => 'const' in s)) {
    return `must be one of ${schema.anyOf.map((s) => JSON.stringify(s.const)).join(', ')} (got ${JSON.stringify(e.value)})`;
  }
  if (schema === TriggerSchema) {
    return `must be "rising", "falling", "change", {"above": <number>} or {"below": <number>} (got ${JSON.stringify(e.value)})`;
  }
  if (typeof schema.pattern === 'string' && schema.pattern === NAME_PATTERN) {
    return `use lower-case letters, digits and "-" (got ${JSON.stringify(e.value)})`;
  }
  if (e.message === 'Unexpected property') return 'unknown field: remove it or check its spelling';
  if (e.message === 'Expected required property') return 'is required';
  return `${e.message.toLowerCase()} (got ${JSON.stringify(e.value)})`;
}

function schemaProblems(schema: TSchema, value: unknown, prefix = ''): MapProblem[] {
  const seen = new Set<string>();
  const out: MapProblem[] = [];
  for (const e of Value.Errors(schema, value)) {
    // a missing or wrong parent also fails its children: keep the first message per path
    if (seen.has(e.path)) continue;
    seen.add(e.path);
    out.push({ path: prefix + e.path, message: describe(e) });
  }
  return out;
}

/** Checks that span fields: what the schema alone cannot say. */
function pointProblems(p: RegisterPoint, at: string): MapProblem[] {
  const out: MapProblem[] = [];
  const bitPoint = isBitPoint(p);
  if (p.bit !== undefined && (p.table === 'coil' || p.table === 'discrete')) {
    out.push({ path: `${at}/bit`, message: `applies only to holding and input registers; a ${p.table} is already one bit` });
  }
  if (bitPoint) {
    for (const field of ['scale', 'offset', 'signed'] as const) {
      if (p[field] !== undefined) out.push({ path: `${at}/${field}`, message: 'applies only to a whole register, not to a bit' });
    }
    if (typeof p.trigger === 'object') {
      out.push({ path: `${at}/trigger`, message: 'a threshold needs a whole register; for a bit use "rising", "falling" or "change"' });
    }
  }
  if (p.scale === 0) out.push({ path: `${at}/scale`, message: 'must not be 0' });
  if (p.hysteresis !== undefined && typeof p.trigger !== 'object') {
    out.push({ path: `${at}/hysteresis`, message: 'applies only to {above} or {below} triggers' });
  }
  if (LEVEL_TYPES.includes(p.observation) && bitPoint) {
    out.push({ path: `${at}/observation`, message: `"${p.observation}" carries a level: map it to a whole register, not a bit` });
  }
  if (isLifeSafety(p.observation) && p.trigger === 'change') {
    out.push({
      path: `${at}/trigger`,
      message: `"${p.observation}" is life-safety: use "rising", "falling", {above} or {below} so that the end of the alarm is a restore, not a new alarm`,
    });
  }
  return out;
}

/**
 * Validate a parsed JSON register map. Returns every problem at once, each with the JSON path of the field.
 * `source` names the map in messages (file path or configuration key).
 */
export function validateRegisterMap(json: unknown, source: string): MapValidation & { source: string } {
  const problems: MapProblem[] = [];
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    return { ok: false, source, problems: [{ path: '', message: 'a register map is a JSON object {name, model, pollMs, points: [...]}' }] };
  }
  const obj = json as Record<string, unknown>;
  const { points, ...top } = obj;
  problems.push(...schemaProblems(Type.Omit(RegisterMapSchema, ['points']), top));
  if (!Array.isArray(points)) {
    problems.push({ path: '/points', message: points === undefined ? 'is required' : 'must be an array of points' });
  } else {
    if (points.length === 0) problems.push({ path: '/points', message: 'must list at least one point' });
    const names = new Map<string, number>();
    points.forEach((p, i) => {
      const at = `/points/${i}`;
      const own = schemaProblems(PointSchema, p, at);
      problems.push(...own);
      // a misspelt extra field should not hide the cross-field problems of an otherwise well-formed point
      const structural = own.filter((e) => !e.message.startsWith('unknown field'));
      if (structural.length === 0) problems.push(...pointProblems(p as RegisterPoint, at));
      const name = (p as { name?: unknown } | null)?.name;
      if (typeof name === 'string') {
        const first = names.get(name);
        if (first !== undefined) problems.push({ path: `${at}/name`, message: `"${name}" is already the name of /points/${first}` });
        else names.set(name, i);
      }
    });
  }
  if (problems.length) return { ok: false, source, problems };
  return { ok: true, source, map: Value.Clone(json) as RegisterMap, problems: [] };
}

/** Validate or throw a RegisterMapError listing every problem. */
export function parseRegisterMap(json: unknown, source: string): RegisterMap {
  const result = validateRegisterMap(json, source);
  if (!result.ok) throw new RegisterMapError(source, result.problems);
  return result.map;
}

/** The maps shipped with eldergate. */
export const MAPS_DIR = join(sourceDir(import.meta.url), 'maps');

/**
 * Load a map by shipped name (`bed-exit-controller`) or by path to a JSON file (anything containing `/` or
 * ending in `.json`). Throws RegisterMapError naming the file and every bad field.
 */
export function loadRegisterMap(nameOrPath: string, mapsDir = MAPS_DIR): RegisterMap {
  const file = /[/\\]|\.json$/.test(nameOrPath) ? nameOrPath : join(mapsDir, `${nameOrPath}.json`);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new RegisterMapError(file, [
      { path: '', message: `cannot read it (${(err as Error).message}); name a shipped map or the path of a JSON file` },
    ]);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new RegisterMapError(file, [{ path: '', message: `is not valid JSON (${(err as Error).message})` }]);
  }
  return parseRegisterMap(json, file);
}

/** The channels a map uses, in order of first appearance. */
export function mapChannels(map: RegisterMap): (string | number)[] {
  const out: (string | number)[] = [];
  for (const p of map.points) if (p.channel !== undefined && !out.includes(p.channel)) out.push(p.channel);
  return out;
}
