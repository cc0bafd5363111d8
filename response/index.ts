// The response network's domain, wired: network → incidents → escalation and notifications (both follow the bus).
import type { Logger } from 'pino';
import type { Store } from '../core/db.js';
import type { Bus } from '../core/bus.js';
import type { Config } from '../core/config.js';
import { systemClock, type Clock } from './clock.js';
import { createNetwork, type Network } from './network.js';
import { createIncidentService, type IncidentApi, type IncidentService, type IncidentWrites } from './incidents.js';
import { createEscalation, type Escalation } from './escalation.js';
import { createNotifications, type NotificationDeps, type Notifications } from './notify.js';
import { computeKpis, type KpiQuery, type KpiReport } from './kpis.js';
import { createSqliteKpiStore } from './kpi-store.js';
import { createReceipts, type ReceiptsOptions } from './receipts.js';

export interface Response<I extends IncidentApi = IncidentService> {
  network: Network;
  /** the incident service: on its own, every method synchronous; with `writes`, those writes go where they say */
  incidents: I;
  escalation: Escalation;
  notifications: Notifications;
  kpis(query: KpiQuery): KpiReport;
  /**
   * hand the receipts queued now to where they are written (the gateway: before its writer thread closes); resolves
   * once those batches are answered, or after `timeoutMs`
   */
  flushReceipts(timeoutMs?: number): Promise<void>;
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
  /** cluster mode, several nodes: which node tells people of an event (response/notify.ts) */
  claimNotifications?: NotificationDeps['claim'];
  /**
   * Where the log's writes go instead of this thread's connection: the gateway hands them to its writer thread, the
   * log's one writer (gateway/writer), so the thread with the sockets never waits for SQLite's write lock.
   */
  writes?: IncidentWrites;
  /** where batches of push and delivery receipts are written (this thread's connection if not given) */
  writeReceipts?: ReceiptsOptions['write'];
}

export function createResponse(deps: ResponseDeps & { writes: IncidentWrites }): Response<IncidentApi>;
export function createResponse(deps: ResponseDeps & { writes?: undefined }): Response;
export function createResponse(deps: ResponseDeps): Response<IncidentApi> {
  const clock = deps.clock ?? systemClock;
  const { store, bus, config, log } = deps;
  const network = createNetwork({ store, log, clock });
  // push and delivery receipts: batched, best-effort, apart from the incident log (receipts.ts)
  const receipts = createReceipts({ store, log, ...(deps.writeReceipts ? { write: deps.writeReceipts } : {}) });
  const kpiStore = createSqliteKpiStore(store.sqlite);
  const local = createIncidentService({ store, bus, config, log, clock, network, receipts });
  const incidents: IncidentApi = deps.writes ? { ...local, ...deps.writes } : local;
  const escalation = createEscalation({ incidents, network, bus, config, log, clock });
  const notifications = createNotifications({
    store, bus, config, log, incidents, network, ...(deps.webhook ? { webhook: deps.webhook } : {}),
    ...(deps.claimNotifications ? { claim: deps.claimNotifications } : {}),
  });
  return {
    network,
    incidents,
    escalation,
    notifications,
    kpis: (query) => computeKpis(kpiStore, config.budgets, { now: clock.now(), ...query }),
    async flushReceipts(timeoutMs = 5_000) {
      receipts.flush();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([receipts.settled(), new Promise<void>((r) => { timer = setTimeout(r, timeoutMs); })]);
      clearTimeout(timer);
    },
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
