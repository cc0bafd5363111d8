// The writer thread: the device domain and the write transactions that make it durable, off the main event loop.
//
// It owns its own SQLite connection to the same file and, on it: the live device state, the rules and their timers,
// the incidents devices raise, the devices' answers to commands. The main thread keeps every socket (MQTT, the
// terminal protocols, HTTP and the consoles' WebSocket) and talks to this thread through gateway/writer/client.ts.
// An observation's promise here resolves only after its commit (and the sync a PUBACK needs, gateway/ingest.ts), and
// only then does the main thread acknowledge it or push its incident events to consoles.
import { parentPort, workerData } from 'node:worker_threads';
import { getHeapStatistics } from 'node:v8';
import { linuxThreadId } from '../../core/thread-id.js';
import type { IncidentEvent } from '../../core/contracts.js';
import { createLogger, type Logger } from '../../core/logger.js';
import { dbFile, openStore, type Store } from '../../core/db.js';
import { Bus } from '../../core/bus.js';
import { createMetrics, type Metrics } from '../../core/metrics.js';
import { serviceSecret } from '../../core/secrets.js';
import { SecretHasher } from '../../devices/credentials.js';
import { DeviceRegistry } from '../../devices/registry.js';
import { systemClock } from '../../response/clock.js';
import { createNetwork } from '../../response/network.js';
import { createIncidentService, testMarkOf, type IncidentServiceOf } from '../../response/incidents.js';
import type { StoreMode } from '../../response/store/types.js';
import type pg from 'pg';
import { openPgPool } from '../../core/pg-pool.js';
import { createPgIncidentStore, migratePg } from '../../response/store/pg.js';
import { createPgIngestBatches } from '../ingest-scope-pg.js';
import { createPgCommandStore } from '../command-store-pg.js';
import { openIncidentsOf } from '../open-incidents-pg.js';
import type { IncidentReceipt } from '../../response/events.js';
import { createSqliteReceiptStore } from '../../response/receipt-store.js';
import { DeviceStates } from '../device-state.js';
import { Ingest } from '../ingest.js';
import { Commands } from '../commands.js';
import { createAlarmPipeline, type AlarmPipeline } from '../alarms.js';
import { ALARMS_ON_THE_WAY, HANDLED, TAKEN, TELEMETRY_FULL, toWire, type CommandCall, type FromWriter, type IncidentCall, type ToWriter, type WriterInit } from './protocol.js';
import { useWriteTurnBuffer } from '../../core/write-turn.js';
import { WalRestartGate } from './wal-restart.js';
import { andThen } from '../../core/maybe.js';

const port = parentPort;
if (!port) throw new Error('gateway/writer/worker.ts runs as a worker thread (started by gateway/writer/client.ts)');
// what one turn of this thread's loop has to say goes as one message (a commit's 300 answers are one hand-over)
let outbox: FromWriter[] = [];
const post = (m: FromWriter) => {
  outbox.push(m);
  if (outbox.length === 1) {
    queueMicrotask(() => {
      const batch = outbox;
      outbox = [];
      port.postMessage(batch);
    });
  }
};

export interface WriterDomain {
  store: Store;
  states: DeviceStates;
  ingest: Ingest;
  alarms: AlarmPipeline;
  /**
   * the incident log's one writer on this node: what devices raise, and what the main thread asks for (people,
   * escalation); synchronous on SQLite, asynchronous on PostgreSQL
   */
  incidents: IncidentServiceOf<StoreMode>;
  registry: DeviceRegistry;
  /** the commands table's one writer (people's commands, what the broker handed over, expiry) */
  commands: Commands;
  metrics: Metrics;
  /** told of the incident events a call of the main thread committed (act, escalate…) */
  noteCommitted(events: readonly IncidentEvent[]): void;
  /** where push and delivery receipts are written (one node's SQLite file; on PostgreSQL the main thread writes them there) */
  writeReceipts: (batch: IncidentReceipt[]) => void;
  /** the rule timers' start-up hints (last check-in and activity per device), from where observations are stored */
  restoreHints: { checkIns: Map<string, number>; activity: Map<string, number> } | undefined;
  close(): void | Promise<void>;
}

/**
 * Build the writer's domain on its own connection; what it commits is told to the main thread. With `postgres.url` the
 * incident log, observations, device states and commands are PostgreSQL's (cluster mode's shared store): the ingest's
 * batches are asynchronous transactions there (gateway/ingest-scope-pg.ts); the registry, residents and network stay
 * in this node's file.
 */
async function createWriterDomain(init: WriterInit, log: Logger): Promise<WriterDomain> {
  const { config } = init;
  const store = openStore(dbFile(config.dataDir));
  const pool = config.postgres.url ? openPgPool(config.postgres, log, 'eldergate-writer') : null;
  if (pool) await migratePg(pool);
  const onTheWay = new Int32Array(init.taken);
  // no commit of the writer runs a checkpoint: the checkpointer thread does (gateway/writer/checkpointer.ts)
  store.sqlite.pragma('wal_autocheckpoint = 0');
  const bus = new Bus();
  const metrics = createMetrics({ defaults: false });
  const registry = new DeviceRegistry(store.db, new SecretHasher(serviceSecret(store.db, 'device-secret-key')), bus, { replica: true });
  const network = createNetwork({ store, log, clock: systemClock });
  /** what this writer committed to the log, for its own bookkeeping (PostgreSQL: the open incidents it knows) */
  let noteCommitted: (events: readonly IncidentEvent[]) => void = () => {};
  const incidentStore = pool ? createPgIncidentStore({ pool, knownUnitIds: () => network.listUnits().map((u) => u.id), log }) : null;
  // a test run's device (devices.test, this node's registry): the incident service reads it the same way
  const isTestDevice = testMarkOf(store.sqlite);
  const batches = pool && incidentStore ? createPgIngestBatches({ pool, incidents: incidentStore, isTestDevice }) : null;
  const states = batches ? new DeviceStates(await batches.loadStates()) : new DeviceStates(store.sqlite, { writeBehindMs: config.ingest.stateWriteBehindMs });
  const incidents: IncidentServiceOf<StoreMode> = incidentStore
    ? createIncidentService({ store, bus, config, log, clock: systemClock, network, incidentStore, isTestDevice })
    : createIncidentService({ store, bus, config, log, clock: systemClock, network, isTestDevice });
  // a storage fault is the main thread's to report (/readyz, the storage incident); it hears every failure and the
  // first success after one
  let failing = false;
  const storage = {
    failed(writer: string, err: unknown) {
      failing = true;
      post({ op: 'storage', ok: false, writer, error: toWire(err), at: Date.now() });
    },
    succeeded() {
      if (!failing) return;
      failing = false;
      post({ op: 'storage', ok: true });
    },
  };
  const ingest = new Ingest({
    storage,
    ...(batches ? { pg: batches } : { sqlite: store.sqlite }),
    states,
    config: config.ingest,
    log,
    metrics,
    // durable: the main thread pushes them to the consoles
    onCommitted: (events: IncidentEvent[]) => {
      noteCommitted(events);
      post({ op: 'committed', events });
    },
    alarmWaiting: () => Atomics.load(onTheWay, ALARMS_ON_THE_WAY) > 0,
    queueFull: (full) => Atomics.store(onTheWay, TELEMETRY_FULL, full ? 1 : 0),
    // the checkpointer's pauses for starting the WAL again (this node's file; PostgreSQL has no such log here)
    ...(batches ? {} : { walRestart: new WalRestartGate(init.walRestart) }),
  });
  // steps in order: rules → incidents, then the devices' answers to commands
  // outside a batch (a registry change re-arming a device's timers), PostgreSQL's open incidents as this writer last
  // committed or read them
  const openOutside = pool ? await openIncidentsOf(pool, isTestDevice) : null;
  if (openOutside) noteCommitted = openOutside.note;
  const alarms = createAlarmPipeline({
    config, log, metrics, sqlite: store.sqlite, registry, states, ingest, incidents,
    ...(openOutside ? { openIncidentsOutside: openOutside.lookup } : {}),
  });
  const commands = new Commands(pool ? createPgCommandStore(pool) : store.sqlite, log);
  ingest.use(commands.step);
  commands.onAcked = (cmd, at) => {
    // recorded on the incident by the main thread once this batch has committed (never if it is rolled back, or twice
    // if a PostgreSQL batch runs again)
    if (cmd.incidentId) ingest.whenCommitted(() => post({ op: 'command-acked', cmd, at }));
    return [];
  };
  return {
    store, states, ingest, alarms, incidents, registry, commands, metrics,
    noteCommitted: (events) => noteCommitted(events),
    writeReceipts: createSqliteReceiptStore(store.sqlite).writeBatch,
    restoreHints: pool ? await lastObservationTimes(pool) : undefined,
    async close() {
      alarms.close();
      if (pool) {
        await ingest.drain();
        ingest.close();
        await pool.end();
      } else {
        ingest.close();
        store.sqlite.transaction(() => states.flushDirty(Date.now())).immediate();
      }
      store.close();
    },
  };
}

/** the rule timers' start-up hints from PostgreSQL's observations: each device's last check-in and last activity */
async function lastObservationTimes(pool: pg.Pool): Promise<{ checkIns: Map<string, number>; activity: Map<string, number> }> {
  const last = async (type: string) => new Map((await pool.query('SELECT device_id, max(received_at) AS t FROM observations WHERE type = $1 GROUP BY device_id', [type]))
    .rows.map((r) => [r.device_id as string, Number(r.t)]));
  return { checkIns: await last('check-in'), activity: await last('presence') };
}

async function main(): Promise<void> {
  const init = workerData as WriterInit;
  useWriteTurnBuffer(init.turn);
  // every line goes to the main thread's logger (one stream, one format, and a test's logger sees the writer's lines)
  const log = createLogger(init.logLevel, { write: (line: string) => post({ op: 'log', line }) });
  let d: WriterDomain;
  // what comes before the domain is built waits for it (PostgreSQL: migrations, loading the states)
  const early: ToWriter[][] = [];
  const takeEarly = (batch: ToWriter[]) => { early.push(batch); };
  port!.on('message', takeEarly);
  try {
    d = await createWriterDomain(init, log);
  } catch (err) {
    post({ op: 'fatal', error: toWire(err) });
    return;
  }
  port!.off('message', takeEarly);
  const restored = d.alarms.restore(d.restoreHints);
  // queue depths for the main thread's gauges and /metrics, a few times a second (not per message)
  const statsTimer = setInterval(() => post({ op: 'stats', stats: d.ingest.queueDepth() }), 250);
  statsTimer.unref();
  // the queues live in this thread's heap: telemetry is shed when it nears its bound, as when the main thread's
  // watchdog says the process is under pressure (whichever comes first)
  let mainPressure = false;
  let ownPressure = false;
  const heapTimer = setInterval(() => {
    const h = getHeapStatistics();
    const over = h.used_heap_size > h.heap_size_limit * 0.85;
    if (over !== ownPressure) {
      ownPressure = over;
      log.warn({ heap: h.used_heap_size, heapLimit: h.heap_size_limit, over }, over ? 'the writer thread\'s heap is near its bound: shedding telemetry' : 'the writer thread\'s heap is back below its bound');
      d.ingest.setPressure(mainPressure || ownPressure);
    }
  }, 1000);
  heapTimer.unref();
  const writeReceipts = d.writeReceipts;
  const reply = (id: number, run: () => unknown) => {
    try {
      const value = run();
      if (value instanceof Promise) {
        value.then((v) => post({ op: 'result', id, ok: true, value: v }), (err: unknown) => post({ op: 'result', id, ok: false, error: toWire(err) }));
      } else {
        post({ op: 'result', id, ok: true, value });
      }
    } catch (err) {
      post({ op: 'result', id, ok: false, error: toWire(err) });
    }
  };
  // Messages are handled in order from one inbox. The port hands over everything waiting at once, and an SOS must not
  // wait behind heavy work that came after it (a 50,000-device import's registry replication): once an alarm is
  // queued, a registry replication is left for a later turn, after the alarm's commit (queued with setImmediate as it
  // was submitted). Alarms next to each other still share one commit (group commit); the order of messages is kept.
  const inbox: ToWriter[] = [];
  let next = 0;
  let resumeQueued = false;
  let alarmQueued = false;
  const drain = (): void => {
    resumeQueued = false;
    while (next < inbox.length) {
      const m = inbox[next]!;
      inbox[next++] = undefined as never;
      try {
        handle(m);
      } catch (err) {
        // one message this thread could not handle must not take the others (or the thread) with it
        log.error({ err, op: (m as { op?: unknown } | null)?.op }, 'the writer could not handle a message from the main thread');
        const id = (m as { id?: unknown } | null)?.id;
        if (typeof id === 'number') post({ op: 'result', id, ok: false, error: toWire(err) });
      }
      // a word for the stall watch: a batch of people's writes that each wait for the lock is slow, not stalled
      Atomics.add(taken, HANDLED, 1);
      if (m?.op === 'submit') alarmQueued = true;
      if (alarmQueued && inbox[next]?.op === 'registry') {
        alarmQueued = false;
        resumeQueued = true;
        setImmediate(drain);
        return;
      }
    }
    alarmQueued = false;
    inbox.length = 0;
    next = 0;
  };
  const taken = new Int32Array(init.taken);
  const take = (batch: ToWriter[]) => {
    Atomics.add(taken, TAKEN, batch.length);
    for (const m of batch) inbox.push(m);
    if (!resumeQueued) drain();
  };
  port!.on('message', take);
  const handle = (m: ToWriter): void => {
    switch (m.op) {
      case 'submit':
        // no longer on its way once handed to the ingest (not when taken off the port: drain() may leave it in the
        // inbox for a turn behind a registry replication, and the telemetry slices must keep making way meanwhile)
        Atomics.sub(taken, ALARMS_ON_THE_WAY, 1);
        return reply(m.id, () => d.ingest.submit(m.obs));
      case 'telemetry': {
        const p = d.ingest.submitTelemetry(m.obs, m.wait);
        // without `wait` nobody waits for an answer (shed or queued); a failure is the writer's to log and count
        if (m.id === undefined || !p) {
          p?.catch(() => {});
          return;
        }
        return reply(m.id, () => p);
      }
      case 'reject':
        return d.ingest.recordReject(m.row);
      // (between batches: on PostgreSQL a batch awaiting its commit rolls back only what it changed itself)
      case 'online':
        return d.ingest.outsideBatch(() => {
          // a new writer told who is still connected: online again, its last-seen time left as stored
          const lastSeen = m.restore ? d.states.peek(m.deviceId)?.lastSeen : undefined;
          d.states.setOnline(m.deviceId, m.online, m.at);
          if (m.restore && lastSeen !== undefined) d.states.get(m.deviceId).lastSeen = lastSeen;
        });
      case 'unreadable':
        return d.ingest.outsideBatch(() => d.states.markUnreadable(m.deviceId, m.reason, m.at));
      case 'clear-flags':
        return d.ingest.outsideBatch(() => d.states.clearFlags(m.deviceId));
      case 'registry':
        return d.ingest.outsideBatch(() => d.registry.replicate(m.change));
      case 'pressure':
        mainPressure = m.on;
        return d.ingest.setPressure(mainPressure || ownPressure);
      case 'states':
        return reply(m.id, () => m.deviceIds.map((id) => [id, d.states.peek(id) ?? null]));
      case 'state-ids':
        return reply(m.id, () => [...d.states.entries()].map(([id]) => id));
      case 'match-supervision':
        return reply(m.id, () => d.states.matchSupervision(m.deviceIds, m.supervision));
      case 'flush':
        return reply(m.id, () => d.ingest.drain());
      case 'incident':
        return reply(m.id, () => andThen(runIncidentCall(d.incidents, m.call), (v) => {
          d.noteCommitted(Array.isArray(v) ? v : (v as { events: IncidentEvent[] }).events);
          return v;
        }));
      case 'command':
        return reply(m.id, () => runCommandCall(d.commands, m.call));
      case 'receipts':
        return reply(m.id, () => writeReceipts(m.batch));
      case 'metrics':
        return reply(m.id, () => d.metrics.registry.getMetricsAsJSON());
      case 'close':
        clearInterval(statsTimer);
        clearInterval(heapTimer);
        return reply(m.id, () => d.close());
    }
  };
  post({ op: 'ready', restored, tid: linuxThreadId() });
  for (const batch of early) take(batch);
}

/** A write of the incident log the main thread asked for: in its own transaction (synchronous=FULL), durable on return. */
function runIncidentCall(incidents: IncidentServiceOf<StoreMode>, call: IncidentCall): unknown {
  switch (call.method) {
    case 'act':
      return incidents.act(call.incidentId, call.action, call.actor);
    case 'escalate':
      return incidents.escalate(call.incidentId, call.steps);
    case 'resolveBySystem':
      return incidents.resolveBySystem(call.incidentId, call.outcome, call.data);
    case 'move':
      return incidents.move(call.incidentId, call.to, call.reason);
    case 'followUp':
      return incidents.followUp(call.incidentId, call.dueAt, call.opts);
    case 'record':
      // the data was type-checked against the event's type where the main thread built it (IncidentApi.record)
      return incidents.record(call.incidentId, call.type, call.data as never, call.actor);
    case 'applyAlarm':
      return incidents.applyAlarm(call.action, call.source);
  }
}

/** A write of the commands table the main thread asked for: its own statement, durable on return (synchronous=FULL). */
function runCommandCall(commands: Commands, call: CommandCall): unknown {
  switch (call.method) {
    case 'create':
      return commands.insertNow(call.deviceId, call.type, call.params, call);
    case 'sent':
      return commands.markSentNow(call.commandId, call.at);
    case 'expire':
      return commands.expireNow(call.now);
  }
}

void main();
