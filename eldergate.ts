// Start-up of the whole gateway, in order: storage → registry and state → ingest → broker → HTTP. Close in reverse.
import { getHeapStatistics } from 'node:v8';
import { hostname } from 'node:os';
import { createHash } from 'node:crypto';
import { resolve } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Config } from './core/config.js';
import { createLogger, type Logger } from './core/logger.js';
import { dbFile, openStore, PAGE_SIZE, pageSizeOf, writeNow, type Store } from './core/db.js';
import type Database from 'better-sqlite3';
import { Bus } from './core/bus.js';
import { createMetrics, type Metrics } from './core/metrics.js';
import { GATEWAY_DEVICE_ID, STORAGE_INCIDENT, StorageHealth, type StorageFault } from './core/storage-health.js';
import { serviceSecret } from './core/secrets.js';
import { Users, bootstrapAdmin } from './core/users.js';
import { openTokenKeys } from './core/token-keys.js';
import { SecretHasher } from './devices/credentials.js';
import { DeviceRegistry, logRegistryStartup } from './devices/registry.js';
import { Audit } from './core/audit.js';
import { createPgAuditStore } from './core/audit-store-pg.js';
import { auditRoutes } from './server/routes/audit.js';
import { WriterThread, commandWritesVia, incidentWritesVia, type LiveStates } from './gateway/writer/client.js';
import { Commands, onceId, type CommandRow } from './gateway/commands.js';
import { EldergateError } from './core/errors.js';
import { startBroker, type EmbeddedBroker } from './gateway/broker/broker.js';
import { startRabbitIngress, type RabbitIngress } from './gateway/cluster/rabbitmq.js';
import { startAuthBackend, type AuthBackend } from './gateway/cluster/auth-backend.js';
import { closeOnRevoke, createRevoker, type Revoker } from './gateway/cluster/revoke.js';
import { startFloodGuard } from './gateway/cluster/flood-guard.js';
import { startModbusAdapter, type ModbusAdapter } from './gateway/adapters/modbus/index.js';
import { startSerialReceivers, type SerialReceivers } from './gateway/adapters/serial/index.js';
import { adapterMemory, pgAdapterMemory } from './gateway/adapters/link-state.js';
import { createResponse, type Response } from './response/index.js';
import { createKpiReports } from './response/kpi-reports.js';
import { systemClock } from './response/clock.js';
import type { CommittedEvent, IncidentApi, IncidentWrites } from './response/incidents.js';
import { followResidents } from './response/follow-resident.js';
import type pg from 'pg';
import { eq } from 'drizzle-orm';
import { openPgPool, pgClients } from './core/pg-pool.js';
import { ConfigError } from './core/errors.js';
import { secrets } from './core/schema.js';
import { createPgCommandStore } from './gateway/command-store-pg.js';
import { mirrorLog, type LogMirror } from './response/log-mirror.js';
import { mirrorReceipts, type ReceiptMirror } from './response/receipt-mirror.js';
import { createPgReceiptStore, type PgReceiptStore } from './response/receipt-store-pg.js';
import { pgNotificationClaims } from './response/notify-claims-pg.js';
import { createPgIncidentStore, migratePg } from './response/store/pg.js';
import { openSharedTables, type SharedChanges, type SharedTables } from './core/shared-tables.js';
import { createSqliteIncidentStore } from './response/store/sqlite.js';
import type { Network } from './response/network.js';
import { settle } from './core/maybe.js';
import { commissionOnPassedTest } from './devices/commissioning.js';
import { buildApp, type ExtraRoutes } from './server/app.js';
import { incidentRoutes } from './server/routes/incidents.js';
import { networkRoutes } from './server/routes/network.js';
import { kpiRoutes } from './server/routes/kpis.js';
import { alarmStream } from './server/ws/index.js';
import { consoleRoutes } from './server/console/index.js';
import { createScope } from './server/scope.js';
import type { AppDeps } from './server/deps.js';
import { topics, type AlarmAction, type AlarmSource } from './core/contracts.js';
import { connectionCapSettings, deriveConnectionCaps } from './core/limits.js';
import { startRetention } from './core/retention.js';
import { startPgRetention } from './core/retention-pg.js';
import { startProtocols, type Protocols } from './gateway/protocols/index.js';
import { activeListener } from './gateway/protocols/settings.js';
import { PROTOCOL_NAMES, type ListenerSettings } from './gateway/protocols/types.js';

export interface Eldergate {
  config: Config;
  log: Logger;
  store: Store;
  bus: Bus;
  metrics: Metrics;
  users: Users;
  registry: DeviceRegistry;
  /** live device state: held by the writer thread, read from here */
  states: LiveStates;
  /** the writer thread (gateway/writer): device domain and write transactions off this event loop */
  writer: WriterThread;
  /** what the transports hand observations to: the writer thread */
  ingest: WriterThread;
  commands: Commands;
  response: Response<IncidentApi>;
  /** storage faults: /readyz, the metric and the storage incident (core/storage-health.ts) */
  storage: StorageHealth;
  /** the embedded MQTT broker; null in cluster mode, where terminals connect to RabbitMQ (`cluster`) */
  broker: EmbeddedBroker | null;
  /** cluster mode (config.rabbitmq.urls): device messages taken from RabbitMQ, commands sent through it */
  cluster: RabbitIngress | null;
  modbus: ModbusAdapter;
  serial: SerialReceivers;
  /** the terminal protocol listeners (watch, JT/T 808, DC-09): each off until its port is set */
  protocols: Protocols;
  app: FastifyInstance;
  mqttPort: number;
  httpPort: number;
  /** set on first start: the admin's generated password, to be shown once */
  bootstrap?: { username: string; password: string; generated: boolean };
  close(): Promise<void>;
}

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '::1']);

export async function startEldergate(opts: { config: Config; log?: Logger }): Promise<Eldergate> {
  const { config } = opts;
  const log = opts.log ?? createLogger(config.logLevel);
  const store = openStore(dbFile(config.dataDir));
  const pageSize = pageSizeOf(store.sqlite);
  if (pageSize !== PAGE_SIZE) {
    log.warn({ file: store.file, pageSize, pageSizeNew: PAGE_SIZE },
      `the database's pages are ${pageSize} bytes; new databases use ${PAGE_SIZE}, which writes less per stored row and ` +
      'shortens the commits alarms wait on (docs/operations.md). To convert: stop the gateway, run `npm run db:page-size`, ' +
      'start it again (it says first if the disk has too little room for the new file)');
  }
  const bus = new Bus();
  const metrics = createMetrics();
  // the token-signing key lives outside the database (core/token-keys.ts); a database-held one is moved out
  // cluster mode's shared store (docs/scale-out.md): the incident log, observations, states and commands in PostgreSQL;
  // this thread reads commands there and follows the log into its replica (below)
  const pgMain = config.postgres.url ? openPgPool(config.postgres, log, 'eldergate-main') : null;
  // and the registry, the network and the accounts are the cluster's: this file holds a copy, changed under the
  // cluster's lock and kept current from PostgreSQL (core/shared-tables.ts); what another node changes is reloaded
  let sharedApplied: (changes: SharedChanges) => void = () => {};
  let sharedTaken: () => Promise<void> = async () => {};
  const shared = pgMain ? await openShared(config, pgMain, store, log, (changes) => sharedApplied(changes), () => sharedTaken()) : null;
  const sharedWrite = <T>(fn: () => T | Promise<T>): Promise<T> => (shared ? shared.write(fn) : Promise.resolve(fn()));
  const users = new Users(store.db, openTokenKeys({ config, db: store.db, log: log.child({ module: 'auth' }) }), config.http.tokenTtlS, store.write);
  const bootstrap = await sharedWrite(() => bootstrapAdmin(users, config.adminPassword));
  const registry = new DeviceRegistry(store.db, new SecretHasher(await sharedWrite(() => serviceSecret(store.db, 'device-secret-key'))), bus);
  // another node's import reaches the writer thread's copy of the registry a slice at a time (core/shared-tables.ts)
  sharedTaken = () => registry.replicaTookAll();
  logRegistryStartup(registry, log);
  // cluster mode on PostgreSQL: every node's entries in one audit log there (any admin on any node reads them all)
  const audit = new Audit(store.sqlite, pgMain ? { store: createPgAuditStore(pgMain), log: log.child({ module: 'audit' }) } : undefined);
  // written by the writer thread too: this thread reads them and sends them to devices
  const commands = new Commands(pgMain ? createPgCommandStore(pgMain) : store.sqlite, log, commandWritesVia(() => writerThread));
  /** PostgreSQL: the node's replica of the log, which hands this thread its events (started once the writer migrated) */
  let replica: LogMirror | null = null;
  /** PostgreSQL: every node's push and delivery receipts, written there and followed into this file */
  const pgReceipts = pgMain ? createPgReceiptStore(pgMain) : null;
  let receiptReplica: ReceiptMirror | null = null;
  // people's actions, escalations and notes are written by the writer thread, the log's one writer: this thread (the
  // sockets, the consoles) never waits for SQLite's write lock behind a telemetry slice
  let writerThread: WriterThread | undefined;
  const response = createResponse({
    store, bus, config, log,
    // on PostgreSQL a person's action is answered once this node's replica holds it (what they read next shows it)
    writes: replicaAware(incidentWritesVia(() => writerThread), () => replica),
    // several nodes follow one log: one of them tells people of each event (response/notify-claims-pg.ts)
    ...(pgMain ? { claimNotifications: pgNotificationClaims(pgMain, `${hostname()}/${process.pid}`) } : {}),
    // the consoles' push and delivery receipts too: batched here, written there (on PostgreSQL: there, and shown once
    // this node's replica of them holds them, so a stamp is the cluster's first, the same on every node)
    writeReceipts: pgReceipts
      ? async (batch) => {
        const { written, head } = await pgReceipts.append(batch);
        await receiptReplica?.reach(head, 5_000).catch(() => undefined);
        return written;
      }
      : (batch) => (writerThread ? writerThread.receipts(batch) : Promise.reject(new Error('the writer thread is not running yet'))),
  });
  const { incidents } = response;
  sharedApplied = (changes) => {
    const devicesChanged = changes.get('devices');
    const residentsChanged = changes.get('residents');
    if (devicesChanged || residentsChanged) registry.reload(devicesChanged ?? [], residentsChanged ?? []);
    if (changes.has('units') || changes.has('staff')) response.network.refresh();
  };
  // storage faults are loud (core/storage-health.ts): /readyz and a metric at once, a P2 incident once it can be written
  const storage = new StorageHealth({ metrics, log });
  storage.attach({
    // (PostgreSQL: written there by the writer thread once PostgreSQL takes writes again, and seen by every node's
    // consoles through their replicas; each node's its own)
    ...(pgMain ? pgStorageIncidents(() => writerThread, config.dataDir) : storageIncidents(incidents, store.sqlite)),
    // rewrites the header's user_version with its own value: one page, committed with a sync, changes nothing
    probe: pgMain ? pgProbe(pgMain) : () => writeNow(store.sqlite, () => { store.sqlite.pragma(`user_version = ${Number(store.sqlite.pragma('user_version', { simple: true }))}`); }),
  });
  // the device domain (state, rules, incidents devices raise, command answers) and its write transactions run in a
  // thread of their own on their own connection (gateway/writer); this thread keeps the sockets. The writer commits
  // before anything is acknowledged, and its incident events reach the bus (and so the consoles) only once durable.
  // What a writer that dies may have committed and never reported is found from the last seq it did report, not from
  // the last one published: this thread publishes events it commits itself too (the storage incident), and one of
  // those with a later seq would hide the writer's unreported ones below it. What this thread published above the
  // writer's last report is kept apart, so the catch-up does not publish it twice (a handful: it is forgotten as the
  // writer's reports pass it).
  let writerReported = incidents.publishedSeq();
  const reported = (events: readonly { seq: number }[]) => { for (const e of events) if (e.seq > writerReported) writerReported = e.seq; };
  const publishedAboveWriter = new Set<number>();
  // (one node's SQLite log only: on PostgreSQL every node's events come through the replica, and no catch-up reads them)
  if (!pgMain) bus.on('incident-event', (e) => { if (e.seq > writerReported) publishedAboveWriter.add(e.seq); });
  const writer = await WriterThread.start({
    config, log, metrics, storage, registry,
    // PostgreSQL: what is committed reaches the bus through the replica, in the log's order, whichever node wrote it
    onCommitted: (events) => {
      if (pgMain) return;
      reported(events);
      if (publishedAboveWriter.size) for (const seq of publishedAboveWriter) if (seq <= writerReported) publishedAboveWriter.delete(seq);
      incidents.publishCommitted(events);
    },
    onCommandAcked: (cmd, at) => recordCommandAck({ incidents, log }, cmd, at),
    onRestarted() {
      // a writer that died may have committed incident events it never reported: they reach the bus now, from the
      // log; escalation re-reads every deadline (one it never heard of is armed, or escalated if already due)
      const missed = pgMain ? [] : incidents.eventsAfter(writerReported, { limit: 100_000 }).filter((e) => !publishedAboveWriter.has(e.seq));
      if (missed.length) log.warn({ events: missed.length, from: missed[0]!.seq }, 'publishing incident events the stopped writer committed but never reported');
      reported(missed);
      incidents.publishCommitted(missed);
      response.escalation.stop();
      response.escalation.start();
    },
  });
  writerThread = writer;
  if (pgMain && pgReceipts) {
    try {
      ({ replica, receiptReplica } = await startReplica({
        config, pool: pgMain, receipts: pgReceipts, sqlite: store.sqlite, network: response.network, log,
        publish: (events) => incidents.publishCommitted(events),
      }));
    } catch (err) {
      await writer.close();
      await shared?.close();
      await pgMain.end();
      throw err;
    }
  }
  const ingest = writer;
  const states = writer.states;
  // checkpoints are the writer's, between its commits: a commit of this thread never runs one on the event loop
  store.sqlite.pragma('wal_autocheckpoint = 0');
  wireAcknowledgeCommand({ bus, incidents, commands, log });
  commissionOnPassedTest({ bus, incidents, registry, log, ...(shared ? { write: (fn: () => void) => shared.write(fn) } : {}) });

  // sockets stop being accepted well before the descriptor limit (issue 14; core/limits.ts)
  const caps = deriveConnectionCaps(connectionCapSettings(config));
  log.info({ fdLimit: caps.fdLimit, fdSource: caps.fdSource, fdReserve: caps.reserve, httpMaxConnections: caps.http, mqttMaxConnections: caps.mqtt },
    'connection caps derived from the descriptor limit');
  if (caps.lowered.length) {
    log.warn({ lowered: caps.lowered, fdLimit: caps.fdLimit },
      'configured connection caps exceed what the descriptor limit allows and were lowered: raise the limit (ulimit -n / LimitNOFILE) to admit more');
  }
  if (LOOPBACK_HOSTS.has(config.publicHost)) {
    // provisioning answers tell devices to connect to publicHost: a device elsewhere cannot reach "localhost"
    log.warn({ publicHost: config.publicHost },
      `publicHost is "${config.publicHost}": provisioning answers tell devices to connect there, which only this machine can reach; set ELDERGATE_PUBLIC_HOST (or "publicHost" in the ELDERGATE_CONFIG file) to the name devices use`);
  }
  // terminals share the socket budget: with protocol listeners on, half of the terminals' share is theirs (one budget
  // for all of them), half MQTT's; together they stay within the descriptor limit less its reserve
  const protocolSettings = PROTOCOL_NAMES.map((n) => activeListener(config.protocols[n] as Partial<ListenerSettings>)).filter((x) => x !== undefined);
  const protocolCap = protocolSettings.length
    ? Math.min(Math.floor(caps.mqtt / 2), protocolSettings.reduce((sum, x) => sum + x.maxConnections, 0))
    : 0;
  if (protocolCap) log.info({ mqttMaxConnections: caps.mqtt - protocolCap, protocolMaxConnections: protocolCap }, 'terminal sockets split between MQTT and the protocol listeners');
  // one node: the embedded broker; cluster mode: terminals connect to RabbitMQ, whose partitions this node consumes
  const clustered = config.rabbitmq.urls.length > 0;
  const broker = clustered ? null : await startBroker({ config, registry, states, ingest, bus, log, metrics, connectionCap: caps.mqtt - protocolCap })
    .catch(async (err: unknown) => {
      await writer.close();
      throw err;
    });
  // a revoked device is cut off at once, as the embedded broker does: its connections closed through RabbitMQ
  // (created first: a password file that cannot be used stops start-up before anything listens)
  const revoker: Revoker | null = clustered ? createRevoker({ config, log, metrics }) : null;
  const cluster = clustered
    ? startRabbitIngress({
      config, registry, states, ingest, incidents, sqlite: store.sqlite, storage, bus, log, metrics,
      onDeviceOnline: (id) => commands.resend(id),
      ...(pgMain ? {
        raise: async (action: AlarmAction, source: AlarmSource) => {
          const events = await writer.incident<CommittedEvent[]>({ method: 'applyAlarm', action, source }, (v) => v);
          const last = events.at(-1)?.seq;
          if (last !== undefined) await replicaReach(replica, last);
          return events;
        },
      } : {}),
    })
    : null;
  // RabbitMQ asks this node whether a device may connect, publish, subscribe (the embedded broker's own checks)
  const authBackend: AuthBackend | null = clustered
    ? await startAuthBackend({ config, registry, log, metrics, onSuspendedConnect: (id) => cluster?.suspendedConnect(id) }).catch(async (err: unknown) => {
      await cluster?.close();
      await revoker?.close();
      await writer.close();
      throw err;
    })
    : null;
  const unwireRevoker = revoker ? closeOnRevoke(bus, revoker) : () => {};
  // a device that stays over its publish rate is closed, as the embedded broker does (RabbitMQ's statistics)
  const floodGuard = revoker ? startFloodGuard({ config, log, metrics, management: revoker }) : null;
  const closeTransport = async () => {
    await broker?.close();
    await floodGuard?.close();
    unwireRevoker();
    await revoker?.close();
    await cluster?.close();
    await authBackend?.close();
  };
  // start-up failing after the writer started: its threads (and the rule timers they run) stop with it
  const closeStarted = async () => {
    await closeTransport();
    await writer.close();
    // its LISTEN connection would keep a process that failed to start alive
    await shared?.close();
  };
  // terminals that speak their own protocol (gateway/protocols): commands reach them over their connection
  // devices heard from before (the writer's state at start): a restart keeps expecting them
  const known = await states.readAll();
  const protocols = await startProtocols({
    config, ingest, registry, states: { peek: (id) => known.get(id) }, bus, log, metrics, connectionCap: Math.max(1, protocolCap), resendCommands: (id) => commands.resend(id),
  }).catch(async (err: unknown) => {
    await closeStarted();
    throw err;
  });
  commands.attach(protocols.commandTransport((broker ?? cluster)!));
  broker?.aedes.on('subscribe', (subs, client) => {
    // re-send pending commands once the device listens again (aedes' own queue does not survive a restart)
    if (client && subs.some((s) => s.topic.endsWith('/commands'))) commands.resend(client.id);
  });
  broker?.aedes.on('clientReady', (client) => {
    // a persistent session (clean=false) gets its subscription restored by aedes during CONNECT, with no SUBSCRIBE
    // from the device and no 'subscribe' event: send what is pending once it is ready (aedes' Client.subscriptions,
    // keyed by topic, is not in its type definitions)
    const subs = (client as unknown as { subscriptions?: Record<string, unknown> }).subscriptions;
    if (subs?.[topics.commands(client.id)]) commands.resend(client.id);
  });
  // every timer here is guarded: an exception escaping a timer ends the process (issue 14: EMFILE from
  // process.memoryUsage() in the heap watchdog did)
  // (not while a writer thread restarts: the next tick does it, and a restart is not this task's failure)
  const expiry = guardedInterval('command-expiry', 60_000, () => (writer.running ? commands.expireDue() : undefined), { log, metrics });
  // watch memory (docs/design.md §2): near a bound, shed telemetry before the process dies of it
  const memory = memoryWatchdog(config, { log, metrics, setPressure: (p) => ingest.setPressure(p) });
  const heapWatch = guardedInterval('memory-watchdog', 1000, memory, { log, metrics });
  // field adapters: their configuration was validated above with everything else; a bad map stops start-up
  // what the previous run left of the links (a lost link is restored by its first frame after a restart)
  // (cluster mode on PostgreSQL: observations are in the shared store, read there once for the field devices)
  const fieldDevices = () => [...registry.allEntries()].filter((e) => e.kind === 'modbus' || e.kind === 'receiver').map((e) => e.id);
  const adapterState = pgMain && (config.modbus.length || config.serial.length)
    ? await pgAdapterMemory(pgMain, store.sqlite, fieldDevices())
    : adapterMemory(store.sqlite);
  const modbus = startModbusAdapter(config.modbus, { sink: ingest, log, memory: adapterState });
  const serial = await startSerialReceivers(config.serial, {
    sink: ingest,
    log,
    resolveAccount: (account) => registry.deviceForAccount(account),
    resolveModel: (deviceId) => registry.get(deviceId).model ?? (registry.entry(deviceId)?.config.model as string | undefined),
    commLostAtStart: (deviceId) => adapterState.commLost(deviceId),
    // panels' SIA `ti` times are local time: the zone the rules use (a receiver's panelUtcOffsetMinutes overrides it)
    timeZoneOffsetMinutes: config.ruleSettings.timeZoneOffsetMinutes,
    onUnreadable: (u) => ingest.recordReject({ deviceId: u.receiverDeviceId, source: 'serial', topic: null, reason: u.reason, raw: u.raw, at: u.at }),
  }).catch(async (err: unknown) => {
    // a receiver's settings refused: nothing started before it is left running
    await modbus.close();
    await closeTransport();
    await protocols.close();
    clearInterval(expiry);
    clearInterval(heapWatch);
    await writer.close();
    throw err;
  });
  // escalation catches up at once with what fell overdue while the gateway was down
  response.start();
  // a resident's open incidents follow her to her new unit (here, or on another node: the registry's reload says so)
  const follower = followResidents({ incidents, network: response.network, log, unitOf: (id) => registry.residentUnitOf(id) });
  registry.onChange((c) => { if ('residentId' in c) follower.residentChanged(c.residentId); });
  bus.on('incident-event', (e) => { if (e.type === 'opened') follower.opened(e.data.residentId, e.data.unitId); });
  const reconcileAtStart = (): void => {
    // (a read that fails at start is tried again until it works: a card left in her old unit is missed otherwise)
    follower.reconcileAll().catch((err: unknown) => {
      log.error({ err }, "could not compare open incidents with their residents' units at start; trying again in 5 s");
      setTimeout(reconcileAtStart, 5_000).unref();
    });
  };
  reconcileAtStart();

  let ready = false;
  const deps: AppDeps = {
    config, store, bus, log, metrics, users, registry, states, commands, audit, pg: pgMain, shared,
    mqttPorts: broker ? { port: broker.port, tlsPort: broker.tlsPort } : { port: config.rabbitmq.mqttPort, tlsPort: null },
    protocolPorts: Object.fromEntries([...protocols.listeners].map(([name, l]) => [name, l.port])),
    scope: createScope(response.network),
    // not ready while no writer thread runs (one died and the next is starting): devices' messages are held, unanswered, meanwhile
    ready: () => ready && writer.running,
    writerStall: () => writer.stall(),
    storage,
    refreshMetrics() {
      for (const [priority, n] of Object.entries(incidents.openCounts())) metrics.openIncidents.set({ priority }, n);
      for (const [priority, n] of Object.entries(response.escalation.stats().breaches)) metrics.breaches.set({ priority }, n);
      const q = ingest.queueDepth();
      metrics.queue.set({ queue: 'urgent' }, q.urgent);
      metrics.queue.set({ queue: 'telemetry' }, q.telemetry);
      metrics.queue.set({ queue: 'port' }, writer.portBacklog());
      if (broker) metrics.connected.set(broker.aedes.connectedClients);
    },
    metricsText: () => writer.metricsText(),
  };
  const kpiReports = createKpiReports({ file: dbFile(config.dataDir), budgets: config.budgets, log: log.child({ module: 'kpis' }) });
  const extra: ExtraRoutes = [
    { name: 'incidents', plugin: incidentRoutes({ incidents, network: response.network }) },
    { name: 'network', plugin: networkRoutes({ network: response.network }) },
    // computed in a thread of their own: a year of a city's incidents held this thread for seconds (response/kpi-reports.ts)
    { name: 'kpis', plugin: kpiRoutes({ network: response.network, kpis: (q) => kpiReports.run({ now: systemClock.now(), ...q }) }) },
    { name: 'ws', plugin: alarmStream({ incidents, network: response.network }) },
    { name: 'console', plugin: consoleRoutes() },
    { name: 'audit', plugin: auditRoutes },
  ];
  const app = await buildApp(deps, extra);
  await app.listen({ port: config.http.port, host: config.http.host }).catch(async (err: unknown) => {
    // nothing left listening or consuming when start-up fails here (a port in use)
    await app.close().catch(() => {});
    await closeTransport();
    await protocols.close();
    await writer.close();
    throw err;
  });
  const httpPort = (app.server.address() as { port: number }).port;
  // cluster mode: not ready before the topology is declared (RabbitMQ would take a device's publish with nowhere to go)
  if (cluster) void cluster.ready.then(() => { ready = !closed; });
  else ready = true;
  // old rows pruned at start and every retention.intervalMs, in small batches (core/retention.ts)
  const retention = startRetention({ sqlite: store.sqlite, settings: config.retention, log: log.child({ module: 'retention' }), metrics });
  // and the shared store's observations, one node at a time (core/retention-pg.ts)
  const pgRetention = pgMain ? startPgRetention({ pool: pgMain, settings: config.retention, log: log.child({ module: 'retention' }), metrics }) : null;

  let closed = false;
  return {
    config, log, store, bus, metrics, users, registry, states, writer, ingest, commands, response, storage, broker, cluster, modbus, serial, protocols, app,
    mqttPort: broker?.port ?? config.rabbitmq.mqttPort,
    httpPort,
    ...(bootstrap ? { bootstrap } : {}),
    async close() {
      if (closed) return;
      closed = true;
      ready = false;
      // a writer restarting now is not waited for: the transports close first, and would wait on what it holds
      writer.stopHolding();
      follower.close();
      clearInterval(expiry);
      clearInterval(heapWatch);
      await retention.close();
      await pgRetention?.close();
      storage.close();
      await app.close();
      await kpiReports.close();
      await closeTransport();
      await protocols.close();
      // the adapters finish storing what they read before the writer closes
      await modbus.close();
      await serial.close();
      // the writer writes what it holds (telemetry queued, device-state rows owed, the receipts handed to it last) and
      // closes its connection (on PostgreSQL this thread writes the receipts: they are answered, 2 s at most, before the
      // pool and the receipts' replica close)
      if (pgMain) await response.flushReceipts(2_000);
      else void response.flushReceipts();
      await writer.close();
      await receiptReplica?.close();
      await replica?.close();
      await shared?.close();
      await pgMain?.end();
      await response.close();
      store.close();
    },
  };
}

/**
 * Cluster mode on PostgreSQL, before anything of the node's file is shared: the file must be this database's replica
 * or new (a file that ran on its own log is refused before its rows reach the cluster); then the shared schema is
 * migrated and the shared tables (core/shared-tables.ts) opened.
 */
async function openShared(config: Config, pool: pg.Pool, store: Store, log: Logger, onApplied: (changes: SharedChanges) => void, betweenSlices: () => Promise<void>): Promise<SharedTables> {
  try {
    const { rows } = await pool.query(`SELECT (SELECT system_identifier::text FROM pg_control_system()) || '/' || current_database() AS id`);
    const database = String(rows[0].id);
    const marker = store.db.select().from(secrets).where(eq(secrets.name, REPLICA_OF)).get();
    const localHead = createSqliteIncidentStore(store.sqlite).head();
    if (marker ? marker.value !== database : localHead > 0) {
      throw new ConfigError([`postgres.url: this node's data directory (${config.dataDir}) holds incidents of another log (${marker ? 'a replica of another database' : 'its own, from running without postgres.url'}); `
        + 'start the node on a new data directory (a first node brings its registry, network and accounts to the cluster, not its incidents: docs/scale-out.md), or remove postgres.url']);
    }
    if (!marker) store.db.insert(secrets).values({ name: REPLICA_OF, value: database, createdAt: Date.now() }).run();
    await migratePg(pool);
    return await openSharedTables({ sqlite: store.sqlite, pool, connect: pgClients(config.postgres, 'eldergate-shared'), log: log.child({ module: 'shared-tables' }), onApplied, betweenSlices });
  } catch (err) {
    await pool.end();
    throw err;
  }
}

/**
 * Start following the shared log into this node's file (response/log-mirror.ts), its events handed to `publish` in
 * seq order, and every node's push and delivery receipts after it (response/receipt-mirror.ts); resolves once the
 * replicas hold what the log and the receipts held at start.
 */
async function startReplica(d: {
  config: Config; pool: pg.Pool; receipts: PgReceiptStore; sqlite: Database.Database; network: Network; log: Logger;
  publish: (events: CommittedEvent[]) => void;
}): Promise<{ replica: LogMirror; receiptReplica: ReceiptMirror }> {
  const source = createPgIncidentStore({ pool: d.pool, knownUnitIds: () => d.network.listUnits().map((u) => u.id), log: d.log });
  let receiptReplica: ReceiptMirror | null = null;
  const replica = mirrorLog({
    source,
    connect: pgClients(d.config.postgres, 'eldergate-log-replica'),
    sqlite: d.sqlite,
    onApplied: (events) => {
      d.publish(events);
      // receipts about the openings just applied may apply now
      receiptReplica?.poke();
    },
    log: d.log.child({ module: 'replica' }),
  });
  const { receipts } = d;
  try {
    // consoles are served from the replica: caught up before the node says it is up
    await replica.reach(await source.head(), 120_000);
    receiptReplica = mirrorReceipts({
      source: receipts,
      connect: pgClients(d.config.postgres, 'eldergate-receipt-replica'),
      sqlite: d.sqlite,
      logHead: () => replica.head(),
      log: d.log.child({ module: 'receipt-replica' }),
    });
    await receiptReplica.reach(await receipts.head(), 120_000);
  } catch (err) {
    await receiptReplica?.close();
    await replica.close();
    throw err;
  }
  return { replica, receiptReplica };
}

const REPLICA_OF = 'incident-log-replica-of';

/** people's writes answered once the replica holds what they committed (PostgreSQL), at once otherwise */
function replicaAware(w: IncidentWrites, replica: () => LogMirror | null): IncidentWrites {
  // committed is committed: a replica slow to follow delays the answer a little, never turns it into an error (the
  // person would do it again)
  const reached = async <T>(value: T, events: readonly { seq: number }[]): Promise<T> => {
    const last = events.reduce((m, e) => Math.max(m, e.seq), 0);
    if (last > 0) await replicaReach(replica(), last);
    return value;
  };
  return {
    act: async (...a) => { const v = await w.act(...a); return reached(v, v.events); },
    escalate: async (...a) => { const v = await w.escalate(...a); return reached(v, v); },
    resolveBySystem: async (...a) => { const v = await w.resolveBySystem(...a); return reached(v, v); },
    move: async (...a) => { const v = await w.move(...a); return reached(v, v); },
    followUp: async (...a) => { const v = await w.followUp(...a); return reached(v, v); },
    record: async (...a) => { const v = await w.record(...a); return reached(v, v); },
  };
}

/** wait (a few seconds at most) for the replica to hold `seq`; committed either way */
async function replicaReach(replica: LogMirror | null, seq: number): Promise<void> {
  await replica?.reach(seq, 5_000).catch(() => undefined);
}

/**
 * The storage probe on PostgreSQL: a no-op write there (the log's head row set to itself), started at each probe and
 * judged at the next (the probe is synchronous): writes work again once one has committed since the last probe.
 */
function pgProbe(pool: pg.Pool): () => void {
  let last: boolean | undefined;
  return () => {
    const ok = last;
    last = undefined;
    pool.query('UPDATE incident_log_head SET seq = seq WHERE id = 1').then(() => { last = true; }, () => { last = false; });
    if (ok !== true) throw new Error('PostgreSQL did not take the probe\'s write (yet)');
  };
}

/** no storage incident (the PostgreSQL store: /readyz and eldergate_storage_healthy say it) */
/**
 * The storage incident: a P2 for the call centre (no resident, no unit: the root of the network sees it), belonging
 * to the gateway itself; published to consoles only once written (each call is its own transaction, begun only when
 * the write lock is free: see writeNow).
 */
function storageIncidents(incidents: IncidentApi, sqlite: Database.Database) {
  return {
    open(fault: StorageFault): string {
      const events = writeNow(sqlite, () => incidents.applyAlarm(storageRaise(fault), storageSource(fault)));
      incidents.publishCommitted(events);
      return events[0]!.incidentId;
    },
    resolve(_incidentId: string, note: string, fault: StorageFault): void {
      incidents.publishCommitted(writeNow(sqlite, () => incidents.applyAlarm(storageClear(note), storageSource(fault))));
    },
  };
}

/**
 * The storage incident on PostgreSQL: the same P2, written by the writer thread to PostgreSQL once it takes writes
 * again (until then StorageHealth keeps it and tries again); every node's consoles get it from their replicas. Each
 * node raises its own, for a gateway "device" of its own (`gateway-` and a hash of its host and data directory: the
 * same after a restart, another for each node), naming the node: two nodes failing at once are two incidents, and one
 * node working again resolves its own, not another's still failing.
 */
function pgStorageIncidents(writer: () => WriterThread | undefined, dataDir: string) {
  const node = `${hostname()}:${resolve(dataDir)}`;
  const deviceId = `${GATEWAY_DEVICE_ID}-${createHash('sha256').update(node).digest('hex').slice(0, 8)}`;
  const via = (action: AlarmAction, fault: StorageFault): Promise<CommittedEvent[]> => {
    const w = writer();
    if (!w) return Promise.reject(new Error('the writer thread is not running yet'));
    return w.incident<CommittedEvent[]>({ method: 'applyAlarm', action, source: storageSource(fault, deviceId) }, (v) => v);
  };
  return {
    async open(fault: StorageFault): Promise<string> {
      const events = await via(storageRaise(fault, node), fault);
      if (!events[0]) throw new Error('the storage incident was not opened');
      return events[0].incidentId;
    },
    async resolve(_incidentId: string, note: string, fault: StorageFault): Promise<void> {
      await via(storageClear(note), fault);
    },
  };
}

const storageSource = (fault: StorageFault, deviceId = GATEWAY_DEVICE_ID): AlarmSource => ({
  deviceId, residentId: null, unitId: null, stamps: { faultBegan: fault.since },
});
const storageRaise = (fault: StorageFault, node?: string): AlarmAction => ({
  action: 'raise', type: STORAGE_INCIDENT, priority: 'P2', rule: 'storage',
  data: {
    reason: fault.reason, writer: fault.writer, since: new Date(fault.since).toISOString(), ...(node ? { node } : {}),
    detail: `storage failing${node ? ` (seen by node ${node})` : ''} since ${new Date(fault.since).toISOString()}: ${fault.reason}`,
  },
});
const storageClear = (note: string): AlarmAction => ({ action: 'clear', type: STORAGE_INCIDENT, rule: 'storage', reason: note });

/** how often "help is coming" is asked of a writer that is restarting (2 s apart: its back-off reaches 5 s) */
const ACK_COMMAND_ATTEMPTS = 15;

/**
 * "Help is coming": when a person acknowledges an incident, the device gets the acknowledge-alarm command (stored,
 * re-sent on reconnect, tracked until the device answers); both steps are on the incident's timeline.
 */
function wireAcknowledgeCommand(d: { bus: Bus; incidents: IncidentApi; commands: Commands; log: Logger }): void {
  d.bus.on('incident-event', (e) => {
    if (e.type !== 'acknowledged') return;
    const incident = d.incidents.get(e.incidentId);
    if (!incident) return;
    settle(async () => {
      // one command per incident, whatever happens: asked again after the writer thread stopped before answering
      // ("may or may not have been recorded") or while it restarts, it is stored once
      const create = () => d.commands.create(incident.deviceId, 'acknowledge-alarm', { type: incident.type },
        { incidentId: incident.id, ttlMs: 3600_000, id: onceId(`acknowledge-alarm:${incident.id}`) });
      let cmd: CommandRow | undefined;
      for (let attempt = 1; !cmd; attempt++) {
        try {
          cmd = await create();
        } catch (err) {
          if (!(err instanceof EldergateError && err.status === 503) || attempt >= ACK_COMMAND_ATTEMPTS) throw err;
          await new Promise((r) => setTimeout(r, 2000));
        }
      }
      await d.commands.send(cmd.id);
      return d.incidents.record(incident.id, 'command-sent', { commandId: cmd.id, command: 'acknowledge-alarm', deviceId: incident.deviceId });
    }, () => {}, (err) => d.log.error({ err, incidentId: e.incidentId }, 'could not send acknowledge-alarm to the device'));
  });
}

/** A device answered a command of an incident (told by the writer thread once that answer is committed). */
function recordCommandAck(d: { incidents: IncidentApi; log: Logger }, cmd: { id: string; type: string; status: string; incidentId: string | null }, at: number): void {
  if (!cmd.incidentId) return;
  const incidentId = cmd.incidentId;
  settle(() => d.incidents.record(incidentId, 'command-acked', { commandId: cmd.id, command: cmd.type, status: cmd.status, at }),
    () => {}, (err) => d.log.error({ err, incidentId }, 'could not record a command acknowledgement'));
}

/**
 * setInterval whose callback never lets an exception escape (it would end the process and every alarm with it):
 * the error is logged (at most once a minute per timer) and counted, and the timer keeps running.
 */
export function guardedInterval(where: string, ms: number, fn: () => unknown, d: { log: Logger; metrics: Metrics }): NodeJS.Timeout {
  let lastLog = 0;
  const failed = (err: unknown) => {
    try {
      d.metrics.internalErrors.inc({ where });
      const now = Date.now();
      if (now - lastLog >= 60_000) {
        lastLog = now;
        d.log.error({ err, where }, 'a periodic task failed; it runs again at its next tick');
      }
    } catch {
      /* logging itself failed (no descriptor left?): nothing more to do here */
    }
  };
  return setInterval(() => {
    try {
      // a task may be asynchronous (a write through the writer thread): its rejection is a failure the same way
      const r = fn();
      if (r instanceof Promise) r.catch(failed);
    } catch (err) {
      failed(err);
    }
  }, ms).unref();
}

/**
 * The memory watchdog: the V8 heap, the resident set and memory outside the heap (Buffers queued on sockets — a
 * WebSocket ping flood grew RSS by 430 MiB while the heap stayed flat). Above a bound, telemetry is shed and a warning
 * logged once per episode. The heap figure needs no system call; the resident set is read from /proc, which needs a
 * descriptor: when none is left (EMFILE) the last reading stands and the tick is not an error.
 */
export function memoryWatchdog(config: Config, d: { log: Logger; metrics: Metrics; setPressure(p: boolean): void }): () => void {
  const heapLimit = getHeapStatistics().heap_size_limit;
  const maxRss = config.limits.maxRssBytes || Math.round(heapLimit * 1.5);
  const maxExternal = config.limits.maxExternalBytes || Math.round(heapLimit / 2);
  let rss = 0;
  let pressed = false;
  return () => {
    const heap = getHeapStatistics().used_heap_size;
    let external = 0;
    try {
      const m = process.memoryUsage();
      rss = m.rss;
      external = m.external; // arrayBuffers are included in it
    } catch {
      // EMFILE and the like: keep the last resident figure; external memory is not known this tick
    }
    const over = heap > heapLimit * 0.85 ? 'heap' : rss > maxRss ? 'rss' : external > maxExternal ? 'external' : null;
    d.setPressure(over !== null);
    d.metrics.memoryPressure.set(over ? 1 : 0);
    if (over && !pressed) {
      d.log.warn({ over, heap, heapLimit, rss, maxRss, external, maxExternal }, 'memory above its bound: shedding telemetry');
    } else if (!over && pressed) {
      d.log.info({ heap, rss, external }, 'memory back below its bounds');
    }
    pressed = over !== null;
  };
}
