// Turn an MQTT payload from an authenticated device into an Observation, or a refusal with its reason.
// Rule of the house: a life-safety event is never refused because of an optional field — the bad field is dropped and
// flagged; only an envelope with no usable type is refused (DESIGN §2).
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import type { TObject, TSchema } from '@sinclair/typebox';
import { isLifeSafety, type DeviceKind, type Observation } from '../core/contracts.js';
import { KINDS, type MessageSpec } from './kinds/index.js';
import { PositionSchema } from './kinds/blocks.js';

export type Channel = 'events' | 'telemetry';

export type FrameResult =
  | { ok: true; obs: Observation }
  | { ok: false; reason: string };

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

const LIFE_SAFETY_TYPE_RE = /"type"\s*:\s*"([a-z-]{2,20})"/;

/**
 * Decode one payload. `maxBytes` bounds what is parsed as an ordinary message; a larger life-safety event is still
 * accepted (envelope only, flagged), anything else is refused.
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
  const text = payload.toString('utf8');
  try {
    body = JSON.parse(text);
  } catch (err) {
    // Salvage: a garbled SOS is still an SOS. Only life-safety types are salvaged, and only on the events channel.
    const m = channel === 'events' ? LIFE_SAFETY_TYPE_RE.exec(text.slice(0, 4096)) : null;
    if (m && isLifeSafety(m[1]!)) {
      return { ok: true, obs: { deviceId, type: m[1], receivedAt, source: 'mqtt', flags: ['malformed-json'] } as Observation };
    }
    return { ok: false, reason: `malformed JSON: ${(err as Error).message}` };
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return { ok: false, reason: 'payload is not a JSON object {"ts","seq","type",...}' };
  }
  const msg = body as Record<string, unknown>;
  const type = msg.type;
  if (typeof type !== 'string' || type.length === 0) {
    return { ok: false, reason: 'no usable "type" field: the envelope is {"ts": <ms>, "seq": <n>, "type": "..."}' };
  }
  const lifeSafety = isLifeSafety(type);
  if (payload.length > maxBytes) {
    if (!lifeSafety) return { ok: false, reason: `payload of ${payload.length} bytes exceeds the limit of ${maxBytes}` };
    flags.push('oversized');
  }

  const c = compiled.get(`${kind}/${channel}/${type}`);
  if (!c && !lifeSafety) {
    return { ok: false, reason: `unknown ${channel} type "${type}" for a ${kind}` };
  }
  if (!c) flags.push(`unexpected-type-for-${kind}`);

  // Envelope: ts and seq make deduplication possible; without them a life-safety event still goes through.
  const out: Record<string, unknown> = { deviceId, type, receivedAt, source: 'mqtt' };
  const ts = msg.ts;
  const seq = msg.seq;
  const tsOk = Number.isInteger(ts) && (ts as number) >= 0;
  const seqOk = Number.isInteger(seq) && (seq as number) >= 0;
  if (tsOk && seqOk) {
    out.deviceTs = ts;
    out.seq = seq;
  } else if (lifeSafety || channel === 'events') {
    if (ts !== undefined && !tsOk) flags.push('invalid:ts');
    if (seq !== undefined && !seqOk) flags.push('invalid:seq');
    if (tsOk) out.deviceTs = ts;
    if (ts === undefined || seq === undefined) flags.push('no-dedup-key');
  } else {
    if (ts !== undefined && !tsOk) return { ok: false, reason: '"ts" must be a non-negative integer (device ms)' };
    if (seq !== undefined && !seqOk) return { ok: false, reason: '"seq" must be a non-negative integer' };
    if (tsOk) out.deviceTs = ts;
  }

  if (c && !flags.includes('oversized')) {
    for (const [field, { check, required }] of c.fields) {
      const value = msg[field];
      if (value === undefined) {
        if (required && !lifeSafety) return { ok: false, reason: `"${field}" is required for ${type}` };
        continue;
      }
      if (check.Check(value)) {
        out[field] = value;
      } else if (lifeSafety || !required) {
        if (!lifeSafety) {
          const first = check.Errors(value).First();
          return { ok: false, reason: `"${field}" is invalid for ${type}: ${first?.message ?? 'wrong shape'}` };
        }
        flags.push(`invalid:${field}`);
      } else {
        const first = check.Errors(value).First();
        return { ok: false, reason: `"${field}" is invalid for ${type}: ${first?.message ?? 'wrong shape'}` };
      }
    }
  } else if (!c && !flags.includes('oversized') && msg.position !== undefined) {
    if (checkPosition.Check(msg.position)) out.position = msg.position;
    else flags.push('invalid:position');
  }
  if (type === 'position') {
    out.position = { lat: out.lat, lon: out.lon, accuracy: out.accuracy, at: out.deviceTs };
    delete out.lat;
    delete out.lon;
    delete out.accuracy;
  }
  if (flags.length) out.flags = flags;
  return { ok: true, obs: out as unknown as Observation };
}

/** `devices/{id}/status` payload: {"online": bool} (the Last Will says false). */
export function decodeStatus(deviceId: string, payload: Buffer, receivedAt: number): FrameResult {
  try {
    const body = JSON.parse(payload.toString('utf8')) as { online?: unknown };
    if (typeof body?.online !== 'boolean') return { ok: false, reason: 'status must be {"online": true|false}' };
    return { ok: true, obs: { deviceId, type: 'status', online: body.online, receivedAt, source: 'mqtt' } };
  } catch (err) {
    return { ok: false, reason: `malformed JSON: ${(err as Error).message}` };
  }
}

/** `devices/{id}/commands/ack` payload: {"id": <commandId>, "ok": bool, "error"?: string}. */
export function decodeCommandAck(deviceId: string, payload: Buffer, receivedAt: number): FrameResult {
  try {
    const body = JSON.parse(payload.toString('utf8')) as { id?: unknown; ok?: unknown; error?: unknown };
    if (typeof body?.id !== 'string') return { ok: false, reason: 'command ack must be {"id": "<command id>", "ok": true}' };
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
    return { ok: false, reason: `malformed JSON: ${(err as Error).message}` };
  }
}
