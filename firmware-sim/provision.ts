// Getting simulated devices their identities: provisioned through the gateway's HTTP API (bulk import, one
// resident per device where a safe zone or a binding is wanted), or loaded from a credentials file written
// by an earlier run (JSON, or the CSV `id,serial,kind,secret` the bulk import answers).
import { randomInt } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { GatewayApi, parseCredentialsCsv, type ResidentInput } from './api.js';
import { ApiError, CredentialsError, SimError } from './core/errors.js';
import type { ProtocolSimKind } from './protocols/types.js';
import type { Rng } from './core/prng.js';
import { offset, type LatLon, type SafeZone } from './core/geo.js';
import { DEFAULT_CITY, DEFAULT_ZONE_RADIUS_M } from './devices/locator.js';
import { PROFILES } from './devices/kinds.js';
import { isSimKind, SIM_KINDS, type Credentials, type SimKind } from './devices/types.js';

export interface ResidentSpec {
  /** create a resident for each device and bind it */
  name?: string;
  home?: LatLon;
  /** a circular safe zone around home; 0 = none */
  safeZoneRadiusM?: number;
  safeZone?: SafeZone;
  unitId?: string;
  noMovementSeconds?: number;
}

export interface DeviceRequest {
  kind: SimKind;
  count: number;
  /** a resident per device (with home and safe zone), or none */
  resident?: ResidentSpec | null;
  /** label used in serials and resident names */
  label?: string;
  /** device configuration stored on the gateway (heartbeatMs: what supervision expects of this device) */
  config?: Record<string, unknown>;
}

export interface ProvisionOptions {
  api: GatewayApi;
  requests: DeviceRequest[];
  rng: Rng;
  /** serials are `<prefix>-<label>-<n>`; unique per run so that runs do not collide on the gateway */
  serialPrefix?: string;
  concurrency?: number;
  onProgress?: (done: number, total: number) => void;
  /**
   * A test run's devices and residents: provisioned with `"test": true`, so that the gateway shows their incidents
   * apart, never escalates or notifies them, and leaves them out of its KPIs (scenario runs always set it).
   */
  test?: boolean;
}

/** Provision devices in bulk and, where asked, a resident for each (home, safe zone), bound to it. */
export async function provisionDevices(o: ProvisionOptions): Promise<Credentials[]> {
  const prefix = o.serialPrefix ?? `SIM-${Date.now().toString(36)}-${o.rng.int(0, 0xffff).toString(16)}`;
  const rows: { serial: string; kind: SimKind; req: DeviceRequest; n: number }[] = [];
  for (const req of o.requests) {
    for (let n = 0; n < req.count; n++) rows.push({ serial: `${prefix}-${req.label ?? req.kind}-${n + 1}`, kind: req.kind, req, n });
  }
  const total = rows.length;
  const creds: Credentials[] = [];
  // the import answers in the order it was given; chunks keep each request body modest
  for (let i = 0; i < rows.length; i += 1000) {
    const chunk = rows.slice(i, i + 1000);
    // the simulated call phone is mains powered (PROFILES): tell the gateway, which supervises mains devices tighter
    const rowsIn = chunk.map((r) => ({ serial: r.serial, kind: r.kind, power: PROFILES[r.kind].mains ? 'mains' as const : 'battery' as const }));
    const answered = o.test ? await importTestDevices(o.api, rowsIn) : await o.api.importDevices(rowsIn);
    const bySerial = new Map(answered.map((a) => [a.serial, a]));
    for (const r of chunk) {
      const a = bySerial.get(r.serial);
      if (!a) throw new CredentialsError(`the gateway's import did not answer for serial ${r.serial}`);
      creds.push({ id: a.id, secret: a.secret, kind: r.kind, serial: r.serial });
    }
    o.onProgress?.(creds.length, total);
  }
  const configured = rows.map((r, i) => ({ row: r, cred: creds[i] as Credentials })).filter((x) => x.row.req.config);
  await pool(configured, o.concurrency ?? 8, async ({ row, cred }) => {
    await o.api.updateDevice(cred.id, { config: row.req.config as Record<string, unknown> });
  });
  const withResidents = rows.map((r, i) => ({ row: r, cred: creds[i] as Credentials })).filter((x) => x.row.req.resident);
  await attachResidents(o, withResidents.map(({ row, cred }) => ({ cred, spec: row.req.resident as ResidentSpec, name: `${row.req.label ?? row.kind} ${row.n + 1}` })));
  return creds;
}

/** what a resident is created for and bound to: an MQTT terminal's credentials or a protocol terminal */
interface ResidentTarget {
  id: string;
  serial?: string;
  residentId?: string;
  home?: LatLon;
  safeZone?: SafeZone;
}

/** a resident (home, safe zone) for each device, bound to it; test residents for a test run */
async function attachResidents(o: Pick<ProvisionOptions, 'api' | 'rng' | 'test' | 'concurrency'>, items: { cred: ResidentTarget; spec: ResidentSpec; name: string }[]): Promise<void> {
  await pool(items, o.concurrency ?? 8, async ({ cred, spec, name }) => {
    const home = spec.home ?? offset(DEFAULT_CITY, o.rng.fork(cred.serial ?? cred.id).range(0, 5000), o.rng.fork(`${cred.id}/b`).range(0, 360));
    const radius = spec.safeZoneRadiusM ?? DEFAULT_ZONE_RADIUS_M;
    const safeZone: SafeZone | undefined = spec.safeZone ?? (radius > 0 ? { type: 'circle', center: home, radiusM: radius } : undefined);
    const input: ResidentInput = {
      name: `${spec.name ?? 'Sim resident'} ${name}`,
      home,
      ...(safeZone ? { safeZone } : {}),
      ...(spec.unitId ? { unitId: spec.unitId } : {}),
      ...(spec.noMovementSeconds ? { noMovementSeconds: spec.noMovementSeconds } : {}),
    };
    const resident = o.test
      ? await o.api.request<{ id: string }>('POST', '/api/residents', { ...input, test: true })
      : await o.api.createResident(input);
    await o.api.bindDevice(cred.id, resident.id);
    cred.residentId = resident.id;
    cred.home = home;
    if (safeZone) cred.safeZone = safeZone;
  });
}

// ── terminals of the gateway's own protocols (watch, JT/T 808, DC-09) ──

/** A provisioned protocol terminal: its serial is the identifier it sends, and it connects to the listener's port. */
export interface TerminalCredentials extends ResidentTarget {
  kind: ProtocolSimKind;
  /** watch id, JT/T 808 phone number, DC-09 account: provisioned as the device's serial */
  identifier: string;
  /** where the provisioning answer says the terminal connects */
  host: string;
  port: number;
}

export interface TerminalRequest {
  kind: ProtocolSimKind;
  count: number;
  resident?: ResidentSpec | null;
  label: string;
  config?: Record<string, unknown>;
}

/** The listener a protocol terminal needs is off on this gateway: nothing can connect until its port is set. */
export class ListenerOffError extends SimError {
  constructor(readonly kind: ProtocolSimKind, label: string) {
    super(
      'SIM_LISTENER_OFF',
      `group "${label}" is ${kind} terminals, but the gateway's ${kind} listener is off (its provisioning answer has no port): ` +
        `set protocols.${kind}.port (ELDERGATE_PROTOCOLS_${kind.toUpperCase()}_PORT) on the gateway and start it again, or leave the group out`,
    );
  }
}

/**
 * An identifier of the protocol's own form, fresh for each device: the serial cannot carry the run id (a watch id
 * and a JT/T 808 phone number are digits, a DC-09 account hex), so the run is named in the device's notes instead.
 */
export function terminalIdentifier(kind: ProtocolSimKind, rand: (n: number) => number = randomInt): string {
  const digits = (n: number) => Array.from({ length: n }, () => String(rand(10))).join('');
  switch (kind) {
    case 'watch':
      return `${1 + rand(9)}${digits(9)}`; // a 10-digit watch id (the last digits of an IMEI)
    case 'jt808':
      return `1${digits(10)}`; // an 11-digit mobile number, as terminals put in their header
    case 'dc09':
      return Array.from({ length: 8 }, () => '0123456789ABCDEF'[rand(16)]).join(''); // an 8-hex-digit account
  }
}

/**
 * Provision protocol terminals one by one (`POST /api/devices`: the answer names the listener's host and port, which
 * the bulk import does not). `created` receives each device's id as soon as it exists, so a caller can take them
 * away again when this throws (a listener that is off: ListenerOffError).
 */
export async function provisionTerminals(o: Omit<ProvisionOptions, 'requests' | 'serialPrefix'> & { requests: TerminalRequest[]; created: string[]; notes?: string }): Promise<TerminalCredentials[]> {
  const out: TerminalCredentials[] = [];
  const total = o.requests.reduce((n, r) => n + r.count, 0);
  const rows = o.requests.flatMap((req) => Array.from({ length: req.count }, (_, n) => ({ req, n })));
  // the first of each kind alone: a listener that is off is said once, before dozens of devices exist
  const firstOfKind = new Set<string>();
  const one = async ({ req, n }: { req: TerminalRequest; n: number }): Promise<TerminalCredentials> => {
    for (let attempt = 0; ; attempt++) {
      const identifier = terminalIdentifier(req.kind);
      let a: { id: string; terminal?: { host: string; port: number | null } };
      try {
        a = await o.api.request('POST', '/api/devices', { kind: req.kind, serial: identifier, model: 'eldergate-sim', firmware: 'sim-1', ...(o.test ? { test: true } : {}) });
      } catch (err) {
        // another device has that identifier already (another run, a real terminal): draw another
        if (err instanceof ApiError && err.status === 409 && attempt < 5) continue;
        throw err;
      }
      o.created.push(a.id);
      if (!a.terminal || a.terminal.port === null || a.terminal.port === undefined) throw new ListenerOffError(req.kind, req.label);
      const cred: TerminalCredentials = { id: a.id, kind: req.kind, identifier, serial: identifier, host: a.terminal.host, port: a.terminal.port };
      const patch = { ...(req.config ? { config: req.config } : {}), ...(o.notes ? { notes: `${o.notes}: group ${req.label} ${n + 1}` } : {}) };
      if (Object.keys(patch).length) await o.api.updateDevice(a.id, patch);
      return cred;
    }
  };
  const first = rows.filter((r) => !firstOfKind.has(r.req.kind) && firstOfKind.add(r.req.kind));
  const rest = rows.filter((r) => !first.includes(r));
  const byRow = new Map<(typeof rows)[number], TerminalCredentials>();
  for (const r of first) byRow.set(r, await one(r));
  await pool(rest, o.concurrency ?? 8, async (r) => {
    byRow.set(r, await one(r));
  });
  for (const r of rows) out.push(byRow.get(r) as TerminalCredentials);
  o.onProgress?.(out.length, total);
  const withResidents = rows.map((r, i) => ({ r, cred: out[i] as TerminalCredentials })).filter((x) => x.r.req.resident);
  await attachResidents(o, withResidents.map(({ r, cred }) => ({ cred, spec: r.req.resident as ResidentSpec, name: `${r.req.label} ${r.n + 1}` })));
  return out;
}

/** the bulk import with `?test=true`: every device of the file is a test device, from the moment it exists */
async function importTestDevices(api: GatewayApi, rows: { serial: string; kind: string; power: 'battery' | 'mains' }[]) {
  const csv = ['serial,kind,model,firmware,power', ...rows.map((r) => `${r.serial},${r.kind},eldergate-sim,sim-1,${r.power}`)].join('\n') + '\n';
  const out = await api.request<string>('POST', '/api/devices/import?test=true', csv, { contentType: 'text/csv', text: true, timeoutMs: 120_000 });
  return parseCredentialsCsv(out);
}

/** run `fn` over `items` with at most `n` at a time */
export async function pool<T>(items: readonly T[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(n, items.length) }, async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await fn(item);
    }
  });
  await Promise.all(workers);
}

export interface CredentialsFile {
  version: 1;
  createdAt: string;
  api?: string;
  mqtt?: string;
  devices: Credentials[];
}

export async function saveCredentials(file: string, data: Omit<CredentialsFile, 'version' | 'createdAt'>): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  const body: CredentialsFile = { version: 1, createdAt: new Date().toISOString(), ...data };
  // device secrets: readable by the owner only
  await writeFile(file, JSON.stringify(body, null, 2) + '\n', { mode: 0o600 });
}

/** Load a JSON credentials file (written by `saveCredentials`) or a CSV `id,serial,kind,secret`. */
export async function loadCredentials(file: string): Promise<CredentialsFile> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new CredentialsError(`cannot read credentials file ${file}: ${(err as Error).message}`);
  }
  let devices: Credentials[];
  let meta: Partial<CredentialsFile> = {};
  if (text.trimStart().startsWith('{') || text.trimStart().startsWith('[')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw new CredentialsError(`${file} is not valid JSON: ${(err as Error).message}`);
    }
    const list = Array.isArray(parsed) ? parsed : (parsed as CredentialsFile).devices;
    if (!Array.isArray(list)) throw new CredentialsError(`${file}: expected {"devices": [{id, secret, kind}, …]}`);
    if (!Array.isArray(parsed)) meta = parsed as CredentialsFile;
    devices = list as Credentials[];
  } else {
    try {
      devices = parseCredentialsCsv(text) as Credentials[];
    } catch (err) {
      throw new CredentialsError(`${file}: ${(err as Error).message}`);
    }
  }
  const problems: string[] = [];
  devices.forEach((d, i) => {
    if (!d || typeof d.id !== 'string' || !d.id) problems.push(`device ${i + 1}: no id`);
    else if (typeof d.secret !== 'string' || !d.secret) problems.push(`device ${d.id}: no secret`);
    else if (!isSimKind(d.kind)) problems.push(`device ${d.id}: kind "${String(d.kind)}" is not one of ${SIM_KINDS.join(', ')}`);
  });
  if (problems.length) throw new CredentialsError(`${file}: ${problems.slice(0, 10).join('; ')}${problems.length > 10 ? ` (and ${problems.length - 10} more)` : ''}`);
  return { version: 1, createdAt: meta.createdAt ?? '', api: meta.api, mqtt: meta.mqtt, devices };
}

/** take `counts` devices of each kind from a loaded file, or say exactly what is missing */
export function selectCredentials(all: readonly Credentials[], counts: Partial<Record<SimKind, number>>): Credentials[] {
  const out: Credentials[] = [];
  const missing: string[] = [];
  for (const kind of SIM_KINDS) {
    const want = counts[kind] ?? 0;
    const have = all.filter((d) => d.kind === kind);
    if (have.length < want) missing.push(`${want} ${kind} wanted, ${have.length} in the file`);
    out.push(...have.slice(0, want));
  }
  if (missing.length) throw new CredentialsError(`not enough devices in the credentials file: ${missing.join('; ')}. Provision more (--user/--password) or lower --devices.`);
  return out;
}
