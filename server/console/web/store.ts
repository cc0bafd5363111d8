// The console's picture of the incidents: the same fold the server uses (response/projection.ts), applied to the
// stream. Each incident remembers the last seq folded into it, so an event already reflected in a loaded snapshot
// is skipped, and an event of an incident we never saw opened makes us load that incident first.
import { applyEvent } from '../../../response/projection.js';
import type { Api, Incident, StreamEvent } from './api.js';

export const ACTIVE = ['open', 'acknowledged', 'dispatched', 'on-site'] as const;

export type StoreListener = (inc: Incident, e: StreamEvent | null, replay: boolean) => void;

export class IncidentStore {
  readonly incidents = new Map<string, Incident>();
  private readonly waiting = new Map<string, StreamEvent[]>();
  private readonly listeners = new Set<StoreListener>();
  private readonly resetListeners = new Set<() => void>();

  constructor(private readonly api: Api) {}

  on(fn: StoreListener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  onReset(fn: () => void): () => void {
    this.resetListeners.add(fn);
    return () => this.resetListeners.delete(fn);
  }

  /** the open incidents the user may see (the server scopes the list to the user's units) */
  async load(): Promise<void> {
    const out = await this.api.get<{ items: Incident[] }>(`/api/incidents?status=${ACTIVE.join(',')}&limit=500`);
    for (const inc of out.items) this.put(inc, null, false);
  }

  reset(): void {
    this.incidents.clear();
    this.waiting.clear();
    for (const l of this.resetListeners) l();
  }

  active(): Incident[] {
    return [...this.incidents.values()].filter((i) => (ACTIVE as readonly string[]).includes(i.status));
  }

  private put(inc: Incident, e: StreamEvent | null, replay: boolean): void {
    const cur = this.incidents.get(inc.id);
    if (cur && cur.lastSeq >= inc.lastSeq && e === null) return;
    this.incidents.set(inc.id, inc);
    for (const l of this.listeners) l(inc, e, replay);
  }

  apply(e: StreamEvent, replay: boolean): void {
    const cur = this.incidents.get(e.incidentId);
    if (cur) {
      if (e.seq <= cur.lastSeq) return; // already in the snapshot
      return this.put(applyEvent(cur, e), e, replay);
    }
    if (e.type === 'opened') return this.put(applyEvent(null, e), e, replay);
    // an incident opened before we started watching: load it, then fold what arrived meanwhile
    const queue = this.waiting.get(e.incidentId);
    if (queue) return void queue.push(e);
    this.waiting.set(e.incidentId, [e]);
    this.api.get<Incident>(`/api/incidents/${encodeURIComponent(e.incidentId)}`).then(
      (inc) => {
        const pending = this.waiting.get(e.incidentId) ?? [];
        this.waiting.delete(e.incidentId);
        let row: Incident = { ...inc };
        delete (row as Partial<{ events: unknown; budget: unknown }>).events;
        delete (row as Partial<{ events: unknown; budget: unknown }>).budget;
        for (const p of pending) if (p.seq > row.lastSeq) row = applyEvent(row, p);
        this.put(row, pending[pending.length - 1] ?? null, replay);
      },
      () => this.waiting.delete(e.incidentId),
    );
  }
}
