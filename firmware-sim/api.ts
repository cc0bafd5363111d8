// The gateway's HTTP API as an outside client sees it (notes/api.md): fetch, a bearer token, errors that say
// what the gateway answered and what to do.
import { ApiError } from './core/errors.js';

export interface ProvisionAnswer {
  id: string;
  secret: string;
  kind: string;
  serial: string;
  mqtt?: { host: string; port: number; tlsPort?: number; clientId: string; username: string };
}

export interface IncidentView {
  id: string;
  deviceId: string;
  type: string;
  priority: string;
  status: string;
  openedAt: number;
  lastAt: number;
  count?: number;
  test?: boolean;
  stamps?: Record<string, number>;
  [k: string]: unknown;
}

export interface ObservationView {
  id: number;
  deviceId: string;
  type: string;
  seq: number | null;
  deviceTs: number | null;
  receivedAt: number;
  [k: string]: unknown;
}

export interface ResidentInput {
  name: string;
  address?: string;
  unitId?: string;
  home?: { lat: number; lon: number };
  safeZone?: { type: 'circle'; center: { lat: number; lon: number }; radiusM: number } | { type: 'polygon'; points: { lat: number; lon: number }[] };
  noMovementSeconds?: number;
}

/** a request refused for the user's budget (429) is asked again up to this many times */
const BUDGET_RETRIES = 20;

export class GatewayApi {
  constructor(
    readonly baseUrl: string,
    private token: string | null = null,
  ) {
    this.baseUrl = baseUrl.replace(/\/+$/, '');
  }

  /** log in with a username and password (admin or technician to provision) */
  static async login(baseUrl: string, username: string, password: string): Promise<GatewayApi> {
    const api = new GatewayApi(baseUrl);
    const r = await api.request<{ token: string; user: { role: string } }>('POST', '/api/auth/login', { username, password });
    api.token = r.token;
    return api;
  }

  get authenticated(): boolean {
    return this.token !== null;
  }

  async request<T>(
    method: string,
    path: string,
    body?: unknown,
    opts: { contentType?: string; text?: boolean; retries?: number; timeoutMs?: number } = {},
  ): Promise<T> {
    const headers: Record<string, string> = {};
    if (this.token) headers['authorization'] = `Bearer ${this.token}`;
    let payload: string | undefined;
    if (body !== undefined) {
      headers['content-type'] = opts.contentType ?? 'application/json';
      payload = typeof body === 'string' ? body : JSON.stringify(body);
    }
    // reads are retried on a transport error (a gateway restarting); writes are not (they may have happened)
    const retries = opts.retries ?? (method === 'GET' ? 3 : 0);
    for (let attempt = 0; ; attempt++) {
      let res: Response;
      try {
        res = await fetch(this.baseUrl + path, {
          method,
          headers,
          body: payload,
          signal: AbortSignal.timeout(opts.timeoutMs ?? 30_000),
        });
      } catch (err) {
        if (attempt < retries) {
          await new Promise((r) => setTimeout(r, 250 * 2 ** attempt));
          continue;
        }
        throw new ApiError(0, method, path, null, `${method} ${this.baseUrl}${path} failed: ${(err as Error).message} — is the gateway running at ${this.baseUrl}?`, { cause: err });
      }
      const text = await res.text();
      // over this user's budget of requests a second (the gateway's http.apiReadsPerUserPerS / apiWritesPerUserPerS):
      // refused before anything was done, so any request is asked again once the second is over
      if (res.status === 429 && path !== '/api/auth/login' && attempt < BUDGET_RETRIES) {
        await new Promise((r) => setTimeout(r, Math.min(Number(res.headers.get('retry-after') ?? 1) || 1, 5) * 1000));
        continue;
      }
      if (!res.ok) {
        let parsed: unknown = text;
        try {
          parsed = JSON.parse(text);
        } catch {
          /* not JSON */
        }
        const msg = (parsed as { message?: string })?.message ?? text.slice(0, 300);
        const hint =
          res.status === 401 ? ' (log in: --user/--password, or check the token)' :
          res.status === 403 ? ' (this user\'s role may not do that: provisioning needs admin or technician)' : '';
        throw new ApiError(res.status, method, path, parsed, `${method} ${path} answered ${res.status}: ${msg}${hint}`);
      }
      if (opts.text) return text as T;
      return (text ? JSON.parse(text) : undefined) as T;
    }
  }

  provisionDevice(input: { kind: string; serial: string; model?: string; firmware?: string }): Promise<ProvisionAnswer> {
    return this.request('POST', '/api/devices', input);
  }

  /** bulk import: CSV `serial,kind` in, CSV `id,serial,kind,secret` out */
  async importDevices(rows: { serial: string; kind: string; model?: string; power?: 'battery' | 'mains' }[]): Promise<{ id: string; serial: string; kind: string; secret: string }[]> {
    const csv = ['serial,kind,model,firmware,power', ...rows.map((r) => `${r.serial},${r.kind},${r.model ?? 'eldergate-sim'},sim-1,${r.power ?? ''}`)].join('\n') + '\n';
    const out = await this.request<string>('POST', '/api/devices/import', csv, { contentType: 'text/csv', text: true, timeoutMs: 120_000 });
    return parseCredentialsCsv(out);
  }

  /** device fields and configuration (e.g. `config.heartbeatMs`, which the gateway supervises against) */
  updateDevice(id: string, patch: { config?: Record<string, unknown>; power?: 'battery' | 'mains'; notes?: string }): Promise<unknown> {
    return this.request('PATCH', `/api/devices/${encodeURIComponent(id)}`, patch);
  }

  createResident(input: ResidentInput): Promise<{ id: string }> {
    return this.request('POST', '/api/residents', input);
  }

  bindDevice(deviceId: string, residentId: string): Promise<unknown> {
    return this.request('POST', `/api/devices/${encodeURIComponent(deviceId)}/bind`, { residentId });
  }

  sendCommand(deviceId: string, type: string, params?: Record<string, unknown>): Promise<{ id: string }> {
    return this.request('POST', `/api/devices/${encodeURIComponent(deviceId)}/commands`, params ? { type, params } : { type });
  }

  async incidents(query: Record<string, string | number | undefined> = {}): Promise<IncidentView[]> {
    const r = await this.request<{ items: IncidentView[] } | IncidentView[]>('GET', `/api/incidents${qs(query)}`);
    return Array.isArray(r) ? r : r.items;
  }

  async observations(query: Record<string, string | number | undefined> = {}): Promise<ObservationView[]> {
    const r = await this.request<{ items: ObservationView[] }>('GET', `/api/observations${qs(query)}`);
    return r.items;
  }

  device(id: string): Promise<Record<string, unknown>> {
    return this.request('GET', `/api/devices/${encodeURIComponent(id)}`);
  }
}

export function qs(query: Record<string, string | number | boolean | undefined>): string {
  const parts = Object.entries(query)
    .filter(([, v]) => v !== undefined && v !== '')
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`);
  return parts.length ? `?${parts.join('&')}` : '';
}

/** `id,serial,kind,secret` with a header line, as the bulk import answers */
export function parseCredentialsCsv(text: string): { id: string; serial: string; kind: string; secret: string }[] {
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== '');
  const header = (lines.shift() ?? '').split(',').map((h) => h.trim());
  const col = (name: string) => header.indexOf(name);
  const [iId, iSerial, iKind, iSecret] = [col('id'), col('serial'), col('kind'), col('secret')];
  if (iId < 0 || iKind < 0 || iSecret < 0) throw new Error(`CSV header must name id,serial,kind,secret; got "${header.join(',')}"`);
  return lines.map((l) => {
    const c = l.split(',').map((x) => x.trim());
    return { id: c[iId] ?? '', serial: iSerial >= 0 ? (c[iSerial] ?? '') : '', kind: c[iKind] ?? '', secret: c[iSecret] ?? '' };
  });
}
