import { afterEach, describe, expect, it } from 'vitest';
import { createManualClock } from '../../response/clock.js';
import { distribution, shiftWindows } from '../../response/kpis.js';
import { ValidationError } from '../../core/errors.js';
import { buildTree, ingest, openHarness, source, sos, type Harness } from './helpers.js';

const local = (d: number, h: number, m = 0, s = 0) => new Date(2024, 0, d, h, m, s).getTime();

describe('KPIs per shift', () => {
  let h: Harness;
  afterEach(async () => {
    await h.close();
  });

  /** A constructed day: see the expectations below for what each incident contributes. */
  function scenario() {
    h = openHarness({ clock: createManualClock(local(15, 7)), config: { budgets: { P1: { ackMs: 120_000 } } } });
    buildTree(h.response.network);
    const { incidents, network } = h.response;
    const nurse = network.createStaff({ name: 'N', role: 'nurse', unitId: 'g1', onDuty: true });
    const op = { id: 'u' };
    const goTo = (t: number) => h.clock.advance(t - h.clock.now());
    const open = (device: string, over = {}) => ingest(h, sos(over), source({ deviceId: device, unitId: device === 'g' ? 'g4' : 'g1' }, h.clock.now()))[0]!.incidentId;

    goTo(local(15, 9)); // A: ack 30 s, on site 10 min
    const a = open('a');
    goTo(local(15, 9, 0, 30)); incidents.act(a, { type: 'acknowledge' }, op);
    incidents.act(a, { type: 'dispatch', staffId: nurse.id }, op);
    goTo(local(15, 9, 10)); incidents.act(a, { type: 'on-site' }, op);
    incidents.act(a, { type: 'resolve', outcome: 'ok' }, op);

    goTo(local(15, 10)); // B: ack 90 s, on site 20 min (outside the 15-minute circle)
    const b = open('b');
    goTo(local(15, 10, 1, 30)); incidents.act(b, { type: 'acknowledge' }, op);
    goTo(local(15, 10, 20)); incidents.act(b, { type: 'on-site' }, op);

    goTo(local(15, 11)); // C: escalates at 120 s, ack at 200 s
    const c = open('c');
    goTo(local(15, 11, 3, 20)); incidents.act(c, { type: 'acknowledge' }, op);

    goTo(local(15, 12)); // D: a fall cancelled by the resident after 20 s: it needed no answer
    open('d', { type: 'fall', cancelWindowMs: 30_000 });
    goTo(local(15, 12, 0, 20));
    ingest(h, { action: 'cancel', type: 'fall', rule: 'fall', reason: 'ok' }, source({ deviceId: 'd' }, h.clock.now()));

    goTo(local(15, 13)); // E: P3, cleared after 100 s unanswered: missed the 60 s mark, not the 180 s one
    open('e', { type: 'offline', priority: 'P3' });
    goTo(local(15, 13, 1, 40));
    ingest(h, { action: 'clear', type: 'offline', rule: 's', reason: 'back' }, source({ deviceId: 'e' }, h.clock.now()));

    goTo(local(15, 14)); // a test alarm: not counted
    open('t', { test: true });

    goTo(local(15, 23)); // F (night): ack 45 s
    const f = open('f');
    goTo(local(15, 23, 0, 45)); incidents.act(f, { type: 'acknowledge' }, op);

    goTo(local(16, 2)); // G (night, another district): still open 100 s later
    open('g');
    goTo(local(16, 2, 1, 40));
    return { a, b, c };
  }

  it('share within 60 s / 180 s, median and p95 to acknowledge and to on-site, breaches, per 08:00/20:00 shift', () => {
    scenario();
    const r = h.response.kpis({ from: local(15, 8), to: local(16, 8) });
    expect(r.shifts.map((s) => [s.label, s.start, s.end])).toEqual([
      ['2024-01-15 08:00', local(15, 8), local(15, 20)],
      ['2024-01-15 20:00', local(15, 20), local(16, 8)],
    ]);
    const [day, night] = r.shifts;
    expect(day).toMatchObject({
      incidents: 5,
      acknowledged: 3,
      ackWithin60s: { count: 1, eligible: 4, share: 0.25 },
      ackWithin180s: { count: 2, eligible: 3, share: 2 / 3 },
      timeToAck: { n: 3, medianMs: 90_000, p95Ms: 200_000 },
      timeToOnSite: { n: 2, medianMs: 900_000, p95Ms: 1_200_000 },
      onSiteWithinReach: { count: 1, eligible: 2, share: 0.5 },
      breaches: 1,
    });
    expect(night).toMatchObject({
      incidents: 2,
      acknowledged: 1,
      ackWithin60s: { count: 1, eligible: 2, share: 0.5 },
      ackWithin180s: { count: 1, eligible: 1, share: 1 },
      timeToAck: { n: 1, medianMs: 45_000, p95Ms: 45_000 },
      timeToOnSite: { n: 0, medianMs: null, p95Ms: null },
      onSiteWithinReach: { count: 0, eligible: 0, share: null },
      breaches: 0,
    });
    expect(r.total).toMatchObject({ incidents: 7, acknowledged: 4, breaches: 1, ackWithin60s: { count: 2, eligible: 6 } });
  });

  it('shift boundaries, priority and unit scope are configurable; bad periods and shifts are 400s', () => {
    scenario();
    const r = h.response.kpis({ from: local(15, 8), to: local(16, 8), shifts: ['22:00', '06:00', '14:00'] });
    expect(r.shifts.map((s) => [s.label, s.incidents])).toEqual([
      ['2024-01-15 06:00', 5],
      ['2024-01-15 14:00', 0],
      ['2024-01-15 22:00', 2],
      // the morning shift of the 16th overlaps the period until 08:00
      ['2024-01-16 06:00', 0],
    ]);
    expect(h.response.kpis({ from: local(15, 8), to: local(16, 8), priority: ['P3'] }).total.incidents).toBe(1);
    const g1 = h.response.kpis({ from: local(15, 8), to: local(16, 8), unitIds: [...h.response.network.subtree('c1')] });
    expect(g1.total).toMatchObject({ incidents: 6, breaches: 1 });
    const g4 = h.response.kpis({ from: local(15, 8), to: local(16, 8), unitIds: ['g4'] });
    expect(g4.total).toMatchObject({ incidents: 1, breaches: 0 });
    expect(() => h.response.kpis({ from: local(16, 8), to: local(15, 8) })).toThrow(ValidationError);
    expect(() => h.response.kpis({ from: local(15, 8), to: local(16, 8), shifts: ['25:00'] })).toThrow(/HH:MM/);
  });
});

describe('KPI helpers', () => {
  it('median and p95 by nearest rank', () => {
    expect(distribution([])).toEqual({ n: 0, medianMs: null, p95Ms: null });
    expect(distribution([5])).toEqual({ n: 1, medianMs: 5, p95Ms: 5 });
    expect(distribution([4, 1, 3, 2])).toEqual({ n: 4, medianMs: 2.5, p95Ms: 4 });
    const hundred = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(distribution(hundred)).toMatchObject({ medianMs: 50.5, p95Ms: 95 });
  });

  it('shift windows cover a period that starts mid-shift', () => {
    const w = shiftWindows(local(15, 3), local(15, 9), ['08:00', '20:00']);
    expect(w.map((x) => x.label)).toEqual(['2024-01-14 20:00', '2024-01-15 08:00']);
  });
});
