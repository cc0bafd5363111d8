// What the HTTP layer is given: domain services, never transports' internals.
import type pg from 'pg';
import type { Config } from '../core/config.js';
import type { Store } from '../core/db.js';
import type { Bus } from '../core/bus.js';
import type { Logger } from '../core/logger.js';
import type { Metrics } from '../core/metrics.js';
import type { Users, AuthUser } from '../core/users.js';
import type { DeviceRegistry } from '../devices/registry.js';
import type { LiveStates } from '../gateway/writer/client.js';
import type { Commands } from '../gateway/commands.js';
import type { Scope } from './scope.js';
import type { Audit } from '../core/audit.js';
import type { StorageHealth } from '../core/storage-health.js';
import type { SharedTables } from '../core/shared-tables.js';

export interface AppDeps {
  config: Config;
  store: Store;
  bus: Bus;
  log: Logger;
  metrics: Metrics;
  users: Users;
  registry: DeviceRegistry;
  states: LiveStates;
  commands: Commands;
  /**
   * cluster mode's shared store (config postgres): where the writer's observations and refusals are, for the routes
   * that list them; absent: this node's SQLite file
   */
  pg?: pg.Pool | null;
  /**
   * cluster mode on PostgreSQL: the registry, network and accounts are the cluster's (core/shared-tables.ts); a request
   * that changes them runs in a session (server/app.ts: changesSharedTables)
   */
  shared?: Pick<SharedTables, 'begin'> | null;
  /** the ports the broker really listens on (the config may say 0 = ephemeral) */
  mqttPorts: { port: number; tlsPort: number | null };
  /** the ports the terminal protocol listeners really listen on; absent: that listener is off */
  protocolPorts?: Partial<Record<'watch' | 'jt808' | 'dc09', number>>;
  /** what a user may see (server/scope.ts): one rule for incidents, residents, devices and observations */
  scope: Scope;
  /** the audit log (core/audit.ts): record every action a person takes */
  audit: Audit;
  /** extra route plugins registered by other parts (incidents, network, WebSocket, console) */
  ready(): boolean;
  /** the writer thread has said nothing for ingest.writerStallMs (gateway/writer/client.ts): since when it last did */
  writerStall?(): { since: number } | null;
  /** the storage's health (core/storage-health.ts): a failing write makes /readyz answer not-ready with the reason */
  storage?: Pick<StorageHealth, 'status'>;
  /** update gauges read from the domain, before /metrics answers */
  refreshMetrics(): void;
  /** the Prometheus text when metrics are also kept in another thread (the writer's); else the registry's own */
  metricsText?(): Promise<string>;
}
