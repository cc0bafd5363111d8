// Who is told what, outside the consoles: at opening, the responsible grid unit, the configured webhooks and (P1)
// the resident's family contacts; at each escalation, the tier now responsible and the configured webhooks.
// The bus listener only queues: targets are worked out and sent on later ticks, so notification never blocks
// ingest or escalation. Every attempt ends up on the incident's timeline.
import type { Logger } from 'pino';
import type { Store } from '../core/db.js';
import type { Bus, BusEvents } from '../core/bus.js';
import type { Config } from '../core/config.js';
import type { Contact } from '../devices/schema.js';
import type { CommittedEvent, IncidentService } from './incidents.js';
import type { Network } from './network.js';
import { newId } from './ids.js';
import { createWebhookNotifier, redactUrl, type WebhookAttempt, type WebhookNotifier } from './notifiers/webhook.js';

export type RecipientKind = 'unit' | 'contact' | 'webhook';

export interface Recipient {
  kind: RecipientKind;
  url: string;
  /** unit id, contact name … for the timeline */
  name: string;
  unitId?: string;
  tier?: string;
}

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
  incidents: IncidentService;
  network: Network;
  /** webhook options beyond the configuration (timeouts in tests) */
  webhook?: { timeoutMs?: number; concurrency?: number; maxQueue?: number; maxBackoffMs?: number };
}

interface ResidentInfo {
  id: string;
  name: string;
  address: string | null;
  contacts: Contact[];
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
    const base = {
      channel: 'webhook',
      deliveryId: a.delivery.id,
      event: a.delivery.event,
      recipient: recipient ? { kind: recipient.kind, name: recipient.name, url: redactUrl(recipient.url) } : undefined,
      attempt: a.attempt,
    };
    try {
      incidents.record(incidentId, 'notify-attempt', {
        ...base,
        ok: a.ok,
        ...(a.status !== undefined ? { status: a.status } : {}),
        ...(a.error !== undefined ? { error: a.error } : {}),
        durationMs: a.durationMs,
        final: a.final,
        ...(a.retryInMs !== undefined ? { retryInMs: a.retryInMs } : {}),
      });
      if (a.ok) incidents.record(incidentId, 'notified', { ...base, attempts: a.attempt });
    } catch (err) {
      log.error({ err, incidentId, deliveryId: a.delivery.id }, 'could not record a notification attempt');
    }
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
    let contacts: Contact[] = [];
    try {
      contacts = JSON.parse(r.contacts) as Contact[];
    } catch {
      log.warn({ residentId: id }, 'resident contacts are not valid JSON');
    }
    return { id: r.id, name: r.name, address: r.address, contacts: Array.isArray(contacts) ? contacts : [] };
  }

  function recipientsFor(e: CommittedEvent, priority: string, res: ResidentInfo | null): Recipient[] {
    const out: Recipient[] = [];
    const unitId = (e.type === 'opened' ? e.data.tierUnitId : e.data.toUnitId) as string | null;
    const unit = unitId ? network.getUnit(unitId) : undefined;
    if (unit?.webhook) out.push({ kind: 'unit', url: unit.webhook, name: unit.name, unitId: unit.id, tier: unit.tier });
    for (const url of config.notifiers.webhookUrls) out.push({ kind: 'webhook', url, name: redactUrl(url) });
    if (e.type === 'opened' && priority === 'P1' && res) {
      for (const c of res.contacts) if (c.webhook) out.push({ kind: 'contact', url: c.webhook, name: c.name });
    }
    return out;
  }

  function dispatch(e: CommittedEvent) {
    const incident = incidents.get(e.incidentId);
    if (!incident || incident.test) return;
    const res = resident(incident.residentId);
    const recipients = recipientsFor(e, incident.priority, res);
    if (!recipients.length) return;
    const unitId = (e.type === 'opened' ? e.data.tierUnitId : e.data.toUnitId) as string | null;
    const unit = unitId ? network.getUnit(unitId) : undefined;
    const event = e.type === 'opened' ? 'incident.opened' : 'incident.escalated';
    for (const r of recipients) {
      const body: Record<string, unknown> = {
        seq: e.seq,
        at: e.at,
        incident: {
          id: incident.id, type: incident.type, priority: incident.priority, status: incident.status, count: incident.count,
          deviceId: incident.deviceId, residentId: incident.residentId, unitId: incident.unitId,
          tierUnitId: incident.tierUnitId, escalationLevel: incident.escalationLevel, openedAt: incident.openedAt,
          deadlineAt: incident.deadlineAt, position: incident.position,
        },
        resident: res ? { id: res.id, name: res.name, address: res.address } : null,
        responsibleUnit: unit ? { id: unit.id, name: unit.name, tier: unit.tier, phone: unit.phone } : null,
        recipient: { kind: r.kind, name: r.name },
        ...(e.type === 'escalated' ? { escalation: { level: e.data.level, renotify: e.data.renotify, lateMs: e.data.lateMs } } : {}),
      };
      const delivery = { id: newId('ntf'), url: r.url, event, body, context: { incidentId: incident.id, recipient: r } };
      if (!webhook.enqueue(delivery)) {
        recordAttempt({ delivery, attempt: 0, ok: false, error: 'not sent: notification queue full', durationMs: 0, final: true });
      }
    }
  }

  // Listener side: O(1), never throws, never touches the database.
  const pending: CommittedEvent[] = [];
  let scheduled = false;
  let running = false;
  function drain() {
    scheduled = false;
    while (pending.length) {
      const e = pending.shift()!;
      try {
        dispatch(e);
      } catch (err) {
        log.error({ err, incidentId: e.incidentId, seq: e.seq }, 'could not prepare notifications');
      }
    }
  }
  const onEvent = (e: BusEvents['incident-event'][0]) => {
    if (!running || (e.type !== 'opened' && e.type !== 'escalated')) return;
    if (e.type === 'opened' && e.data.test) return;
    pending.push(e);
    if (!scheduled) {
      scheduled = true;
      setImmediate(drain);
    }
  };

  return {
    start() {
      if (running) return;
      running = true;
      bus.on('incident-event', onEvent);
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
        if (pending.length || scheduled) await new Promise((r) => setImmediate(r));
        await webhook.idle();
        if (!pending.length && !scheduled && webhook.stats().queued + webhook.stats().inFlight + webhook.stats().backingOff === 0) return;
      }
    },
    stats: () => ({ pending: pending.length, webhook: webhook.stats() }),
  };
}
