// The incident row is a projection of its events: one pure fold, used both when writing (the row updated in the
// same transaction as the event) and by `rebuild`, so the two cannot drift apart unless an event lacks data. The
// `pushed` and `delivered` stamps are not events: they come from the receipts (response/receipts.ts).
import type { IncidentStatus, Position, Priority } from '../core/contracts.js';
import { stampsOf, type IncidentEvent } from './events.js';

export interface IncidentRow {
  id: string;
  deviceId: string;
  residentId: string | null;
  /** an alarm receiver's account no device is registered to: the card is that unknown panel's (OpenedData.account) */
  account: string | null;
  unitId: string | null;
  tierUnitId: string | null;
  escalationLevel: number;
  type: string;
  priority: Priority;
  status: IncidentStatus;
  test: boolean;
  count: number;
  openedAt: number;
  lastAt: number;
  deadlineAt: number | null;
  position: Position | null;
  stamps: Record<string, number>;
  assignee: string | null;
  outcome: string | null;
  lastSeq: number;
}

export type { OpenedData } from './events.js';

export const CLOSED_STATUSES: readonly IncidentStatus[] = ['resolved', 'cancelled'];
export const isClosed = (s: IncidentStatus) => CLOSED_STATUSES.includes(s);

/** Events that move the status; everything else (notes, notifications, device commands) leaves it alone. */
const STATUS_OF: Partial<Record<IncidentEvent['type'], IncidentStatus>> = {
  acknowledged: 'acknowledged',
  dispatched: 'dispatched',
  'on-site': 'on-site',
  resolved: 'resolved',
  cleared: 'resolved',
  cancelled: 'cancelled',
};

export class ProjectionError extends Error {}

export function applyEvent(state: IncidentRow | null, e: IncidentEvent): IncidentRow {
  if (e.type === 'opened') {
    if (state) throw new ProjectionError(`incident ${e.incidentId} opened twice (seq ${e.seq})`);
    const o = e.data;
    return {
      id: e.incidentId,
      deviceId: o.deviceId,
      residentId: o.residentId ?? null,
      account: o.account ?? null,
      unitId: o.unitId ?? null,
      tierUnitId: o.tierUnitId ?? null,
      escalationLevel: 0,
      type: o.type,
      priority: o.priority,
      status: 'open',
      test: Boolean(o.test),
      count: 1,
      openedAt: e.at,
      lastAt: e.at,
      deadlineAt: o.deadlineAt ?? null,
      position: o.position ?? null,
      stamps: { ...(o.stamps ?? {}) },
      assignee: null,
      outcome: null,
      lastSeq: e.seq,
    };
  }
  if (!state) throw new ProjectionError(`incident ${e.incidentId}: event ${e.type} (seq ${e.seq}) before opened`);
  const next: IncidentRow = { ...state, stamps: { ...state.stamps }, lastSeq: e.seq };
  // a stamp records the first time something happened: later events never move it
  const stamps = stampsOf(e);
  if (stamps) for (const [k, v] of Object.entries(stamps)) if (next.stamps[k] === undefined) next.stamps[k] = v;

  const status = STATUS_OF[e.type];
  if (status) next.status = status;
  // a deadline is what the incident waits for: acknowledgement while open (escalation), then someone on site (the
  // follow-up set at acknowledgement, kept through a dispatch); on site or closed, nothing more
  if (status && status !== 'dispatched') next.deadlineAt = null;

  switch (e.type) {
    case 'joined':
      next.count = typeof e.data.count === 'number' ? e.data.count : state.count + 1;
      next.lastAt = e.at;
      if (e.data.position) next.position = e.data.position;
      if (e.data.raised) {
        next.priority = e.data.priority;
        next.deadlineAt = e.data.raised.deadlineAt;
      }
      break;
    case 'dispatched':
      next.assignee = e.data.staffId ?? null;
      break;
    case 'resolved':
      next.outcome = e.data.outcome ?? null;
      break;
    case 'cleared':
      next.outcome = `cleared: ${String(e.data.reason ?? '')}`;
      break;
    case 'cancelled':
      next.outcome = e.data.outcome ?? null;
      break;
    case 'acknowledged':
      next.deadlineAt = typeof e.data.followUpAt === 'number' ? e.data.followUpAt : null;
      break;
    case 'overdue':
      next.deadlineAt = e.data.deadlineAt;
      break;
    case 'moved':
      next.unitId = e.data.toUnitId ?? null;
      next.tierUnitId = e.data.tierUnitId ?? null;
      break;
    case 'escalated':
      next.tierUnitId = e.data.toUnitId ?? null;
      next.escalationLevel = typeof e.data.level === 'number' ? e.data.level : state.escalationLevel + 1;
      next.deadlineAt = e.data.deadlineAt ?? null;
      break;
    default:
      break;
  }
  return next;
}

/** The state derived from the events alone (ordered by seq). */
export function fold(events: readonly IncidentEvent[]): IncidentRow | null {
  let state: IncidentRow | null = null;
  for (const e of events) state = applyEvent(state, e);
  return state;
}
