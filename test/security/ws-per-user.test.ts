// Issue 14, Low: one user could hold 1000 WebSockets. At most http.wsMaxPerUser; the next is closed with 4429 and a
// reason that says what to do; closing one frees a place.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import WebSocket from 'ws';
import { TestConsole } from '../ws/helpers.js';

describe('WebSockets per user (issue 14)', () => {
  let t: TestGateway;
  beforeAll(async () => {
    t = await startTestGateway({ http: { port: 0, host: '127.0.0.1', wsMaxPerUser: 3 } });
  });
  afterAll(async () => t?.stop());

  it('refuses the fourth console of one user with 4429 and a clear reason; a closed console frees its place', async () => {
    const token = await t.token();
    const open = await Promise.all([1, 2, 3].map(() => TestConsole.open(t, token)));
    const extra = new WebSocket(TestConsole.url(t), [], { headers: { authorization: `Bearer ${token}` } });
    extra.on('error', () => undefined);
    const frames: string[] = [];
    extra.on('message', (d) => frames.push(String(d)));
    const closed = await Promise.race([
      new Promise<{ code: number; reason: string }>((r) => extra.on('close', (code, reason) => r({ code, reason: reason.toString() }))),
      new Promise<undefined>((r) => setTimeout(() => r(undefined), 5000)),
    ]);
    extra.terminate();
    expect(frames.some((f) => f.includes('"hello"')), 'no hello for a refused console').toBe(false);
    // old code: the fourth console opened and stayed open
    expect(closed?.code).toBe(4429);
    expect(closed?.reason).toMatch(/too many consoles: you have 3 open \(limit 3\); close one/);
    expect((await t.api('GET', '/metrics')).body).toMatch(/eldergate_connections_refused_total\{listener="ws",reason="per-user"\} 1/);

    // a place frees when one closes
    open[0]!.ws.close();
    await open[0]!.closed;
    await new Promise((r) => setTimeout(r, 100));
    const again = await TestConsole.open(t, token);
    again.subscribe('all');
    await again.waitFor((f) => f.type === 'replayed', 'replayed');
    for (const c of [...open, again]) c.ws.close();
  });
});
