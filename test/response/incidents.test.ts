import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ConflictError, ValidationError } from '../../core/errors.js';
import { createLogger } from '../../core/logger.js';
import { buildTree, ingest, openHarness, source, sos, type Harness } from './helpers.js';

describe('incidents: alarms open, join, clear and cancel', () => {
  let h: Harness;
  beforeEach(() => {
    h = openHarness();
    buildTree(h.response.network);
  });
  afterEach(async () => {
    await h.close();
  });

  it('50 raises of the same device and type make one incident with count 50', () => {
    const { incidents } = h.response;
    const events = [];
    for (let i = 0; i < 50; i++) {
      events.push(...ingest(h, sos(), source({}, h.clock.now())));
      h.clock.advance(100);
    }
    expect(events.map((e) => e.type)).toEqual(['opened', ...Array(49).fill('joined')]);
    const list = incidents.list();
    expect(list.total).toBe(1);
    const inc = list.items[0]!;
    expect(inc.count).toBe(50);
    expect(inc.status).toBe('open');
    expect(inc.lastAt).toBe(inc.openedAt + 49 * 100);
    // seq is global, gap-free and in order
    const seqs = events.map((e) => e.seq);
    expect(seqs).toEqual(seqs.map((_, i) => seqs[0]! + i));
    expect(h.seen.map((e) => e.seq)).toEqual(seqs);
    expect(incidents.rebuild(inc.id)).toEqual(incidents.get(inc.id));
  });

  it('a raise after the incident is resolved opens a new one; another type or device opens its own', () => {
    const { incidents } = h.response;
    const [first] = ingest(h, sos(), source({}, h.clock.now()));
    ingest(h, sos({ type: 'fall' }), source({}, h.clock.now()));
    ingest(h, sos(), source({ deviceId: 'dev-2' }, h.clock.now()));
    expect(incidents.list().total).toBe(3);
    incidents.act(first!.incidentId, { type: 'acknowledge' }, { id: 'u1', username: 'op' });
    // acknowledged is still open for joining
    expect(ingest(h, sos(), source({}, h.clock.now()))[0]!.type).toBe('joined');
    incidents.act(first!.incidentId, { type: 'resolve', outcome: 'ok' }, { id: 'u1' });
    const again = ingest(h, sos(), source({}, h.clock.now()));
    expect(again[0]!.type).toBe('opened');
    expect(again[0]!.incidentId).not.toBe(first!.incidentId);
  });

  it('"incident opened" is logged once the raise is committed, never for a raise whose transaction failed (a full disk)', async () => {
    const lines: string[] = [];
    const logged = openHarness({ log: createLogger('info', { write: (l: string) => { lines.push(l); } }) });
    try {
      buildTree(logged.response.network);
      const opened = () => lines.filter((l) => l.includes('"incident opened"'));
      expect(() => logged.store.sqlite.transaction(() => {
        logged.response.incidents.applyAlarm(sos(), source({}, logged.clock.now()));
        throw new Error('database or disk is full');
      }).immediate()).toThrow(/disk is full/);
      expect(logged.response.incidents.list().total).toBe(0);
      expect(opened()).toEqual([]);
      const [event] = ingest(logged, sos(), source({}, logged.clock.now()));
      expect(opened()).toHaveLength(1);
      expect(JSON.parse(opened()[0]!)).toMatchObject({ incidentId: event!.incidentId, deviceId: 'dev-1', type: 'sos', priority: 'P1' });
    } finally {
      await logged.close();
    }
  });

  it('a clear, a cancel by the resident and a late cancel are logged once committed, never from a failed transaction', async () => {
    const lines: string[] = [];
    const logged = openHarness({ log: createLogger('info', { write: (l: string) => { lines.push(l); } }) });
    try {
      buildTree(logged.response.network);
      const said = (msg: string) => lines.filter((l) => l.includes(`"msg":"${msg}"`)).map((l) => JSON.parse(l) as Record<string, unknown>);
      const failing = (action: Parameters<typeof logged.response.incidents.applyAlarm>[0]) =>
        expect(() => logged.store.sqlite.transaction(() => {
          logged.response.incidents.applyAlarm(action, source({}, logged.clock.now()));
          throw new Error('database or disk is full');
        }).immediate()).toThrow(/disk is full/);
      const fall = sos({ type: 'fall', cancelWindowMs: 30_000, rule: 'fall' });
      const cancel = { action: 'cancel' as const, type: 'fall', rule: 'fall', reason: 'resident pressed cancel' };
      const clear = { action: 'clear' as const, type: 'offline', rule: 'supervision', reason: 'back online' };

      const [off] = ingest(logged, { action: 'raise', type: 'offline', priority: 'P3', rule: 'supervision' }, source({}, logged.clock.now()));
      failing(clear);
      expect(said('incident cleared')).toEqual([]);
      ingest(logged, clear, source({}, logged.clock.now()));
      expect(said('incident cleared')).toEqual([expect.objectContaining({ incidentId: off!.incidentId, reason: 'back online' })]);

      const [a] = ingest(logged, fall, source({}, logged.clock.now()));
      failing(cancel);
      expect(said('incident cancelled by resident')).toEqual([]);
      ingest(logged, cancel, source({}, logged.clock.now()));
      expect(said('incident cancelled by resident')).toEqual([expect.objectContaining({ incidentId: a!.incidentId })]);

      const [b] = ingest(logged, fall, source({}, logged.clock.now()));
      logged.clock.advance(31_000);
      failing(cancel);
      expect(said('late cancel noted')).toEqual([]);
      ingest(logged, cancel, source({}, logged.clock.now()));
      expect(said('late cancel noted')).toEqual([expect.objectContaining({ incidentId: b!.incidentId, elapsedMs: 31_000, windowMs: 30_000 })]);
    } finally {
      await logged.close();
    }
  });

  it('a real alarm never joins an open test incident', () => {
    const t = ingest(h, sos({ test: true }), source({}, h.clock.now()));
    const r = ingest(h, sos(), source({}, h.clock.now()));
    expect(r[0]!.type).toBe('opened');
    expect(r[0]!.incidentId).not.toBe(t[0]!.incidentId);
    expect(h.response.incidents.get(t[0]!.incidentId)!.test).toBe(true);
    expect(h.response.incidents.get(t[0]!.incidentId)!.deadlineAt).toBeNull();
    expect(h.response.incidents.list({ test: false }).total).toBe(1);
  });

  it('clear closes the open incident of that type as resolved with outcome "cleared: <reason>"', () => {
    const [o] = ingest(h, { action: 'raise', type: 'offline', priority: 'P3', rule: 'supervision' }, source({}, h.clock.now()));
    expect(ingest(h, { action: 'clear', type: 'power-lost', rule: 'power', reason: 'x' }, source({}, h.clock.now()))).toEqual([]);
    const [c] = ingest(h, { action: 'clear', type: 'offline', rule: 'supervision', reason: 'back online' }, source({}, h.clock.now()));
    expect(c!.type).toBe('cleared');
    const inc = h.response.incidents.get(o!.incidentId)!;
    expect(inc.status).toBe('resolved');
    expect(inc.outcome).toBe('cleared: back online');
    expect(inc.deadlineAt).toBeNull();
    expect(inc.stamps.resolved).toBe(h.clock.now());
    expect(h.response.incidents.rebuild(inc.id)).toEqual(inc);
  });

  it('a fall cancelled inside its window is "cancelled by resident"; outside it only a late-cancel is noted', () => {
    const { incidents } = h.response;
    const fall = sos({ type: 'fall', cancelWindowMs: 30_000, rule: 'fall' });
    const cancel = { action: 'cancel' as const, type: 'fall', rule: 'fall', reason: 'resident pressed cancel' };

    const [a] = ingest(h, fall, source({}, h.clock.now()));
    h.clock.advance(20_000);
    const [ca] = ingest(h, cancel, source({}, h.clock.now()));
    expect(ca!.type).toBe('cancelled');
    expect(incidents.get(a!.incidentId)).toMatchObject({ status: 'cancelled', outcome: 'cancelled by resident', deadlineAt: null });

    const [b] = ingest(h, fall, source({}, h.clock.now()));
    h.clock.advance(31_000);
    const [cb] = ingest(h, cancel, source({}, h.clock.now()));
    expect(cb!.type).toBe('late-cancel');
    expect(cb!.data).toMatchObject({ cancelWindowMs: 30_000, elapsedMs: 31_000 });
    expect(incidents.get(b!.incidentId)!.status).toBe('open');

    // an SOS has no cancel window: a cancel never silences it
    const [s] = ingest(h, sos(), source({}, h.clock.now()));
    const [cs] = ingest(h, { ...cancel, type: 'sos' }, source({}, h.clock.now()));
    expect(cs!.type).toBe('late-cancel');
    expect(incidents.get(s!.incidentId)!.status).toBe('open');
  });

  it('publishing is re-entrant: a listener that commits and publishes never reorders events for the others', () => {
    const { incidents } = h.response;
    // a listener that commits and publishes from inside its own turn (here: a note on the first sight of an opening)
    const noted = new Set<string>();
    h.bus.on('incident-event', (e) => {
      if (e.type === 'opened' && !noted.has(e.incidentId)) {
        noted.add(e.incidentId);
        incidents.record(e.incidentId, 'note', { text: 'seen' });
      }
    });
    const later: number[] = [];
    h.bus.on('incident-event', (e) => later.push(e.seq));
    const [o] = ingest(h, sos(), source({}, h.clock.now()));
    expect(later).toEqual([o!.seq, o!.seq + 1]);
    expect(h.seen.map((e) => e.type)).toEqual(['opened', 'note']);
    // events handed over without unitId (as ingest collects them) get their incident's
    const bare = { ...incidents.events(o!.incidentId)[0]! } as Record<string, unknown>;
    delete bare.unitId;
    incidents.publishCommitted([bare as never]);
    expect(h.seen.at(-1)).toMatchObject({ seq: o!.seq, unitId: 'g1' });
    expect(incidents.openCounts()).toEqual({ P1: 1, P2: 0, P3: 0 });
  });

  it('stamps carry the alarm path: deviceTs, received, ruleEvaluated, durable, then pushed and first delivery (batched receipts)', async () => {
    const { incidents } = h.response;
    const now = h.clock.now();
    const [o] = ingest(h, sos(), source({}, now));
    const id = o!.incidentId;
    expect(incidents.get(id)!.stamps).toEqual({ deviceTs: now - 50, received: now - 5, ruleEvaluated: now - 2, durable: now });
    const seenBefore = h.seen.length;
    expect(incidents.markPushed(id, o!.seq, now + 1)).toBe(true);
    expect(incidents.markPushed(id, o!.seq, now + 2)).toBe(false);
    expect(incidents.markDelivered(id, o!.seq, now + 3, 'console-a', 'ada')).toBe(true);
    expect(incidents.markDelivered(id, o!.seq + 1, now + 4, 'console-a', 'ada')).toBe(false);
    expect(incidents.markDelivered(id, o!.seq, now + 5, 'console-b')).toBe(true);
    // receipts, not events: nothing appended to the log, nothing published
    expect(incidents.events(id).map((e) => e.type)).toEqual(['opened']);
    expect(h.seen.length).toBe(seenBefore);
    // queued receipts are visible at once; the stamps follow with their batch
    expect(incidents.receipts(id).map((r) => [r.kind, r.at, r.userId, r.username])).toEqual([
      ['pushed', now + 1, null, null], ['delivered', now + 3, 'console-a', 'ada'], ['delivered', now + 5, 'console-b', null],
    ]);
    await vi.waitFor(() => { if (incidents.get(id)!.stamps.delivered === undefined) throw new Error('the receipts batch is not written yet'); }, { timeout: 10_000 });
    expect(incidents.get(id)!.stamps).toMatchObject({ pushed: now + 1, delivered: now + 3 });
    expect(h.store.sqlite.prepare('SELECT count(*) FROM incident_receipts WHERE incident_id = ?').pluck().get(id)).toBe(3);
    expect(incidents.rebuild(id)).toEqual(incidents.get(id));
  });
});

describe('incidents: lifecycle by people', () => {
  let h: Harness;
  beforeEach(() => {
    h = openHarness();
    buildTree(h.response.network);
  });
  afterEach(async () => {
    await h.close();
  });

  const op = { id: 'u-op', username: 'operator1' };

  it('open → acknowledged → dispatched → on-site → resolved, each an event, projection == rebuild', () => {
    const { incidents, network } = h.response;
    const nurse = network.createStaff({ name: 'Nurse Li', role: 'nurse', unitId: 'g1', onDuty: true });
    const [o] = ingest(h, sos(), source({}, h.clock.now()));
    const id = o!.incidentId;
    const t0 = h.clock.now();
    h.clock.advance(12_000);
    expect(incidents.act(id, { type: 'acknowledge' }, op).incident.status).toBe('acknowledged');
    h.clock.advance(5_000);
    const d = incidents.act(id, { type: 'dispatch', staffId: nurse.id }, op);
    expect(d.incident).toMatchObject({ status: 'dispatched', assignee: nurse.id });
    expect(d.events[0]!.data).toMatchObject({ staffName: 'Nurse Li', onDuty: true, username: 'operator1' });
    h.clock.advance(600_000);
    incidents.act(id, { type: 'on-site' }, op);
    incidents.act(id, { type: 'note', text: 'resident conscious, fell in the kitchen' }, op);
    h.clock.advance(60_000);
    const r = incidents.act(id, { type: 'resolve', outcome: 'treated-at-home' }, op);
    expect(r.incident).toMatchObject({ status: 'resolved', outcome: 'treated-at-home', deadlineAt: null });
    expect(r.incident.stamps).toMatchObject({
      acknowledged: t0 + 12_000, dispatched: t0 + 17_000, onSite: t0 + 617_000, resolved: t0 + 677_000,
    });
    expect(incidents.events(id).map((e) => e.type)).toEqual([
      'opened', 'acknowledged', 'dispatched', 'on-site', 'note', 'resolved',
    ]);
    expect(incidents.events(id)[1]!.actor).toBe('u-op');
    expect(incidents.rebuild(id)).toEqual(incidents.get(id));
  });

  it('wrong state is a 409 with the current state; resolve from open says "acknowledge it first"', () => {
    const { incidents } = h.response;
    const [o] = ingest(h, sos(), source({}, h.clock.now()));
    const id = o!.incidentId;
    const err = (() => {
      try {
        incidents.act(id, { type: 'resolve', outcome: 'x' }, op);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(ConflictError);
    expect((err as ConflictError).status).toBe(409);
    expect((err as ConflictError).message).toMatch(/acknowledge it first/);
    expect((err as ConflictError).details).toMatchObject({ incidentId: id, status: 'open' });

    incidents.act(id, { type: 'acknowledge' }, op);
    // the same user acknowledging twice (without an idempotency key, handled by the route) is a conflict too
    expect(() => incidents.act(id, { type: 'acknowledge' }, op)).toThrow(ConflictError);
    expect(() => incidents.act(id, { type: 'acknowledge' }, { id: 'other' })).toThrow(/it is acknowledged/);
    incidents.act(id, { type: 'resolve', outcome: 'done' }, op);
    expect(() => incidents.act(id, { type: 'dispatch', staffId: 'x' }, op)).toThrow(/add a note instead/);
    // notes may still be added to a closed incident
    expect(incidents.act(id, { type: 'note', text: 'family informed' }, op).incident.status).toBe('resolved');
    // a failed action wrote nothing
    expect(incidents.events(id).map((e) => e.type)).toEqual(['opened', 'acknowledged', 'resolved', 'note']);
  });

  it('bad input is a 400 naming the field, and writes nothing', () => {
    const { incidents } = h.response;
    const [o] = ingest(h, sos(), source({}, h.clock.now()));
    const id = o!.incidentId;
    incidents.act(id, { type: 'acknowledge' }, op);
    expect(() => incidents.act(id, { type: 'dispatch', staffId: 'nobody' }, op)).toThrow(ValidationError);
    expect(() => incidents.act(id, { type: 'resolve', outcome: '  ' }, op)).toThrow(/outcome/);
    expect(() => incidents.act(id, { type: 'note', text: '' }, op)).toThrow(/text/);
    expect(() => incidents.act('inc_nope', { type: 'acknowledge' }, op)).toThrow(/does not exist/);
    expect(incidents.events(id)).toHaveLength(2);
  });

  it('cancel by a person from any open state', () => {
    const { incidents } = h.response;
    const [o] = ingest(h, sos(), source({}, h.clock.now()));
    const r = incidents.act(o!.incidentId, { type: 'cancel', reason: 'duplicate call' }, op);
    expect(r.incident).toMatchObject({ status: 'cancelled', outcome: 'cancelled: duplicate call', deadlineAt: null });
    expect(() => incidents.act(o!.incidentId, { type: 'cancel', reason: 'again' }, op)).toThrow(ConflictError);
  });

  it('the projection equals the rebuild for every incident after a mixed history, and survives reopening the file', async () => {
    const { incidents, network } = h.response;
    const nurse = network.createStaff({ name: 'N', role: 'nurse', unitId: 'g2' });
    for (let i = 0; i < 20; i++) {
      const dev = `dev-${i % 5}`;
      const type = ['sos', 'fall', 'offline'][i % 3]!;
      ingest(h, sos({ type, cancelWindowMs: 30_000 }), source({ deviceId: dev, unitId: i % 2 ? 'g1' : 'g2' }, h.clock.now()));
      h.clock.advance(7_000);
    }
    const ids = incidents.list({ limit: 500 }).items.map((i) => i.id);
    incidents.act(ids[0]!, { type: 'acknowledge' }, op);
    incidents.act(ids[0]!, { type: 'dispatch', staffId: nurse.id }, op);
    incidents.act(ids[1]!, { type: 'acknowledge' }, op);
    ingest(h, { action: 'cancel', type: 'fall', rule: 'fall', reason: 'r' }, source({ deviceId: 'dev-1' }, h.clock.now()));
    ingest(h, { action: 'clear', type: 'offline', rule: 's', reason: 'back' }, source({ deviceId: 'dev-2' }, h.clock.now()));
    h.clock.advance(10 * 60_000); // escalations happen too
    for (const id of ids) expect(incidents.rebuild(id)).toEqual(incidents.get(id));
    const before = ids.map((id) => incidents.get(id));
    const dir = h.dir;
    await h.close();
    h = openHarness({ dir, start: false });
    expect(ids.map((id) => h.response.incidents.get(id))).toEqual(before);
    for (const id of ids) expect(h.response.incidents.rebuild(id)).toEqual(h.response.incidents.get(id));
  });
});

describe('incidents: listing and visibility', () => {
  let h: Harness;
  beforeEach(() => {
    h = openHarness();
    buildTree(h.response.network);
  });
  afterEach(async () => {
    await h.close();
  });

  it('filters by status, priority, unit subtree, resident, time, test; pages; scopes to what a user may see', () => {
    const { incidents } = h.response;
    const t0 = h.clock.now();
    ingest(h, sos(), source({ deviceId: 'a', unitId: 'g1', residentId: 'r1' }, h.clock.now()));
    h.clock.advance(1000);
    ingest(h, sos({ type: 'offline', priority: 'P3' }), source({ deviceId: 'b', unitId: 'g2' }, h.clock.now()));
    h.clock.advance(1000);
    ingest(h, sos(), source({ deviceId: 'c', unitId: 'g3' }, h.clock.now()));
    h.clock.advance(1000);
    ingest(h, sos(), source({ deviceId: 'd', unitId: 'g4' }, h.clock.now()));
    h.clock.advance(1000);
    ingest(h, sos({ test: true }), source({ deviceId: 'e', unitId: 'g1' }, h.clock.now()));
    ingest(h, sos(), source({ deviceId: 'f', unitId: null }, h.clock.now()));

    expect(incidents.list().total).toBe(6);
    expect(incidents.list({ priority: ['P3'] }).items.map((i) => i.deviceId)).toEqual(['b']);
    expect(incidents.list({ unitId: 'c1' }).items.map((i) => i.deviceId).sort()).toEqual(['a', 'b', 'e']);
    expect(incidents.list({ residentId: 'r1' }).total).toBe(1);
    expect(incidents.list({ from: t0 + 1000, to: t0 + 3000 }).items.map((i) => i.deviceId).sort()).toEqual(['b', 'c']);
    expect(incidents.list({ test: true }).items.map((i) => i.deviceId)).toEqual(['e']);
    expect(incidents.list({ status: ['open'], test: false }).total).toBe(5);
    const page = incidents.list({ limit: 2, offset: 2 });
    expect(page.total).toBe(6);
    expect(page.items).toHaveLength(2);
    // a steward of g1 sees g1 only; a street centre its streets' grids; a district also the unplaced ones
    expect(incidents.list({ scope: 'g1' }).items.map((i) => i.deviceId).sort()).toEqual(['a', 'e']);
    expect(incidents.list({ scope: 's1' }).total).toBe(3);
    expect(incidents.list({ scope: 'd1' }).items.map((i) => i.deviceId).sort()).toEqual(['a', 'b', 'c', 'e', 'f']);
    expect(incidents.list({ scope: 'd2' }).items.map((i) => i.deviceId).sort()).toEqual(['d', 'f']);
    // console resume: the global log after a seq, scoped the same way
    const all = incidents.eventsAfter(0);
    expect(all).toHaveLength(6);
    expect(incidents.eventsAfter(all[2]!.seq).map((e) => e.seq)).toEqual(all.slice(3).map((e) => e.seq));
    expect(incidents.eventsAfter(0, { scope: 'g1' }).every((e) => e.unitId === 'g1')).toBe(true);
  });
});
