// Bad client messages close the connection with a code and a reason a developer can act on; a console that stops
// answering pings is dropped.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { TestConsole } from './helpers.js';

describe('WebSocket /ws: bad messages and keepalive', () => {
  let t: TestGateway;
  let token: string;

  beforeAll(async () => {
    t = await startTestGateway({ http: { port: 0, host: '127.0.0.1', wsMaxPayloadBytes: 1024, wsPingIntervalMs: 300 } });
    token = await t.token();
  });
  afterAll(async () => t?.stop());

  const cases: [string, string | Buffer, number, RegExp][] = [
    ['text that is not JSON', '{"type": "subscribe", ', 1007, /malformed JSON/],
    ['JSON without a type', '{"scope":"all"}', 4400, /"type"/],
    ['a JSON array', '[1,2,3]', 4400, /JSON object/],
    ['an unknown type', '{"type":"delete-everything"}', 4400, /unknown message type "delete-everything"/],
    ['a subscribe with a negative since', '{"type":"subscribe","scope":"all","since":-1}', 4400, /since/],
    ['a subscribe with a fractional since', '{"type":"subscribe","scope":"all","since":1.5}', 4400, /since/],
    ['a subscribe without a scope', '{"type":"subscribe","since":0}', 4400, /scope/],
    ['an ack without a seq', '{"type":"ack"}', 4400, /seq/],
    ['a binary frame', Buffer.from([1, 2, 3]), 1003, /binary/],
  ];
  for (const [what, payload, code, reason] of cases) {
    it(`closes on ${what} (${code})`, async () => {
      const c = await TestConsole.open(t, token);
      c.ws.send(payload, { binary: Buffer.isBuffer(payload) });
      const closed = await c.closed;
      expect(closed.code).toBe(code);
      expect(closed.reason).toMatch(reason);
    });
  }

  it('closes on a message larger than wsMaxPayloadBytes (1009, Message Too Big)', async () => {
    const c = await TestConsole.open(t, token);
    expect(c.hello().maxPayloadBytes).toBe(1024);
    c.send({ type: 'ping', id: 'x'.repeat(2000) });
    const closed = await c.closed;
    expect(closed.code).toBe(1009);
  });

  it('keeps a console that answers pings, and drops one that does not', async () => {
    const good = await TestConsole.open(t, token);
    const deaf = await TestConsole.open(t, token, { autoPong: false });
    expect(good.hello().pingIntervalMs).toBe(300);
    const closed = await deaf.closed; // terminated after one unanswered ping: no closing handshake
    expect(closed.code).toBe(1006);
    await new Promise((r) => setTimeout(r, 700));
    expect(good.ws.readyState).toBe(good.ws.OPEN);
    await good.close();
  });

  it('closes with 4401 when the user is disabled while connected (the token is checked again at every ping)', async () => {
    expect((await t.api('POST', '/api/users', { username: 'leaver', password: 'leaver-password-1', role: 'operator' })).status).toBe(201);
    const c = await TestConsole.open(t, await t.token('leaver', 'leaver-password-1'));
    t.gw.store.sqlite.prepare('UPDATE users SET disabled_at = ? WHERE username = ?').run(Date.now(), 'leaver');
    const closed = await c.closed;
    expect(closed.code).toBe(4401);
    expect(closed.reason).toMatch(/no longer exists or is disabled/);
  });
});
