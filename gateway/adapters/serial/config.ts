// Configuration of one serial alarm receiver (an entry of the gateway config's `serial: unknown[]`).
// Validated at start-up with every problem reported at once, each naming its field.
import { Type, type Static, type TSchema, Kind } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { MAPPABLE_TYPES, VENDOR_NAMES } from './contact-id.js';

const MappableType = Type.Union(MAPPABLE_TYPES.map((t) => Type.Literal(t)));

export const CodeEntrySchema = Type.Object(
  {
    type: MappableType,
    label: Type.Optional(Type.String({ maxLength: 200 })),
    restoreType: Type.Optional(MappableType),
    restore: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

/** Contact ID codes are three hex digits (`102`), SIA codes two capital letters (`FA`). */
export const CODE_KEY_PATTERN = '^([0-9A-F]{3}|[A-Z]{2})$';
export const CodeTableSchema = Type.Record(Type.String({ pattern: CODE_KEY_PATTERN }), CodeEntrySchema, {
  additionalProperties: false,
});

export const CodeTableConfigSchema = Type.Object(
  {
    /** overrides for every account on this receiver */
    codes: Type.Optional(CodeTableSchema),
    /** overrides per device model (the model of the device the account resolves to) */
    byModel: Type.Optional(Type.Record(Type.String({ minLength: 1 }), CodeTableSchema)),
    /** overrides per Contact ID / SIA account */
    byAccount: Type.Optional(
      Type.Record(Type.String({ pattern: '^[0-9A-Fa-f]{1,16}$' }), CodeTableSchema, { additionalProperties: false }),
    ),
    /** a shipped vendor table for a model whose name does not say its vendor, e.g. {"HSGW-G8": "climax"} */
    vendorByModel: Type.Optional(
      Type.Record(Type.String({ minLength: 1 }), Type.Union(VENDOR_NAMES.map((v) => Type.Literal(v)))),
    ),
  },
  { additionalProperties: false },
);

export const SerialReceiverConfigSchema = Type.Object(
  {
    /** the serial device, e.g. /dev/ttyUSB0 or /dev/serial/by-id/… */
    path: Type.String({ minLength: 1 }),
    /** the eldergate device (kind `receiver`) that stands for this receiver: comm-lost, unknown accounts */
    receiverDeviceId: Type.String({ minLength: 1 }),
    /** MLR2/MLR2E default 19200 7E1; MLR2000 9600 8N1 (PROTOCOLS.md) */
    baudRate: Type.Integer({ minimum: 50, maximum: 4_000_000, default: 19200 }),
    dataBits: Type.Union([Type.Literal(5), Type.Literal(6), Type.Literal(7), Type.Literal(8)], { default: 7 }),
    parity: Type.Union(
      ['none', 'even', 'odd', 'mark', 'space'].map((p) => Type.Literal(p)),
      { default: 'even' },
    ),
    stopBits: Type.Union([Type.Literal(1), Type.Literal(1.5), Type.Literal(2)], { default: 1 }),
    /** receivers send a heartbeat about every 30 s: silent longer than this → comm-lost */
    heartbeatTimeoutMs: Type.Integer({ minimum: 100, default: 90_000 }),
    /**
     * An unreadable frame is NAKed so the receiver sends it again; the same bytes arriving once more after this
     * many NAKs are a format we do not read, not line noise: they are stored as `unknown` and ACKed, so one
     * frame cannot block every alarm queued behind it in the receiver.
     */
    acceptUnreadableAfter: Type.Integer({ minimum: 1, maximum: 100, default: 3 }),
    /** bytes of one frame before it is refused (the rest of it is skipped and the whole frame NAKed once) */
    maxFrameBytes: Type.Integer({ minimum: 32, maximum: 65536, default: 1024 }),
    /**
     * What ends a frame on this receiver's output: DC4 (Sur-Gard/DSC automation output), CR or LF (receivers and
     * panels whose variant ends lines instead: CR LF works with ["CR"] or ["CR", "LF"]).
     */
    terminators: Type.Array(Type.Union([Type.Literal('DC4'), Type.Literal('CR'), Type.Literal('LF')]), {
      minItems: 1, uniqueItems: true, default: ['DC4'],
    }),
    /**
     * Bytes followed by this much silence without a terminator are a frame of their own (answered, never glued to
     * the next one). The receiver waits 4 s for its answer, so this stays well below that.
     */
    interByteTimeoutMs: Type.Integer({ minimum: 20, maximum: 3000, default: 500 }),
    reopenMinMs: Type.Integer({ minimum: 10, default: 1000 }),
    reopenMaxMs: Type.Integer({ minimum: 10, default: 30_000 }),
    /** submit each receiver heartbeat as a `heartbeat` observation of receiverDeviceId (not awaited) */
    reportHeartbeats: Type.Boolean({ default: true }),
    codeTable: Type.Optional(CodeTableConfigSchema),
    /**
     * The panels' clock (SIA `ti` / `da` event times) as a fixed offset from UTC in minutes, e.g. +480 for Beijing:
     * set it to ruleSettings.timeZoneOffsetMinutes. Absent: the gateway host's local time zone.
     */
    panelUtcOffsetMinutes: Type.Optional(Type.Integer({ minimum: -840, maximum: 840 })),
  },
  { additionalProperties: false },
);

export type SerialReceiverConfig = Static<typeof SerialReceiverConfigSchema>;

export type ValidateResult<T> = { ok: true; value: T } | { ok: false; errors: string[] };

/** `/codeTable/codes/999` → `.codeTable.codes.999`, `[i]` only where the value really is an array */
function field(pointer: string, root: unknown): string {
  let node = root;
  let out = '';
  for (const seg of pointer.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))) {
    out += Array.isArray(node) ? `[${seg}]` : `.${seg}`;
    node = node && typeof node === 'object' ? (node as Record<string, unknown>)[seg] : undefined;
  }
  return out;
}

function describe(schema: TSchema, message: string, pointer: string): string {
  // "Expected union value" says nothing useful: list the literals instead
  if (schema[Kind] === 'Union') {
    const lits = (schema.anyOf as TSchema[]).filter((s) => s[Kind] === 'Literal').map((s) => JSON.stringify(s.const));
    if (lits.length === (schema.anyOf as TSchema[]).length) return `must be one of ${lits.join(', ')}`;
  }
  if (schema[Kind] === 'Record' && message.toLowerCase().includes('unexpected property')) {
    return pointer.split('/').at(-2) === 'byAccount'
      ? 'is not an account (1-16 hex digits)'
      : 'is not an event code (Contact ID: three hex digits like "102"; SIA: two capitals like "FA")';
  }
  return message.charAt(0).toLowerCase() + message.slice(1);
}

/** Validate one receiver entry; `where` prefixes every error (e.g. `serial[0]`). Defaults are applied. */
export function validateSerialReceiverConfig(input: unknown, where = 'serial[0]'): ValidateResult<SerialReceiverConfig> {
  if (typeof input !== 'object' || input === null || Array.isArray(input))
    return { ok: false, errors: [`${where}: must be an object with at least "path" and "receiverDeviceId"`] };
  const value = Value.Default(SerialReceiverConfigSchema, Value.Clone(input)) as SerialReceiverConfig;
  const errors: string[] = [];
  const seen = new Set<string>();
  for (const e of Value.Errors(SerialReceiverConfigSchema, value)) {
    // a missing property is reported once, as required, not again as "expected string"
    if (e.value === undefined && !/required/i.test(e.message)) continue;
    const got = e.value === undefined ? '' : ` (got ${JSON.stringify(e.value)})`;
    const msg = `${where}${field(e.path, value)}: ${describe(e.schema, e.message, e.path)}${got}`;
    if (!seen.has(msg)) errors.push(msg);
    seen.add(msg);
  }
  if (errors.length === 0 && value.reopenMaxMs < value.reopenMinMs)
    errors.push(`${where}.reopenMaxMs: must be at least reopenMinMs (${value.reopenMinMs})`);
  return errors.length ? { ok: false, errors } : { ok: true, value };
}

/**
 * Validate the whole `serial` list: every entry, plus what must differ between entries (a port opened twice, or
 * two receivers claiming the same device). Throwing is left to the caller (`ConfigError(errors)` at start-up).
 */
export function validateSerialConfig(list: readonly unknown[], where = 'serial'): ValidateResult<SerialReceiverConfig[]> {
  const errors: string[] = [];
  const values: SerialReceiverConfig[] = [];
  list.forEach((entry, i) => {
    const r = validateSerialReceiverConfig(entry, `${where}[${i}]`);
    if (r.ok) values.push(r.value);
    else errors.push(...r.errors);
  });
  const paths = new Map<string, number>();
  const ids = new Map<string, number>();
  list.forEach((entry, i) => {
    const o = entry as Partial<SerialReceiverConfig> | null;
    if (typeof o?.path === 'string') {
      if (paths.has(o.path)) errors.push(`${where}[${i}].path: "${o.path}" is already used by ${where}[${paths.get(o.path)}]`);
      else paths.set(o.path, i);
    }
    if (typeof o?.receiverDeviceId === 'string') {
      const id = o.receiverDeviceId;
      if (ids.has(id)) errors.push(`${where}[${i}].receiverDeviceId: "${id}" is already used by ${where}[${ids.get(id)}]`);
      else ids.set(id, i);
    }
  });
  return errors.length ? { ok: false, errors } : { ok: true, value: values };
}
