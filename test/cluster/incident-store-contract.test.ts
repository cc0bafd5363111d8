// One contract, two engines: the incident area's storage (response/store) on a real SQLite file with the committed
// migrations and on a real PostgreSQL 15 (Debian's, started by this file on a private port and data directory, with
// drizzle-pg/'s migrations). Then what only PostgreSQL has to prove, since there several nodes write one log: seqs
// gap-free and in commit order under 8 concurrent writers, no twin incident when two nodes raise for one device at
// once, and every node's listener hearing every commit (also after its connection was killed).
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { openStore, type Store } from '../../core/db.js';
import type { IncidentEventBody } from '../../response/events.js';
import { applyEvent, type IncidentRow } from '../../response/projection.js';
import type { CommittedEvent } from '../../response/incidents.js';
import { createSqliteIncidentStore } from '../../response/store/sqlite.js';
import { createPgIncidentStore, followLog, type PgIncidentStore } from '../../response/store/pg.js';
import type { IncidentStore, IncidentWriteTx, StoreMode } from '../../response/store/types.js';
import { io, runnerFor, type Step } from '../../response/store/run.js';
import { useStoreEngines } from '../helpers/postgres.js';
import { Bus } from '../../core/bus.js';
import { loadConfig } from '../../core/config.js';
import { createLogger } from '../../core/logger.js';
import type { AlarmAction, AlarmSource } from '../../core/contracts.js';
import { createManualClock, type ManualClock } from '../../response/clock.js';
import { createNetwork } from '../../response/network.js';
import { createIncidentService, type IncidentServiceOf } from '../../response/incidents.js';

const log = createLogger('silent');

/** the network's units in both engines: SQLite reads its `units` table, PostgreSQL is told the list */
const UNITS = ['g1', 'g2'];
const env = useStoreEngines({
  name: 'incident-store', band: 26,
  setupSqlite(store) {
    for (const id of UNITS) {
      store.sqlite.prepare(`INSERT INTO units (id, name, tier, created_at) VALUES (?, ?, 'grid', ?)`).run(id, id, Date.now());
    }
  },
});

/** a fresh database per engine and test group, so the log starts empty and seqs are predictable */
const freshPg = (prefix: string) => env.pgs().fresh(prefix);

// ---- the domain's use of a write transaction, written once for both modes (the service does the same) ----

let ids = 0;
type AnyStore = IncidentStore<StoreMode>;
type AnyTx = IncidentWriteTx<StoreMode>;

/** run `body` in one write transaction of `store`, synchronously or awaited as the store is (response/store/run.ts) */
async function inTx<T>(store: AnyStore, body: (t: AnyTx) => Step<T>): Promise<T> {
  const run = runnerFor(store.mode);
  return store.transaction((t) => run(body(t)));
}

function* appendAndProject(t: AnyTx, state: IncidentRow | null, body: IncidentEventBody, at: number, unitId: string | null, id?: string): Step<CommittedEvent> {
  const event = yield* io(t.append({ incidentId: state?.id ?? id!, body, at, actor: null, unitId }));
  yield* io(t.saveProjection(applyEvent(state, event), state === null));
  return event;
}

/** raise: join the open incident of (device, type) or open one; returns the event */
function raise(store: AnyStore, deviceId: string, opts: { at: number; priority?: 'P1' | 'P2' | 'P3'; unitId?: string | null; deadlineAt?: number | null; type?: string; test?: boolean; residentId?: string | null; account?: string }): Promise<CommittedEvent> {
  const type = opts.type ?? 'sos';
  const test = opts.test ?? false;
  const residentId = opts.residentId ?? null;
  const account = opts.account ?? null;
  return inTx(store, function* (t) {
    const open = yield* io(t.openOf(deviceId, type, test, residentId, account));
    if (open) {
      return yield* appendAndProject(t, open, { type: 'joined', data: { count: open.count + 1, rule: 'r', priority: open.priority } }, opts.at, open.unitId);
    }
    const id = `inc-${++ids}-${Math.random().toString(36).slice(2, 8)}`;
    return yield* appendAndProject(t, null, {
      type: 'opened',
      data: {
        deviceId, residentId, ...(account !== null ? { account } : {}), unitId: opts.unitId ?? null, tierUnitId: opts.unitId ?? null, type, priority: opts.priority ?? 'P1',
        test, position: null, deadlineAt: opts.deadlineAt ?? null, cancelWindowMs: null, rule: 'r', stamps: { received: opts.at },
      },
    } as IncidentEventBody, opts.at, opts.unitId ?? null, id);
  });
}

function act(store: AnyStore, incidentId: string, body: IncidentEventBody, at: number): Promise<CommittedEvent> {
  return inTx(store, function* (t) {
    const state = yield* io(t.get(incidentId));
    if (!state) throw new Error(`no incident ${incidentId}`);
    return yield* appendAndProject(t, state, body, at, state.unitId);
  });
}

const resolved = (at: number): IncidentEventBody => ({ type: 'resolved', data: { outcome: 'ok', stamps: { resolved: at } } } as IncidentEventBody);
const acked = (at: number): IncidentEventBody => ({ type: 'acknowledged', data: { stamps: { acknowledged: at }, ackMs: 1 } } as IncidentEventBody);

// ---- the contract, for both ----

const engines: { name: string; open: () => Promise<IncidentStore<StoreMode>> }[] = [
  {
    name: 'SQLite',
    async open() {
      // a fresh log: the shared file's tables emptied, AUTOINCREMENT's counter too
      env.sqlite().sqlite.exec(`DELETE FROM incident_events; DELETE FROM incidents; DELETE FROM sqlite_sequence WHERE name = 'incident_events'`);
      return createSqliteIncidentStore(env.sqlite().sqlite);
    },
  },
  {
    name: 'PostgreSQL',
    async open() {
      const { pool } = await freshPg('contract');
      return createPgIncidentStore({ pool, knownUnitIds: () => UNITS });
    },
  },
];

describe.each(engines)('incident store contract: $name', ({ open }) => {
  it('appends gap-free from head + 1, keeps the projection with its events, and reads them back in order', async () => {
    const store = await open();
    expect(await store.head()).toBe(0);
    const o = await raise(store, 'dev-1', { at: 1000, unitId: 'g1', deadlineAt: 5000 });
    const j = await raise(store, 'dev-1', { at: 1100 });
    const a = await act(store, o.incidentId, acked(1200), 1200);
    expect([o.seq, j.seq, a.seq]).toEqual([1, 2, 3]);
    expect(o.type).toBe('opened');
    expect(j.type).toBe('joined');
    expect(j.incidentId).toBe(o.incidentId);
    expect(await store.head()).toBe(3);
    const row = await store.get(o.incidentId);
    expect(row).toMatchObject({ id: o.incidentId, deviceId: 'dev-1', unitId: 'g1', status: 'acknowledged', count: 2, lastSeq: 3, openedAt: 1000, deadlineAt: null, test: false });
    expect(row!.stamps).toMatchObject({ received: 1000, acknowledged: 1200 });
    const events = await store.events(o.incidentId);
    expect(events.map((e) => [e.seq, e.type, e.unitId])).toEqual([[1, 'opened', 'g1'], [2, 'joined', 'g1'], [3, 'acknowledged', 'g1']]);
    expect((events[0] as CommittedEvent & { type: 'opened' }).data.deviceId).toBe('dev-1');
    expect(await store.get('inc-none')).toBeUndefined();
  });

  it('a transaction that fails after appending leaves no event, no projection and no gap', async () => {
    const store = await open();
    await raise(store, 'dev-a', { at: 1 });
    await expect(inTx(store, function* (t) {
      yield* io(t.append({ incidentId: 'inc-x', body: { type: 'note', data: { text: 'x' } } as IncidentEventBody, at: 2, actor: null, unitId: null }));
      throw new Error('the domain failed after the append');
    })).rejects.toThrow(/domain failed/);
    expect(await store.head()).toBe(1);
    const next = await raise(store, 'dev-b', { at: 3 });
    expect(next.seq).toBe(2);
    expect(await store.eventsAfter(0, 10)).toHaveLength(2);
  });

  it('openOf finds the open incident of (device, type, test) only: not a closed one, not the test twin', async () => {
    const store = await open();
    const real = await raise(store, 'dev-o', { at: 10 });
    const testOne = await raise(store, 'dev-o', { at: 11, test: true });
    expect(testOne.incidentId).not.toBe(real.incidentId);
    expect((await inTx(store, (t) => io(t.openOf('dev-o', 'sos', false, null, null))))?.id).toBe(real.incidentId);
    expect((await inTx(store, (t) => io(t.openOf('dev-o', 'fall', false, null, null))))).toBeUndefined();
    await act(store, real.incidentId, acked(12), 12);
    await act(store, real.incidentId, resolved(13), 13);
    expect(await inTx(store, (t) => io(t.openOf('dev-o', 'sos', false, null, null)))).toBeUndefined();
    const again = await raise(store, 'dev-o', { at: 14 });
    expect(again.type).toBe('opened');
    expect(again.incidentId).not.toBe(real.incidentId);
    const opened = await inTx(store, (t) => io(t.opened(real.incidentId)));
    expect(opened).toMatchObject({ seq: real.seq, type: 'opened' });
  });

  it('openOf keeps residents apart: a device moved to another resident finds none of the one before\'s open incidents', async () => {
    const store = await open();
    const his = await raise(store, 'dev-r', { at: 20, residentId: 'r-him' });
    expect((await inTx(store, (t) => io(t.openOf('dev-r', 'sos', false, 'r-him', null))))?.id).toBe(his.incidentId);
    expect(await inTx(store, (t) => io(t.openOf('dev-r', 'sos', false, 'r-her', null)))).toBeUndefined();
    // bound to nobody is a binding of its own
    expect(await inTx(store, (t) => io(t.openOf('dev-r', 'sos', false, null, null)))).toBeUndefined();
    const hers = await raise(store, 'dev-r', { at: 21, residentId: 'r-her' });
    expect(hers.type).toBe('opened');
    expect((await inTx(store, (t) => io(t.openOf('dev-r', 'sos', false, 'r-her', null))))?.id).toBe(hers.incidentId);
    expect((await inTx(store, (t) => io(t.openOf('dev-r', 'sos', false, 'r-him', null))))?.id).toBe(his.incidentId);
    const shelf = await raise(store, 'dev-r', { at: 22 });
    expect(shelf.type).toBe('opened');
    expect((await inTx(store, (t) => io(t.openOf('dev-r', 'sos', false, null, null))))?.id).toBe(shelf.incidentId);
  });

  it('openOf keeps a receiver\'s unknown accounts apart: one unknown panel\'s alarm never joins another\'s card', async () => {
    const store = await open();
    const first = await raise(store, 'rcv-1', { at: 30, type: 'fire', account: '1:2:1234' });
    const second = await raise(store, 'rcv-1', { at: 31, type: 'fire', account: '1:2:5678' });
    expect(second.type).toBe('opened');
    expect(second.incidentId).not.toBe(first.incidentId);
    // an event with no account (the receiver's own, a frame without one) has cards of its own too
    const own = await raise(store, 'rcv-1', { at: 32, type: 'fire' });
    expect(own.type).toBe('opened');
    const again = await raise(store, 'rcv-1', { at: 33, type: 'fire', account: '1:2:1234' });
    expect(again).toMatchObject({ type: 'joined', incidentId: first.incidentId });
    expect((await inTx(store, (t) => io(t.openOf('rcv-1', 'fire', false, null, '1:2:5678'))))).toMatchObject({ id: second.incidentId, account: '1:2:5678', count: 1 });
    expect((await inTx(store, (t) => io(t.openOf('rcv-1', 'fire', false, null, null))))).toMatchObject({ id: own.incidentId, account: null });
    expect(await store.get(first.incidentId)).toMatchObject({ account: '1:2:1234', count: 2 });
  });

  it('eventsAfter pages the global log and filters by scope; unplaced covers no unit and a unit no longer in the network', async () => {
    const store = await open();
    await raise(store, 'd1', { at: 1, unitId: 'g1' });
    await raise(store, 'd2', { at: 2, unitId: 'g2' });
    await raise(store, 'd3', { at: 3, unitId: null });
    await raise(store, 'd4', { at: 4, unitId: 'gone' });
    await raise(store, 'd1', { at: 5 });
    expect((await store.eventsAfter(0, 100)).map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
    expect((await store.eventsAfter(2, 2)).map((e) => e.seq)).toEqual([3, 4]);
    expect((await store.eventsAfter(0, 100, { unitIds: ['g1'], unplaced: false })).map((e) => e.seq)).toEqual([1, 5]);
    expect((await store.eventsAfter(0, 100, { unitIds: ['g1', 'g2'], unplaced: false })).map((e) => e.seq)).toEqual([1, 2, 5]);
    expect((await store.eventsAfter(0, 100, { unitIds: ['g2'], unplaced: true })).map((e) => e.seq)).toEqual([2, 3, 4]);
    expect(await store.eventsAfter(0, 100, { unitIds: [], unplaced: false })).toEqual([]);
    expect(await store.eventsAfter(5, 100)).toEqual([]);
    // a read bounded above (a scoped replay reads a stretch of the log at a time): nothing past upTo, scoped or not
    expect((await store.eventsAfter(0, 100, undefined, 3)).map((e) => e.seq)).toEqual([1, 2, 3]);
    expect((await store.eventsAfter(1, 100, { unitIds: ['g1'], unplaced: false }, 4)).map((e) => e.seq)).toEqual([]);
    expect((await store.eventsAfter(1, 100, { unitIds: ['g1'], unplaced: false }, 5)).map((e) => e.seq)).toEqual([5]);
  });

  it('a moved incident (its resident\'s unit changed) is stored in its new unit; the unit it left gets its moved event too', async () => {
    const store = await open();
    const opened = await raise(store, 'dm', { at: 1, unitId: 'g1' });
    await raise(store, 'other', { at: 2, unitId: 'g1' });
    const moved = await inTx(store, function* (t) {
      const state = (yield* io(t.get(opened.incidentId)))!;
      return yield* appendAndProject(t, state, { type: 'moved', data: { fromUnitId: 'g1', toUnitId: 'g2', tierUnitId: 'g2', reason: 'r' } }, 3, 'g2');
    });
    expect(await store.get(opened.incidentId)).toMatchObject({ unitId: 'g2', tierUnitId: 'g2', lastSeq: moved.seq });
    expect((await store.active({ unitIds: ['g2'], unplaced: false }, null, 10)).items.map((r) => r.id)).toEqual([opened.incidentId]);
    expect((await store.active({ unitIds: ['g1'], unplaced: false }, null, 10)).items.map((r) => r.id)).not.toContain(opened.incidentId);
    // the unit it left is shown the move (its consoles drop the card), nothing else of it from then on
    expect((await store.eventsAfter(0, 100, { unitIds: ['g1'], unplaced: false })).map((e) => e.seq)).toEqual([1, 2, moved.seq]);
    expect((await store.eventsAfter(0, 100, { unitIds: ['g2'], unplaced: false })).map((e) => e.seq)).toEqual([moved.seq]);
    const later = await act(store, opened.incidentId, acked(4), 4);
    expect((await store.eventsAfter(moved.seq, 100, { unitIds: ['g1'], unplaced: false })).map((e) => e.seq)).not.toContain(later.seq);
  });

  it('active: open incidents only, P1 first then oldest, keyset pages, the head from the same snapshot; list filters and counts', async () => {
    const store = await open();
    const p3 = await raise(store, 'a', { at: 100, priority: 'P3', unitId: 'g1' });
    const p1late = await raise(store, 'b', { at: 300, priority: 'P1', unitId: 'g2' });
    const p1early = await raise(store, 'c', { at: 200, priority: 'P1', unitId: 'g1', deadlineAt: 900 });
    const p2 = await raise(store, 'd', { at: 150, priority: 'P2', unitId: null, deadlineAt: 800 });
    const closed = await raise(store, 'e', { at: 50, priority: 'P1', unitId: 'g1' });
    await act(store, closed.incidentId, acked(60), 60);
    await act(store, closed.incidentId, resolved(70), 70);
    const first = await store.active(null, null, 2);
    expect(first.items.map((r) => r.id)).toEqual([p1early.incidentId, p1late.incidentId]);
    expect(first.head).toBe(7);
    expect(first.next).toEqual({ rank: 0, openedAt: 300, id: p1late.incidentId });
    const second = await store.active(null, first.next, 2);
    expect(second.items.map((r) => r.id)).toEqual([p2.incidentId, p3.incidentId]);
    expect(second.next).toBeNull();
    const g1 = await store.active({ unitIds: ['g1'], unplaced: false }, null, 10);
    expect(g1.items.map((r) => r.id)).toEqual([p1early.incidentId, p3.incidentId]);

    const all = await store.list({ scopes: [] });
    expect(all.total).toBe(5);
    expect(all.items.map((r) => r.openedAt)).toEqual([300, 200, 150, 100, 50]);
    const page = await store.list({ scopes: [], limit: 2, offset: 1 });
    expect(page.items.map((r) => r.openedAt)).toEqual([200, 150]);
    expect(page.total).toBe(5);
    expect((await store.list({ scopes: [], status: ['resolved'] })).items.map((r) => r.id)).toEqual([closed.incidentId]);
    expect((await store.list({ scopes: [], priority: ['P1'], from: 100, to: 300 })).items.map((r) => r.id)).toEqual([p1early.incidentId]);
    expect((await store.list({ scopes: [{ unitIds: ['g2'], unplaced: true }] })).items.map((r) => r.id)).toEqual([p1late.incidentId, p2.incidentId]);
    expect((await store.list({ scopes: [{ unitIds: ['g1', 'g2'], unplaced: true }, { unitIds: ['g1'], unplaced: false }] })).total).toBe(3);
    expect((await store.list({ scopes: [], deviceId: 'a', type: 'sos', test: false })).items.map((r) => r.id)).toEqual([p3.incidentId]);

    expect((await store.pendingDeadlines()).map((r) => r.id)).toEqual([p2.incidentId, p1early.incidentId]);
    expect(await store.openCounts()).toEqual({ P1: 2, P2: 1, P3: 1 });
  });
});

// ---- the incident service itself, on either store: the same domain, run synchronously or awaited ----

interface ServiceHarness {
  incidents: IncidentServiceOf<StoreMode>;
  clock: ManualClock;
  seen: CommittedEvent[];
}

const services: { name: string; open: () => Promise<ServiceHarness> }[] = [
  { name: 'SQLite', open: () => serviceOn(null) },
  { name: 'PostgreSQL', open: async () => serviceOn((await freshPg('service')).pool) },
];

async function serviceOn(pool: pg.Pool | null): Promise<ServiceHarness> {
  // the areas not in PostgreSQL yet (network, receipts, devices) on a SQLite file of their own
  const local = openStore(join(env.dir, `service-${Math.random().toString(36).slice(2, 8)}.db`));
  const clock = createManualClock();
  const network = createNetwork({ store: local, log, clock });
  network.createUnit({ id: 'd1', name: 'District', tier: 'district' });
  network.createUnit({ id: 's1', name: 'Street', tier: 'street', parentId: 'd1' });
  network.createUnit({ id: 'c1', name: 'Community', tier: 'community', parentId: 's1' });
  network.createUnit({ id: 'g1', name: 'Grid One', tier: 'grid', parentId: 'c1' });
  network.createUnit({ id: 'g2', name: 'Grid Two', tier: 'grid', parentId: 'c1' });
  network.createStaff({ id: 'nurse-1', name: 'Nurse Wang', role: 'nurse', unitId: 'g1', onDuty: true });
  const bus = new Bus();
  const seen: CommittedEvent[] = [];
  bus.on('incident-event', (e) => seen.push(e));
  const config = loadConfig({}, {});
  const common = { store: local, bus, config, log, clock, network };
  const incidents: IncidentServiceOf<StoreMode> = pool
    ? createIncidentService({ ...common, incidentStore: createPgIncidentStore({ pool, knownUnitIds: () => network.listUnits().map((u) => u.id) }), isTestDevice: async () => false })
    : createIncidentService(common);
  locals.push(local);
  return { incidents, clock, seen };
}
const locals: Store[] = [];
afterAll(() => { for (const l of locals) l.close(); });

const src = (deviceId: string, unitId: string | null, received: number): AlarmSource => ({ deviceId, residentId: null, unitId, stamps: { received } });
const raiseSos = (over: Partial<Extract<AlarmAction, { action: 'raise' }>> = {}): AlarmAction => ({ action: 'raise', type: 'sos', priority: 'P1', rule: 'sos', ...over });

describe.each(services)('incident service on $name', ({ open }) => {
  it('an SOS opens a P1 with its deadline, a second press joins it, a person acknowledges once, a resolved incident is not joined', async () => {
    const { incidents, clock, seen } = await open();
    const t0 = clock.now();
    const [opened] = await incidents.applyAlarm(raiseSos(), src('dev-1', 'g1', t0));
    expect(opened).toMatchObject({ type: 'opened', unitId: 'g1' });
    const row = await incidents.get(opened!.incidentId);
    expect(row).toMatchObject({ priority: 'P1', status: 'open', count: 1, deadlineAt: t0 + loadConfig({}, {}).budgets.P1.ackMs });
    clock.advance(2_000);
    const [joined] = await incidents.applyAlarm(raiseSos(), src('dev-1', 'g1', clock.now()));
    expect(joined).toMatchObject({ type: 'joined', incidentId: opened!.incidentId, data: { count: 2 } });

    const { incident, events } = await incidents.act(opened!.incidentId, { type: 'acknowledge' }, { id: 'u1', username: 'op1' });
    // its deadline now: the follow-up, if nobody is on site within the reach budget (P1: 15 min from the opening)
    expect(incident).toMatchObject({ status: 'acknowledged', deadlineAt: opened!.at + 15 * 60_000 });
    expect(events[0]).toMatchObject({ type: 'acknowledged', actor: 'u1', data: { ackMs: 2_000, username: 'op1', followUpAt: opened!.at + 15 * 60_000 } });
    // acknowledged by two operators at once: the second is told who was first
    await expect((async () => incidents.act(opened!.incidentId, { type: 'acknowledge' }, { id: 'u2' }))()).rejects.toThrow(/it is acknowledged/);
    await expect((async () => incidents.act(opened!.incidentId, { type: 'dispatch', staffId: 'nobody' }, { id: 'u1' }))()).rejects.toThrow(/staff member "nobody" does not exist/);
    await incidents.act(opened!.incidentId, { type: 'dispatch', staffId: 'nurse-1' }, { id: 'u1' });
    await incidents.act(opened!.incidentId, { type: 'resolve', outcome: 'helped up' }, { id: 'u1' });
    const [again] = await incidents.applyAlarm(raiseSos(), src('dev-1', 'g1', clock.now()));
    expect(again).toMatchObject({ type: 'opened' });
    expect(again!.incidentId).not.toBe(opened!.incidentId);
    await expect((async () => incidents.act('inc-nope', { type: 'acknowledge' }, { id: 'u1' }))()).rejects.toThrow(/incident/);

    // what a person did was published at once; the alarm path's events are published by the caller after its commit
    expect(seen.map((e) => e.type)).toEqual(['acknowledged', 'dispatched', 'resolved']);
    expect(incidents.publishedSeq()).toBe(5);
    expect((await incidents.events(opened!.incidentId)).map((e) => e.type)).toEqual(['opened', 'joined', 'acknowledged', 'dispatched', 'resolved']);
    expect((await incidents.rebuild(opened!.incidentId))).toMatchObject({ status: 'resolved', count: 2, outcome: 'helped up' });
  });

  it('a fall cancelled by the resident within its window is cancelled; after the window it is only noted', async () => {
    const { incidents, clock } = await open();
    const fall = raiseSos({ type: 'fall', rule: 'fall', cancelWindowMs: 30_000 });
    const cancel: AlarmAction = { action: 'cancel', type: 'fall', rule: 'fall-cancel', reason: 'I am fine' };
    const [a] = await incidents.applyAlarm(fall, src('dev-f', 'g2', clock.now()));
    clock.advance(10_000);
    const [c] = await incidents.applyAlarm(cancel, src('dev-f', 'g2', clock.now()));
    expect(c).toMatchObject({ type: 'cancelled', incidentId: a!.incidentId, data: { elapsedMs: 10_000 } });
    const [b] = await incidents.applyAlarm(fall, src('dev-f', 'g2', clock.now()));
    clock.advance(31_000);
    const [late] = await incidents.applyAlarm(cancel, src('dev-f', 'g2', clock.now()));
    expect(late).toMatchObject({ type: 'late-cancel', incidentId: b!.incidentId, data: { elapsedMs: 31_000, cancelWindowMs: 30_000 } });
    expect((await incidents.get(b!.incidentId))?.status).toBe('open');
    expect(await incidents.applyAlarm({ action: 'clear', type: 'offline', rule: 'back', reason: 'online' }, src('dev-f', 'g2', clock.now()))).toEqual([]);
  });

  it('escalation applies only while the incident still waits on that deadline; scoped reads follow the network', async () => {
    const { incidents, clock } = await open();
    const [o] = await incidents.applyAlarm(raiseSos(), src('dev-e', 'g1', clock.now()));
    const row = (await incidents.get(o!.incidentId))!;
    const step = { dueAt: row.deadlineAt!, fromUnitId: 'g1', toUnitId: 'c1', toTier: 'community', renotify: false, deadlineAt: row.deadlineAt! + 60_000, at: row.deadlineAt! + 5 };
    const [e] = await incidents.escalate(o!.incidentId, [step]);
    expect(e).toMatchObject({ type: 'escalated', data: { level: 1, toUnitId: 'c1', lateMs: 5 } });
    expect(await incidents.get(o!.incidentId)).toMatchObject({ escalationLevel: 1, tierUnitId: 'c1', deadlineAt: row.deadlineAt! + 60_000 });
    // the same timer firing twice (or after an acknowledgement) changes nothing
    expect(await incidents.escalate(o!.incidentId, [step])).toEqual([]);
    expect(await incidents.escalate(o!.incidentId, [])).toEqual([]);
    await incidents.applyAlarm(raiseSos(), src('dev-x', 'g2', clock.now()));
    await incidents.applyAlarm(raiseSos(), src('dev-y', null, clock.now()));
    expect((await incidents.eventsAfter(0, { scope: 'g1' })).map((ev) => ev.incidentId)).toEqual([o!.incidentId, o!.incidentId]);
    expect((await incidents.eventsAfter(0, { scope: 'g2' }))).toHaveLength(1);
    expect((await incidents.eventsAfter(0, { scope: 'd1' }))).toHaveLength(4);
    expect((await incidents.list({ scope: 'g2' })).total).toBe(1);
    expect((await incidents.active({ scope: 'c1', after: null, limit: 10 })).items).toHaveLength(2);
    expect(await incidents.openCounts()).toEqual({ P1: 3, P2: 0, P3: 0 });
    expect(await incidents.head()).toBe(4);
    const noted = await incidents.record(o!.incidentId, 'note', { text: 'called the daughter' }, 'u9');
    expect(noted[0]).toMatchObject({ type: 'note', actor: 'u9', seq: 5 });
  });
});

// ---- what only a shared log has to prove: several nodes (pools) writing at once ----

describe('PostgreSQL: several nodes appending to one log', () => {
  it('8 writers at once: seqs gap-free, and a reader never sees a seq before every seq below it (commit order)', async () => {
    const { url } = await freshPg('concurrent_log');
    const nodes = Array.from({ length: 8 }, () => {
      const pool = new pg.Pool({ connectionString: url, max: 2 });
      env.pgs().track(pool);
      return createPgIncidentStore({ pool, knownUnitIds: () => UNITS });
    });
    const PER_WRITER = 60;
    let writing = true;
    // a reader polling the log while it is written: every read must be a prefix 1..n with no hole
    const reader = nodes[0]!;
    const holes: string[] = [];
    let reads = 0;
    const readLoop = (async () => {
      while (writing) {
        const seqs = (await reader.eventsAfter(0, 100_000)).map((e) => e.seq);
        reads++;
        for (let i = 0; i < seqs.length; i++) if (seqs[i] !== i + 1) { holes.push(`read ${reads}: position ${i} holds seq ${seqs[i]}`); break; }
      }
    })();
    await Promise.all(nodes.map(async (store, w) => {
      for (let i = 0; i < PER_WRITER; i++) {
        // each writer its own devices, so every raise opens: an event per transaction, some with a short pause
        await raise(store, `w${w}-d${i}`, { at: i });
        if (i % 10 === 0) await sleep(1);
      }
    }));
    writing = false;
    await readLoop;
    const seqs = (await reader.eventsAfter(0, 100_000)).map((e) => e.seq);
    expect(seqs).toEqual(Array.from({ length: 8 * PER_WRITER }, (_, i) => i + 1));
    expect(await reader.head()).toBe(8 * PER_WRITER);
    expect(reads).toBeGreaterThan(3);
    expect(holes).toEqual([]);
  });

  it('two nodes raising for the same device at the same moment: one incident, the other joins it', async () => {
    const { url } = await freshPg('twins');
    const [a, b] = [0, 1].map(() => {
      const pool = new pg.Pool({ connectionString: url, max: 4 });
      env.pgs().track(pool);
      return createPgIncidentStore({ pool, knownUnitIds: () => UNITS });
    }) as [PgIncidentStore, PgIncidentStore];
    for (let round = 0; round < 20; round++) {
      const device = `twin-${round}`;
      const events = await Promise.all([raise(a, device, { at: round }), raise(b, device, { at: round }), raise(a, device, { at: round }), raise(b, device, { at: round })]);
      expect(new Set(events.map((e) => e.incidentId)).size).toBe(1);
      expect(events.filter((e) => e.type === 'opened')).toHaveLength(1);
      const row = await a.get(events[0]!.incidentId);
      expect(row?.count).toBe(4);
    }
    expect((await a.list({ scopes: [] })).total).toBe(20);
  });

  it('a twin open incident written past the head lock is refused by the index; the transaction is run again and joins it', async () => {
    const { pool, url } = await freshPg('twin_index');
    const store = createPgIncidentStore({ pool, knownUnitIds: () => UNITS });
    // a writer that does not take the head lock (a bug, a hand-written fix-up): it opens the device's incident between
    // this transaction's read and its insert
    const rogue = new pg.Client({ connectionString: url });
    await rogue.connect();
    let attempts = 0;
    try {
      const event = await inTx(store, function* (t) {
        attempts++;
        const open = yield* io(t.openOf('dev-twin', 'sos', false, null, null));
        if (open) return yield* appendAndProject(t, open, { type: 'joined', data: { count: open.count + 1, rule: 'r', priority: open.priority } }, 2, open.unitId);
        if (attempts === 1) {
          yield* io(rogue.query(`INSERT INTO incidents (id, device_id, type, priority, status, test, count, opened_at, last_at, stamps, last_seq)
            VALUES ('inc-rogue', 'dev-twin', 'sos', 'P1', 'open', false, 1, 1, 1, '{}', 0)`));
        }
        return yield* appendAndProject(t, null, {
          type: 'opened',
          data: { deviceId: 'dev-twin', residentId: null, unitId: null, tierUnitId: null, type: 'sos', priority: 'P1', test: false, position: null, deadlineAt: null, cancelWindowMs: null, rule: 'r', stamps: {} },
        } as IncidentEventBody, 1, null, 'inc-mine');
      });
      expect(attempts).toBe(2);
      expect(event).toMatchObject({ type: 'joined', incidentId: 'inc-rogue' });
      expect((await store.list({ scopes: [] })).total).toBe(1);
      // and the first attempt left nothing: no event, the head where the retry put it
      expect((await store.eventsAfter(0, 10)).map((e) => [e.seq, e.type])).toEqual([[1, 'joined']]);
      // any other unique violation is a bug, not a race: not run again (here the same incident inserted twice)
      let runs = 0;
      await expect(inTx(store, function* (t) {
        runs++;
        const e = yield* appendAndProject(t, null, {
          type: 'opened',
          data: { deviceId: 'dev-b', residentId: null, unitId: null, tierUnitId: null, type: 'fall', priority: 'P2', test: false, position: null, deadlineAt: null, cancelWindowMs: null, rule: 'r', stamps: {} },
        } as IncidentEventBody, 3, null, 'inc-dup');
        yield* io(t.saveProjection(applyEvent(null, e), true));
        return e;
      })).rejects.toMatchObject({ cause: { code: '23505', constraint: 'incidents_pkey' } });
      expect(runs).toBe(1);
    } finally {
      await rogue.end();
    }
  });

  it('every node hears every commit once its listener is up, in increasing order, and catches up after its connection is killed', async () => {
    const { url, pool } = await freshPg('listen');
    const store = createPgIncidentStore({ pool, knownUnitIds: () => UNITS });
    const heard: number[][] = [[], []];
    const followers = heard.map((h) => followLog({
      connect: () => new pg.Client({ connectionString: url, application_name: 'eldergate-log-follower' }),
      readHead: () => store.head(),
      onHead: (seq) => h.push(seq),
      pollMs: 60_000, // only notifications and reconnects here: the poll is the safety net, not what is tested
    }));
    try {
      await expect.poll(async () => (await pool.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'eldergate-log-follower' AND query ILIKE 'LISTEN%'`)).rows[0].n, { timeout: 10_000 }).toBe(2);
      for (let i = 0; i < 10; i++) await raise(store, `l${i}`, { at: i });
      await expect.poll(() => followers.map((f) => f.head()), { timeout: 5_000 }).toEqual([10, 10]);
      for (const h of heard) {
        expect(h.at(-1)).toBe(10);
        expect([...h].sort((x, y) => x - y)).toEqual(h);
        expect(new Set(h).size).toBe(h.length);
      }
      // kill the listeners' connections on the server; commits made meanwhile are read when they reconnect
      await pool.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'eldergate-log-follower'`);
      for (let i = 10; i < 15; i++) await raise(store, `l${i}`, { at: i });
      await expect.poll(() => followers.map((f) => f.head()), { timeout: 10_000 }).toEqual([15, 15]);
      await raise(store, 'after', { at: 99 });
      await expect.poll(() => followers.map((f) => f.head()), { timeout: 5_000 }).toEqual([16, 16]);
    } finally {
      await Promise.all(followers.map((f) => f.close()));
    }
  });
});
