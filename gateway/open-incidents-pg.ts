// The open incidents of every device on PostgreSQL, held by a writer thread for its rules outside a batch (a device's
// rule timers armed at start, or again after a registry change): read once at start, then kept as this writer commits
// (gateway/writer/worker.ts). Inside a batch (observations, timers firing) the rules read them through the batch
// (gateway/ingest-scope-pg.ts).
import type pg from 'pg';
import type { IncidentEvent } from '../core/contracts.js';
import type { BoundDevice, OpenIncidents } from './ingest-scope.js';
import type { OpenIncidentView } from './rules/types.js';

/**
 * A device's open incidents are kept by type, by kind (real and test apart) and by whose they are (a device moved to
 * another resident joins none of the one before's; a receiver's unknown accounts each their own): here and in a
 * batch's view, as the incident service's openOf.
 */
export const openKey = (type: string, test: boolean, residentId: string | null, account: string | null): string =>
  `${test ? 't' : 'r'}${residentId ?? ''}\u0000${account ?? ''}\u0000${type}`;

/**
 * The open incidents of every device on PostgreSQL, kept as this writer commits (opened, closed): real and test ones
 * apart, and a device's lookup only of its own kind (`isTestDevice`, as the rules' lookup in a batch).
 */
export async function openIncidentsOf(pool: pg.Pool, isTestDevice: (deviceId: string) => boolean): Promise<{ lookup: (device: BoundDevice) => OpenIncidents; note(events: readonly IncidentEvent[]): void }> {
  const { rows } = await pool.query(`SELECT id, device_id, resident_id, account, type, test, opened_at, status FROM incidents WHERE status NOT IN ('resolved', 'cancelled') ORDER BY opened_at`);
  /** device → openKey(type, test, resident, account) → its open incident */
  const open = new Map<string, Map<string, OpenIncidentView>>();
  const byId = new Map<string, { deviceId: string; key: string }>();
  const set = (deviceId: string, key: string, v: OpenIncidentView) => {
    let m = open.get(deviceId);
    if (!m) open.set(deviceId, (m = new Map()));
    m.set(key, v);
    byId.set(v.id, { deviceId, key });
  };
  for (const r of rows) set(r.device_id, openKey(r.type, r.test === true, r.resident_id ?? null, r.account ?? null), { id: r.id, openedAt: Number(r.opened_at), status: r.status });
  return {
    lookup: ({ id, residentId, account }) => {
      let test: boolean | undefined;
      // the device's mark read when a rule asks, not for every observation
      return (type) => open.get(id)?.get(openKey(type, (test ??= isTestDevice(id)), residentId, account ?? null));
    },
    note(events) {
      for (const e of events) {
        if (e.type === 'opened') {
          set(e.data.deviceId, openKey(e.data.type, e.data.test, e.data.residentId ?? null, e.data.account ?? null), { id: e.incidentId, openedAt: e.at, status: 'open' });
        } else if (e.type === 'resolved' || e.type === 'cancelled' || e.type === 'cleared') {
          const where = byId.get(e.incidentId);
          if (!where) continue;
          byId.delete(e.incidentId);
          const m = open.get(where.deviceId);
          if (m?.get(where.key)?.id === e.incidentId) m.delete(where.key);
        }
      }
    },
  };
}
