// What every view is given: the API, the incident store, caches, settings, and small shared widgets.
import { Api, ApiError, Cache, type Budget, type Device, type Resident, type Staff, type Unit } from './api.js';
import { IncidentStore } from './store.js';
import type { AlarmStreamClient } from './stream.js';
import { h } from './dom.js';
import type { MapSettings } from './map.js';

const MAX_TOASTS = 6;

export interface Settings {
  budgets: Record<'P1' | 'P2' | 'P3', Budget>;
  /** map tiles (console.tileUrl); null: none configured, the schematic plot; absent: not told yet (map.ts asks) */
  map?: MapSettings | null;
}

export class Ctx {
  readonly api = new Api();
  readonly store = new IncidentStore(this.api);
  readonly residents = new Cache<Resident>((id) => this.api.get(`/api/residents/${encodeURIComponent(id)}`));
  readonly devices = new Cache<Device>((id) => this.api.get(`/api/devices/${encodeURIComponent(id)}`), 10_000);
  readonly staff = new Cache<Staff[]>(() => this.api.get<{ items: Staff[] }>('/api/staff').then((r) => r.items), 30_000, true);
  readonly units = new Cache<Unit[]>(() => this.api.get<{ items: Unit[] }>('/api/units').then((r) => r.items), 60_000, true);
  settings: Settings = {
    budgets: {
      P1: { pushMs: 1000, ackMs: 60_000, reachMs: 15 * 60_000 },
      P2: { pushMs: 5000, ackMs: 300_000, reachMs: 3_600_000 },
      P3: { pushMs: 60_000, ackMs: 4 * 3_600_000, reachMs: 24 * 3_600_000 },
    },
  };
  stream: AlarmStreamClient | null = null;
  private toasts: HTMLElement | null = null;

  mountToasts(el: HTMLElement): void {
    this.toasts = el;
  }

  /** Show a toast at once; the answer rewrites its message (a name that arrives after the alarm). */
  toast(message: string, kind: 'error' | 'ok' | 'info' | 'alarm' = 'info', opts: { href?: string; linkText?: string; incidentId?: string; ms?: number } = {}): (message: string) => void {
    if (!this.toasts) return () => undefined;
    const link = opts.href ? h('a', { href: opts.href, class: 'toast-link' }, opts.linkText ?? 'show') : null;
    const text = document.createTextNode(message);
    const t = h('div', {
      class: `toast ${kind}`, role: kind === 'error' || kind === 'alarm' ? 'alert' : 'status', 'data-incident': opts.incidentId,
    }, text, link ? ' ' : null, link);
    link?.addEventListener('click', () => t.remove());
    this.toasts.append(t);
    // bounded: a burst of alarms keeps the newest few on screen (the board has them all)
    while (this.toasts.childElementCount > MAX_TOASTS) this.toasts.firstElementChild!.remove();
    setTimeout(() => t.remove(), opts.ms ?? (kind === 'alarm' ? 60_000 : kind === 'error' ? 8000 : 4000));
    return (m) => { text.data = m; };
  }

  fail(err: unknown, what: string): void {
    const msg = err instanceof ApiError ? err.message : (err as Error)?.message ?? String(err);
    this.toast(`${what}: ${msg}`, 'error');
  }

  can(...roles: string[]): boolean {
    return !!this.api.user && roles.includes(this.api.user.role);
  }

  staffName(id: string | null): string | null {
    if (!id) return null;
    return this.staff.get('all')?.find((s) => s.id === id)?.name ?? id;
  }

  unitName(id: string | null): string {
    if (!id) return '(no unit)';
    return this.units.get('all')?.find((u) => u.id === id)?.name ?? id;
  }
}
