// An open incident belongs to its resident's grid unit: the unit's people see it, its escalation climbs that unit's
// chain. When a resident's unit is changed while incidents of hers wait for someone to take them (she moved, or was
// placed in the wrong grid), they follow her: a `moved` event for each (response/incidents.ts, `move`), so her new unit
// sees them, her next alarms join them there, and their escalation goes on from her new unit's chain (from the tier it
// had reached if that is above her new unit). Before this, they stayed with the old unit: the new unit never saw them,
// the old unit's people could not open her file, and the escalation kept climbing the old chain. An incident already
// acknowledged stays with the people handling it until it is closed (its follow-up reminds them).
//
// An incident the writer thread opens in the moment its copy of the registry still has her old unit is caught too:
// every `opened` event is compared with its resident's unit (`opened`).
//
// Idempotent and self-healing: whatever triggered it, a resident's open incidents are compared with her unit as the
// registry holds it now, and only those that differ are moved (in the writer's transaction, which checks again). At
// start every open incident is compared (a change committed just before a crash, or made on another node, is caught
// up); a move that fails (the writer restarting, a full disk) is tried again for as long as the difference remains.
import type { Logger } from '../core/logger.js';
import type { ActiveCursor, IncidentApi } from './incidents.js';
import type { Network } from './network.js';
import type { ActivePage } from './store/types.js';

export const MOVED_REASON = "the resident's unit was changed";

export interface ResidentFollower {
  /** a resident changed (any field): her open incidents are compared with her unit, in a moment */
  residentChanged(residentId: string): void;
  /** compare every open incident with its resident's unit (start-up) */
  reconcileAll(): Promise<void>;
  /** an incident was opened for this resident in this unit: moved at once if that is no longer her unit */
  opened(residentId: string | null, unitId: string | null): void;
  close(): void;
}

export interface ResidentFollowerDeps {
  incidents: Pick<IncidentApi, 'active' | 'move'>;
  network: Pick<Network, 'ancestors'>;
  /** the resident's unit as the registry holds it now; undefined: no such resident */
  unitOf(residentId: string): string | null | undefined;
  log: Logger;
  /** a move that failed is tried again after this long */
  retryMs?: number;
}

const PAGE = 500;

export function followResidents(deps: ResidentFollowerDeps): ResidentFollower {
  const log = deps.log.child({ module: 'follow-resident' });
  const retryMs = deps.retryMs ?? 2_000;
  const queued = new Set<string>();
  const retries = new Map<string, ReturnType<typeof setTimeout>>();
  let running: Promise<void> | null = null;
  let closed = false;

  /**
   * The open incidents of these residents (all: null) that are not in their resident's unit, moved there. One pass
   * over the open incidents (a few hundred in a city), not a query per resident: an import of residents announces
   * thousands of them at once.
   */
  async function reconcile(only: ReadonlySet<string> | null): Promise<void> {
    const away: { incidentId: string; residentId: string; unitId: string | null }[] = [];
    let after: ActiveCursor | null = null;
    for (;;) {
      const page: ActivePage = await deps.incidents.active({ scope: null, after, limit: PAGE });
      for (const i of page.items) {
        // only cards nobody has taken: one acknowledged stays with the people handling it (response/incidents.ts, move)
        if (!i.residentId || i.status !== 'open' || (only && !only.has(i.residentId))) continue;
        const unitId = deps.unitOf(i.residentId);
        if (unitId !== undefined && unitId !== i.unitId) away.push({ incidentId: i.id, residentId: i.residentId, unitId });
      }
      if (!page.next) break;
      after = page.next;
    }
    for (const a of away) {
      if (closed) return;
      try {
        const above = a.unitId ? deps.network.ancestors(a.unitId).map((u) => u.id) : [];
        const moved = await deps.incidents.move(a.incidentId, { unitId: a.unitId, above }, MOVED_REASON);
        if (moved.length) log.info({ incidentId: a.incidentId, residentId: a.residentId, unitId: a.unitId }, "open incident moved to its resident's new unit");
      } catch (err) {
        // the difference remains: it is looked at again until it is gone
        log.error({ err, incidentId: a.incidentId, residentId: a.residentId }, "could not move an open incident to its resident's new unit; trying again");
        if (!retries.has(a.residentId) && !closed) {
          const timer = setTimeout(() => { retries.delete(a.residentId); follower.residentChanged(a.residentId); }, retryMs);
          timer.unref?.();
          retries.set(a.residentId, timer);
        }
      }
    }
  }

  function drain(): void {
    if (running || closed || !queued.size) return;
    const batch = new Set(queued);
    queued.clear();
    running = reconcile(batch)
      .catch((err: unknown) => {
        log.error({ err }, "could not compare open incidents with their residents' units; trying again");
        for (const id of batch) queued.add(id);
        return new Promise<void>((r) => setTimeout(r, retryMs).unref?.());
      })
      .finally(() => {
        running = null;
        drain();
      });
  }

  const follower: ResidentFollower = {
    residentChanged(residentId) {
      if (closed) return;
      queued.add(residentId);
      queueMicrotask(drain);
    },
    reconcileAll: () => (closed ? Promise.resolve() : reconcile(null)),
    opened(residentId, unitId) {
      if (!residentId || closed) return;
      const now = deps.unitOf(residentId);
      if (now !== undefined && now !== unitId) follower.residentChanged(residentId);
    },
    close() {
      closed = true;
      for (const t of retries.values()) clearTimeout(t);
      retries.clear();
      queued.clear();
    },
  };
  return follower;
}
