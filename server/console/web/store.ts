// The console's picture of the incidents: the same fold the server uses (response/projection.ts), applied to the
// stream. Each incident remembers the last seq folded into it, so an event already reflected in a loaded snapshot
// is skipped, and an event of an incident we never saw opened makes us load that incident first — retried with
// back-off until it arrives, never dropped (an event of an unknown incident may be the only sign of a P1).
import { applyEvent } from '../../../response/projection.js';
import type { Api, Incident, StreamEvent } from './api.js';

export const ACTIVE = ['open', 'acknowledged', 'dispatched', 'on-site'] as const;

/** Retry a failed lazy fetch after 0.5 s, 1 s, 2 s … up to 30 s, for as long as the incident stays unknown. */
const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 30_000;
/** events held per unknown incident while its fetch is retried; beyond this the oldest informational ones go
 *  (the fetched incident carries their effect: its lastSeq covers them) */
const MAX_QUEUED_PER_INCIDENT = 200;

interface ActivePage { items: Incident[]; head: number; next: string | null }

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

  private readonly retries = new Map<string, { attempt: number; timer: number | undefined }>();
  /** lazy fetches that failed and are being retried (the board shows that it is still loading something) */
  get retrying(): number {
    return this.retries.size;
  }

  /**
   * Every active incident the user may see (the server applies the same visibility as the stream), paged to
   * completion. Returns the log's head read with the first page: the stream resumes after it, with no gap.
   */
  async load(): Promise<number> {
    let after: string | null = null;
    let head: number | null = null;
    let pages = 0;
    do {
      const q: string = after ? `&after=${encodeURIComponent(after)}` : '';
      const page: ActivePage = await this.api.get<ActivePage>(`/api/incidents/active?limit=500${q}`);
      head ??= page.head;
      for (const inc of page.items) this.put(inc, null, false);
      after = page.next;
      if (++pages > 10_000) throw new Error('the active snapshot does not end: reload the page');
    } while (after);
    return head;
  }

  reset(): void {
    this.incidents.clear();
    this.waiting.clear();
    for (const r of this.retries.values()) window.clearTimeout(r.timer);
    this.retries.clear();
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
      // moved to another unit (its resident's unit changed): the unit it left is told too, and asks whether it is
      // still its own to show. Not announced as an event here: it did not arrive on this board (only a board that did
      // not have it, and loads it, sounds it)
      if (e.type === 'moved') {
        this.put(applyEvent(cur, e), null, replay);
        this.recheck(e.incidentId);
        return;
      }
      return this.put(applyEvent(cur, e), e, replay);
    }
    if (e.type === 'opened') return this.put(applyEvent(null, e), e, replay);
    // an incident opened before we started watching: load it, then fold what arrived meanwhile
    const queue = this.waiting.get(e.incidentId);
    if (queue) {
      queue.push(e);
      if (queue.length > MAX_QUEUED_PER_INCIDENT) queue.splice(0, queue.length - MAX_QUEUED_PER_INCIDENT);
      return;
    }
    this.waiting.set(e.incidentId, [e]);
    this.fetchUnknown(e.incidentId, replay);
  }

  /** An incident that may have left this user's units: dropped from the picture if the server no longer shows it. */
  private recheck(id: string): void {
    this.api.get<Incident>(`/api/incidents/${encodeURIComponent(id)}`).then(
      () => undefined,
      (err: { status?: number }) => {
        if (err.status !== 404 && err.status !== 403) return;
        const cur = this.incidents.get(id);
        if (!cur) return;
        this.incidents.delete(id);
        for (const l of this.listeners) l(cur, null, false);
      },
    );
  }

  private fetchUnknown(id: string, replay: boolean): void {
    this.api.get<Incident>(`/api/incidents/${encodeURIComponent(id)}`).then(
      (inc) => {
        const pending = this.waiting.get(id);
        if (!pending) return; // reset meanwhile
        this.waiting.delete(id);
        this.retries.delete(id);
        let row: Incident = { ...inc };
        delete (row as Partial<{ events: unknown; budget: unknown }>).events;
        delete (row as Partial<{ events: unknown; budget: unknown }>).budget;
        for (const p of pending) if (p.seq > row.lastSeq) row = applyEvent(row, p);
        // the newest event decides what the board does (a join sounds the tone again)
        this.put(row, pending[pending.length - 1] ?? null, replay);
      },
      (err: { status?: number }) => {
        if (!this.waiting.has(id)) return;
        // 404: the user may not see it (scope) — nothing to show, and retrying would not change that
        if (err.status === 404 || err.status === 403) {
          this.waiting.delete(id);
          this.retries.delete(id);
          return;
        }
        const r = this.retries.get(id) ?? { attempt: 0, timer: undefined };
        const base = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** r.attempt++);
        r.timer = window.setTimeout(() => { if (this.waiting.has(id)) this.fetchUnknown(id, replay); }, base / 2 + Math.random() * base / 2);
        this.retries.set(id, r);
      },
    );
  }
}
