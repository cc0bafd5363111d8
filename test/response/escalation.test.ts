import { afterEach, describe, expect, it } from 'vitest';
import { createManualClock } from '../../response/clock.js';
import { planEscalation } from '../../response/escalation.js';
import { buildTree, ingest, openHarness, source, sos, tempDir, type Harness, chainNetwork } from './helpers.js';

const budgets = (p1: number, p2 = 300_000, p3 = 4 * 3600_000) => ({
  budgets: { P1: { ackMs: p1 }, P2: { ackMs: p2 }, P3: { ackMs: p3 } },
});

describe('escalation', () => {
  let h: Harness | undefined;
  const cleanups: (() => void)[] = [];
  afterEach(async () => {
    await h?.close();
    h = undefined;
    for (const c of cleanups.splice(0)) c();
  });

  const escalations = (hh: Harness, incidentId: string) =>
    hh.response.incidents.events(incidentId).filter((e) => e.type === 'escalated');

  it('climbs grid → community → street → district, then re-notifies the district each budget period', () => {
    h = openHarness({ config: budgets(1000) });
    buildTree(h.response.network);
    const t0 = h.clock.now();
    const [o] = ingest(h, sos(), source({}, t0));
    const id = o!.incidentId;
    expect(h.response.incidents.get(id)).toMatchObject({ tierUnitId: 'g1', deadlineAt: t0 + 1000, escalationLevel: 0 });
    expect(h.response.escalation.armed(id)).toBe(t0 + 1000);

    h.clock.advance(999);
    expect(escalations(h, id)).toHaveLength(0);
    h.clock.advance(1);
    expect(h.response.incidents.get(id)).toMatchObject({ tierUnitId: 'c1', escalationLevel: 1, deadlineAt: t0 + 2000 });
    h.clock.advance(1000);
    h.clock.advance(1000);
    expect(h.response.incidents.get(id)).toMatchObject({ tierUnitId: 'd1', escalationLevel: 3, deadlineAt: t0 + 4000 });
    h.clock.advance(2000);
    const steps = escalations(h, id);
    expect(steps.map((e) => [e.data.fromUnitId, e.data.toUnitId, e.data.toTier, e.data.renotify, e.at - t0])).toEqual([
      ['g1', 'c1', 'community', false, 1000],
      ['c1', 's1', 'street', false, 2000],
      ['s1', 'd1', 'district', false, 3000],
      ['d1', 'd1', 'district', true, 4000],
      ['d1', 'd1', 'district', true, 5000],
    ]);
    expect(steps.every((e) => e.data.breach === true && e.data.lateMs === 0)).toBe(true);
    expect(h.response.escalation.stats().breaches).toEqual({ P1: 5, P2: 0, P3: 0 });
    expect(h.response.incidents.rebuild(id)).toEqual(h.response.incidents.get(id));
    // the steps were published on the bus as they happened
    expect(h.seen.filter((e) => e.type === 'escalated')).toHaveLength(5);
  });

  it('acknowledgement stops escalation, before or after a first breach', () => {
    h = openHarness({ config: budgets(1000) });
    buildTree(h.response.network);
    const [a] = ingest(h, sos(), source({ deviceId: 'a' }, h.clock.now()));
    const [b] = ingest(h, sos(), source({ deviceId: 'b' }, h.clock.now()));
    h.clock.advance(500);
    h.response.incidents.act(a!.incidentId, { type: 'acknowledge' }, { id: 'u' });
    // no more escalation: what is armed now is its follow-up, one reach budget (P1: 15 min) after the opening
    expect(h.response.escalation.armed(a!.incidentId)).toBe(a!.at + 15 * 60_000);
    h.clock.advance(1000); // b escalates once
    h.response.incidents.act(b!.incidentId, { type: 'acknowledge' }, { id: 'u' });
    h.clock.advance(60_000);
    expect(escalations(h, a!.incidentId)).toHaveLength(0);
    expect(escalations(h, b!.incidentId)).toHaveLength(1);
    expect(h.response.incidents.get(b!.incidentId)).toMatchObject({ tierUnitId: 'c1', status: 'acknowledged' });
    expect(h.seen.filter((e) => e.type === 'overdue')).toEqual([]);
    expect(h.response.escalation.stats().scheduled).toBe(2);
  });

  it('uses the priority budget; test incidents never escalate; a resolved/cancelled incident stops', () => {
    h = openHarness({ config: budgets(1000, 5000) });
    buildTree(h.response.network);
    const [p2] = ingest(h, sos({ type: 'no-movement', priority: 'P2' }), source({ deviceId: 'a' }, h.clock.now()));
    const [t] = ingest(h, sos({ test: true }), source({ deviceId: 'b' }, h.clock.now()));
    const [f] = ingest(h, sos({ type: 'fall', cancelWindowMs: 30_000 }), source({ deviceId: 'c' }, h.clock.now()));
    h.clock.advance(500);
    ingest(h, { action: 'cancel', type: 'fall', rule: 'fall', reason: 'ok' }, source({ deviceId: 'c' }, h.clock.now()));
    h.clock.advance(4000);
    expect(escalations(h, p2!.incidentId)).toHaveLength(0);
    h.clock.advance(600);
    expect(escalations(h, p2!.incidentId)).toHaveLength(1);
    h.clock.advance(60_000);
    expect(escalations(h, t!.incidentId)).toHaveLength(0);
    expect(escalations(h, f!.incidentId)).toHaveLength(0);
  });

  it('timers run on the monotonic clock: a wall-clock step neither fires nor delays an escalation', () => {
    h = openHarness({ config: budgets(10_000) });
    buildTree(h.response.network);
    const [o] = ingest(h, sos(), source({}, h.clock.now()));
    h.clock.jumpWall(3600_000); // NTP step forward by an hour
    expect(escalations(h, o!.incidentId)).toHaveLength(0);
    h.clock.jumpWall(-2 * 3600_000); // and back two hours
    h.clock.advance(10_000);
    expect(escalations(h, o!.incidentId)).toHaveLength(1);
  });

  it('an incident with no unit stays with the top level and is re-notified each period', () => {
    h = openHarness({ config: budgets(1000) });
    buildTree(h.response.network);
    const [o] = ingest(h, sos(), source({ unitId: null }, h.clock.now()));
    h.clock.advance(2000);
    const steps = escalations(h, o!.incidentId);
    expect(steps.map((e) => [e.data.toUnitId, e.data.renotify])).toEqual([[null, true], [null, true]]);
  });

  it('at start-up, incidents that fell overdue while the gateway was down escalate at once, one event per tier, with the real time', async () => {
    const { dir, cleanup } = tempDir();
    cleanups.push(cleanup);
    const clock1 = createManualClock();
    h = openHarness({ dir, clock: clock1, config: budgets(60_000) });
    buildTree(h.response.network);
    const t0 = clock1.now();
    const [o] = ingest(h, sos(), source({}, t0));
    const [early] = ingest(h, sos(), source({ deviceId: 'late-one' }, t0));
    clock1.advance(30_000);
    ingest(h, sos(), source({ deviceId: 'fresh' }, clock1.now()));
    h.response.incidents.act(early!.incidentId, { type: 'acknowledge' }, { id: 'u' });
    await h.close();

    // the gateway is down for 200 s after t0 + 30 s
    const restart = t0 + 230_000;
    const clock2 = createManualClock(restart);
    h = openHarness({ dir, clock: clock2, config: budgets(60_000) });
    const steps = escalations(h, o!.incidentId);
    expect(steps.map((e) => [e.data.fromUnitId, e.data.toUnitId, e.data.dueAt, e.at, e.data.catchUp])).toEqual([
      ['g1', 'c1', t0 + 60_000, restart, true],
      ['c1', 's1', t0 + 120_000, restart, true],
      ['s1', 'd1', t0 + 180_000, restart, true],
    ]);
    expect(steps.map((e) => e.data.lateMs)).toEqual([170_000, 110_000, 50_000]);
    // the district was told only now: it gets a full budget from now
    expect(h.response.incidents.get(o!.incidentId)).toMatchObject({ tierUnitId: 'd1', escalationLevel: 3, deadlineAt: restart + 60_000 });
    expect(h.response.escalation.armed(o!.incidentId)).toBe(restart + 60_000);
    // acknowledged before the stop: nothing; opened 30 s later: three tiers too (due at 90 s, 150 s, 210 s)
    expect(escalations(h, early!.incidentId)).toHaveLength(0);
    const fresh = h.response.incidents.list({ deviceId: 'fresh' }).items[0]!;
    expect(escalations(h, fresh.id)).toHaveLength(3);
    expect(h.seen.filter((e) => e.type === 'escalated')).toHaveLength(6);
    clock2.advance(60_000);
    const last = escalations(h, o!.incidentId).at(-1)!;
    expect(last.data).toMatchObject({ renotify: true, toUnitId: 'd1', lateMs: 0 });
    expect(last.data.catchUp).toBeUndefined();
    expect(h.response.incidents.rebuild(o!.incidentId)).toEqual(h.response.incidents.get(o!.incidentId));
  });

  it('planEscalation collapses missed periods at the top into one re-notification', () => {
    const network = chainNetwork([['g', 'grid', 'c'], ['c', 'community', null]]);
    const steps = planEscalation({ tierUnitId: 'g', deadlineAt: 1000, priority: 'P1' }, 100_000, network, 1000);
    expect(steps.map((s) => [s.toUnitId, s.renotify, s.deadlineAt])).toEqual([
      ['c', false, 2000],
      ['c', true, 101_000],
    ]);
    expect(planEscalation({ tierUnitId: 'g', deadlineAt: 5000, priority: 'P1' }, 4999, network, 1000)).toEqual([]);
  });
  // an acknowledged incident is followed up (response/escalation.ts): nobody on site within the reach budget, it is told
  // again, every reach budget, through a dispatch, until someone is on site; a test incident is not followed up
  it('an acknowledged incident nobody reaches is followed up every reach budget until someone is on site', () => {
    h = openHarness({ config: { budgets: { P1: { ackMs: 1000, reachMs: 5000 } } } });
    buildTree(h.response.network);
    const [a] = ingest(h, sos(), source({ deviceId: 'a' }, h.clock.now()));
    const id = a!.incidentId;
    const openedAt = a!.at;
    h.clock.advance(300);
    h.response.incidents.act(id, { type: 'acknowledge' }, { id: 'u' });
    // the reach budget counts from the opening
    h.clock.advance(4699);
    expect(h.seen.filter((e) => e.type === 'overdue')).toEqual([]);
    h.clock.advance(1);
    expect(h.seen.filter((e) => e.type === 'overdue').map((e) => e.data)).toEqual([
      { status: 'acknowledged', dueAt: openedAt + 5000, lateMs: 0, deadlineAt: openedAt + 10_000, toUnitId: 'g1' },
    ]);
    expect(h.response.incidents.get(id)).toMatchObject({ status: 'acknowledged', deadlineAt: openedAt + 10_000 });
    // a dispatch keeps the follow-up; it comes again, one reach budget later
    h.response.network.createStaff({ id: 'n1', name: 'Nurse', role: 'nurse', unitId: 'g1', onDuty: true });
    h.response.incidents.act(id, { type: 'dispatch', staffId: 'n1' }, { id: 'u' });
    h.clock.advance(5000);
    expect(h.seen.filter((e) => e.type === 'overdue').map((e) => e.data.status)).toEqual(['acknowledged', 'dispatched']);
    // on site: nothing more
    h.response.incidents.act(id, { type: 'on-site' }, { id: 'u' });
    expect(h.response.escalation.armed(id)).toBeUndefined();
    h.clock.advance(60_000);
    expect(h.seen.filter((e) => e.type === 'overdue')).toHaveLength(2);
    expect(h.response.incidents.rebuild(id)).toEqual(h.response.incidents.get(id));
    // a test incident: acknowledged, never followed up
    const [t] = ingest(h, sos({ test: true }), source({ deviceId: 'b' }, h.clock.now()));
    h.response.incidents.act(t!.incidentId, { type: 'acknowledge' }, { id: 'u' });
    expect(h.response.incidents.get(t!.incidentId)!.deadlineAt).toBeNull();
    expect(h.response.escalation.armed(t!.incidentId)).toBeUndefined();
  });
  // a repeat more urgent than its card (a bed-exit at night, P2, joining one of the day, P3): the card takes the new
  // priority and its deadline comes forward to that priority's budget, so it escalates as a P2, not after 4 hours
  it('a more urgent repeat raises the card\'s priority and brings its escalation forward', () => {
    h = openHarness({ config: budgets(1000, 60_000) });
    buildTree(h.response.network);
    const day = { action: 'raise' as const, type: 'bed-exit', priority: 'P3' as const, rule: 'life-safety' };
    const [o] = ingest(h, day, source({ deviceId: 'bed' }, h.clock.now()));
    const id = o!.incidentId;
    expect(h.response.incidents.get(id)).toMatchObject({ priority: 'P3', deadlineAt: h.clock.now() + 4 * 3600_000 });
    h.clock.advance(1000);
    const [j] = ingest(h, { ...day, priority: 'P2' }, source({ deviceId: 'bed' }, h.clock.now()));
    expect(j).toMatchObject({ type: 'joined', data: { priority: 'P2', raised: { from: 'P3', deadlineAt: h.clock.now() + 60_000 } } });
    expect(h.response.incidents.get(id)).toMatchObject({ priority: 'P2', count: 2, deadlineAt: h.clock.now() + 60_000 });
    h.clock.advance(60_000);
    expect(escalations(h, id)).toHaveLength(1);
    // a less urgent repeat changes neither
    const [k] = ingest(h, day, source({ deviceId: 'bed' }, h.clock.now()));
    expect(k!.data).not.toHaveProperty('raised');
    expect(h.response.incidents.get(id)!.priority).toBe('P2');
    expect(h.response.incidents.rebuild(id)).toEqual(h.response.incidents.get(id));
  });
});
