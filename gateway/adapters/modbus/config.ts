// One entry of the gateway configuration's `modbus: []`: a link (TCP endpoint or serial line), the unit on it, the
// register map it speaks and which device each of the map's channels belongs to. Validated once at start-up with
// every problem reported at once, each naming its field (`/modbus/0/link/port`).
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { ConfigError } from '../../../core/errors.js';
import {
  formatProblem,
  loadRegisterMap,
  mapChannels,
  MAPS_DIR,
  RegisterMapError,
  validateRegisterMap,
  type RegisterMap,
} from './register-map.js';
import { DEFAULT_RETRY, type ModbusTransportOptions, type RetryOptions } from './poller.js';

export const TcpLinkSchema = Type.Object(
  {
    transport: Type.Literal('tcp'),
    host: Type.String({ minLength: 1 }),
    /** Modbus TCP's registered port is 502 */
    port: Type.Integer({ minimum: 1, maximum: 65535, default: 502 }),
  },
  { additionalProperties: false },
);

export const RtuLinkSchema = Type.Object(
  {
    transport: Type.Literal('rtu'),
    path: Type.String({ minLength: 1, description: 'serial device, e.g. /dev/ttyUSB0' }),
    // MODBUS over Serial Line v1.02 §2.5.1: 19200 baud and even parity are the required defaults
    baudRate: Type.Integer({ minimum: 300, maximum: 921600, default: 19200 }),
    parity: Type.Union([Type.Literal('none'), Type.Literal('even'), Type.Literal('odd'), Type.Literal('mark'), Type.Literal('space')], {
      default: 'even',
    }),
    dataBits: Type.Union([Type.Literal(7), Type.Literal(8)], { default: 8 }),
    stopBits: Type.Union([Type.Literal(1), Type.Literal(2)], { default: 1 }),
  },
  { additionalProperties: false },
);

export const ModbusLinkConfigSchema = Type.Object(
  {
    name: Type.String({ pattern: '^[a-z0-9][a-z0-9-]*$', maxLength: 64, description: 'names the link in logs and stats' }),
    /** the device that stands for the link (the controller): comm-lost, and points without a channel */
    deviceId: Type.String({ minLength: 1 }),
    link: Type.Unknown({ description: '{transport:"tcp",host,port} or {transport:"rtu",path,baudRate,parity,dataBits,stopBits}' }),
    unitId: Type.Integer({ minimum: 0, maximum: 255, default: 1 }),
    /** a shipped map's name, a path to a JSON map file, or the map itself */
    map: Type.Union([Type.String({ minLength: 1 }), Type.Object({})]),
    pollMs: Type.Optional(Type.Integer({ minimum: 20, maximum: 3_600_000 })),
    timeoutMs: Type.Integer({ minimum: 10, maximum: 60_000, default: 1000 }),
    retry: Type.Object(
      {
        initialMs: Type.Integer({ minimum: 1, default: DEFAULT_RETRY.initialMs }),
        maxMs: Type.Integer({ minimum: 1, default: DEFAULT_RETRY.maxMs }),
        failuresBeforeCommLost: Type.Integer({ minimum: 1, default: DEFAULT_RETRY.failuresBeforeCommLost }),
        jitter: Type.Number({ minimum: 0, maximum: 1, default: DEFAULT_RETRY.jitter }),
      },
      { default: {}, additionalProperties: false },
    ),
    /** channel (as in the map: bed number, cord number) → device id; unmapped channels report on `deviceId` */
    channels: Type.Record(Type.String(), Type.String({ minLength: 1 }), { default: {} }),
  },
  { additionalProperties: false },
);
export type ModbusLinkConfig = Static<typeof ModbusLinkConfigSchema>;

/** A validated link with its map loaded: what `startModbusLink` needs, besides sink and logger. */
export interface ModbusLinkSettings {
  name: string;
  deviceId: string;
  link: ModbusTransportOptions;
  unitId: number;
  map: RegisterMap;
  pollMs: number;
  timeoutMs: number;
  retry: RetryOptions;
  channels: Record<string, string>;
}

function errors(schema: TSchema, value: unknown, at: string): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const e of Value.Errors(schema, value)) {
    if (seen.has(e.path)) continue;
    seen.add(e.path);
    const what = e.message === 'Unexpected property' ? 'unknown field: remove it or check its spelling'
      : e.message === 'Expected required property' ? 'is required'
      : `${e.message.toLowerCase()} (got ${JSON.stringify(e.value)})`;
    out.push(`${at}${e.path}: ${what}`);
  }
  return out;
}

function validateTransport(raw: unknown, at: string): { link?: ModbusTransportOptions; problems: string[] } {
  const transport = (raw as { transport?: unknown } | null)?.transport;
  const schema = transport === 'tcp' ? TcpLinkSchema : transport === 'rtu' ? RtuLinkSchema : undefined;
  if (!schema) {
    return { problems: [`${at}/transport: must be "tcp" or "rtu" (got ${JSON.stringify(transport)})`] };
  }
  const value = Value.Default(schema, Value.Clone(raw));
  const problems = errors(schema, value, at);
  return problems.length ? { problems } : { link: value as ModbusTransportOptions, problems };
}

function resolveMap(raw: unknown, at: string, mapsDir: string): { map?: RegisterMap; problems: string[] } {
  if (typeof raw === 'string') {
    try {
      return { map: loadRegisterMap(raw, mapsDir), problems: [] };
    } catch (err) {
      if (err instanceof RegisterMapError) return { problems: err.problems.map((p) => `${at}: ${formatProblem(err.source, p)}`) };
      throw err;
    }
  }
  const result = validateRegisterMap(raw, at);
  return result.ok ? { map: result.map, problems: [] } : { problems: result.problems.map((p) => formatProblem(at, p)) };
}

/**
 * Validate the gateway configuration's `modbus` entries and load their maps. Never throws for bad input: every
 * problem is returned, each naming its field; warnings are worth a log line but do not stop the start.
 */
export function validateModbusLinks(
  entries: readonly unknown[],
  opts: { mapsDir?: string } = {},
): { links: ModbusLinkSettings[]; problems: string[]; warnings: string[] } {
  const mapsDir = opts.mapsDir ?? MAPS_DIR;
  const links: ModbusLinkSettings[] = [];
  const problems: string[] = [];
  const warnings: string[] = [];
  const names = new Map<string, number>();
  const serialPaths = new Map<string, number>();
  const tcpUnits = new Map<string, number>();

  entries.forEach((entry, i) => {
    const at = `/modbus/${i}`;
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
      problems.push(`${at}: a Modbus link is an object {name, deviceId, link, unitId, map, channels}`);
      return;
    }
    const value = Value.Default(ModbusLinkConfigSchema, Value.Clone(entry)) as ModbusLinkConfig;
    const own = errors(ModbusLinkConfigSchema, value, at);
    if (!('link' in value) || value.link === undefined) own.push(`${at}/link: is required`);
    const transport = value.link === undefined ? { problems: [] } : validateTransport(value.link, `${at}/link`);
    own.push(...transport.problems);
    const map = value.map === undefined || (typeof value.map !== 'string' && typeof value.map !== 'object')
      ? { problems: [] }
      : resolveMap(value.map, `${at}/map`, mapsDir);
    own.push(...map.problems);

    if (typeof value.name === 'string') {
      const first = names.get(value.name);
      if (first !== undefined) own.push(`${at}/name: "${value.name}" is already the name of /modbus/${first}`);
      else names.set(value.name, i);
    }
    const link = transport.link;
    if (link?.transport === 'rtu') {
      if (value.unitId < 1 || value.unitId > 247) {
        own.push(`${at}/unitId: on a serial line the unit id is 1–247 (0 is broadcast, which no device answers; got ${value.unitId})`);
      }
      const first = serialPaths.get(link.path);
      // one poller owns a serial port; several units sharing one RS-485 line need one shared line, not two openers
      if (first !== undefined) own.push(`${at}/link/path: ${link.path} is already used by /modbus/${first}; one link per serial line`);
      else serialPaths.set(link.path, i);
    }
    if (link?.transport === 'tcp') {
      const key = `${link.host}:${link.port}#${value.unitId}`;
      const first = tcpUnits.get(key);
      if (first !== undefined) own.push(`${at}/unitId: unit ${value.unitId} at ${link.host}:${link.port} is already polled by /modbus/${first}`);
      else tcpUnits.set(key, i);
    }
    if (map.map && value.channels && typeof value.channels === 'object') {
      const used = mapChannels(map.map).map(String);
      for (const key of Object.keys(value.channels)) {
        if (!used.includes(key)) {
          own.push(`${at}/channels/${key}: map ${map.map.name} has no channel ${key} (its channels: ${used.join(', ') || 'none'})`);
        }
      }
      const mapped = Object.keys(value.channels);
      if (mapped.length > 0) {
        for (const ch of used) {
          if (!mapped.includes(ch)) warnings.push(`${at}/channels: channel ${ch} of map ${map.map.name} has no device; it reports on ${value.deviceId}`);
        }
      }
    }
    if (own.length || !link || !map.map) {
      problems.push(...own);
      return;
    }
    links.push({
      name: value.name,
      deviceId: value.deviceId,
      link,
      unitId: value.unitId,
      map: map.map,
      pollMs: value.pollMs ?? map.map.pollMs,
      timeoutMs: value.timeoutMs,
      retry: value.retry,
      channels: value.channels,
    });
  });
  return { links, problems, warnings };
}

/** Validate or throw a ConfigError listing every problem (the gateway's start-up error). */
export function loadModbusLinks(entries: readonly unknown[], opts: { mapsDir?: string } = {}) {
  const result = validateModbusLinks(entries, opts);
  if (result.problems.length) throw new ConfigError(result.problems);
  return { links: result.links, warnings: result.warnings };
}

/** The device of a channel per the link's configuration; channel-less and unmapped points go to the link device. */
export const deviceForChannels = (s: Pick<ModbusLinkSettings, 'deviceId' | 'channels'>) => (channel: string | number | undefined) =>
  channel === undefined ? s.deviceId : (s.channels[String(channel)] ?? s.deviceId);
