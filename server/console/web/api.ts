// The REST API as the console uses it: the bearer token, errors as { code, message } shown to the user, and an
// Idempotency-Key on every action so a double click or a retry never does a thing twice.
import type { IncidentRow } from '../../../response/projection.js';
import type { IncidentEvent } from '../../../core/contracts.js';

export type Role = 'admin' | 'technician' | 'operator' | 'steward';
export interface User { id: string; username: string; role: Role; unitId: string | null; displayName?: string | null }
export type Incident = IncidentRow;
export type StreamEvent = IncidentEvent & { unitId: string | null };
export interface Budget { pushMs: number; ackMs: number; reachMs: number }
export interface IncidentDetail extends Incident { budget: Budget; events: StreamEvent[] }
export interface LatLon { lat: number; lon: number }
export interface Resident {
  id: string; name: string; address: string | null; unitId: string | null;
  /** webhook: the name of a notification channel (never a URL); recipient: the contact's id at that channel */
  contacts: { name: string; relation?: string; phone?: string; webhook?: string; recipient?: string }[];
  safeZone: { type: 'circle'; center: LatLon; radiusM: number } | { type: 'polygon'; points: LatLon[] } | null;
  home: LatLon | null; notes: string | null;
}
export interface LiveState {
  online: boolean; lastSeen: number | null; battery: number | null; signal: number | null; mains: boolean | null;
  position: { lat: number; lon: number; accuracy?: number; at?: number } | null; supervision: string; flags: string[];
  unreadableCount: number; lastUnreadableReason: string | null;
}
export interface Device {
  id: string; kind: string; serial: string; model: string | null; firmware: string | null; state: string;
  residentId: string | null; unitId: string | null; power: string; live: LiveState; createdAt: number; secretRotatedAt: number;
}
export interface Credentials {
  id: string; kind: string; serial: string; secret: string;
  mqtt?: { host: string; port: number; tlsPort?: number; clientId: string; username: string; keepaliveS: number; topics: Record<string, string> };
  /** a terminal that speaks its own protocol (watch, JT/T 808, DC-09) instead of MQTT */
  terminal?: { protocol: string; host: string; port: number | null; transport: string; identifier: string; setup: string; secret: string };
}
export interface Unit { id: string; name: string; tier: string; parentId: string | null; phone: string | null }
export interface Staff { id: string; name: string; role: string; unitId: string; phone: string | null; onDuty: boolean }
export interface Command { id: string; type: string; status: string; createdAt: number; sentAt: number | null; ackedAt: number | null; error: string | null }

export class ApiError extends Error {
  /** `details`: what the server added to its refusal (e.g. what still hangs on a unit that cannot be deleted) */
  constructor(readonly status: number, readonly code: string, message: string, readonly details?: unknown) {
    super(message);
  }
}

/** a read refused for this user's budget (429) is asked this many times in all */
const READ_ATTEMPTS = 4;
const TOKEN_KEY = 'eldergate.token';
const USER_KEY = 'eldergate.user';
const SESSION_KEY = 'eldergate.session';

interface SessionAnswer { token: string; expiresAt: number; ttlMs: number; user: User }

export class Api {
  token: string | null = sessionStorage.getItem(TOKEN_KEY);
  user: User | null = JSON.parse(sessionStorage.getItem(USER_KEY) ?? 'null') as User | null;
  /** when the token expires (epoch ms, server clock as told at login) and how long a fresh one lives */
  session: { expiresAt: number; ttlMs: number } | null = JSON.parse(sessionStorage.getItem(SESSION_KEY) ?? 'null') as { expiresAt: number; ttlMs: number } | null;
  /** called when the server says the token is no longer good, with the server's reason */
  onUnauthorized: (reason: string) => void = () => {};

  async login(username: string, password: string): Promise<User> {
    const out = await this.request<SessionAnswer>('POST', '/api/auth/login', { username, password }, { anonymous: true });
    this.keep(out);
    return out.user;
  }

  /** Sliding renewal: a new token for the current one, while it is still valid. */
  async renew(): Promise<void> {
    const out = await this.request<SessionAnswer>('POST', '/api/auth/renew', {});
    if (this.token) this.keep(out); // logged out meanwhile: keep nothing
  }

  private keep(out: SessionAnswer): void {
    this.token = out.token;
    this.user = out.user;
    this.session = { expiresAt: out.expiresAt, ttlMs: out.ttlMs };
    sessionStorage.setItem(TOKEN_KEY, out.token);
    sessionStorage.setItem(USER_KEY, JSON.stringify(out.user));
    sessionStorage.setItem(SESSION_KEY, JSON.stringify(this.session));
  }

  /** Forget the session here; `revoke`: the person asked to log out, so the gateway ends their tokens too. */
  logout(revoke = false): void {
    if (revoke && this.token) {
      // best effort: a console that cannot reach the gateway still forgets its token
      void fetch('/api/auth/logout', { method: 'POST', headers: { authorization: `Bearer ${this.token}` } }).catch(() => undefined);
    }
    this.token = null;
    this.user = null;
    this.session = null;
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(USER_KEY);
    sessionStorage.removeItem(SESSION_KEY);
  }

  async request<T>(method: string, path: string, body?: unknown, opts: { idempotencyKey?: string; anonymous?: boolean } = {}, attempt = 1): Promise<T> {
    const headers: Record<string, string> = {};
    if (!opts.anonymous && this.token) headers.authorization = `Bearer ${this.token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (opts.idempotencyKey) headers['idempotency-key'] = opts.idempotencyKey;
    let res: Response;
    try {
      res = await fetch(path, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
    } catch {
      throw new ApiError(0, 'NETWORK', 'the gateway cannot be reached: check the network; the action was not confirmed');
    }
    const text = await res.text();
    let parsed: unknown = undefined;
    try { parsed = text ? JSON.parse(text) : undefined; } catch { parsed = text; }
    // over this user's reads a second (http.apiReadsPerUserPerS, answered when that second ends): a read is asked
    // again after Retry-After, a few times, instead of showing an error for a board that loads many records at once
    if (res.status === 429 && method === 'GET' && attempt < READ_ATTEMPTS) {
      const waitS = Math.min(Number(res.headers.get('retry-after') ?? 1) || 1, 5);
      await new Promise((r) => setTimeout(r, waitS * 1000));
      return this.request<T>(method, path, body, opts, attempt + 1);
    }
    if (!res.ok) {
      const e = (parsed ?? {}) as { code?: string; message?: string; details?: unknown };
      if (res.status === 401 && !opts.anonymous) this.onUnauthorized(e.message ?? 'the gateway refused the session');
      throw new ApiError(res.status, e.code ?? 'HTTP_' + res.status, e.message ?? `${res.status} ${res.statusText}`, e.details);
    }
    return parsed as T;
  }

  get<T>(path: string): Promise<T> {
    return this.request<T>('GET', path);
  }

  post<T>(path: string, body?: unknown, idempotencyKey?: string): Promise<T> {
    return this.request<T>('POST', path, body ?? {}, idempotencyKey ? { idempotencyKey } : {});
  }
}

/** a failed load of a cached record is tried again this long after, this many times in all */
const RETRY_MS = 5000;
const RETRY_ATTEMPTS = 12;
/** record loads in flight at once, all caches together: the browser's other connections stay free for actions */
const LOADS_AT_ONCE = 4;
/** a load not answered by then gives its place up and counts as failed (tried again): four hung answers must not stall every load */
const LOAD_TIMEOUT_MS = 20_000;

/**
 * The queue every cached record load waits in: at most LOADS_AT_ONCE at once, an urgent one (the name on a waiting
 * P1, on a repeat-SOS toast) before every other, the newest urgent one first. A board opened on 600 open P3 cards asks
 * for 600 devices at once; first come, first served, a new P1's elder stayed nameless behind them for over 10 s on a
 * loaded machine.
 */
class LoadQueue {
  private running = 0;
  private readonly urgent: (() => void)[] = [];
  private readonly normal: (() => void)[] = [];

  /** `load` once its turn comes; `promote` moves it to the urgent lane while it still waits */
  add<T>(urgent: boolean, load: () => Promise<T>): { done: Promise<T>; promote: () => void } {
    let start!: () => void;
    const done = new Promise<T>((resolve, reject) => {
      start = () => {
        this.running++;
        let timer: ReturnType<typeof setTimeout> | undefined;
        const late = new Promise<never>((_, fail) => {
          timer = setTimeout(() => fail(new ApiError(0, 'TIMEOUT', 'the gateway did not answer in time; tried again')), LOAD_TIMEOUT_MS);
        });
        // a load that throws at once is a failed load too, never a slot held for good
        Promise.race([Promise.resolve().then(load), late]).then(resolve, reject)
          .finally(() => { clearTimeout(timer); this.running--; this.next(); });
      };
    });
    (urgent ? this.urgent : this.normal).push(start);
    this.next();
    return {
      done,
      promote: () => {
        const i = this.normal.indexOf(start);
        if (i >= 0) { this.normal.splice(i, 1); this.urgent.push(start); this.next(); }
      },
    };
  }

  private next(): void {
    while (this.running < LOADS_AT_ONCE) {
      const start = this.urgent.pop() ?? this.normal.shift();
      if (!start) return;
      start();
    }
  }
}
const loads = new LoadQueue();

/** Values fetched once and shared (residents, devices): one request in flight per id, listeners told on arrival. */
export class Cache<T> {
  private readonly values = new Map<string, T>();
  private readonly at = new Map<string, number>();
  /**
   * ids being loaded, or waiting RETRY_MS to be tried again: whether urgent yet, and how to move the load up while it
   * waits its turn (nothing to move while a retry waits: its next try takes the urgency)
   */
  private readonly pending = new Map<string, { urgent: boolean; promote: () => void }>();
  private readonly listeners = new Set<(id: string, v: T) => void>();
  /** `alwaysUrgent`: a small list every screen needs (staff on duty, units), never behind the records of the cards */
  constructor(private readonly load: (id: string) => Promise<T>, private readonly ttlMs = 30_000, private readonly alwaysUrgent = false) {}

  onChange(fn: (id: string, v: T) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  peek(id: string): T | undefined {
    return this.values.get(id);
  }

  /**
   * The value if known (possibly stale: a refresh is then started), else undefined and a load is started. `urgent`:
   * someone is waiting for it on a life-safety alarm; the load goes before every other (and a waiting one moves up).
   */
  get(id: string, urgent = false): T | undefined {
    const v = this.values.get(id);
    // a refresh of what is already shown is never urgent
    urgent = this.alwaysUrgent || (urgent && v === undefined);
    const since = Date.now() - (this.at.get(id) ?? 0);
    // a failed load is tried again only after a while, not on every render
    const fresh = v !== undefined ? since < this.ttlMs : since < RETRY_MS;
    const loading = this.pending.get(id);
    if (!loading) {
      if (!fresh) this.fetch(id, 1, urgent);
    } else if (urgent && !loading.urgent) {
      loading.urgent = true;
      loading.promote();
    }
    return v;
  }

  /**
   * Load `id`. A load that failed for the network or the server (not a refusal: forbidden, gone) is tried again by
   * itself, RETRY_MS apart, up to RETRY_ATTEMPTS: whoever shows it (a card, a toast) listens for the change, and
   * nothing else may ask again (an elder's name stayed missing on a card and on a toast after one failed load).
   */
  private fetch(id: string, attempt: number, urgent: boolean): void {
    const job = loads.add(urgent, () => this.load(id));
    const state = { urgent, promote: job.promote };
    this.pending.set(id, state);
    job.done.then(
      (x) => { this.pending.delete(id); this.set(id, x); },
      (err: unknown) => {
        this.at.set(id, Date.now());
        const refused = err instanceof ApiError && err.status >= 400 && err.status < 500 && err.status !== 408 && err.status !== 429;
        if (refused || attempt >= RETRY_ATTEMPTS) return void this.pending.delete(id);
        // still pending while it waits: asked for urgently meanwhile (a P1 card drawn), the next try goes first
        state.promote = () => {};
        setTimeout(() => {
          this.pending.delete(id);
          if (!this.values.has(id)) this.fetch(id, attempt + 1, state.urgent);
        }, RETRY_MS);
      },
    );
  }

  set(id: string, v: T): void {
    this.values.set(id, v);
    this.at.set(id, Date.now());
    for (const l of this.listeners) l(id, v);
  }
}

// ---- administration (issue 13 §1): accounts and the response network, for the admin screens -------------------
export interface UserRecord extends User { disabled: boolean }
export interface UnitRecord extends Unit { webhook: string | null; createdAt?: number }
export interface StaffRecord extends Staff { userId?: string | null }
export const STAFF_ROLES = ['chief-steward', 'nurse', 'doctor', 'steward', 'operator'] as const;
export const USER_ROLES: Role[] = ['admin', 'technician', 'operator', 'steward'];

/** The admin calls, typed; every one answers the server's refusal as an ApiError with its message. */
export function adminApi(api: Api) {
  const id = (x: string) => encodeURIComponent(x);
  return {
    users: () => api.get<{ items: UserRecord[] }>('/api/users').then((r) => r.items),
    createUser: (u: { username: string; password: string; role: Role; unitId: string | null; displayName?: string }) =>
      api.post<User>('/api/users', u),
    patchUser: (userId: string, patch: { role?: Role; unitId?: string | null; displayName?: string | null; disabled?: boolean }) =>
      api.request<UserRecord>('PATCH', `/api/users/${id(userId)}`, patch),
    resetPassword: (userId: string, password: string) => api.post<UserRecord>(`/api/users/${id(userId)}/reset-password`, { password }),
    units: () => api.get<{ items: UnitRecord[] }>('/api/units').then((r) => r.items),
    createUnit: (u: { name: string; tier: string; parentId: string | null; phone: string | null; webhook: string | null }) =>
      api.post<UnitRecord>('/api/units', u),
    patchUnit: (unitId: string, patch: Partial<{ name: string; tier: string; parentId: string | null; phone: string | null; webhook: string | null }>) =>
      api.request<UnitRecord>('PATCH', `/api/units/${id(unitId)}`, patch),
    deleteUnit: (unitId: string) => api.request<null>('DELETE', `/api/units/${id(unitId)}`),
    staff: () => api.get<{ items: StaffRecord[] }>('/api/staff').then((r) => r.items),
    createStaff: (s: { name: string; role: string; unitId: string; phone: string | null; onDuty?: boolean }) => api.post<StaffRecord>('/api/staff', s),
    patchStaff: (staffId: string, patch: Partial<{ name: string; role: string; unitId: string; phone: string | null }>) =>
      api.request<StaffRecord>('PATCH', `/api/staff/${id(staffId)}`, patch),
    deleteStaff: (staffId: string) => api.request<null>('DELETE', `/api/staff/${id(staffId)}`),
    setOnDuty: (staffId: string, onDuty: boolean) => api.post<StaffRecord>(`/api/staff/${id(staffId)}/on-duty`, { onDuty }),
  };
}

// ---- admin screens (residents, CSV import, KPIs) ------------------------------------------------------------------

/**
 * POST a text body (a CSV) and read a text answer. The secrets in an import's answer are shown once: the answer is
 * never stored here, only handed back. A refusal is an ApiError with the server's details (the bad lines).
 */
export async function postText(api: Api, path: string, text: string, contentType = 'text/csv'): Promise<{ status: number; type: string; text: string }> {
  const headers: Record<string, string> = { 'content-type': contentType, accept: 'text/csv, application/json' };
  if (api.token) headers.authorization = `Bearer ${api.token}`;
  let res: Response;
  try {
    res = await fetch(path, { method: 'POST', headers, body: text, cache: 'no-store' });
  } catch {
    throw new ApiError(0, 'NETWORK', 'the gateway cannot be reached: check the network; nothing was confirmed');
  }
  const body = await res.text();
  if (!res.ok) {
    let e: { code?: string; message?: string; details?: unknown } = {};
    try { e = JSON.parse(body) as typeof e; } catch { /* not JSON: the status says it */ }
    if (res.status === 401) api.onUnauthorized(e.message ?? 'the gateway refused the session');
    throw new ApiError(res.status, e.code ?? 'HTTP_' + res.status, e.message ?? `${res.status} ${res.statusText}`, e.details);
  }
  return { status: res.status, type: res.headers.get('content-type') ?? '', text: body };
}
