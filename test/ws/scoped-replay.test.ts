// A scoped console (a steward's grid unit, a community station) resuming from far back in the log. Its replay filters
// the log as it reads; a unit with no events in a long stretch of it had one read walk all of it on the main thread
// (~0.2 s per million events, every socket waiting) to find its few events at the end. Now each read examines at most
// REPLAY_SCAN_SEQS sequence numbers and the replay goes on from where the read ended, a turn of the event loop later,
// until it reaches the log's latest durable seq. A real gateway, its SQLite log and a real WebSocket console.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { REPLAY_SCAN_SEQS } from '../../server/ws/index.js';
import { TestConsole, buildNetwork, latestSeq, login, raise, seqsInLog, type Network } from './helpers.js';

describe('WebSocket /ws: a scoped replay across a long stretch of other units\' events', () => {
  let t: TestGateway;
  let n: Network;
  let start: number;
  const reads: { seq: number; upTo: number | undefined; scope: string | null | undefined }[] = [];

  beforeAll(async () => {
    t = await startTestGateway();
    n = await buildNetwork(t);
    start = latestSeq(t);
    raise(t, 2, { unitId: 'gA', device: 'early' });
    // more than two stretches of another unit's events, then the steward's unit again
    for (let i = 0; i < 5; i++) raise(t, Math.ceil((2.2 * REPLAY_SCAN_SEQS) / 5), { unitId: 'gB', device: `busy${i}` });
    raise(t, 3, { unitId: 'gA', device: 'late' });
    expect(latestSeq(t) - start).toBeGreaterThan(2.2 * REPLAY_SCAN_SEQS);
    const { incidents } = t.gw.response;
    const eventsAfter = incidents.eventsAfter.bind(incidents);
    incidents.eventsAfter = (seq, opts = {}) => {
      reads.push({ seq, upTo: opts.upTo, scope: opts.scope });
      return eventsAfter(seq, opts);
    };
  }, 120_000);
  afterAll(async () => t?.stop());

  it('gets every event of its unit, in order, each read examining a bounded stretch', async () => {
    const c = await TestConsole.open(t, await login(t, n, n.users.stewardA));
    c.subscribe('all', start);
    await c.waitFor((f) => f.type === 'replayed', 'replayed', 30_000);
    const want = seqsInLog(t, start, ['gA']);
    expect(want).toHaveLength(5);
    expect(c.seqs).toEqual(want);
    const scoped = reads.filter((r) => r.scope);
    expect(scoped.length).toBeGreaterThanOrEqual(3);
    for (const r of scoped) {
      expect(r.upTo, 'a scoped read without an upper bound').toBeDefined();
      expect(r.upTo! - r.seq).toBeLessThanOrEqual(REPLAY_SCAN_SEQS);
    }
    // and live after it: a new event of its unit reaches it, another unit's does not
    raise(t, 1, { unitId: 'gB', device: 'after' });
    raise(t, 1, { unitId: 'gA', device: 'after' });
    const last = seqsInLog(t, start, ['gA']).at(-1)!;
    await c.waitForSeq(last);
    expect(c.seqs).toEqual(seqsInLog(t, start, ['gA']));
    await c.close();
  }, 60_000);

  it('an operator with no unit reads the same stretch unscoped, a page at a time as before', async () => {
    reads.length = 0;
    const c = await TestConsole.open(t, await login(t, n, n.users.operator));
    c.subscribe('all', latestSeq(t) - 1200);
    await c.waitFor((f) => f.type === 'replayed', 'replayed', 30_000);
    expect(c.seqs).toEqual(seqsInLog(t, latestSeq(t) - 1200));
    await c.close();
  }, 60_000);
});
