// Who is told what, outside the consoles: at opening, the responsible grid unit, the configured webhooks and (P1)
// the resident's family contacts; at each escalation, the tier now responsible and the configured webhooks.
// A unit's or contact's `webhook` names a channel an admin configured (notifiers/channels.ts), never a URL: a URL
// stored before channels existed is sent only to a channel with exactly that URL, otherwise refused on the timeline.
// The bus listener only queues: targets are worked out and sent on later ticks, so notification never blocks
// ingest or escalation. Every attempt ends up on the incident's timeline.
import type { Logger } from 'pino';
import type { Store } from '../core/db.js';
import type { Bus, BusEvents } from '../core/bus.js';
import type { Config } from '../core/config.js';
import type { Contact } from '../devices/schema.js';
import type { CommittedEvent, IncidentApi, IncidentRow } from './incidents.js';
import { settle } from '../core/maybe.js';
import type { Network, Unit } from './network.js';
import { newId } from './ids.js';
import { createWebhookNotifier, redactUrl, type WebhookAttempt, type WebhookNotifier, type WebhookNotifierOptions } from './notifiers/webhook.js';
import { channelTarget, looksLikeUrl, resolveWebhook, type ChannelTarget } from './notifiers/channels.js';

export type RecipientKind = 'unit' | 'contact' | 'webhook';

export interface Recipient {
  kind: RecipientKind;
  /** where it goes; absent when the stored webhook resolved to no channel (`refused` says why) */
  target?: ChannelTarget | { channel?: undefined; url: string; allowPrivate: false; secret?: undefined };
  refused?: string;
  /** unit id, contact name … for the timeline */
  name: string;
  unitId?: string;
  tier?: string;
  /** a contact's id at the channel's receiver (e.g. the family app's user id), sent in the body */
  recipientId?: string;
}

/** A resident's contact as stored: `webhook` a channel name, `recipient` the contact's id at that channel. */
type StoredContact = Contact & { recipient?: string };

export interface Notifications {
  start(): void;
  /** stop listening and close the notifiers (what still waits is recorded as not sent) */
  close(): Promise<void>;
  /** resolves when every queued notification has been sent or given up (tests, orderly shutdown) */
  idle(): Promise<void>;
  stats(): { pending: number; webhook: ReturnType<WebhookNotifier['stats']> };
}

export interface NotificationDeps {
  store: Store;
  bus: Bus;
  config: Pick<Config, 'notifiers'>;
  log: Logger;
  incidents: IncidentApi;
  network: Network;
  /**
   * Cluster mode, several nodes: every node's replica hands it every event of the shared log, and one of them tells
   * people. `claim` takes the events' seqs in the shared store and answers those this node won (the others are
   * another node's to send). Should the claim fail, this node sends them all the same: a notification twice rather
   * than none.
   */
  claim?: (seqs: number[]) => Promise<ReadonlySet<number>>;
  /** webhook options beyond the configuration (timeouts in tests; resolve and dispatcher: spies in tests) */
  webhook?: Partial<Pick<WebhookNotifierOptions, 'timeoutMs' | 'concurrency' | 'maxQueue' | 'maxBackoffMs' | 'maxResponseBytes' | 'resolve' | 'dispatcher'>>;
}

interface ResidentInfo {
  id: string;
  name: string;
  address: string | null;
  contacts: StoredContact[];
}

export function createNotifications(deps: NotificationDeps): Notifications {
  const { bus, incidents, network, config } = deps;
  const log = deps.log.child({ module: 'notify' });
  const residentQ = deps.store.sqlite.prepare<[string], { id: string; name: string; address: string | null; contacts: string }>(
    'SELECT id, name, address, contacts FROM residents WHERE id = ?',
  );

  function recordAttempt(a: WebhookAttempt) {
    const incidentId = a.delivery.context?.incidentId as string | undefined;
    if (!incidentId) return;
    const recipient = a.delivery.context?.recipient as Recipient | undefined;
    // the channel's name, never its URL; a configured webhookUrls entry shows without credentials or query
    const where = recipient?.target?.channel !== undefined
      ? { channel: recipient.target.channel }
      : recipient?.target ? { url: redactUrl(recipient.target.url) } : {};
    const base = {
      channel: 'webhook',
      deliveryId: a.delivery.id,
      event: a.delivery.event,
      recipient: recipient ? { kind: recipient.kind, name: recipient.name, ...where } : undefined,
      attempt: a.attempt,
    };
    const failed = (err: unknown) => log.error({ err, incidentId, deliveryId: a.delivery.id }, 'could not record a notification attempt');
    settle(() => incidents.record(incidentId, 'notify-attempt', {
      ...base,
      ok: a.ok,
      ...(a.status !== undefined ? { status: a.status } : {}),
      ...(a.error !== undefined ? { error: a.error } : {}),
      durationMs: a.durationMs,
      final: a.final,
      ...(a.retryInMs !== undefined ? { retryInMs: a.retryInMs } : {}),
    }), () => {
      // after the attempt, in that order on the timeline
      if (a.ok) settle(() => incidents.record(incidentId, 'notified', { ...base, attempts: a.attempt }), () => {}, failed);
    }, failed);
  }

  const webhook = createWebhookNotifier({
    ...(config.notifiers.webhookSecret ? { secret: config.notifiers.webhookSecret } : {}),
    retries: config.notifiers.retries,
    backoffMs: config.notifiers.backoffMs,
    log,
    onAttempt: recordAttempt,
    ...(deps.webhook ?? {}),
  });

  function resident(id: string | null): ResidentInfo | null {
    if (!id) return null;
    const r = residentQ.get(id);
    if (!r) return null;
    let contacts: StoredContact[] = [];
    try {
      contacts = JSON.parse(r.contacts) as StoredContact[];
    } catch {
      log.warn({ residentId: id }, 'resident contacts are not valid JSON');
    }
    return { id: r.id, name: r.name, address: r.address, contacts: Array.isArray(contacts) ? contacts : [] };
  }

  /** a unit's or contact's stored `webhook` → its channel, or why nothing goes out */
  const via = (value: string): Pick<Recipient, 'target' | 'refused'> => {
    const r = resolveWebhook(config, value);
    return r.ok ? { target: r.target } : { refused: r.reason };
  };

  /**
   * the unit an event tells: the tier it opened at, the tier it escalated to, the unit responsible when overdue, the
   * tier responsible in the unit it moved to, the tier responsible when a more urgent repeat raised it
   */
  const toldUnit = (e: CommittedEvent, incident: Pick<IncidentRow, 'tierUnitId'>): string | null =>
    e.type === 'opened' ? e.data.tierUnitId
      : e.type === 'escalated' || e.type === 'overdue' ? e.data.toUnitId
        : e.type === 'moved' ? e.data.tierUnitId
          : e.type === 'joined' && e.data.raised ? incident.tierUnitId : null;
  /** a P1 for the family too: opened as one, or raised to one by a more urgent repeat */
  const becameP1 = (e: CommittedEvent, priority: string) => priority === 'P1' && (e.type === 'opened' || (e.type === 'joined' && e.data.raised !== undefined));
  const EVENT_NAMES: Partial<Record<CommittedEvent['type'], string>> = {
    opened: 'incident.opened', escalated: 'incident.escalated', overdue: 'incident.overdue', moved: 'incident.moved', joined: 'incident.raised',
  };

  function recipientsFor(e: CommittedEvent, priority: string, unit: Unit | undefined, res: ResidentInfo | null): Recipient[] {
    const out: Recipient[] = [];
    if (unit?.webhook) out.push({ kind: 'unit', ...via(unit.webhook), name: unit.name, unitId: unit.id, tier: unit.tier });
    // admin-configured: public addresses only; a channel in `broadcast` may be allowed private ones
    for (const url of config.notifiers.webhookUrls) out.push({ kind: 'webhook', target: { url, allowPrivate: false }, name: redactUrl(url) });
    for (const name of config.notifiers.broadcast ?? []) {
      const target = channelTarget(config, name);
      if (target) out.push({ kind: 'webhook', target, name });
    }
    if (becameP1(e, priority) && res) {
      for (const c of res.contacts) {
        if (!c.webhook) continue;
        out.push({ kind: 'contact', ...via(c.webhook), name: c.name, ...(c.recipient ? { recipientId: c.recipient } : {}) });
      }
    }
    return out;
  }

  function dispatch(e: CommittedEvent) {
    const incident = incidents.get(e.incidentId);
    if (!incident || incident.test) return;
    const res = resident(incident.residentId);
    const unitId = toldUnit(e, incident);
    const unit = unitId ? network.getUnit(unitId) : undefined;
    const recipients = recipientsFor(e, incident.priority, unit, res);
    if (!recipients.length) return;
    const event = EVENT_NAMES[e.type] ?? 'incident.escalated';
    for (const r of recipients) {
      const body: Record<string, unknown> = {
        seq: e.seq,
        at: e.at,
        incident: {
          id: incident.id, type: incident.type, priority: incident.priority, status: incident.status, count: incident.count,
          deviceId: incident.deviceId, residentId: incident.residentId, account: incident.account, unitId: incident.unitId,
          tierUnitId: incident.tierUnitId, escalationLevel: incident.escalationLevel, openedAt: incident.openedAt,
          deadlineAt: incident.deadlineAt, position: incident.position,
        },
        resident: res ? { id: res.id, name: res.name, address: res.address } : null,
        responsibleUnit: unit ? { id: unit.id, name: unit.name, tier: unit.tier, phone: unit.phone } : null,
        recipient: {
          kind: r.kind, name: r.name,
          ...(r.target?.channel !== undefined ? { channel: r.target.channel } : {}),
          ...(r.unitId ? { unitId: r.unitId } : {}),
          ...(r.recipientId ? { id: r.recipientId } : {}),
        },
        ...(e.type === 'escalated' ? { escalation: { level: e.data.level, renotify: e.data.renotify, lateMs: e.data.lateMs } } : {}),
        ...(e.type === 'overdue' ? { overdue: { status: e.data.status, lateMs: e.data.lateMs } } : {}),
        ...(e.type === 'moved' ? { moved: { fromUnitId: e.data.fromUnitId, toUnitId: e.data.toUnitId } } : {}),
        ...(e.type === 'joined' && e.data.raised ? { raised: { from: e.data.raised.from, to: e.data.priority } } : {}),
      };
      const delivery = {
        id: newId('ntf'), url: r.target?.url ?? '', event, body, context: { incidentId: incident.id, recipient: r },
        ...(r.target?.secret ? { secret: r.target.secret } : {}),
        allowPrivate: r.target?.allowPrivate === true,
      };
      if (!r.target) {
        // nothing is sent: say so on the timeline, where the operator looks, and in the log
        log.warn({ incidentId: incident.id, recipientKind: r.kind, unitId: r.unitId, residentId: incident.residentId }, 'notification not sent: the webhook names no configured channel');
        recordAttempt({ delivery, attempt: 0, ok: false, error: r.refused ?? 'not sent: no channel', durationMs: 0, final: true });
        continue;
      }
      if (!webhook.enqueue(delivery)) {
        recordAttempt({ delivery, attempt: 0, ok: false, error: 'not sent: notification queue full', durationMs: 0, final: true });
      }
    }
  }

  // Listener side: O(1), never throws, never touches the database.
  const pending: CommittedEvent[] = [];
  let scheduled = false;
  let running = false;
  function send(events: readonly CommittedEvent[]) {
    for (const e of events) {
      try {
        dispatch(e);
      } catch (err) {
        log.error({ err, incidentId: e.incidentId, seq: e.seq }, 'could not prepare notifications');
      }
    }
  }
  /** claims in flight (cluster mode): `idle()` waits for them */
  let claiming = 0;
  function drain() {
    scheduled = false;
    const batch = pending.splice(0);
    const { claim } = deps;
    if (!claim || !batch.length) return send(batch);
    claiming++;
    void claim(batch.map((e) => e.seq))
      .then((won) => batch.filter((e) => won.has(e.seq)), (err: unknown) => {
        log.error({ err, events: batch.length }, 'could not claim notifications in the shared store: sent from this node, another may send them too');
        return batch;
      })
      .then((mine) => { if (running) send(mine); })
      .finally(() => { claiming--; });
  }
  const onEvent = (e: BusEvents['incident-event'][0]) => {
    // what someone must be told of: an incident opened, escalated, overdue, moved to their unit, or raised by a repeat
    const tells = e.type === 'opened' || e.type === 'escalated' || e.type === 'overdue' || e.type === 'moved' || (e.type === 'joined' && e.data.raised !== undefined);
    if (!running || !tells) return;
    if (e.type === 'opened' && e.data.test) return;
    pending.push(e);
    if (!scheduled) {
      scheduled = true;
      setImmediate(drain);
    }
  };

  /**
   * Units and residents' contacts whose `webhook` names no configured channel (a URL stored before channels, or a
   * channel since removed): counted at start-up so an admin learns of them before an alarm does. Ids, never URLs.
   */
  function unresolvedWebhooks() {
    const units: string[] = [];
    let urls = 0;
    let mapped = 0;
    const residents = new Set<string>();
    let contacts = 0;
    const tally = (value: string) => {
      const r = resolveWebhook(config, value);
      if (r.ok) {
        if (r.target.fromUrl) mapped++;
        return true;
      }
      if (looksLikeUrl(value)) urls++;
      return false;
    };
    for (const u of network.listUnits(null)) if (u.webhook && !tally(u.webhook)) units.push(u.id);
    const rows = deps.store.sqlite.prepare<[], { id: string; contacts: string }>(
      `SELECT id, contacts FROM residents WHERE contacts LIKE '%"webhook"%'`,
    ).all();
    for (const row of rows) {
      let list: StoredContact[] = [];
      try {
        list = JSON.parse(row.contacts) as StoredContact[];
      } catch {
        continue;
      }
      for (const c of Array.isArray(list) ? list : []) {
        if (c && typeof c.webhook === 'string' && c.webhook && !tally(c.webhook)) {
          contacts++;
          residents.add(row.id);
        }
      }
    }
    return { units, residents: [...residents], contacts, urls, mapped };
  }

  return {
    start() {
      if (running) return;
      running = true;
      bus.on('incident-event', onEvent);
      try {
        const u = unresolvedWebhooks();
        if (u.units.length || u.contacts) {
          log.warn(
            {
              units: u.units.length, residentContacts: u.contacts, residents: u.residents.length, storedUrls: u.urls,
              unitIds: u.units.slice(0, 20), residentIds: u.residents.slice(0, 20),
            },
            `${u.contacts} resident contact(s) and ${u.units.length} unit(s) have a webhook that names no configured notification channel ` +
              '(a URL from before channels, or a removed channel): nothing is sent to them; set each to a channel name ' +
              '(PATCH /api/residents/:id, PATCH /api/units/:id) or add a channel with exactly that URL to notifiers.channels',
          );
        }
        if (u.mapped) log.info({ mapped: u.mapped }, 'stored webhook URLs sent through the channel with exactly that URL');
      } catch (err) {
        log.error({ err }, 'could not check the stored webhooks against the configured channels');
      }
    },
    async close() {
      running = false;
      bus.off('incident-event', onEvent);
      drain();
      await webhook.close();
    },
    async idle() {
      // drain runs on setImmediate; loop until both the listener side and the webhook queue are empty
      for (;;) {
        if (pending.length || scheduled || claiming) await new Promise((r) => (claiming ? setTimeout(r, 5) : setImmediate(r)));
        await webhook.idle();
        if (!pending.length && !scheduled && !claiming && webhook.stats().queued + webhook.stats().inFlight + webhook.stats().backingOff === 0) return;
      }
    },
    stats: () => ({ pending: pending.length, webhook: webhook.stats() }),
  };
}
