// Issue 14, accounts: login throttling per (account, address) and per account without locking the real operator
// out; the password policy; logout, password change and reset, disable and role/unit change revoking tokens at once
// (API, renewal and open WebSockets); the exact token format; /metrics and /docs/json behind a setting.
// A real gateway (real HTTP, real WebSocket, real SQLite with the migrations); attackers come from other addresses of
// 127.0.0.0/8 (a client socket bound to 127.0.0.N).
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../core/config.js';
import { ConfigError } from '../../core/errors.js';
import { createLogger } from '../../core/logger.js';
import { startEldergate } from '../../eldergate.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { TestConsole } from '../ws/helpers.js';

interface Answer { status: number; headers: Record<string, string | string[] | undefined>; body: any }

/** One HTTP request from a chosen local address (127.0.0.N), so the gateway sees distinct clients. */
function call(t: TestGateway, method: string, path: string, opts: { body?: unknown; token?: string; from?: string } = {}): Promise<Answer> {
  const url = new URL(t.http + path);
  const payload = opts.body === undefined ? undefined : JSON.stringify(opts.body);
  return new Promise((resolve, reject) => {
    const req = request({
      host: url.hostname, port: url.port, path: url.pathname, method, localAddress: opts.from ?? '127.0.0.1', agent: false,
      headers: {
        ...(payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}),
        ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}),
      },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { text += c; });
      res.on('end', () => {
        let body: unknown = text;
        try { body = JSON.parse(text); } catch { /* text */ }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
      });
    });
    req.on('error', reject);
    req.end(payload);
  });
}

const login = (t: TestGateway, username: string, password: string, from?: string) =>
  call(t, 'POST', '/api/auth/login', { body: { username, password }, from });

describe('login throttling (issue 14)', () => {
  let t: TestGateway;
  const PW = 'night-shift-lantern-42';

  beforeAll(async () => {
    t = await startTestGateway({
      http: { port: 0, host: '127.0.0.1', wsPingIntervalMs: 300 },
      auth: { loginFailuresPerAccountAddress: 3, loginFailuresPerAccount: 6, loginAttemptsPerAddress: 25, loginFailureWindowS: 600 },
    });
    for (const username of ['nina', 'omar', 'paula']) {
      expect((await t.api('POST', '/api/users', { username, password: PW, role: 'operator' })).status).toBe(201);
    }
  });
  afterAll(async () => t?.stop());

  it('refuses an (account, address) after its failures with 429 and Retry-After; the same account from another address still logs in', async () => {
    for (let i = 0; i < 3; i++) expect((await login(t, 'nina', 'wrong-guess-' + i, '127.0.0.2')).status).toBe(401);
    const refused = await login(t, 'nina', 'wrong-guess-x', '127.0.0.2');
    expect(refused.status).toBe(429);
    expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);
    expect(Number(refused.headers['retry-after'])).toBeLessThanOrEqual(600);
    expect(refused.body.code).toBe('TOO_MANY_REQUESTS');
    expect(refused.body.message).toMatch(/too many failed logins for this account from this address: wait \d+/);
    // even the right password waits at that address: the guessing loop gains nothing
    expect((await login(t, 'nina', PW, '127.0.0.2')).status).toBe(429);
    // the operator at her own console is not locked out by it
    expect((await login(t, 'nina', PW, '127.0.0.3')).status).toBe(200);
  });

  it('an attacker rotating addresses against one account is stopped; the operator from an address she used before still logs in', async () => {
    // the operator logged in from her console before the attack
    const before = await login(t, 'omar', PW, '127.0.1.1');
    expect(before.status).toBe(200);
    // the attack: one or two guesses from each of many addresses (under the per-pair limit every time)
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++) statuses.push((await login(t, 'omar', 'guess-' + i, `127.0.2.${10 + i}`)).status);
    expect(statuses.slice(0, 6).every((s) => s === 401)).toBe(true);
    expect(statuses.slice(6).every((s) => s === 429)).toBe(true);
    const fresh = await login(t, 'omar', PW, '127.0.2.200');
    expect(fresh.status).toBe(429);
    expect(fresh.body.message).toMatch(/from many addresses/);
    expect(Number(fresh.headers['retry-after'])).toBeGreaterThan(0);
    // 3 a.m.: the real operator, from the console she used before, is let in while the attack goes on
    const operator = await login(t, 'omar', PW, '127.0.1.1');
    expect(operator.status).toBe(200);
    // another account is not affected by omar's attack
    expect((await login(t, 'paula', PW, '127.0.2.201')).status).toBe(200);
  });

  it('one address spraying many accounts is stopped before any password is hashed; other addresses are not', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 30; i++) statuses.push((await login(t, `nobody${i}`, 'x', '127.0.3.1')).status);
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThanOrEqual(5);
    const last = await login(t, 'paula', PW, '127.0.3.1');
    expect(last.status).toBe(429);
    expect(last.body.message).toMatch(/from this address/);
    expect(Number(last.headers['retry-after'])).toBeGreaterThan(0);
    expect((await login(t, 'paula', PW, '127.0.3.2')).status).toBe(200);
  });

  it('never throttles session renewal, the API or the WebSocket from a throttled address', async () => {
    const token = (await login(t, 'paula', PW, '127.0.4.1')).body.token as string;
    for (let i = 0; i < 30; i++) await login(t, 'nobody', 'x', '127.0.4.1');
    expect((await login(t, 'paula', PW, '127.0.4.1')).status).toBe(429);
    for (let i = 0; i < 40; i++) {
      expect((await call(t, 'POST', '/api/auth/renew', { token, from: '127.0.4.1' })).status).toBe(200);
    }
    expect((await call(t, 'GET', '/api/auth/me', { token, from: '127.0.4.1' })).status).toBe(200);
    const c = await TestConsole.open(t, token, { localAddress: '127.0.4.1' });
    await c.close();
  });
});

describe('password policy (issue 14)', () => {
  let t: TestGateway;
  beforeAll(async () => { t = await startTestGateway(); });
  afterAll(async () => t?.stop());

  const weak: [string, string, RegExp][] = [
    ['aaaaaaaaaaaaaaaa', 'all one character', /one character repeated/],
    ['abcabcabcabcabc', 'a short pattern repeated', /short pattern/],
    ['1234567890123', 'a run of digits', /run of the alphabet/],
    ['qwertyuiopqwerty', 'a keyboard row', /run of the alphabet|short pattern|common/],
    ['carlos.mendes', 'the username', /username/],
    ['Carlos.Mendes1!', 'the username plus a few characters', /username/],
    ['short-one', 'too short', /at least 12 characters|fewer than 12 characters/],
    ['passwordpassword', 'a common password', /common|short pattern/],
    ['1qaz2wsx3edc', 'a common keyboard walk', /common|run/],
    ['qazwsxedc123', 'on the breached list', /common passwords/],
  ];

  it('refuses trivially weak passwords on user creation with a 400 saying why and what to do', async () => {
    for (const [password, what, why] of weak) {
      const r = await t.api('POST', '/api/users', { username: 'carlos.mendes', password, role: 'operator' });
      expect(r.status, what).toBe(400);
      expect(r.body.message, what).toMatch(why);
      if (password.length >= 12) expect(r.body.message, what).toMatch(/choose a passphrase/);
    }
    expect((await t.api('POST', '/api/users', { username: 'carlos.mendes', password: 'harbour-violet-tram-9', role: 'operator' })).status).toBe(201);
  });

  it('refuses them on a password change and an admin reset too', async () => {
    const me = await t.api('POST', '/api/users', { username: 'dina', password: 'granite-owl-meadow-3', role: 'operator' });
    const token = await t.token('dina', 'granite-owl-meadow-3');
    const change = await call(t, 'POST', '/api/auth/password', { token, body: { oldPassword: 'granite-owl-meadow-3', newPassword: 'dinadinadina' } });
    expect(change.status).toBe(400);
    expect(change.body.message).toMatch(/newPassword refused/);
    const reset = await t.api('POST', `/api/users/${me.body.id}/reset-password`, { password: 'zzzzzzzzzzzzzzzz' });
    expect(reset.status).toBe(400);
    expect(reset.body.message).toMatch(/one character repeated/);
  });

  it('refuses a weak ELDERGATE_ADMIN_PASSWORD at first start with an error naming the variable', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'eldergate-weak-admin-'));
    try {
      const config = loadConfig({ ELDERGATE_ADMIN_PASSWORD: 'admin1234567' }, {
        dataDir: dir, logLevel: 'silent', mqtt: { port: 0, host: '127.0.0.1' }, http: { port: 0, host: '127.0.0.1' },
      });
      const err = await startEldergate({ config, log: createLogger('silent') }).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as Error).message).toMatch(/ELDERGATE_ADMIN_PASSWORD/);
      expect((err as Error).message).toMatch(/username|common/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
      rmSync(`${dir}-keys`, { recursive: true, force: true });
    }
  });
});

describe('sessions end at once (issue 14)', () => {
  let t: TestGateway;
  const PW = 'copper-kettle-harbour-7';
  let ids: Record<string, string>;

  beforeAll(async () => {
    t = await startTestGateway({ http: { port: 0, host: '127.0.0.1', wsPingIntervalMs: 300 } });
    ids = {};
    expect((await t.api('POST', '/api/units', { id: 'd1', name: 'District centre', tier: 'district' })).status).toBe(201);
    for (const username of ['eva', 'finn', 'gus', 'hana', 'ivo', 'jon']) {
      const r = await t.api('POST', '/api/users', { username, password: PW, role: 'operator' });
      expect(r.status).toBe(201);
      ids[username] = r.body.id;
    }
  });
  afterAll(async () => t?.stop());

  const ended = async (token: string) => {
    const me = await call(t, 'GET', '/api/auth/me', { token });
    const renew = await call(t, 'POST', '/api/auth/renew', { token });
    return me.status === 401 && renew.status === 401 && /log in again|no longer exists or is disabled/.test(me.body.message);
  };

  it('logout ends every token of the user, on the API, the renewal and an open WebSocket', async () => {
    const a = await t.token('eva', PW);
    const b = await t.token('eva', PW); // a second console of hers
    const ws = await TestConsole.open(t, b);
    expect((await call(t, 'POST', '/api/auth/logout', { token: a })).status).toBe(204);
    expect(await ended(a)).toBe(true);
    expect(await ended(b)).toBe(true);
    const closed = await Promise.race([ws.closed, new Promise<null>((r) => setTimeout(() => r(null), 10_000))]);
    expect(closed?.code).toBe(4401);
    // she logs in again and carries on
    expect((await call(t, 'GET', '/api/auth/me', { token: await t.token('eva', PW) })).status).toBe(200);
  });

  it('a password change needs the old password, ends the other sessions and returns a new one', async () => {
    const other = await t.token('finn', PW);
    const mine = await t.token('finn', PW);
    const wrong = await call(t, 'POST', '/api/auth/password', { token: mine, body: { oldPassword: 'not-my-password-1', newPassword: 'lichen-signal-brook-5' } });
    expect(wrong.status).toBe(400);
    expect(wrong.body.message).toMatch(/oldPassword/);
    const r = await call(t, 'POST', '/api/auth/password', { token: mine, body: { oldPassword: PW, newPassword: 'lichen-signal-brook-5' } });
    expect(r.status).toBe(200);
    expect(await ended(other)).toBe(true);
    expect(await ended(mine)).toBe(true);
    expect((await call(t, 'GET', '/api/auth/me', { token: r.body.token })).status).toBe(200);
    expect((await login(t, 'finn', 'lichen-signal-brook-5')).status).toBe(200);
    expect((await login(t, 'finn', PW)).status).toBe(401);
  });

  it("an admin's password reset ends the user's sessions", async () => {
    const token = await t.token('gus', PW);
    const r = await t.api('POST', `/api/users/${ids.gus}/reset-password`, { password: 'amber-tide-falcon-2' });
    expect(r.status).toBe(200);
    expect(await ended(token)).toBe(true);
    expect((await login(t, 'gus', 'amber-tide-falcon-2')).status).toBe(200);
  });

  it('disabling, a role change and a unit change end the sessions; a display name does not', async () => {
    const h = await t.token('hana', PW);
    expect((await t.api('PATCH', `/api/users/${ids.hana}`, { displayName: 'Hana K.' })).status).toBe(200);
    expect((await call(t, 'GET', '/api/auth/me', { token: h })).status).toBe(200);
    const role = await t.api('PATCH', `/api/users/${ids.hana}`, { role: 'technician' });
    expect(role.status).toBe(200);
    expect(role.body).toMatchObject({ role: 'technician', displayName: 'Hana K.', disabled: false });
    expect(await ended(h)).toBe(true);

    const i = await t.token('ivo', PW);
    expect((await t.api('PATCH', `/api/users/${ids.ivo}`, { unitId: 'd1' })).body.unitId).toBe('d1');
    expect(await ended(i)).toBe(true);

    const j = await t.token('jon', PW);
    const ws = await TestConsole.open(t, j);
    expect((await t.api('PATCH', `/api/users/${ids.jon}`, { disabled: true })).body.disabled).toBe(true);
    expect(await ended(j)).toBe(true);
    expect((await Promise.race([ws.closed, new Promise<null>((r) => setTimeout(() => r(null), 10_000))]))?.code).toBe(4401);
    expect((await login(t, 'jon', PW)).status).toBe(401);
    expect((await t.api('PATCH', `/api/users/${ids.jon}`, { disabled: false })).status).toBe(200);
    expect((await login(t, 'jon', PW)).status).toBe(200);
  });

  it('every user change is in the audit log, who and from where, never a password', async () => {
    const entries = (await t.api('GET', '/api/audit?action=user.&limit=1000')).body.items as { action: string; targetId: string; actor: string; ip: string; details: Record<string, unknown> }[];
    const of = (id: string) => entries.filter((e) => e.targetId === id).map((e) => e.action);
    expect(of(ids.eva!)).toEqual(expect.arrayContaining(['user.create', 'user.logout']));
    expect(of(ids.finn!)).toContain('user.password-change');
    expect(of(ids.gus!)).toContain('user.password-reset');
    expect(of(ids.hana!)).toEqual(expect.arrayContaining(['user.update']));
    expect(of(ids.jon!)).toEqual(expect.arrayContaining(['user.disable', 'user.enable']));
    const role = entries.find((e) => e.targetId === ids.hana && e.details.after && 'role' in (e.details.after as object));
    expect(role).toMatchObject({ actor: 'admin', ip: expect.stringMatching(/127\.0\.0\.1/), details: { before: { role: 'operator' }, after: { role: 'technician' }, sessionsRevoked: true } });
    expect(JSON.stringify(entries)).not.toMatch(/copper-kettle|lichen-signal|amber-tide|scrypt\$/);
  });

  it('refuses an empty or unknown unit, an unknown user, a non-admin, and leaving no enabled admin', async () => {
    const empty = await t.api('PATCH', `/api/users/${ids.ivo}`, { unitId: '' });
    expect(empty.status).toBe(400);
    expect(empty.body.message).toMatch(/unitId.*null/);
    expect((await t.api('PATCH', `/api/users/${ids.ivo}`, { unitId: 'nowhere' })).status).toBe(400);
    expect((await t.api('PATCH', '/api/users/u-none', { disabled: true })).status).toBe(404);
    const op = await t.token('eva', PW);
    expect((await call(t, 'PATCH', `/api/users/${ids.ivo}`, { token: op, body: { role: 'admin' } })).status).toBe(403);
    const admin = (await t.api('GET', '/api/auth/me')).body;
    const last = await t.api('PATCH', `/api/users/${admin.id}`, { disabled: true });
    expect(last.status).toBe(409);
    expect(last.body.message).toMatch(/last enabled admin/);
    expect((await t.api('GET', '/api/users')).body.items.find((u: { id: string }) => u.id === admin.id).disabled).toBe(false);
  });
});

describe('token format and the public documents (issue 14)', () => {
  let t: TestGateway;
  beforeAll(async () => { t = await startTestGateway(); });
  afterAll(async () => t?.stop());

  it('refuses a valid token with anything appended: an extra ".x" segment, padding, a trailing dot', async () => {
    const token = await t.token();
    expect((await call(t, 'GET', '/api/auth/me', { token })).status).toBe(200);
    for (const bad of [`${token}.x`, `${token}.`, `${token}=`, `x.${token}`, token.replace('.', '..')]) {
      const r = await call(t, 'GET', '/api/auth/me', { token: bad });
      expect(r.status, bad.slice(-12)).toBe(401);
      expect(r.body.message).toMatch(/malformed token|signature/);
    }
  });

  it('by default /docs/json needs an admin and /metrics is public', async () => {
    expect((await call(t, 'GET', '/docs/json')).status).toBe(401);
    expect((await t.api('POST', '/api/users', { username: 'kim', password: 'willow-radar-basin-8', role: 'operator' })).status).toBe(201);
    expect((await call(t, 'GET', '/docs/json', { token: await t.token('kim', 'willow-radar-basin-8') })).status).toBe(403);
    const doc = await call(t, 'GET', '/docs/json', { token: await t.token() });
    expect(doc.status).toBe(200);
    expect(doc.body.openapi).toMatch(/^3/);
    const m = await call(t, 'GET', '/metrics');
    expect(m.status).toBe(200);
    expect(m.body).toMatch(/eldergate_/);
  });

  it('metricsPublic false: /metrics needs an admin or the scrape token; docsPublic true opens /docs/json', async () => {
    const scrape = 'scrape-' + 'k'.repeat(40);
    const g = await startTestGateway({ http: { port: 0, host: '127.0.0.1', metricsPublic: false, metricsToken: scrape, docsPublic: true } });
    try {
      const anon = await call(g, 'GET', '/metrics');
      expect(anon.status).toBe(401);
      expect(anon.body.message).toMatch(/metricsPublic/);
      expect((await call(g, 'GET', '/metrics', { token: 'not-the-scrape-token-at-all-0000000000' })).status).toBe(401);
      expect((await call(g, 'GET', '/metrics', { token: scrape })).status).toBe(200);
      expect((await call(g, 'GET', '/metrics', { token: await g.token() })).status).toBe(200);
      expect((await call(g, 'GET', '/docs/json')).status).toBe(200);
    } finally {
      await g.stop();
    }
  });
});
