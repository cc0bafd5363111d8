// Turn an MQTT payload from an authenticated device into an Observation, or a refusal with its reason.
// Rule of the house: a life-safety event is never refused because of an optional field — the bad field is dropped and
// flagged; only an envelope with no usable type is refused (docs/design.md §2).
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import type { TObject, TSchema } from '@sinclair/typebox';
import { isLifeSafety, type DeviceKind, type Observation, type Position } from '../core/contracts.js';
import { KINDS, type MessageSpec } from './kinds/index.js';
import { PositionSchema } from './kinds/blocks.js';

export type Channel = 'events' | 'telemetry';

/** Why a frame was refused: a fixed set, safe as a metric label (the reason text carries device input). */
export type RefusalCode =
  | 'malformed-json' | 'not-an-object' | 'no-type' | 'oversized' | 'unknown-type' | 'invalid-envelope'
  | 'missing-field' | 'invalid-field';

export type FrameResult =
  | { ok: true; obs: Observation }
  | { ok: false; code: RefusalCode; reason: string };

interface CompiledSpec {
  spec: MessageSpec;
  /** one compiled check per field, so a bad optional field can be dropped on its own */
  fields: Map<string, { check: TypeCheck<TSchema>; required: boolean }>;
}

const compiled = new Map<string, CompiledSpec>();
const checkPosition = TypeCompiler.Compile(PositionSchema);

// Compile every kind's schemas once, at module load.
for (const def of Object.values(KINDS)) {
  for (const channel of ['events', 'telemetry'] as const) {
    for (const [name, spec] of Object.entries(def[channel])) {
      const obj = spec.fields as TObject;
      const required = new Set(obj.required ?? []);
      const fields = new Map<string, { check: TypeCheck<TSchema>; required: boolean }>();
      for (const [field, schema] of Object.entries(obj.properties ?? {})) {
        fields.set(field, { check: TypeCompiler.Compile(schema), required: required.has(field) });
      }
      compiled.set(`${def.kind}/${channel}/${name}`, { spec, fields });
    }
  }
}

/** How far into a garbled frame the salvage looks for its type. */
const SALVAGE_SCAN_CHARS = 4096;
// `type` as a key of its own (not `subtype`), quoted with " or ' or bare, then its value: enough to read a life-safety
// type out of a frame JSON.parse refuses (single quotes, truncation, junk around it).
const LIFE_SAFETY_TYPE_RE = /(?:^|[{,\s])["']?type["']?\s*:\s*["']?([a-z][a-z_-]{1,19})/i;

const refuse = (code: RefusalCode, reason: string): FrameResult => ({ ok: false, code, reason });
/** device text inside a refusal reason is bounded: reasons are stored and shown */
const quote = (s: string) => JSON.stringify(s.length > 40 ? `${s.slice(0, 40)}…` : s);

/**
 * Decode one payload. `maxBytes` bounds what is parsed as an ordinary message; a larger life-safety event is still
 * accepted (envelope only, flagged), anything else is refused.
 *
 * A payload JSON.parse refuses is refused — unless it is a life-safety event, which is salvaged: first by re-reading
 * it leniently (single quotes, bare keys, NaN/Infinity, junk after the object), keeping whatever then validates; else
 * by reading its type alone. Either way it is flagged `malformed-json`, with a flag for each thing dropped.
 */
export function decodeFrame(
  kind: DeviceKind,
  deviceId: string,
  channel: Channel,
  payload: Buffer,
  receivedAt: number,
  maxBytes: number,
): FrameResult {
  const flags: string[] = [];
  let body: unknown;
  let text = payload.toString('utf8');
  // a UTF-8 byte order mark: a parser MAY ignore it (RFC 8259 §8.1); some firmware JSON libraries write one
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  try {
    body = JSON.parse(text);
  } catch (err) {
    const why = `malformed JSON: ${(err as Error).message}`;
    const relaxed = relaxedParse(text);
    const t = relaxed && isObject(relaxed.value) ? typeField(relaxed.value) : undefined;
    if (relaxed && t !== undefined && isLifeSafety(t.trim().toLowerCase())) {
      body = relaxed.value;
      flags.push('malformed-json', ...relaxed.flags);
    } else {
      // a garbled SOS is still an SOS: read its type alone; everything else in the frame is dropped
      return salvageType(deviceId, text, receivedAt, 'malformed-json') ?? refuse('malformed-json', why);
    }
  }
  if (!isObject(body)) {
    const salvaged = salvageType(deviceId, text, receivedAt, 'malformed-envelope');
    if (salvaged) return salvaged;
    return refuse('not-an-object', 'payload is not a JSON object {"ts","seq","type",...}');
  }
  const msg = body as Record<string, unknown>;
  const rawType = typeField(msg);
  if (rawType === undefined) {
    // no type where the envelope has it; an alarm's type somewhere else in the frame is still raised
    const salvaged = salvageType(deviceId, text, receivedAt, 'malformed-envelope');
    if (salvaged) return salvaged;
    return refuse('no-type', 'no usable "type" field: the envelope is {"ts": <ms>, "seq": <n>, "type": "..."}');
  }
  // types are lower case; "SOS" (or a "Type" key) from a terminal means sos
  const type = rawType.trim().toLowerCase();
  if (type !== rawType || typeof msg.type !== 'string') flags.push('normalized:type');
  const lifeSafety = isLifeSafety(type);
  if (payload.length > maxBytes) {
    if (!lifeSafety) return refuse('oversized', `payload of ${payload.length} bytes exceeds the limit of ${maxBytes}`);
    flags.push('oversized');
  }

  const c = compiled.get(`${kind}/${channel}/${type}`);
  if (!c && !lifeSafety) {
    return refuse('unknown-type', `unknown ${channel} type ${quote(rawType)} for a ${kind}`);
  }
  if (!c) flags.push(`unexpected-type-for-${kind}`);

  // Envelope: ts and seq make deduplication possible; without them a life-safety event still goes through. They must
  // be safe integers: 1e20 and 1e20+1 are the same double, and a false duplicate would swallow an alarm.
  const out: Record<string, unknown> = { deviceId, type, receivedAt, source: 'mqtt' };
  const ts = msg.ts;
  const seq = msg.seq;
  const tsOk = Number.isSafeInteger(ts) && (ts as number) >= 0;
  const seqOk = Number.isSafeInteger(seq) && (seq as number) >= 0;
  if (tsOk && seqOk) {
    out.deviceTs = ts;
    out.seq = seq;
  } else if (lifeSafety || channel === 'events') {
    if (ts !== undefined && !tsOk) flags.push('invalid:ts');
    if (seq !== undefined && !seqOk) flags.push('invalid:seq');
    if (tsOk) out.deviceTs = ts;
    if (!tsOk || !seqOk) flags.push('no-dedup-key');
  } else {
    if (ts !== undefined && !tsOk) return refuse('invalid-envelope', '"ts" must be a non-negative integer (device ms)');
    if (seq !== undefined && !seqOk) return refuse('invalid-envelope', '"seq" must be a non-negative integer');
    if (tsOk) out.deviceTs = ts;
  }

  if (c && !flags.includes('oversized')) {
    for (const [field, { check, required }] of c.fields) {
      const value = msg[field];
      if (value === undefined) {
        if (required && !lifeSafety) return refuse('missing-field', `"${field}" is required for ${type}`);
        continue;
      }
      if (check.Check(value)) {
        out[field] = field === 'position' ? knownPositionFields(value as Position) : value;
      } else if (lifeSafety) {
        // never refuse an alarm for a field: drop it and say so
        flags.push(`invalid:${field}`);
      } else {
        const first = check.Errors(value).First();
        return refuse('invalid-field', `"${field}" is invalid for ${type}: ${first?.message ?? 'wrong shape'}`);
      }
    }
  } else if (!c && !flags.includes('oversized') && msg.position !== undefined) {
    if (checkPosition.Check(msg.position)) out.position = knownPositionFields(msg.position);
    else flags.push('invalid:position');
  }
  if (type === 'position') {
    out.position = knownPositionFields({ lat: out.lat, lon: out.lon, accuracy: out.accuracy, at: out.deviceTs } as Position);
    delete out.lat;
    delete out.lon;
    delete out.accuracy;
  }
  if (flags.length) out.flags = flags;
  return { ok: true, obs: out as unknown as Observation };
}

/** A valid position as the device sent it, without keys of its own (`stale` is the gateway's to say, not the device's). */
function knownPositionFields(p: Position): Position {
  return {
    lat: p.lat, lon: p.lon, ...(p.accuracy !== undefined && { accuracy: p.accuracy }), ...(p.at !== undefined && { at: p.at }),
  };
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The envelope's type: `type`, or failing that a key spelled `Type`/`TYPE`; undefined when there is none usable. */
function typeField(msg: Record<string, unknown>): string | undefined {
  let t = msg.type;
  if (t === undefined) {
    const key = Object.keys(msg).find((k) => k.toLowerCase() === 'type');
    if (key !== undefined) t = msg[key];
  }
  return typeof t === 'string' && t.trim().length > 0 ? t : undefined;
}

/** The last resort for a frame that cannot be read as an envelope: its life-safety type alone, or null. */
function salvageType(deviceId: string, text: string, receivedAt: number, why: string): FrameResult | null {
  const m = LIFE_SAFETY_TYPE_RE.exec(text.slice(0, SALVAGE_SCAN_CHARS));
  const type = m?.[1]!.toLowerCase();
  if (!type || !isLifeSafety(type)) return null;
  return { ok: true, obs: { deviceId, type, receivedAt, source: 'mqtt', flags: [why, 'no-dedup-key'] } as Observation };
}

const BARE_WORD_RE = /[A-Za-z_$][\w$-]*/y;
const NUMBER_RE = /-?[\d.]+(?:[eE][+-]?\d+)?/y;

/**
 * A lenient second reading of text JSON.parse refused, for salvaging alarms only: single-quoted strings, bare keys
 * and words, NaN/Infinity/undefined (→ null, so the field fails its schema and is dropped), and junk after the
 * object (flagged `trailing-garbage`). Anything else — above all a truncated frame, whose last value may be cut
 * short — gives null: a guessed value is worse than none.
 */
export function relaxedParse(text: string): { value: unknown; flags: string[] } | null {
  let i = 0;
  while (i < text.length && /\s/.test(text[i]!)) i++;
  if (text[i] !== '{') return null;
  let out = '';
  let depth = 0;
  let end = -1;
  for (; i < text.length; i++) {
    const ch = text[i]!;
    if (ch === '"' || ch === "'") {
      let j = i + 1;
      let s = '';
      for (; j < text.length && text[j] !== ch; j++) {
        if (text[j] === '\\' && j + 1 < text.length) {
          const next = text[j + 1]!;
          // \' is not a JSON escape; inside a double-quoted string a bare " would end it
          s += next === "'" ? "'" : text.slice(j, j + 2);
          j++;
        } else {
          s += text[j] === '"' ? '\\"' : text[j];
        }
      }
      if (j >= text.length) return null; // the string never ends: truncated
      out += `"${s}"`;
      i = j;
    } else if (ch === '{' || ch === '[') {
      depth++;
      out += ch;
    } else if (ch === '}' || ch === ']') {
      depth--;
      out += ch;
      if (depth === 0) {
        end = i;
        break;
      }
      if (depth < 0) return null;
    } else if (ch === '-' && text.startsWith('-Infinity', i)) {
      out += 'null';
      i += '-Infinity'.length - 1;
    } else if (/[-\d.]/.test(ch)) {
      // a number as written (1e400 parses to Infinity, which no schema accepts)
      NUMBER_RE.lastIndex = i;
      const num = NUMBER_RE.exec(text)?.[0] ?? ch;
      out += num;
      i += num.length - 1;
    } else if (/[A-Za-z_$]/.test(ch)) {
      BARE_WORD_RE.lastIndex = i;
      const word = BARE_WORD_RE.exec(text)![0];
      let k = i + word.length;
      while (k < text.length && /\s/.test(text[k]!)) k++;
      if (text[k] === ':') out += JSON.stringify(word);
      else if (word === 'true' || word === 'false' || word === 'null') out += word;
      else if (word === 'NaN' || word === 'Infinity' || word === 'undefined') out += 'null';
      else out += JSON.stringify(word);
      i += word.length - 1;
    } else {
      out += ch;
    }
  }
  if (end < 0) return null; // the object never closes: truncated
  let value: unknown;
  try {
    value = JSON.parse(out);
  } catch {
    return null;
  }
  return { value, flags: text.slice(end + 1).trim().length > 0 ? ['trailing-garbage'] : [] };
}

/** `devices/{id}/status` payload: {"online": bool} (the Last Will says false). */
export function decodeStatus(deviceId: string, payload: Buffer, receivedAt: number): FrameResult {
  try {
    const body = JSON.parse(payload.toString('utf8')) as { online?: unknown };
    if (typeof body?.online !== 'boolean') return refuse('invalid-field', 'status must be {"online": true|false}');
    return { ok: true, obs: { deviceId, type: 'status', online: body.online, receivedAt, source: 'mqtt' } };
  } catch (err) {
    return refuse('malformed-json', `malformed JSON: ${(err as Error).message}`);
  }
}

/** `devices/{id}/commands/ack` payload: {"id": <commandId>, "ok": bool, "error"?: string}. */
export function decodeCommandAck(deviceId: string, payload: Buffer, receivedAt: number): FrameResult {
  try {
    const body = JSON.parse(payload.toString('utf8')) as { id?: unknown; ok?: unknown; error?: unknown };
    if (typeof body?.id !== 'string') return refuse('invalid-field', 'command ack must be {"id": "<command id>", "ok": true}');
    return {
      ok: true,
      obs: {
        deviceId,
        type: 'command-ack',
        commandId: body.id,
        ok: body.ok !== false,
        ...(typeof body.error === 'string' ? { error: body.error.slice(0, 200) } : {}),
        receivedAt,
        source: 'mqtt',
      },
    };
  } catch (err) {
    return refuse('malformed-json', `malformed JSON: ${(err as Error).message}`);
  }
}
