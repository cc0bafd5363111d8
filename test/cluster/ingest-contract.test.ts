// One ingest, two engines: the writer's batch (gateway/ingest.ts with the rules' and the commands' steps) over a real
// SQLite file with the committed migrations — one synchronous transaction — and over a real PostgreSQL 15 (Debian's,
// started by this file on a private port and data directory, drizzle-pg/'s migrations) — one asynchronous
// transaction holding the batch's observations, incident events, command answers and device states. The same
// observations give the same answers, rows and incident events on both. Then what only PostgreSQL has to prove, where
// several nodes' writers share the log: their batches' seqs are gap-free and in commit order, one device's alarms
// from two nodes at once open one incident.
//
// The registry and the residents are still each node's SQLite (they are not in PostgreSQL yet: docs/scale-out.md).
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it, vi } from 'vitest';
import type { IncidentEvent, IngestResult, Observation } from '../../core/contracts.js';
import { loadConfig } from '../../core/config.js';
import { openStore, type Store } from '../../core/db.js';
import { Bus } from '../../core/bus.js';
import { createLogger } from '../../core/logger.js';
import { createMetrics } from '../../core/metrics.js';
import { SecretHasher } from '../../devices/credentials.js';
import { DeviceRegistry } from '../../devices/registry.js';
import { createAlarmPipeline } from '../../gateway/alarms.js';
import { Commands } from '../../gateway/commands.js';
import { DeviceStates } from '../../gateway/device-state.js';
import { Ingest, PG_TELEMETRY_FLUSH_MS, TELEMETRY_FLUSH_MS } from '../../gateway/ingest.js';
import { createPgIngestBatches } from '../../gateway/ingest-scope-pg.js';
import { openIncidentsOf } from '../../gateway/open-incidents-pg.js';
import { createSqliteDeviceStateStore, type StoredState } from '../../gateway/state-store.js';
import { createPgDeviceStateStore } from '../../gateway/state-store-pg.js';
import { createSqliteCommandStore } from '../../gateway/command-store.js';
import { createPgCommandStore } from '../../gateway/command-store-pg.js';
import { systemClock } from '../../response/clock.js';
import { createIncidentService, testMarkOf } from '../../response/incidents.js';
import { createNetwork } from '../../response/network.js';
import { createPgIncidentStore } from '../../response/store/pg.js';
import type { StoreMode } from '../../response/store/types.js';
import { useStoreEngines } from '../helpers/postgres.js';
import { IN_OPENING_ORDER } from '../helpers/incident-order.js';
import { numbered } from '../../core/pg-bind.js';

// band 17: no other test file's (grep `band:` and `BAND =` under test/)
const BAND = 17;
const env = useStoreEngines({ name: 'ingest', band: BAND });
const log = createLogger('silent');

interface Node {
  ingest: Ingest;
  /** the writer's device states in memory */
  memory: DeviceStates;
  metrics: ReturnType<typeof createMetrics>;
  /** called after each commit that handed over incident events */
  onCommit(fn: (() => void) | null): void;
  registry: DeviceRegistry;
  /** incident events, as each commit handed them over */
  committed: IncidentEvent[];
  /** every write queued, settled */
  drain(): Promise<void>;
  /** one device's stored observations' seqs, in the order stored */
  seqs(deviceId: string): Promise<number[]>;
  /** the log, seq order */
  log(): Promise<{ seq: number; type: string; incidentId: string }[]>;
  incidents(deviceId: string): Promise<{ id: string; type: string; status: string; count: number; test: boolean; residentId: string | null; account: string | null }[]>;
  states(): Promise<StoredState[]>;
  createCommand(deviceId: string, incidentId?: string): Promise<string>;
  /** commands answered, as the writer hands them on (after the commit: gateway/writer/worker.ts) */
  acked: string[];
  commandStatus(id: string): Promise<string | undefined>;
}

const locals: Store[] = [];
afterAll(() => { for (const l of locals) l.close(); });

/**
 * A writer's domain as gateway/writer/worker.ts builds it: the ingest, the rules → incidents step and the commands'
 * step; its registry (and residents, network) on a SQLite file of its own. `pool`: the batches go to PostgreSQL.
 */
async function node(pool: pg.Pool | null, name: string): Promise<Node> {
  // a file of its own for each: the whole store on SQLite, the areas not in PostgreSQL yet otherwise
  const local = openStore(join(env.dir, `${name}-${Math.random().toString(36).slice(2, 8)}.db`));
  locals.push(local);
  const sqlite = local.sqlite;
  const config = loadConfig({}, {});
  const bus = new Bus();
  const metrics = createMetrics({ defaults: false });
  const registry = new DeviceRegistry(local.db, new SecretHasher(Buffer.alloc(32, 3)), bus);
  const network = createNetwork({ store: local, log, clock: systemClock });
  const committed: IncidentEvent[] = [];
  let hook: (() => void) | null = null;
  const onCommitted = (events: IncidentEvent[]) => { committed.push(...events); hook?.(); };
  let ingest: Ingest;
  let states: DeviceStates;
  let incidents;
  if (pool) {
    // a test run's device, read from this node's registry as gateway/writer/worker.ts reads it
    const isTestDevice = testMarkOf(sqlite);
    const incidentStore = createPgIncidentStore({ pool, knownUnitIds: () => network.listUnits().map((u) => u.id) });
    const batches = createPgIngestBatches({ pool, incidents: incidentStore, isTestDevice });
    states = new DeviceStates(await batches.loadStates());
    incidents = createIncidentService({ store: local, bus, config, log, clock: systemClock, network, incidentStore, isTestDevice });
    ingest = new Ingest({ pg: batches, states, config: config.ingest, log, metrics, onCommitted });
  } else {
    states = new DeviceStates(sqlite);
    incidents = createIncidentService({ store: local, bus, config, log, clock: systemClock, network });
    ingest = new Ingest({ sqlite, states, config: config.ingest, log, metrics, onCommitted });
  }
  createAlarmPipeline({ config, log, metrics, sqlite, registry, states, ingest, incidents, ...(pool ? { openIncidentsOutside: () => () => undefined } : {}) });
  const commands = new Commands(sqlite, log);
  ingest.use(commands.step);
  // as gateway/writer/worker.ts wires it: an answer to an incident's command leaves once its batch has committed
  const acked: string[] = [];
  commands.onAcked = (cmd) => {
    if (cmd.incidentId) ingest.whenCommitted(() => acked.push(cmd.id));
    return [];
  };
  const q = async <R>(text: string, args: unknown[]): Promise<R[]> => pool
    ? (await pool.query(numbered(text), args)).rows as R[]
    : sqlite.prepare(text).all(...args) as R[];
  const commandStore = pool ? createPgCommandStore(pool) : createSqliteCommandStore(sqlite);
  return {
    ingest, registry, committed, memory: states, metrics, acked,
    onCommit: (fn) => { hook = fn; },
    drain: () => ingest.drain(),
    seqs: async (deviceId) => (await q<{ seq: number }>('select seq from observations where device_id = ? order by id', [deviceId])).map((r) => Number(r.seq)),
    log: async () => (await q<{ seq: number; type: string; incident_id: string }>('select seq, type, incident_id from incident_events order by seq', []))
      .map((r) => ({ seq: Number(r.seq), type: r.type, incidentId: r.incident_id })),
    incidents: async (deviceId) => (await q<{ id: string; type: string; status: string; count: number; test: unknown; resident_id: string | null; account: string | null }>(
      `select id, type, status, count, test, resident_id, account from incidents where device_id = ? ${IN_OPENING_ORDER}`, [deviceId]))
      .map(({ resident_id: residentId, ...r }) => ({ ...r, test: Boolean(r.test), residentId })),
    states: async () => (pool ? createPgDeviceStateStore(pool) : createSqliteDeviceStateStore(sqlite)).loadAll(),
    async createCommand(deviceId, incidentId) {
      const id = `c_${Math.random().toString(36).slice(2, 10)}`;
      await commandStore.insert({ id, deviceId, type: 'locate', params: {}, incidentId: incidentId ?? null, createdAt: Date.now(), expiresAt: Date.now() + 60_000 }, false);
      return id;
    },
    commandStatus: async (id) => (await commandStore.get(id))?.status,
  };
}

const T = Date.now();
let nextSeq = 1;
const obs = (deviceId: string, type: string, extra: Record<string, unknown> = {}): Observation =>
  ({ deviceId, type, seq: nextSeq++, deviceTs: T + nextSeq, receivedAt: Date.now(), source: 'mqtt', ...extra }) as Observation;

const engines: { name: string; mode: StoreMode; open(name: string): Promise<Node> }[] = [
  { name: 'SQLite', mode: 'sync', open: (name) => node(null, name) },
  { name: 'PostgreSQL', mode: 'async', open: async (name) => node((await env.pgs().fresh(`ingest_${name}`, 6)).pool, name) },
];

for (const engine of engines) {
  describe(`the ingest's batch on ${engine.name}`, () => {
    it('an SOS opens one incident, its resend is a duplicate, a second press joins it; a fall cancelled in its window is cancelled', async () => {
      const n = await engine.open('sos');
      const phone = n.registry.provision({ kind: 'call-phone', serial: `PH-${engine.name}` }).device.id;
      const sensor = n.registry.provision({ kind: 'fall-sensor', serial: `FS-${engine.name}` }).device.id;
      const sos = obs(phone, 'sos');
      const first = await n.ingest.submit(sos);
      expect(first.status).toBe('stored');
      // the same message again (a resend after a lost PUBACK): one row, one incident
      expect((await n.ingest.submit({ ...sos, receivedAt: Date.now() })).status).toBe('duplicate');
      const again = await n.ingest.submit(obs(phone, 'sos'));
      expect(again.status).toBe('stored');
      // handed over in one turn: one batch, in order
      const [fall, cancel] = await Promise.all([n.ingest.submit(obs(sensor, 'fall')), n.ingest.submit(obs(sensor, 'cancel'))]);
      expect([fall.status, cancel.status]).toEqual(['stored', 'stored']);
      await n.drain();
      expect(await n.incidents(phone)).toEqual([expect.objectContaining({ type: 'sos', status: 'open', count: 2 })]);
      expect(await n.incidents(sensor)).toEqual([expect.objectContaining({ type: 'fall', status: 'cancelled', count: 1 })]);
      expect((await n.seqs(phone)).length).toBe(2);
      // what consoles are handed is the log as committed: the same events, seqs one after another from 1
      const logged = await n.log();
      expect(logged.map((e) => e.type)).toEqual(['opened', 'joined', 'opened', 'cancelled']);
      expect(logged.map((e) => e.seq)).toEqual([1, 2, 3, 4]);
      expect(n.committed.map((e) => [e.seq, e.type])).toEqual(logged.map((e) => [e.seq, e.type]));
    });

    it('an alarm refused by a step is not stored and not acknowledged; the batch goes on, and no seq is left unused', async () => {
      const n = await engine.open('refused');
      let refuse = true;
      n.ingest.use({
        name: 'refuses-one', raisesIncidents: true,
        run(o) {
          if (refuse && o.type === 'sos' && (o as { note?: string }).note === 'refuse') throw new Error('this step refuses the alarm');
        },
      });
      const a = n.registry.provision({ kind: 'call-phone', serial: `RA-${engine.name}` }).device.id;
      const b = n.registry.provision({ kind: 'call-phone', serial: `RB-${engine.name}` }).device.id;
      const refused = obs(a, 'sos', { note: 'refuse' });
      const results = await Promise.allSettled([n.ingest.submit(obs(b, 'sos')), n.ingest.submit(refused), n.ingest.submit(obs(b, 'sos'))]);
      expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
      expect(((results[1] as PromiseRejectedResult).reason as Error).name).toBe('AlarmNotRecordedError');
      await n.drain();
      expect(await n.seqs(a)).toEqual([]);
      expect(await n.incidents(a)).toEqual([]);
      // the refused alarm's incident was written and rolled back with it: its seq is given to the next event
      expect((await n.log()).map((e) => e.seq)).toEqual([1, 2]);
      // the device sends it again and it is taken
      refuse = false;
      expect((await n.ingest.submit({ ...refused, receivedAt: Date.now() })).status).toBe('stored');
      expect((await n.log()).map((e) => [e.seq, e.type])).toEqual([[1, 'opened'], [2, 'joined'], [3, 'opened']]);
      expect(await n.incidents(a)).toEqual([expect.objectContaining({ type: 'sos', status: 'open' })]);
    });

    // The rules ask for the device's open incident of a type (a low battery on the board is not raised again). A device
    // put into service keeps its test run's open incidents: they are not its own now, and must not hold back a real one.
    it('a device put into service: its test run\'s open low-battery incident does not hold back a real one', async () => {
      const n = await engine.open('inservice');
      const phone = n.registry.provision({ kind: 'call-phone', serial: `IS-${engine.name}`, test: true }).device.id;
      await n.ingest.submitTelemetry(obs(phone, 'heartbeat', { battery: 5 }), true);
      await n.drain();
      expect(await n.incidents(phone)).toEqual([expect.objectContaining({ type: 'low-battery', status: 'open', test: true })]);
      // still a test device: its next low reading joins nothing and raises nothing new
      await n.ingest.submitTelemetry(obs(phone, 'heartbeat', { battery: 4 }), true);
      await n.drain();
      expect(await n.incidents(phone)).toHaveLength(1);
      n.registry.update(phone, { test: false });
      await n.ingest.submitTelemetry(obs(phone, 'heartbeat', { battery: 3 }), true);
      await n.drain();
      expect(await n.incidents(phone)).toEqual([
        expect.objectContaining({ type: 'low-battery', status: 'open', test: true }),
        expect.objectContaining({ type: 'low-battery', status: 'open', test: false }),
      ]);
    });

    // A device moved to another person: her alarms are hers. They join none of his cards still open (whose card an
    // operator reads decides whose home help goes to), and the rules forget what they knew of him (his zone's side).
    it('a device moved to another resident: her SOS and her exit open her own cards while his are still open', async () => {
      const n = await engine.open('rebound');
      const zone = (lat: number) => ({ type: 'circle' as const, center: { lat, lon: 116.4 }, radiusM: 200 });
      const him = n.registry.createResident({ name: 'Li Wei', safeZone: zone(39.9) }).id;
      const her = n.registry.createResident({ name: 'Chen Hua', safeZone: zone(30.0) }).id;
      const watch = n.registry.provision({ kind: 'locator', serial: `RB-${engine.name}` }).device.id;
      n.registry.bind(watch, him);
      const fix = (lat: number) => obs(watch, 'position', { position: { lat, lon: 116.4, accuracy: 10 } });
      await n.ingest.submit(obs(watch, 'sos'));
      await n.ingest.submitTelemetry(fix(39.91), true);
      await n.drain();
      expect(await n.incidents(watch)).toEqual([
        expect.objectContaining({ type: 'sos', status: 'open', residentId: him }),
        expect.objectContaining({ type: 'safe-zone-exit', status: 'open', residentId: him }),
      ]);
      n.registry.bind(watch, her);
      await n.ingest.submit(obs(watch, 'sos'));
      // outside her zone as well: her first fix outside is her exit
      await n.ingest.submitTelemetry(fix(30.01), true);
      await n.drain();
      const after = await n.incidents(watch);
      expect(after).toHaveLength(4);
      expect(after.filter((i) => i.residentId === him)).toEqual([
        expect.objectContaining({ type: 'sos', status: 'open', count: 1 }),
        expect.objectContaining({ type: 'safe-zone-exit', status: 'open' }),
      ]);
      expect(after.filter((i) => i.residentId === her)).toEqual([
        expect.objectContaining({ type: 'sos', status: 'open', count: 1 }),
        expect.objectContaining({ type: 'safe-zone-exit', status: 'open' }),
      ]);
    });

    // Two homes' panels behind one alarm receiver, neither registered: each event lands on the receiver with its account,
    // and each account has cards of its own. One home's fire is not a repeat of another's, and one home's mains coming
    // back does not clear the other's mains loss (the technical rules ask for the account's own open card).
    it('a receiver\'s unknown accounts: each has its own cards, for alarms and for what a restore clears', async () => {
      const n = await engine.open('accounts');
      const receiver = n.registry.provision({ kind: 'receiver', serial: `RCV-${engine.name}` }).device.id;
      // bound to someone by mistake: an unknown panel's alarm is still nobody's, never this resident's
      n.registry.bind(receiver, n.registry.createResident({ name: 'Wrong Home' }).id);
      const from = (account: string, type: string, extra: Record<string, unknown> = {}) =>
        obs(receiver, type, { source: 'serial', flags: ['unknown-account'], account, ...extra });
      await n.ingest.submit(from('01:1:1234', 'fire'));
      await n.ingest.submit(from('01:1:5678', 'fire'));
      await n.ingest.submit(from('01:1:1234', 'fire'));
      await n.ingest.submit(from('01:1:1234', 'power-lost'));
      await n.ingest.submit(from('01:1:5678', 'power-lost'));
      await n.ingest.submit(from('01:1:5678', 'power-restored'));
      // a battery low at both homes: the second is not held back by the first's open card (the rules ask per account)
      await n.ingest.submit(from('01:1:1234', 'battery', { level: 0 }));
      await n.ingest.submit(from('01:1:5678', 'battery', { level: 0 }));
      await n.drain();
      expect((await n.incidents(receiver)).filter((i) => i.type === 'low-battery').map((i) => [i.account, i.status, i.residentId])).toEqual([
        ['01:1:1234', 'open', null], ['01:1:5678', 'open', null],
      ]);
      // an unknown panel's battery is not the receiver's
      expect(n.memory.get(receiver).battery).toBeNull();
      const cards = (await n.incidents(receiver)).filter((i) => i.type !== 'low-battery').map((i) => [i.type, i.account, i.status, i.count]);
      expect(cards).toEqual([
        ['fire', '01:1:1234', 'open', 2],
        ['fire', '01:1:5678', 'open', 1],
        ['power-lost', '01:1:1234', 'open', 1],
        ['power-lost', '01:1:5678', 'resolved', 1],
      ]);
      // the receiver's own trouble (no account) is neither's
      await n.ingest.submit(obs(receiver, 'power-lost', { source: 'serial' }));
      await n.drain();
      expect((await n.incidents(receiver)).filter((i) => i.type === 'power-lost' && i.status === 'open').map((i) => i.account)).toEqual(['01:1:1234', null]);
    });

    it('heartbeats are state: folded in, written as the device\'s row, not as observation rows (after the first)', async () => {
      const n = await engine.open('state');
      const phone = n.registry.provision({ kind: 'call-phone', serial: `HB-${engine.name}` }).device.id;
      for (let i = 0; i < 5; i++) await n.ingest.submitTelemetry(obs(phone, 'heartbeat', { battery: 80, signal: 20 }), true);
      await n.ingest.submitTelemetry(obs(phone, 'heartbeat', { battery: 60, signal: 20 }), true);
      // a heartbeat with more to say than its readings: a row when that changes, state while it repeats
      for (const temp of [21, 21, 22]) await n.ingest.submitTelemetry(obs(phone, 'heartbeat', { battery: 60, signal: 20, temp }), true);
      await n.drain();
      // the first is kept, the repeats are not, the changed battery is, and each new temperature
      expect((await n.seqs(phone)).length).toBe(4);
      // counted once each, after their commits: 4 rows, 5 folded into state
      const counted = (await n.metrics.ingested.get()).values.filter((v) => v.labels.source === 'mqtt' && v.labels.class === 'other');
      expect(Object.fromEntries(counted.map((v) => [v.labels.result, v.value]))).toEqual({ stored: 4, state: 5 });
      const row = (await n.states()).find((s) => s.deviceId === phone);
      expect(row?.state).toMatchObject({ battery: 60, signal: 20 });
      expect(row?.state.lastSeen).toBeGreaterThan(0);
    });

    it(`telemetry waits for the store's own flush interval when none is set (${engine.mode === 'sync' ? TELEMETRY_FLUSH_MS : PG_TELEMETRY_FLUSH_MS} ms)`, async () => {
      const n = await engine.open('flush');
      const phone = n.registry.provision({ kind: 'call-phone', serial: `FL-${engine.name}` }).device.id;
      const interval = engine.mode === 'sync' ? TELEMETRY_FLUSH_MS : PG_TELEMETRY_FLUSH_MS;
      // the ingest's timers only, on a clock the test moves (the store's own I/O stays real)
      vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
      try {
        let stored = false;
        const reading = n.ingest.submitTelemetry(obs(phone, 'battery', { level: 50 }), true)!.then((r) => { stored = true; return r; });
        await vi.advanceTimersByTimeAsync(interval - 1);
        expect(stored).toBe(false);
        await vi.advanceTimersByTimeAsync(1);
        vi.useRealTimers();
        expect((await reading).status).toBe('stored');
      } finally {
        vi.useRealTimers();
      }
    });

    it('a device\'s readings that came after its alarm are written after it, those before it before it', async () => {
      const n = await engine.open('order');
      const locator = n.registry.provision({ kind: 'locator', serial: `OR-${engine.name}` }).device.id;
      const at = (lat: number) => ({ position: { lat, lon: 116.4 } });
      // in one turn: a reading, the alarm, a reading (QoS 1 each)
      const [r1, sos, r2] = await Promise.all([
        n.ingest.submitTelemetry(obs(locator, 'position', at(39.91)), true)!,
        n.ingest.submit(obs(locator, 'sos')),
        n.ingest.submitTelemetry(obs(locator, 'position', at(39.92)), true)!,
      ]);
      await n.drain();
      // stored in the order they came: ids follow arrival
      const ids = [r1.observationId, sos.observationId, r2.observationId];
      expect([...ids].sort((a, b) => a - b)).toEqual(ids);
    });

    it('a device\'s answer to a command moves the command once, in the batch', async () => {
      const n = await engine.open('command');
      const phone = n.registry.provision({ kind: 'call-phone', serial: `CM-${engine.name}` }).device.id;
      // the command is written where people's commands are (its store's own statement); the answer comes through the ingest
      const id = await n.createCommand(phone);
      const ack = (ok: boolean) => obs(phone, 'command-ack', { commandId: id, ok });
      expect((await n.ingest.submit(ack(true))).status).toBe('stored');
      expect(await n.commandStatus(id)).toBe('acked');
      // a second answer (another seq) moves nothing
      expect((await n.ingest.submit(ack(false))).status).toBe('stored');
      expect(await n.commandStatus(id)).toBe('acked');
    });
  });
}

describe('the ingest\'s batches of several nodes on one PostgreSQL', () => {
  // What a PostgreSQL writer keeps for its rules outside a batch (timers armed at start or after a registry change):
  // the same view as in a batch, a device's own kind of open incident only (gateway/open-incidents-pg.ts)
  it('the open incidents a PostgreSQL writer keeps between batches: a device put into service sees only its real ones', async () => {
    const { pool } = await env.pgs().fresh('ingest_outside', 6);
    const n = await node(pool, 'outside');
    const phone = n.registry.provision({ kind: 'call-phone', serial: 'OUT-1', test: true }).device.id;
    await n.ingest.submitTelemetry(obs(phone, 'heartbeat', { battery: 5 }), true);
    await n.drain();
    const [testCard] = await n.incidents(phone);
    const outside = await openIncidentsOf(pool, (id) => n.registry.get(id).test === true);
    const unbound = { id: phone, residentId: null };
    expect(outside.lookup(unbound)('low-battery')?.id).toBe(testCard!.id);
    // another resident's view of the device: not hers
    expect(outside.lookup({ id: phone, residentId: 'r-someone' })('low-battery')).toBeUndefined();
    n.registry.update(phone, { test: false });
    expect(outside.lookup(unbound)('low-battery')).toBeUndefined();
    const before = n.committed.length;
    await n.ingest.submitTelemetry(obs(phone, 'heartbeat', { battery: 3 }), true);
    await n.drain();
    outside.note(n.committed.slice(before));
    const real = (await n.incidents(phone)).find((i) => !i.test);
    expect(real).toBeDefined();
    expect(outside.lookup(unbound)('low-battery')?.id).toBe(real!.id);
    // read again from PostgreSQL (a writer starting): the same answer
    const again = await openIncidentsOf(pool, (id) => n.registry.get(id).test === true);
    expect(again.lookup(unbound)('low-battery')?.id).toBe(real!.id);
    expect(again.lookup({ id: phone, residentId: 'r-someone' })('low-battery')).toBeUndefined();
  });

  it('two nodes\' batches at once: the log gap-free and in commit order, each node told its events in order, nothing twice', async () => {
    const { url } = await env.pgs().fresh('ingest_two', 6);
    const pools = [0, 1].map(() => env.pgs().track(new pg.Pool({ connectionString: url, max: 4 })));
    const [a, b] = await Promise.all(pools.map((p, i) => node(p, `two-${i}`)));
    const devices = (n: Node, prefix: string) => Array.from({ length: 20 }, (_, i) => n.registry.provision({ kind: 'call-phone', serial: `${prefix}-${i}` }).device.id);
    const da = devices(a!, 'NA');
    const db = devices(b!, 'NB');
    // 5 rounds of one batch per node, each batch an SOS from each of its 20 devices, the two nodes at the same time
    for (let round = 0; round < 5; round++) {
      const results = await Promise.all([...da.map((d) => a!.ingest.submit(obs(d, 'sos'))), ...db.map((d) => b!.ingest.submit(obs(d, 'sos')))]);
      expect(results.every((r: IngestResult) => r.status === 'stored')).toBe(true);
    }
    const logged = await a!.log();
    expect(logged.map((e) => e.seq)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
    // each node heard its own events, in increasing seq, and together they are the log
    for (const n of [a!, b!]) {
      const seqs = n.committed.map((e) => e.seq);
      expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
      expect(seqs.length).toBe(100);
    }
    expect([...a!.committed, ...b!.committed].map((e) => e.seq).sort((x, y) => x - y)).toEqual(logged.map((e) => e.seq));
    // one incident per device, opened once and joined four times
    for (const d of [...da, ...db]) expect(await a!.incidents(d)).toEqual([expect.objectContaining({ type: 'sos', count: 5 })]);
  });

  it('one device\'s SOS taken by two nodes at the same moment (a partition handed over): one incident, the other joins it', async () => {
    const { url } = await env.pgs().fresh('ingest_twin', 6);
    const pools = [0, 1].map(() => env.pgs().track(new pg.Pool({ connectionString: url, max: 4 })));
    const [a, b] = await Promise.all(pools.map((p, i) => node(p, `twin-${i}`)));
    for (let round = 0; round < 10; round++) {
      // node b's registry (its own SQLite until the registry moves to PostgreSQL) does not know the device: it raises
      // the SOS as it raises any life-safety message from a device missing from its cache, P1 without rules
      const id = a!.registry.provision({ kind: 'call-phone', serial: `TW-${round}` }).device.id;
      const [ra, rb] = await Promise.all([a!.ingest.submit(obs(id, 'sos')), b!.ingest.submit(obs(id, 'sos'))]);
      expect([ra.status, rb.status]).toEqual(['stored', 'stored']);
      expect(await a!.incidents(id)).toEqual([expect.objectContaining({ type: 'sos', count: 2 })]);
      // one message redelivered to both (the same seq and device time): stored once, whichever node was first
      const same = obs(id, 'sos');
      const both = await Promise.all([a!.ingest.submit(same), b!.ingest.submit({ ...same })]);
      expect(both.map((r) => r.status).sort()).toEqual(['duplicate', 'stored']);
      expect(await a!.incidents(id)).toEqual([expect.objectContaining({ type: 'sos', count: 3 })]);
    }
  });

  it('a statement that fails inside one observation\'s savepoint fails that one; one that fails the batch fails it whole, memory and all', async () => {
    const { pool } = await env.pgs().fresh('ingest_fault', 6);
    const n = await node(pool, 'fault');
    const phone = n.registry.provision({ kind: 'call-phone', serial: 'FAULT-1' }).device.id;
    const other = n.registry.provision({ kind: 'call-phone', serial: 'FAULT-2' }).device.id;
    // the database refuses one observation's row: that SOS fails in its savepoint, the others of its batch are stored
    await pool.query(`ALTER TABLE observations ADD CONSTRAINT refuse_one CHECK (seq IS DISTINCT FROM 999999)`);
    const results = await Promise.allSettled([
      n.ingest.submit(obs(other, 'sos')), n.ingest.submit({ ...obs(phone, 'sos'), seq: 999999 }), n.ingest.submit(obs(other, 'sos')),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((await n.log()).map((e) => [e.seq, e.type])).toEqual([[1, 'opened'], [2, 'joined']]);
    expect(await n.incidents(phone)).toEqual([]);
    // the database refuses the batch's device-state rows (written last, outside any savepoint): nothing of the batch
    // is kept, nobody is answered "stored", and memory goes back — the refused battery is not the device's state
    await pool.query(`ALTER TABLE device_state ADD CONSTRAINT refuse_state CHECK (battery IS DISTINCT FROM 13)`);
    const low = obs(phone, 'sos', { battery: 13 });
    const hb = obs(phone, 'heartbeat', { battery: 13 });
    const failed = await Promise.allSettled([n.ingest.submitTelemetry(hb, true)!, n.ingest.submit(low)]);
    expect(failed.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    expect(await n.incidents(phone)).toEqual([]);
    expect(await n.seqs(phone)).toEqual([]);
    expect((await n.log()).length).toBe(2);
    // back to normal: the resend is taken, and the device's row says what it sent
    await pool.query('ALTER TABLE device_state DROP CONSTRAINT refuse_state');
    expect((await n.ingest.submitTelemetry({ ...hb, receivedAt: Date.now() }, true))!.status).toBe('stored');
    expect((await n.ingest.submit({ ...low, receivedAt: Date.now() })).status).toBe('stored');
    await n.drain();
    // the low battery the failed batch had raised (and taken back, rule memory too) is raised again, once
    expect((await n.incidents(phone)).map((r) => [r.type, r.count]).sort()).toEqual([['low-battery', 1], ['sos', 1]]);
    expect((await n.log()).map((e) => e.seq)).toEqual([1, 2, 3, 4]);
    expect((await n.states()).find((r) => r.deviceId === phone)?.state.battery).toBe(13);
  });

  it('a statement failing in a step that only logs its failure fails that observation alone (PostgreSQL took nothing after it)', async () => {
    const { pool } = await env.pgs().fresh('ingest_poison', 6);
    const n = await node(pool, 'poison');
    const phone = n.registry.provision({ kind: 'call-phone', serial: 'POISON-1' }).device.id;
    const id = await n.createCommand(phone);
    // the commands step's UPDATE fails for this answer: the step's failure is logged and the ingest goes on, but
    // PostgreSQL refuses every statement of the observation after it, so its savepoint is rolled back
    await pool.query(`ALTER TABLE commands ADD CONSTRAINT refuse_answer CHECK (error IS DISTINCT FROM 'poison')`);
    const results = await Promise.allSettled([
      n.ingest.submit(obs(phone, 'sos')),
      n.ingest.submit(obs(phone, 'command-ack', { commandId: id, ok: false, error: 'poison' })),
      n.ingest.submit(obs(phone, 'sos')),
    ]);
    // the SOS around it are stored, in the same batch; the answer is not acknowledged (the device sends it again).
    // (The answer is not life-safety, so the batch first ran it without a savepoint of its own: PostgreSQL refused the
    // transaction, and the batch ran again, each observation in its own savepoint — once.)
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((await n.metrics.pgBatchesAgain.get()).values[0]?.value).toBe(1);
    expect(await n.incidents(phone)).toEqual([expect.objectContaining({ type: 'sos', count: 2 })]);
    expect(await n.commandStatus(id)).toBe('pending');
    await pool.query('ALTER TABLE commands DROP CONSTRAINT refuse_answer');
    expect((await n.ingest.submit(obs(phone, 'command-ack', { commandId: id, ok: false, error: 'poison' }))).status).toBe('stored');
    expect(await n.commandStatus(id)).toBe('failed');
  });

  it('a batch run again after a statement failed outside a savepoint: a replay it holds is still a replay, an answer leaves once', async () => {
    const { pool } = await env.pgs().fresh('ingest_again', 6);
    const n = await node(pool, 'again');
    const phone = n.registry.provision({ kind: 'call-phone', serial: 'AGAIN-1' }).device.id;
    const other = n.registry.provision({ kind: 'call-phone', serial: 'AGAIN-2' }).device.id;
    const keyless = (packetId: number, session: string): Observation =>
      ({ deviceId: phone, type: 'sos', receivedAt: Date.now(), source: 'mqtt', session, packetId }) as Observation;
    expect((await n.ingest.submit(keyless(7, 'S1'))).status).toBe('stored');
    const [incident] = await n.incidents(phone);
    const good = await n.createCommand(phone, incident!.id);
    const poisoned = await n.createCommand(other);
    await pool.query(`ALTER TABLE commands ADD CONSTRAINT refuse_answer CHECK (error IS DISTINCT FROM 'poison')`);
    // one batch: the device, back on a new session, resends packet 7 (a replay) and sends packet 8; its answer to the
    // incident's command; another device's answer that PostgreSQL refuses (not life-safety: no savepoint of its own at
    // first, so the batch runs again)
    const results = await Promise.allSettled([
      n.ingest.submit(keyless(7, 'S2')),
      n.ingest.submit(keyless(8, 'S2')),
      n.ingest.submit(obs(phone, 'command-ack', { commandId: good, ok: true })),
      n.ingest.submit(obs(other, 'command-ack', { commandId: poisoned, ok: false, error: 'poison' })),
    ]);
    expect((await n.metrics.pgBatchesAgain.get()).values[0]?.value).toBe(1);
    expect(results.map((r) => (r.status === 'fulfilled' ? r.value.status : 'rejected'))).toEqual(['duplicate', 'stored', 'stored', 'rejected']);
    expect(await n.incidents(phone)).toEqual([expect.objectContaining({ id: incident!.id, count: 2 })]);
    // the answer reached the incident's timeline once, after the commit
    expect(n.acked).toEqual([good]);
    // and what was stored is counted once: the first SOS, then the SOS and the answer of the batch run again (the refused
    // answer and the first run's counts never reach the metric)
    const counts = (await n.metrics.ingested.get()).values;
    const sum = (result: string) => counts.filter((v) => v.labels.result === result).reduce((a, v) => a + v.value, 0);
    expect([sum('stored'), sum('duplicate')]).toEqual([3, 1]);
    expect(await n.commandStatus(good)).toBe('acked');
  });

  it('a change made between batches while one awaits its commit is not rolled back with it (outsideBatch)', async () => {
    const { pool } = await env.pgs().fresh('ingest_between', 6);
    const n = await node(pool, 'between');
    const phone = n.registry.provision({ kind: 'call-phone', serial: 'BETWEEN-1' }).device.id;
    const other = n.registry.provision({ kind: 'call-phone', serial: 'BETWEEN-2' }).device.id;
    // another session holds the log's head: the batch waits for it, in flight
    const holder = await pool.connect();
    await holder.query('BEGIN');
    await holder.query('SELECT seq FROM incident_log_head WHERE id = 1 FOR UPDATE');
    const sos = n.ingest.submit(obs(phone, 'sos'));
    await expect.poll(async () => (await pool.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock'`)).rows[0].n).toBe(1);
    let ran = false;
    n.ingest.outsideBatch(() => { ran = true; n.memory.setOnline(other, true, Date.now()); });
    await new Promise((r) => setTimeout(r, 50));
    // not while the batch is in flight
    expect(ran).toBe(false);
    // the batch fails (its connection killed): what it changed goes back, what was changed between batches stays
    await pool.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE wait_event_type = 'Lock'`);
    await expect(sos).rejects.toThrow();
    await holder.query('ROLLBACK');
    holder.release();
    await n.drain();
    expect(ran).toBe(true);
    expect(n.memory.peek(other)?.online).toBe(true);
    // written with the next batch that commits (after a failed one, rows owed wait for a commit that works)
    expect((await n.ingest.submit({ ...obs(phone, 'sos'), receivedAt: Date.now() })).status).toBe('stored');
    await n.drain();
    expect((await n.states()).find((r) => r.deviceId === other)?.state.online).toBe(true);
  });

  it('alarms that come while a batch commits gather into the next one (group commit), in their order', async () => {
    const { pool } = await env.pgs().fresh('ingest_group', 6);
    const n = await node(pool, 'group');
    const phones = Array.from({ length: 31 }, (_, i) => n.registry.provision({ kind: 'call-phone', serial: `GROUP-${i}` }).device.id);
    const holder = await pool.connect();
    await holder.query('BEGIN');
    await holder.query('SELECT seq FROM incident_log_head WHERE id = 1 FOR UPDATE');
    // the first batch, in flight (waiting for the log's head); thirty alarms come meanwhile, over several turns
    const first = n.ingest.submit(obs(phones[0]!, 'sos'));
    await expect.poll(async () => (await pool.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock'`)).rows[0].n).toBe(1);
    const rest: Promise<IngestResult>[] = [];
    for (const id of phones.slice(1)) {
      rest.push(n.ingest.submit(obs(id, 'sos')));
      await new Promise((r) => setImmediate(r));
    }
    await holder.query('ROLLBACK');
    holder.release();
    expect((await Promise.all([first, ...rest])).every((r) => r.status === 'stored')).toBe(true);
    // two transactions: the first alone, then the thirty together
    const batches = (await n.metrics.registry.getSingleMetric('eldergate_commit_rows')!.get()).values
      .filter((v) => v.labels.queue === 'urgent' && (v as { metricName?: string }).metricName?.endsWith('_count'));
    expect(batches.map((v) => v.value)).toEqual([2]);
    // in the order they came: seqs follow the submissions
    const log = await n.log();
    expect(log.map((e) => e.seq)).toEqual(Array.from({ length: 31 }, (_, i) => i + 1));
  });

  it('a stream of alarms does not starve telemetry: readings waiting a flush interval get a batch between alarms', async () => {
    const { pool } = await env.pgs().fresh('ingest_starve', 6);
    const n = await node(pool, 'starve');
    const [a, b] = ['STARVE-A', 'STARVE-B'].map((serial) => n.registry.provision({ kind: 'call-phone', serial }).device.id);
    // every commit brings another alarm with it: an alarm always waits when a batch settles
    const alarms: Promise<IngestResult>[] = [];
    let flooding = true;
    n.onCommit(() => { if (flooding) alarms.push(n.ingest.submit(obs(b!, 'sos'))); });
    alarms.push(n.ingest.submit(obs(b!, 'sos')));
    // the stream established (a batch after a batch, an alarm waiting at each end), then the readings come
    await expect.poll(() => alarms.length, { timeout: 10_000 }).toBeGreaterThan(20);
    const before = alarms.length;
    const readings = Array.from({ length: 20 }, (_, i) => n.ingest.submitTelemetry(obs(a!, 'battery', { level: 90 - i }), true)!);
    const outcome = await Promise.race([
      Promise.all(readings).then(() => 'stored'),
      new Promise((r) => setTimeout(() => r('starved'), 5000)),
    ]);
    flooding = false;
    n.onCommit(null);
    await Promise.allSettled(alarms);
    expect(outcome).toBe('stored');
    // the alarms went on meanwhile: the readings were written between them
    expect(alarms.length).toBeGreaterThan(before);
    expect((await Promise.all(alarms)).every((r) => r.status === 'stored')).toBe(true);
  });
});
