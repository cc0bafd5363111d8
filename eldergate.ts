// Start-up of the whole gateway, in order: storage → registry and state → ingest → broker → HTTP. Close in reverse.
import type { FastifyInstance } from 'fastify';
import type { Config } from './core/config.js';
import { createLogger, type Logger } from './core/logger.js';
import { dbFile, openStore, type Store } from './core/db.js';
import { Bus } from './core/bus.js';
import { createMetrics, type Metrics } from './core/metrics.js';
import { serviceSecret } from './core/secrets.js';
import { Users, bootstrapAdmin } from './core/users.js';
import { SecretHasher } from './devices/credentials.js';
import { DeviceRegistry } from './devices/registry.js';
import { DeviceStates } from './gateway/device-state.js';
import { Ingest } from './gateway/ingest.js';
import { Commands } from './gateway/commands.js';
import { startBroker, type EmbeddedBroker } from './gateway/broker/broker.js';
import { buildApp } from './server/app.js';
import { createScope } from './server/scope.js';
import type { AppDeps } from './server/deps.js';

export interface Eldergate {
  config: Config;
  log: Logger;
  store: Store;
  bus: Bus;
  metrics: Metrics;
  users: Users;
  registry: DeviceRegistry;
  states: DeviceStates;
  ingest: Ingest;
  commands: Commands;
  broker: EmbeddedBroker;
  app: FastifyInstance;
  mqttPort: number;
  httpPort: number;
  /** set on first start: the admin's generated password, to be shown once */
  bootstrap?: { username: string; password: string; generated: boolean };
  close(): Promise<void>;
}

export async function startEldergate(opts: { config: Config; log?: Logger }): Promise<Eldergate> {
  const { config } = opts;
  const log = opts.log ?? createLogger(config.logLevel);
  const store = openStore(dbFile(config.dataDir));
  const bus = new Bus();
  const metrics = createMetrics();
  const users = new Users(store.db, serviceSecret(store.db, 'token-key'), config.http.tokenTtlS);
  const bootstrap = await bootstrapAdmin(users, config.adminPassword);
  const registry = new DeviceRegistry(store.db, new SecretHasher(serviceSecret(store.db, 'device-secret-key')), bus);
  const states = new DeviceStates(store.sqlite);
  const commands = new Commands(store.sqlite, log);
  const ingest = new Ingest({
    sqlite: store.sqlite,
    states,
    config: config.ingest,
    log,
    metrics,
    onCommitted: (events) => {
      for (const e of events) bus.emit('incident-event', e as never);
    },
  });
  ingest.use(commands.step);

  const broker = await startBroker({ config, registry, states, ingest, bus, log, metrics });
  commands.attach(broker);
  broker.aedes.on('subscribe', (subs, client) => {
    // re-send pending commands once the device listens again (aedes' own queue does not survive a restart)
    if (client && subs.some((s) => s.topic.endsWith('/commands'))) commands.resend(client.id);
  });
  const expiry = setInterval(() => commands.expireDue(), 60_000).unref();

  let ready = false;
  const deps: AppDeps = {
    config, store, bus, log, metrics, users, registry, states, commands,
    mqttPorts: { port: broker.port, tlsPort: broker.tlsPort },
    visibleUnits: createScope(store.sqlite),
    ready: () => ready,
  };
  const app = await buildApp(deps);
  await app.listen({ port: config.http.port, host: config.http.host });
  const httpPort = (app.server.address() as { port: number }).port;
  ready = true;

  let closed = false;
  return {
    config, log, store, bus, metrics, users, registry, states, ingest, commands, broker, app,
    mqttPort: broker.port,
    httpPort,
    ...(bootstrap ? { bootstrap } : {}),
    async close() {
      if (closed) return;
      closed = true;
      ready = false;
      clearInterval(expiry);
      await app.close();
      await broker.close();
      ingest.close();
      store.sqlite.transaction(() => states.flushDirty(Date.now()))();
      store.close();
    },
  };
}
