// Issue 10: the API may not take the main thread from the alarm path (server/plugins/api-admission.ts). Real HTTP
// throughout: the gateway for each user's budget, a bare Fastify server with the same plugin for the turns (a route
// of the test's own shows how many handlers run at once and how long the event loop is held).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Fastify, { type FastifyInstance } from 'fastify';
import rateLimit from '@fastify/rate-limit';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { apiAdmission } from '../../server/plugins/api-admission.js';
import { installErrorHandler } from '../../server/plugins/errors.js';
import { loadConfig } from '../../core/config.js';
import { createMetrics } from '../../core/metrics.js';

describe("each user's budget of API requests (issue 10)", () => {
  let t: TestGateway;
  beforeAll(async () => {
    t = await startTestGateway({ http: { port: 0, host: '127.0.0.1', apiReadsPerUserPerS: 5, apiWritesPerUserPerS: 3 } });
  });
  afterAll(async () => t?.stop());

  it('refuses reads over the budget with 429, held until the second ends; actions and other users are counted apart', async () => {
    const token = await t.token();
    const get = async () => {
      const t0 = performance.now();
      const res = await fetch(`${t.http}/api/units`, { headers: { authorization: `Bearer ${token}` } });
      return { status: res.status, retryAfter: res.headers.get('retry-after'), body: await res.json() as { code?: string; message?: string }, ms: performance.now() - t0 };
    };
    const answers = await Promise.all(Array.from({ length: 8 }, get));
    const ok = answers.filter((a) => a.status === 200);
    const refused = answers.filter((a) => a.status === 429);
    expect(ok.length).toBe(5);
    expect(refused.length).toBe(3);
    for (const r of refused) {
      expect(r.retryAfter).toBe('1');
      expect(r.body.code).toBe('TOO_MANY_REQUESTS');
      expect(r.body.message).toMatch(/more than 5 reads a second from admin: slow down/);
    }
    // held, not answered at once: a script looping on its answers is slowed to its budget
    expect(Math.min(...refused.map((r) => r.ms))).toBeGreaterThan(Math.max(...ok.map((a) => a.ms)));

    // an action by the same user is not refused for its reads (an operator's acknowledgement never waits for her page)
    const device = await t.provision();
    expect(device.id).toBeTruthy();

    // nor is another user
    const created = await t.api('POST', '/api/users', { username: 'budget-op', password: 'a long enough passphrase 42', role: 'operator' }, token);
    expect(created.status).toBe(201);
    const other = await t.token('budget-op', 'a long enough passphrase 42');
    expect((await fetch(`${t.http}/api/incidents?limit=1`, { headers: { authorization: `Bearer ${other}` } })).status).toBe(200);

    // the next second, the first user reads again
    await new Promise((r) => setTimeout(r, 1100));
    expect((await get()).status).toBe(200);
    const metrics = (await t.api('GET', '/metrics')).body as string;
    expect(metrics).toMatch(/eldergate_api_refused_total\{reason="user-reads"\} 3/);
  });

  it('counts actions apart from reads, with their own budget', async () => {
    const token = await t.token();
    const post = () => fetch(`${t.http}/api/devices`, {
      method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ kind: 'call-phone', serial: `BUDGET-${Math.random().toString(36).slice(2, 10)}` }),
    }).then(async (r) => ({ status: r.status, body: await r.json() as { message?: string } }));
    await new Promise((r) => setTimeout(r, 1100));
    const answers = await Promise.all(Array.from({ length: 5 }, post));
    expect(answers.filter((a) => a.status === 201).length).toBe(3);
    const refused = answers.filter((a) => a.status === 429);
    expect(refused.length).toBe(2);
    expect(refused[0]!.body.message).toMatch(/more than 3 requests that change something a second/);
  });
});

describe("each user's rows a second (issue 10)", () => {
  let t: TestGateway;
  beforeAll(async () => {
    t = await startTestGateway({ http: { port: 0, host: '127.0.0.1', apiRowsPerUserPerS: 1000 } });
  });
  afterAll(async () => t?.stop());

  it('paces pages over the budget (answered in order, a second of rows apart), refuses one that would wait over 5 s; a record read is not paced', async () => {
    const token = await t.token();
    const device = await t.provision();
    const t0 = performance.now();
    const page = () => fetch(`${t.http}/api/devices?limit=1000`, { headers: { authorization: `Bearer ${token}` } })
      .then(async (r) => ({ status: r.status, at: performance.now() - t0, body: await r.json() as { message?: string }, retryAfter: r.headers.get('retry-after') }));
    const pages = Array.from({ length: 7 }, page);
    await new Promise((r) => setTimeout(r, 200));
    // meanwhile, a single record: no rows asked, not paced
    const one = await fetch(`${t.http}/api/devices/${device.id}`, { headers: { authorization: `Bearer ${token}` } });
    expect(one.status).toBe(200);
    expect(performance.now() - t0).toBeLessThan(900);
    const answers = await Promise.all(pages);
    const ok = answers.filter((a) => a.status === 200).map((a) => a.at).sort((a, b) => a - b);
    expect(ok).toHaveLength(6);
    // the first at once, then one a second (1,000 rows each at 1,000 rows a second)
    expect(ok[0]!).toBeLessThan(900);
    expect(ok[5]!).toBeGreaterThan(4500);
    const refused = answers.filter((a) => a.status === 429);
    expect(refused).toHaveLength(1);
    expect(refused[0]!.at).toBeLessThan(900);
    expect(refused[0]!.retryAfter).toBe('6');
    expect(refused[0]!.body.message).toMatch(/pages ask for more than 1000 rows a second and this one would wait 6 s: ask for fewer or smaller pages/);
    const metrics = (await t.api('GET', '/metrics')).body as string;
    expect(metrics).toMatch(/eldergate_api_pages_paced_total\{budget="user"\} 5/);
    expect(metrics).toMatch(/eldergate_api_refused_total\{reason="user-rows"\} 1/);
  }, 30_000);
});

describe("all users' rows a second together (issue 10)", () => {
  let t: TestGateway;
  beforeAll(async () => {
    // each user's own budget out of the way: what paces here is the sum
    t = await startTestGateway({ http: { port: 0, host: '127.0.0.1', apiRowsPerS: 1000, apiRowsPerUserPerS: 100_000 } });
  });
  afterAll(async () => t?.stop());

  it("shares the rows out in turn: a script's queued pages delay another user's page by one of them, not all; a page that would wait over 5 s is refused", async () => {
    const admin = await t.token();
    const created = await t.api('POST', '/api/users', { username: 'rows-op', password: 'a long enough passphrase 42', role: 'operator' }, admin);
    expect(created.status).toBe(201);
    const op = await t.token('rows-op', 'a long enough passphrase 42');
    const answered: string[] = [];
    const page = (who: string, token: string) => fetch(`${t.http}/api/incidents?limit=500`, { headers: { authorization: `Bearer ${token}` } })
      .then(async (r) => {
        if (r.status === 200) answered.push(who);
        return { status: r.status, body: await r.json() as { message?: string }, retryAfter: Number(r.headers.get('retry-after')) };
      });
    const paced = async () => Number(/eldergate_api_pages_paced_total\{budget="all"\} (\d+)/.exec((await t.api('GET', '/metrics')).body as string)?.[1] ?? 0);
    // a script: 20 pages of 500 rows at 1,000 rows a second for everyone
    const script = Array.from({ length: 20 }, () => page('admin', admin));
    // (told by the count of pages waiting, not by a clock)
    while (await paced() < 8) await new Promise((r) => setTimeout(r, 20));
    const mine = await page('op', op);
    expect(mine.status).toBe(200);
    const answers = await Promise.all(script);
    const accepted = answers.filter((a) => a.status === 200).length;
    // in one line she would have come after every page of the script; in turn, after one of them
    const after = answered.length - 1 - answered.indexOf('op');
    expect(after, `answered in this order: ${answered.join(' ')}`).toBeGreaterThanOrEqual(accepted / 2);
    const refused = answers.filter((a) => a.status === 429);
    expect(refused.length).toBeGreaterThan(0);
    for (const r of refused) {
      expect(r.retryAfter).toBeGreaterThanOrEqual(6);
      expect(r.body.message).toMatch(/all users' pages together ask for more than 1000 rows a second .*and this one would wait \d+ s: try again then/);
    }
    const metrics = (await t.api('GET', '/metrics')).body as string;
    expect(metrics).toMatch(new RegExp(`eldergate_api_refused_total\\{reason="rows"\\} ${refused.length}`));
  }, 30_000);
});

describe('turns for API requests (issue 10)', () => {
  const apps: FastifyInstance[] = [];
  afterAll(async () => { for (const a of apps) await a.close(); });

  /** the plugin on a bare server; /api/work holds the thread `busyMs` (synchronously) then answers after `waitMs` */
  const serve = async (http: Record<string, number>, countTurns = false) => {
    const config = loadConfig({}, { adminPassword: 'unused-in-this-test-1234', http: { port: 0, host: '127.0.0.1', ...http } });
    const app = Fastify();
    apps.push(app);
    await app.register(rateLimit, { global: false });
    installErrorHandler(app);
    apiAdmission(app, config.http, createMetrics());
    let running = 0;
    // which turn of the event loop each handler's work ran in (countTurns): a count moved on once per turn, in the
    // check phase where setImmediate callbacks run, until the server closes (it keeps the loop from idling meanwhile)
    let turn = 0;
    let ticking = countTurns;
    const tick = () => { turn++; if (ticking) setImmediate(tick); };
    if (countTurns) setImmediate(tick);
    app.addHook('onClose', async () => { ticking = false; });
    const seen = { most: 0, workTurns: [] as number[] };
    let arrived = 0;
    app.addHook('onRequest', async () => { arrived++; });
    app.get<{ Querystring: { busyMs?: string; waitMs?: string; waitsFor?: string } }>('/api/work', async (req) => {
      running++;
      // a request holds its turn until this many requests have arrived, so that the others are there to queue (or be
      // refused) however slowly they come
      if (req.query.waitsFor) {
        while (arrived < Number(req.query.waitsFor)) await new Promise((r) => setTimeout(r, 5));
      }
      seen.most = Math.max(seen.most, running);
      seen.workTurns.push(turn);
      const until = performance.now() + Number(req.query.busyMs ?? 0);
      while (performance.now() < until) { /* a handler's synchronous work */ }
      // (no wait at all when none is asked for: the answer then comes in the same turn of the loop as the work)
      if (req.query.waitMs) await new Promise((r) => setTimeout(r, Number(req.query.waitMs)));
      running--;
      return { ok: true };
    });
    app.post('/api/act', async () => ({ done: true }));
    await app.listen({ port: 0, host: '127.0.0.1' });
    const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
    return { url, seen, app };
  };

  it('handles at most http.apiConcurrency reads at once; the rest wait their turn, beyond http.apiQueue 503', async () => {
    const { url, seen } = await serve({ apiConcurrency: 2, apiQueue: 3 });
    const answers = await Promise.all(Array.from({ length: 8 }, () =>
      fetch(`${url}/api/work?waitsFor=8`).then(async (r) => ({ status: r.status, body: await r.json() as { code?: string; message?: string }, retryAfter: r.headers.get('retry-after') }))));
    expect(seen.most).toBe(2);
    // 2 handled + 3 waiting; the other 3 refused at once, saying what to do
    expect(answers.filter((a) => a.status === 200).length).toBe(5);
    const busy = answers.filter((a) => a.status === 503);
    expect(busy.length).toBe(3);
    expect(busy[0]!.body.code).toBe('BUSY');
    expect(busy[0]!.body.message).toMatch(/try again in a few seconds/);
    expect(busy[0]!.retryAfter).toBe('2');
  });

  it('takes no turn for an action: an acknowledgement never waits behind reads', async () => {
    const { url } = await serve({ apiConcurrency: 1 });
    let readsAnswered = 0;
    // (the first read holds its turn until the action has arrived too, then 400 ms more, as each read after it)
    const reads = Array.from({ length: 4 }, () => fetch(`${url}/api/work?waitsFor=5&waitMs=400`).then((r) => { readsAnswered++; return r.status; }));
    await new Promise((r) => setTimeout(r, 50));
    const act = await fetch(`${url}/api/act`, { method: 'POST' });
    expect(act.status).toBe(200);
    // the reads hold the one turn one after another, 400 ms each: an action waiting for a turn would come after the
    // third of them at least (told by order, not by a clock)
    expect(readsAnswered).toBeLessThanOrEqual(2);
    expect(await Promise.all(reads)).toEqual([200, 200, 200, 200]);
  });

  it('starts each request in a turn of the event loop of its own: the loop is held for one request, never a chain', async () => {
    const { url, seen, app } = await serve({ apiConcurrency: 1 }, true);
    // the first holds the turn while the others queue; then each answer hands the turn on inside the turn of the loop
    // that ended the last, and without a turn of its own each, the next one's work ran there too (5 × 40 ms held the
    // loop 200 ms at once). Told apart by which turn each one's work ran in, not by a clock: no two in the same one.
    const answers = await Promise.all(Array.from({ length: 6 }, () => fetch(`${url}/api/work?busyMs=5&waitsFor=6`).then((r) => r.status)));
    expect(answers.every((s) => s === 200)).toBe(true);
    expect(seen.workTurns).toHaveLength(6);
    // (closed now: its count of turns keeps the loop from idling while it is up)
    await app.close();
    expect(new Set(seen.workTurns).size, `the turns of the loop the requests' work ran in: ${seen.workTurns.join(', ')}`).toBe(6);
  });
});
