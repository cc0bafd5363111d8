// The incident log's vocabulary: every event type with the shape of its data, as one discriminated union shared by
// the server (every append is type-checked against it) and the console (bundled by esbuild: this module must stay
// pure types and constants, no Node imports).
//
// The log holds facts about an incident — what moved its state (opened, acknowledged, escalated, …) and what people
// and the gateway did for it (notes, notifications, device commands). Receipts — a frame written to a console
// socket, a console confirming it — are not facts about the incident: they live in `incident_receipts`
// (response/receipts.ts), are written in batches and are never streamed.
import type { Position, Priority } from '../core/contracts.js';

/** First-time stamps an event sets on its incident (a stamp never moves once set). */
export type Stamps = Record<string, number>;

// Object types here are type aliases, not interfaces: an alias is assignable to Record<string, unknown>, so code that
// reads events generically (a bus listener looking at `data.test`) keeps working.

/** Who did it, kept in the event so a timeline names the person, not the account id. */
type By = {
  username?: string;
};

/** What the `opened` event carries: everything the incident row starts from. */
export type OpenedData = {
  deviceId: string;
  residentId: string | null;
  /** an alarm receiver's account no device is registered to (AlarmSource.account): the unknown panel the card is for */
  account?: string;
  unitId: string | null;
  tierUnitId: string | null;
  type: string;
  priority: Priority;
  test: boolean;
  position: Position | null;
  deadlineAt: number | null;
  cancelWindowMs: number | null;
  rule: string;
  stamps: Stamps;
  observationId?: number;
  flags?: string[];
  data?: Record<string, unknown>;
};

/** Where a webhook notification went (never a URL with credentials: response/notify.ts redacts it). */
export type NotifyRecipient = {
  kind: string;
  name: string;
  channel?: string;
  url?: string;
};

type NotifyBase = {
  channel: string;
  deliveryId: string;
  event: string;
  recipient: NotifyRecipient | undefined;
  attempt: number;
};

/** Data of each event type. */
export interface IncidentEventData {
  opened: OpenedData;
  joined: {
    count: number;
    rule: string;
    priority: Priority;
    position?: Position;
    observationId?: number;
    /** gateway receive time of the repeat */
    received?: number;
    flags?: string[];
    /**
     * the repeat is more urgent than the card (a bed-exit at night, P2, joining one of the day, P3): the card takes
     * its priority, and its deadline comes no later than the new priority's budget from now (`deadlineAt`)
     */
    raised?: { from: Priority; deadlineAt: number | null };
  };
  /**
   * `followUpAt`: when the gateway comes back to it if nobody has reached the resident by then (the priority's reach
   * budget from now; absent for a test incident, and in logs written before it existed)
   */
  acknowledged: By & { stamps: { acknowledged: number }; ackMs: number; followUpAt?: number };
  dispatched: By & {
    staffId: string;
    staffName: string;
    staffRole: string;
    staffUnitId: string;
    onDuty: boolean;
    stamps: { dispatched: number };
  };
  'on-site': By & { stamps: { onSite: number }; onSiteMs: number };
  /** by a person (`username`), or by the gateway itself (`by: 'gateway'`, e.g. a test alarm that came through) */
  resolved: By & { outcome: string; stamps: { resolved: number }; by?: 'gateway'; rule?: string };
  /** by a person (`reason` typed in), or by the resident within the cancel window (`rule`, `elapsedMs`) */
  cancelled: By & {
    reason: string;
    outcome: string;
    stamps: { cancelled: number };
    rule?: string;
    elapsedMs?: number;
    cancelWindowMs?: number | null;
  };
  /** the condition ended (device back online, power restored): the incident closes as resolved */
  cleared: { reason: string; rule: string; stamps: { resolved: number } };
  /** the resident cancelled outside the cancel window: noted only, help may be on the way */
  'late-cancel': { reason: string; rule: string; elapsedMs: number; cancelWindowMs: number | null };
  escalated: {
    fromUnitId: string | null;
    toUnitId: string | null;
    toTier: string | null;
    level: number;
    renotify: boolean;
    breach: boolean;
    dueAt: number;
    lateMs: number;
    deadlineAt: number;
    catchUp?: boolean;
  };
  note: By & { text: string };
  /**
   * The incident follows its resident to her new grid unit (her unit was changed while it waited for someone to take
   * it; one acknowledged stays with its handlers): the new unit's people see it and its escalation goes on from
   * `tierUnitId` (the tier it had reached if that is above the new unit, else the new unit), its deadline unchanged.
   * Written by the gateway (response/follow-resident.ts).
   */
  moved: { fromUnitId: string | null; toUnitId: string | null; tierUnitId: string | null; reason: string };
  /**
   * Acknowledged (or dispatched) and nobody has reached the resident within the priority's reach budget: the people
   * who see it and the unit responsible (`toUnitId`, its tier) are told again, and again every reach budget
   * (`deadlineAt`) until someone is on site or it is closed. Its status does not change. Whoever took it may have
   * gone (an account disabled, a shift ended, a nurse deleted): the incident is not left waiting on them.
   */
  overdue: { status: 'acknowledged' | 'dispatched'; dueAt: number; lateMs: number; deadlineAt: number; toUnitId: string | null; catchUp?: boolean };
  'notify-attempt': NotifyBase & {
    ok: boolean;
    status?: number;
    error?: string;
    durationMs: number;
    final: boolean;
    retryInMs?: number;
  };
  notified: NotifyBase & { attempts: number };
  'command-sent': { commandId: string; command: string; deviceId: string };
  'command-acked': { commandId: string; command: string; status: string; at: number };
}

export const INCIDENT_EVENT_TYPES = [
  'opened', 'joined', 'acknowledged', 'dispatched', 'on-site', 'resolved', 'cancelled', 'escalated', 'note',
  'notify-attempt', 'notified', 'command-sent', 'command-acked', 'cleared', 'late-cancel', 'moved', 'overdue',
] as const satisfies readonly (keyof IncidentEventData)[];
export type IncidentEventType = (typeof INCIDENT_EVENT_TYPES)[number];

// every key of IncidentEventData is listed in INCIDENT_EVENT_TYPES (the reverse is checked by `satisfies` above)
type Missing = Exclude<keyof IncidentEventData, IncidentEventType>;
const allListed: [Missing] extends [never] ? true : Missing = true;
void allListed;

/** A type and its data, before it is appended (what each append site builds). */
export type IncidentEventBody = {
  [K in IncidentEventType]: { type: K; data: IncidentEventData[K] };
}[IncidentEventType];

/**
 * One append-only incident event as stored and as streamed to consoles. `seq` is global and increasing, never
 * reused; it may have gaps (receipts moved out of the log by migration 0006, events of deleted incidents).
 */
export type IncidentEvent = {
  [K in IncidentEventType]: { seq: number; incidentId: string; type: K; at: number; actor: string | null; data: IncidentEventData[K] };
}[IncidentEventType];

/** An event of one type. */
export type IncidentEventOf<K extends IncidentEventType> = Extract<IncidentEvent, { type: K }>;

/** Types that only add information; they never move the state. */
export const INFO_EVENT_TYPES = ['notify-attempt', 'notified', 'command-sent', 'command-acked', 'note'] as const;
export type InfoEventType = (typeof INFO_EVENT_TYPES)[number];

/** The stamps an event sets, whatever its type. */
export function stampsOf(e: { data: unknown }): Stamps | undefined {
  const d = e.data as { stamps?: Stamps } | null;
  return d && typeof d === 'object' && d.stamps && typeof d.stamps === 'object' ? d.stamps : undefined;
}

// ---- receipts (not events): response/receipts.ts ------------------------------------------------------------------

export const RECEIPT_KINDS = ['pushed', 'delivered'] as const;
export type ReceiptKind = (typeof RECEIPT_KINDS)[number];

/**
 * - pushed: the incident's opening was first written to a console socket (one per incident)
 * - delivered: a console user confirmed the opening (`ack`), one per user and incident
 */
export interface IncidentReceipt {
  incidentId: string;
  kind: ReceiptKind;
  /** the seq of the event the receipt is about (the opening) */
  seq: number;
  at: number;
  userId: string | null;
  username: string | null;
}
