// Who may open /ws: decided before the upgrade, so a refused client never holds a socket.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { TestConsole, expectRefused, expiredToken } from './helpers.js';

describe('WebSocket /ws authentication and origin', () => {
  let t: TestGateway;
  let token: string;
  let adminId: string;

  beforeAll(async () => {
    t = await startTestGateway({
      http: { port: 0, host: '127.0.0.1', allowedOrigins: ['https://wall.example.org'] },
    });
    token = await t.token();
    adminId = (await t.api('GET', '/api/auth/me')).body.id;
  });
  afterAll(async () => t?.stop());

  it('refuses a client without a token with 401 before the upgrade, saying how to authenticate', async () => {
    const r = await expectRefused(t, {});
    expect(r.status).toBe(401);
    const body = JSON.parse(r.body);
    expect(body.code).toBe('UNAUTHORIZED');
    expect(body.message).toMatch(/Bearer/);
    expect(body.message).toMatch(/eldergate\.bearer\./);
  });

  it('refuses a forged token (signature changed) with 401', async () => {
    const [body, sig] = token.split('.');
    const forged = `${body}.${sig!.slice(0, -2)}${sig!.endsWith('A') ? 'BB' : 'AA'}`;
    const r = await expectRefused(t, { headers: { authorization: `Bearer ${forged}` } });
    expect(r.status).toBe(401);
    expect(JSON.parse(r.body).message).toMatch(/signature/);
  });

  it('refuses a token made for someone else (claims edited, old signature) with 401', async () => {
    const [, sig] = token.split('.');
    const claims = Buffer.from(JSON.stringify({ sub: adminId, exp: Date.now() + 10 * 3600_000 * 24 })).toString('base64url');
    const r = await expectRefused(t, { headers: { authorization: `Bearer ${claims}.${sig}` } });
    expect(r.status).toBe(401);
  });

  it('refuses an expired token with 401 (also through the subprotocol)', async () => {
    const old = expiredToken(t, adminId);
    const r1 = await expectRefused(t, { headers: { authorization: `Bearer ${old}` } });
    expect(r1.status).toBe(401);
    expect(JSON.parse(r1.body).message).toMatch(/expired/);
    const r2 = await expectRefused(t, { protocols: ['eldergate.v1', `eldergate.bearer.${old}`] });
    expect(r2.status).toBe(401);
  });

  it('accepts the token as a subprotocol (a browser) and answers with eldergate.v1 only, never echoing the token', async () => {
    const c = await TestConsole.open(t, token, { protocols: ['eldergate.v1', `eldergate.bearer.${token}`] });
    expect(c.ws.protocol).toBe('eldergate.v1');
    expect(c.hello()).toMatchObject({ type: 'hello', protocol: 'eldergate.v1', user: { username: 'admin', role: 'admin' } });
    await c.close();
  });

  it('checks the Origin: a foreign page is refused with 403; our own origin and allowedOrigins pass; no Origin (a program) passes', async () => {
    const evil = await expectRefused(t, { headers: { authorization: `Bearer ${token}` }, origin: 'https://evil.example.com' });
    expect(evil.status).toBe(403);
    expect(JSON.parse(evil.body).message).toMatch(/allowedOrigins/);
    const nullOrigin = await expectRefused(t, { headers: { authorization: `Bearer ${token}` }, origin: 'null' });
    expect(nullOrigin.status).toBe(403);

    const own = await TestConsole.open(t, token, { origin: `http://127.0.0.1:${t.gw.httpPort}` });
    await own.close();
    const listed = await TestConsole.open(t, token, { origin: 'https://wall.example.org' });
    await listed.close();
    const program = await TestConsole.open(t, token);
    await program.close();
  });

  it('answers a plain GET /ws with 426 and where to read about it', async () => {
    const r = await fetch(`${t.http}/ws`, { headers: { authorization: `Bearer ${token}` } });
    expect(r.status).toBe(426);
    expect((await r.json()).message).toMatch(/websocket\.md/);
  });
});
