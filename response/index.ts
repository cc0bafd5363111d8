// The response network's domain, wired: network → incidents → escalation and notifications (both follow the bus).
import type { Logger } from 'pino';
import type { Store } from '../core/db.js';
import type { Bus } from '../core/bus.js';
import type { Config } from '../core/config.js';
import { systemClock, type Clock } from './clock.js';
import { createNetwork, type Network } from './network.js';
import { createIncidentService, type IncidentService } from './incidents.js';
import { createEscalation, type Escalation } from './escalation.js';
import { createNotifications, type NotificationDeps, type Notifications } from './notify.js';
import { computeKpis, type KpiQuery, type KpiReport } from './kpis.js';
import { createReceipts } from './receipts.js';

export interface Response {
  network: Network;
  incidents: IncidentService;
  escalation: Escalation;
  notifications: Notifications;
  kpis(query: KpiQuery): KpiReport;
  /** start notifications, then escalation (which escalates at once what fell overdue while the gateway was down) */
  start(): void;
  close(): Promise<void>;
}

export interface ResponseDeps {
  store: Store;
  bus: Bus;
  config: Pick<Config, 'budgets' | 'notifiers'>;
  log: Logger;
  clock?: Clock;
  webhook?: NotificationDeps['webhook'];
}

export function createResponse(deps: ResponseDeps): Response {
  const clock = deps.clock ?? systemClock;
  const { store, bus, config, log } = deps;
  const network = createNetwork({ store, log, clock });
  // push and delivery receipts: batched, best-effort, apart from the incident log (receipts.ts)
  const receipts = createReceipts({ store, log });
  const incidents = createIncidentService({ store, bus, config, log, clock, network, receipts });
  const escalation = createEscalation({ incidents, network, bus, config, log, clock });
  const notifications = createNotifications({
    store, bus, config, log, incidents, network, ...(deps.webhook ? { webhook: deps.webhook } : {}),
  });
  return {
    network,
    incidents,
    escalation,
    notifications,
    kpis: (query) => computeKpis(store.sqlite, config.budgets, { now: clock.now(), ...query }),
    start() {
      // notifications first, so the tiers reached by start-up escalations are told
      notifications.start();
      escalation.start();
    },
    async close() {
      escalation.stop();
      await notifications.close();
      // the receipts still queued are written before the store closes
      receipts.close();
    },
  };
}
