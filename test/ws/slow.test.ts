// A console that stops reading is cut off once its queue passes wsMaxBufferedBytes, with a close reason; it never
// delays the other consoles, and it resumes by sequence with nothing missing and nothing twice.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../core/logger.js';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { TestConsole, latestSeq, raise, sleep } from './helpers.js';

const MAX_BUFFERED = 256 * 1024;

describe('WebSocket /ws: a slow console', () => {
  let t: TestGateway;
  let token: string;
  const lines: string[] = [];

  beforeAll(async () => {
    const log = createLogger('info', { write: (l: string) => { if (l.includes('too slow')) lines.push(l); } });
    t = await startTestGateway({ http: { port: 0, host: '127.0.0.1', wsMaxBufferedBytes: MAX_BUFFERED } }, undefined, log);
    token = await t.token();
  });
  afterAll(async () => t?.stop());

  it('is cut off without delaying a fast console, and resumes from its last seq with no gap and no duplicate', async () => {
    const fast = await TestConsole.open(t, token);
    const slow = await TestConsole.open(t, token);
    const start = latestSeq(t);
    for (const c of [fast, slow]) {
      c.subscribe('all', start);
      await c.waitFor((f) => f.type === 'replayed', 'replayed');
    }
    // the slow console stops reading its socket (a frozen tab, a phone on a bad link) until the gateway cuts it off;
    // then it reads again at once: a peer that does not read its close frame within the close grace (10 s) is
    // dropped without one (1006), and the 150 notes below took longer than that in a loaded CI run
    slow.ws.pause();
    const cutOff = waitFor(() => lines.some((l) => l.includes('console too slow; cut off')), 'the slow console cut off', 60_000)
      .then(() => slow.ws.resume());
    const [opened] = raise(t, 1, { device: 'slow' });
    const { incidents } = t.gw.response;
    const big = 'x'.repeat(160_000);
    const producedAt: number[] = [];
    for (let i = 0; i < 150; i++) {
      await incidents.record(opened!.incidentId, 'note', { text: `${i} ${big}` });
      producedAt.push(Date.now());
      if (i % 5 === 4) await sleep(1);
    }
    const last = latestSeq(t);
    // the fast console gets everything, never held back by the stalled one
    await fast.waitForSeq(last, 60_000);
    const fastDone = Date.now();
    expect(fast.seqs.length).toBe(last - start);
    expect(fastDone - producedAt[producedAt.length - 1]!).toBeLessThan(20_000);
    expect(slow.incidentFrames.length).toBeLessThan(last - start);

    // reading again, the slow console finds what was queued, then the close with its reason
    await cutOff;
    const closed = await slow.closed;
    expect(closed.code).toBe(4408);
    expect(closed.reason).toMatch(/too slow/);
    expect(closed.reason).toMatch(/since/);
    const got = slow.seqs;
    expect(got.length).toBeGreaterThan(0);
    expect(got.length).toBeLessThan(last - start);
    expect(got).toEqual(fast.seqs.slice(0, got.length)); // a prefix: in order, no gap

    // it resumes by sequence
    const again = await TestConsole.open(t, token);
    again.subscribe('all', got[got.length - 1]);
    await again.waitForSeq(last, 60_000);
    expect([...got, ...again.seqs]).toEqual(fast.seqs);
    await again.close();
    await fast.close();
  }, 120_000);
});
