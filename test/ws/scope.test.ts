// A steward sees their grid unit only; every tier above sees the units below it; a subscription to a scope outside
// the user's units is refused — enforced by the server, on replay and live alike.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { TestConsole, buildNetwork, latestSeq, login, raise, seqsInLog, type Network } from './helpers.js';

describe('WebSocket /ws: scope', () => {
  let t: TestGateway;
  let n: Network;
  let start: number;

  beforeAll(async () => {
    t = await startTestGateway();
    n = await buildNetwork(t);
    start = latestSeq(t);
    // history in both grid units and one incident with no unit yet (a resident not placed)
    raise(t, 30, { unitId: 'gA', device: 'hist' });
    raise(t, 30, { unitId: 'gB', device: 'hist' });
    raise(t, 3, { unitId: null, device: 'hist' });
  });
  afterAll(async () => t?.stop());

  it('a steward subscribing to "all" gets only their grid unit, on replay and live', async () => {
    const c = await TestConsole.open(t, await login(t, n, n.users.stewardA));
    expect(c.hello().user).toMatchObject({ role: 'steward', unitId: 'gA' });
    c.subscribe('all', start);
    await c.waitFor((f) => f.type === 'replayed', 'replayed');
    raise(t, 10, { unitId: 'gB', device: 'live' });
    raise(t, 10, { unitId: 'gA', device: 'live' });
    raise(t, 2, { unitId: null, device: 'live' });
    const lastA = seqsInLog(t, start, ['gA']).at(-1)!;
    await c.waitForSeq(lastA);
    expect(c.seqs).toEqual(seqsInLog(t, start, ['gA']));
    expect(c.incidentFrames.every((f) => f.event!.unitId === 'gA')).toBe(true);
    await c.close();
  });

  it('refuses (and does not stream) a subscription to another unit, or to an unknown one, with the same answer', async () => {
    const c = await TestConsole.open(t, await login(t, n, n.users.stewardA));
    c.subscribe('gB', start);
    const err = await c.waitFor((f) => f.type === 'error', 'refusal');
    expect(err.code).toBe('FORBIDDEN_SCOPE');
    expect(err.message).toMatch(/may not see unit "gB"/);
    c.subscribe('no-such-unit', start);
    await c.waitFor((f) => f.type === 'error' && (f.details as { scope?: string })?.scope === 'no-such-unit', 'second refusal');
    // a parent of their own unit is outside it too
    c.subscribe('c1', start);
    await c.waitFor((f) => f.type === 'error' && (f.details as { scope?: string })?.scope === 'c1', 'parent refused');
    raise(t, 3, { unitId: 'gB', device: 'after' });
    await new Promise((r) => setTimeout(r, 200));
    expect(c.incidentFrames).toEqual([]);
    // after refusals, the user's own scope still works
    c.subscribe('gA', start);
    await c.waitFor((f) => f.type === 'replayed', 'replayed');
    expect(c.seqs).toEqual(seqsInLog(t, start, ['gA']));
    await c.close();
  });

  it('an operator of the district (no unit) sees everything, and may narrow to one unit', async () => {
    const token = await login(t, n, n.users.operator);
    const all = await TestConsole.open(t, token);
    all.subscribe('all', start);
    const one = await TestConsole.open(t, token);
    one.subscribe('gB', start);
    await all.waitFor((f) => f.type === 'replayed', 'replayed (all)');
    await one.waitFor((f) => f.type === 'replayed', 'replayed (gB)');
    expect(all.seqs).toEqual(seqsInLog(t, start));
    expect(one.seqs).toEqual(seqsInLog(t, start, ['gB']));
    await all.close();
    await one.close();
  });

  it('a user of the district centre sees incidents with no unit (so none is lost); a community user does not', async () => {
    await t.api('POST', '/api/users', { username: 'dora', password: 'dora-password-1234', role: 'operator', unitId: 'd1' });
    await t.api('POST', '/api/users', { username: 'carl', password: 'carl-password-1234', role: 'operator', unitId: 'c1' });
    const d = await TestConsole.open(t, await t.token('dora', 'dora-password-1234'));
    const c = await TestConsole.open(t, await t.token('carl', 'carl-password-1234'));
    d.subscribe('all', start);
    c.subscribe('all', start);
    await d.waitFor((f) => f.type === 'replayed', 'replayed (district)');
    await c.waitFor((f) => f.type === 'replayed', 'replayed (community)');
    expect(d.seqs).toEqual(seqsInLog(t, start));
    expect(c.seqs).toEqual(seqsInLog(t, start, ['gA', 'gB']));
    await d.close();
    await c.close();
  });
});
