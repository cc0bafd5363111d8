// What the subcommands share: where the gateway is, how to log in, and reading arguments strictly.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { GatewayApi } from '../api.js';
import { UsageError } from '../core/errors.js';

export const CONNECTION_OPTIONS = {
  api: { type: 'string' },
  mqtt: { type: 'string' },
  user: { type: 'string' },
  password: { type: 'string' },
  credentials: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

export const CONNECTION_HELP = `Gateway:
  --api URL             HTTP API (default http://localhost:8080, or ELDERGATE_SIM_API)
  --mqtt URL            MQTT broker, mqtt:// or mqtts:// (default: the API's host, port 1883, or ELDERGATE_SIM_MQTT)
  --user NAME           log in to provision devices (admin or technician; or ELDERGATE_SIM_USER)
  --password PASSWORD   (better: ELDERGATE_SIM_PASSWORD, which stays out of the process list)
  --credentials FILE    reuse devices from a credentials file (JSON written by a previous run, or the
                        CSV id,serial,kind,secret answered by POST /api/devices/import)`;

export function parse<O extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: O, positionals = false) {
  try {
    return parseArgs({ args, options, allowPositionals: positionals, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

export interface Gateway {
  apiUrl: string;
  mqttUrl: string;
  user?: string;
  password?: string;
}

export function gatewayFrom(v: { api?: string; mqtt?: string; user?: string; password?: string }, env = process.env): Gateway {
  const apiUrl = v.api ?? env['ELDERGATE_SIM_API'] ?? 'http://localhost:8080';
  let api: URL;
  try {
    api = new URL(apiUrl);
  } catch {
    throw new UsageError(`--api "${apiUrl}" is not a URL (e.g. http://localhost:8080)`);
  }
  const mqttUrl = v.mqtt ?? env['ELDERGATE_SIM_MQTT'] ?? `mqtt://${api.hostname}:1883`;
  if (!/^(mqtt|mqtts|tcp|ssl|tls):\/\/[^/]+/.test(mqttUrl)) throw new UsageError(`--mqtt "${mqttUrl}" must look like mqtt://host:1883`);
  return { apiUrl, mqttUrl, user: v.user ?? env['ELDERGATE_SIM_USER'], password: v.password ?? env['ELDERGATE_SIM_PASSWORD'] };
}

/** log in when a user is given; without one, an unauthenticated client (enough for nothing but health) */
export async function apiFor(g: Gateway, required: string): Promise<GatewayApi> {
  if (!g.user || !g.password) {
    throw new UsageError(`${required} needs a login: --user and --password (or ELDERGATE_SIM_USER / ELDERGATE_SIM_PASSWORD)`);
  }
  return GatewayApi.login(g.apiUrl, g.user, g.password);
}

export function intOption(v: string | undefined, name: string, def: number, min = 0): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be an integer ≥ ${min}, got "${v}"`);
  return n;
}

export function numOption(v: string | undefined, name: string, def: number, min = 0): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min) throw new UsageError(`--${name} must be a number ≥ ${min}, got "${v}"`);
  return n;
}
