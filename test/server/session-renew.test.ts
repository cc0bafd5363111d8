// POST /api/auth/renew: a valid token gets a new one with a fresh expiry (sliding renewal for a console in use);
// an expired token, or the token of a disabled user, gets 401 with the reason — renewal never outlives either.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { buildNetwork, expiredToken, login, type Network } from '../ws/helpers.js';

describe('POST /api/auth/renew', () => {
  let t: TestGateway;
  let n: Network;
  beforeAll(async () => {
    t = await startTestGateway();
    n = await buildNetwork(t);
  }, 30_000);
  afterAll(async () => t?.stop());

  it('renews a valid token: a new token, a later expiry, the same user', async () => {
    const token = await login(t, n, n.users.operator);
    await new Promise((r) => setTimeout(r, 5));
    const r = await t.api('POST', '/api/auth/renew', {}, token);
    expect(r.status).toBe(200);
    expect(r.body.token).not.toBe(token);
    expect(r.body.expiresAt).toBeGreaterThan(Date.now() + t.gw.config.http.tokenTtlS * 1000 - 5000);
    expect(r.body.ttlMs).toBe(t.gw.config.http.tokenTtlS * 1000);
    expect(r.body.user.username).toBe(n.users.operator);
    const me = await t.api('GET', '/api/auth/me', undefined, r.body.token);
    expect(me.status).toBe(200);
  });

  it('refuses an expired token and a disabled user, saying why', async () => {
    const me = await t.api('GET', '/api/auth/me', undefined, await login(t, n, n.users.technician));
    const expired = await t.api('POST', '/api/auth/renew', {}, expiredToken(t, me.body.id));
    expect(expired.status).toBe(401);
    expect(expired.body.message).toMatch(/expired: log in again/);
    const token = await login(t, n, n.users.stewardB);
    t.gw.store.sqlite.prepare('UPDATE users SET disabled_at = ? WHERE username = ?').run(Date.now(), n.users.stewardB);
    const disabled = await t.api('POST', '/api/auth/renew', {}, token);
    expect(disabled.status).toBe(401);
    expect(disabled.body.message).toMatch(/disabled/);
  });
});
