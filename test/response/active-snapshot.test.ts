// The console's first load: GET /api/incidents/active gives every active incident the user may see — P1 first, then
// the oldest first, paged to completion — with the log's head, so that snapshot + stream (since = head) has no gap.
// Measured before: one open P1 followed by 600 newer P3 → the P1 was not in the board's first load.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IncidentRow } from '../../response/incidents.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { TestConsole, buildNetwork, latestSeq, login, raise, raiseP3, type Network } from '../ws/helpers.js';

interface Page { items: IncidentRow[]; head: number; next: string | null }


async function snapshot(t: TestGateway, token: string, limit: number): Promise<{ items: IncidentRow[]; heads: number[]; pages: number }> {
  const items: IncidentRow[] = [];
  const heads: number[] = [];
  let after: string | null = null;
  let pages = 0;
  do {
    const r: { status: number; body: Page } = await t.api<Page>('GET', `/api/incidents/active?limit=${limit}${after ? `&after=${encodeURIComponent(after)}` : ''}`, undefined, token);
    expect(r.status, JSON.stringify(r.body).slice(0, 300)).toBe(200);
    items.push(...r.body.items);
    heads.push(r.body.head);
    after = r.body.next;
    if (++pages > 100) throw new Error('the snapshot never completes');
  } while (after);
  return { items, heads, pages };
}

describe('GET /api/incidents/active: the complete active snapshot with the stream head', () => {
  let t: TestGateway;
  let n: Network;
  let p1: string;
  let resolvedId: string;

  beforeAll(async () => {
    t = await startTestGateway();
    n = await buildNetwork(t);
    // one old P1 in grid A, then 600 newer P3 in grids A and B, then one resolved P1 (must not appear)
    const [opened] = raise(t, 1, { unitId: 'gA', device: 'old-p1' });
    p1 = opened!.incidentId;
    await new Promise((r) => setTimeout(r, 5));
    raiseP3(t, 600, (i) => (i % 2 ? 'gA' : 'gB'));
    const [gone] = raise(t, 1, { unitId: 'gB', device: 'resolved' });
    resolvedId = gone!.incidentId;
    await t.gw.response.incidents.act(resolvedId, { type: 'cancel', reason: 'false alarm' }, { id: 'x', username: 'x' });
  }, 60_000);
  afterAll(async () => t?.stop());

  it('an operator gets all 601 open incidents, the old P1 first, then by age, each once, with the head of the log', async () => {
    const token = await login(t, n, n.users.operator);
    const head = latestSeq(t);
    const s = await snapshot(t, token, 250);
    expect(s.pages).toBe(3);
    expect(s.items).toHaveLength(601);
    expect(s.items[0]!.id).toBe(p1);
    expect(new Set(s.items.map((i) => i.id)).size).toBe(601);
    expect(s.items.some((i) => i.id === resolvedId)).toBe(false);
    const p3 = s.items.slice(1);
    expect(p3.every((i) => i.priority === 'P3')).toBe(true);
    expect(p3.map((i) => i.openedAt)).toEqual([...p3.map((i) => i.openedAt)].sort((a, b) => a - b));
    expect(s.heads[0]).toBe(head);
    // the old first load, for comparison: the newest 500 by time, which leaves the P1 out
    const old = await t.api<{ items: IncidentRow[] }>('GET', '/api/incidents?status=open,acknowledged,dispatched,on-site&limit=500', undefined, token);
    expect(old.body.items.some((i) => i.id === p1)).toBe(false);
  });

  it('a steward gets exactly what network.canSee lets them see: their grid unit, all of it', async () => {
    const token = await login(t, n, n.users.stewardA);
    const s = await snapshot(t, token, 1000);
    const want = t.gw.response.incidents.list({ status: ['open'], limit: 500 }).total;
    expect(want).toBe(601);
    expect(s.items[0]!.id).toBe(p1);
    expect(s.items.every((i) => i.unitId === 'gA')).toBe(true);
    expect(s.items).toHaveLength(301);
  });

  it('snapshot + stream from its head is gap-free: an alarm raised between the pages arrives on the stream', async () => {
    const token = await login(t, n, n.users.operator);
    const first = await t.api<Page>('GET', '/api/incidents/active?limit=10', undefined, token);
    // a new P1 sorts before the cursor of page 2: it is not in the rest of the snapshot, the stream brings it
    const [late] = raise(t, 1, { unitId: 'gA', device: 'between-pages' });
    let after = first.body.next;
    const rest: IncidentRow[] = [];
    while (after) {
      const r = await t.api<Page>('GET', `/api/incidents/active?limit=500&after=${encodeURIComponent(after)}`, undefined, token);
      rest.push(...r.body.items);
      after = r.body.next;
    }
    expect([...first.body.items, ...rest].some((i) => i.id === late!.incidentId)).toBe(false);
    const c = await TestConsole.open(t, token);
    c.subscribe('all', first.body.head);
    const frame = await c.waitFor((f) => f.type === 'incident' && f.event?.incidentId === late!.incidentId && f.event.type === 'opened', 'the opening');
    expect(frame.seq).toBeGreaterThan(first.body.head);
    await c.close();
  });

  it('a cursor that is not one says what to do', async () => {
    const token = await login(t, n, n.users.operator);
    const r = await t.api('GET', '/api/incidents/active?after=garbage', undefined, token);
    expect(r.status).toBe(400);
    expect(r.body.message).toMatch(/after: .*`next`/);
    const anon = await t.api('GET', '/api/incidents/active', undefined, '');
    expect(anon.status).toBe(401);
  });
});
