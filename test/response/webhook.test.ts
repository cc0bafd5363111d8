// The webhook notifier against a real HTTP server on an ephemeral port.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  createWebhookNotifier, DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verifySignature, type WebhookAttempt,
} from '../../response/notifiers/webhook.js';
import { createResponse } from '../../response/index.js';
import { Bus } from '../../core/bus.js';
import { openStore } from '../../core/db.js';
import { createManualClock } from '../../response/clock.js';
import { buildTree, ingest, log, openHarness, source, sos, tempDir, testConfig, waitFor, type Harness } from './helpers.js';
import { join } from 'node:path';

const SECRET = 'a-webhook-secret-of-some-length';

interface Received {
  path: string;
  headers: IncomingMessage['headers'];
  raw: string;
  body: Record<string, unknown>;
}

/** A receiver whose answer per request is decided by `answer` (status code, or 'hang' to never answer). */
async function receiver(answer: (req: Received, n: number) => number | 'hang' = () => 200) {
  const got: Received[] = [];
  const hanging: ServerResponse[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const r: Received = { path: req.url ?? '', headers: req.headers, raw, body: JSON.parse(raw) as Record<string, unknown> };
      got.push(r);
      const a = answer(r, got.length);
      if (a === 'hang') {
        hanging.push(res);
        return;
      }
      res.statusCode = a;
      res.end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    got,
    url: (path: string) => `http://127.0.0.1:${port}${path}`,
    async close() {
      for (const r of hanging) r.destroy();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

/** A URL on a port that was just freed: connecting to it is refused. */
async function deadUrl(path: string): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise((r) => server.close(r));
  return `http://127.0.0.1:${port}${path}`;
}

describe('webhook notifier', () => {
  const closers: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of closers.splice(0).reverse()) await c();
  });

  it('signs the exact body with HMAC-SHA256 and retries 5xx with exponential back-off', async () => {
    const rx = await receiver((_, n) => (n <= 2 ? 503 : 200));
    closers.push(rx.close);
    const attempts: WebhookAttempt[] = [];
    const wh = createWebhookNotifier({ secret: SECRET, retries: 5, backoffMs: 50, log, onAttempt: (a) => attempts.push(a) });
    closers.push(() => wh.close());
    expect(wh.enqueue({ id: 'd1', url: rx.url('/hook?token=abc'), event: 'incident.opened', body: { hello: 'world' }, allowPrivate: true })).toBe(true);
    await wh.idle();

    expect(rx.got).toHaveLength(3);
    for (const r of rx.got) {
      expect(verifySignature(SECRET, r.raw, r.headers[SIGNATURE_HEADER] as string)).toBe(true);
      expect(verifySignature('another-secret-entirely', r.raw, r.headers[SIGNATURE_HEADER] as string)).toBe(false);
      expect(r.headers['content-type']).toBe('application/json');
      expect(r.headers[DELIVERY_HEADER]).toBe('d1');
      // the timestamp header repeats the signed sentAt, so a receiver can refuse old replays
      expect(Number(r.headers[TIMESTAMP_HEADER])).toBe(r.body.sentAt);
      expect(r.body).toMatchObject({ hello: 'world', deliveryId: 'd1', event: 'incident.opened' });
    }
    expect(rx.got.map((r) => r.body.attempt)).toEqual([1, 2, 3]);
    expect(verifySignature(SECRET, rx.got[0]!.raw + ' ', rx.got[0]!.headers[SIGNATURE_HEADER] as string)).toBe(false);
    expect(attempts.map((a) => [a.attempt, a.ok, a.status, a.final])).toEqual([
      [1, false, 503, false],
      [2, false, 503, false],
      [3, true, 200, true],
    ]);
    // back-off doubles: 50 ms, then 100 ms (plus at most 10 % jitter)
    expect(attempts[0]!.retryInMs).toBeGreaterThanOrEqual(50);
    expect(attempts[0]!.retryInMs).toBeLessThanOrEqual(55);
    expect(attempts[1]!.retryInMs).toBeGreaterThanOrEqual(100);
    expect(attempts[1]!.retryInMs).toBeLessThanOrEqual(110);
    expect(Number(rx.got[2]!.headers[TIMESTAMP_HEADER]) - Number(rx.got[0]!.headers[TIMESTAMP_HEADER])).toBeGreaterThanOrEqual(140);
    expect(wh.stats()).toMatchObject({ sent: 1, failed: 0, queued: 0, inFlight: 0, backingOff: 0 });
  });

  it('gives up after the configured retries on timeouts; a 4xx is not retried; a refused connection is retried', async () => {
    const rx = await receiver((r) => (r.path === '/slow' ? 'hang' : r.path === '/gone' ? 410 : 200));
    closers.push(rx.close);
    const attempts: WebhookAttempt[] = [];
    // 1 s: a loaded machine (the whole suite on 2 cores) has answered the 410 after more than 200 ms, which then
    // counted as a timeout and was retried
    const wh = createWebhookNotifier({ secret: SECRET, retries: 2, backoffMs: 10, timeoutMs: 1000, log, onAttempt: (a) => attempts.push(a) });
    closers.push(() => wh.close());
    wh.enqueue({ id: 'slow', url: rx.url('/slow'), event: 'e', body: {}, allowPrivate: true });
    wh.enqueue({ id: 'gone', url: rx.url('/gone'), event: 'e', body: {}, allowPrivate: true });
    wh.enqueue({ id: 'refused', url: await deadUrl('/nothing-listens'), event: 'e', body: {}, allowPrivate: true });
    await wh.idle();
    const of = (id: string) => attempts.filter((a) => a.delivery.id === id);
    expect(of('slow').map((a) => [a.attempt, a.final])).toEqual([[1, false], [2, false], [3, true]]);
    expect(of('slow').every((a) => /timed out after 1000 ms/.test(a.error ?? ''))).toBe(true);
    expect(of('gone')).toHaveLength(1);
    expect(of('gone')[0]).toMatchObject({ ok: false, status: 410, final: true });
    expect(of('gone')[0]!.error).toMatch(/not retried/);
    expect(of('refused')).toHaveLength(3);
    expect(of('refused')[0]!.error).toMatch(/ECONNREFUSED/);
    expect(wh.stats()).toMatchObject({ sent: 0, failed: 3 });
  });

  it('the queue is bounded: beyond it enqueue refuses at once', async () => {
    const rx = await receiver(() => 'hang');
    closers.push(rx.close);
    const attempts: WebhookAttempt[] = [];
    const wh = createWebhookNotifier({ retries: 0, backoffMs: 10, timeoutMs: 60_000, maxQueue: 2, concurrency: 1, log, onAttempt: (a) => attempts.push(a) });
    expect(wh.enqueue({ id: 'a', url: rx.url('/a'), event: 'e', body: {}, allowPrivate: true })).toBe(true);
    expect(wh.enqueue({ id: 'b', url: rx.url('/b'), event: 'e', body: {}, allowPrivate: true })).toBe(true);
    expect(wh.enqueue({ id: 'c', url: rx.url('/c'), event: 'e', body: {}, allowPrivate: true })).toBe(false);
    expect(wh.stats().dropped).toBe(1);
    await waitFor('the first request to arrive', () => rx.got.length === 1);
    // unsigned without a secret
    expect(rx.got[0]!.headers[SIGNATURE_HEADER]).toBeUndefined();
    await wh.close();
    // closing reports what never went out and aborts what was in flight
    expect(attempts.map((a) => [a.delivery.id, a.final, a.ok]).sort()).toEqual([['a', true, false], ['b', true, false]]);
  });
});

describe('notifications of incidents', () => {
  const closers: (() => Promise<void> | void)[] = [];
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
    for (const c of closers.splice(0).reverse()) await c();
  });

  function addResident(hh: Harness, contacts: unknown[]) {
    hh.store.sqlite
      .prepare('INSERT INTO residents (id, name, address, unit_id, contacts, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)')
      .run('res-1', 'Mrs Zhao', '3 Elm Lane', 'g1', JSON.stringify(contacts), 0, 0);
  }

  it('P1 at open: the grid unit, the configured webhooks and family contacts; escalation: the new tier; every attempt on the timeline', async () => {
    const rx = await receiver((r) => (r.path === '/family-flaky' && r.body.attempt === 1 ? 500 : 200));
    closers.push(rx.close);
    const { dir, cleanup } = tempDir();
    closers.push(cleanup);
    // every target is a channel an admin configured; the receiver is on loopback, so each one allows private addresses
    const ch = (path: string) => ({ url: rx.url(path), allowPrivate: true });
    const config = testConfig({
      budgets: { P1: { ackMs: 60_000 } },
      notifiers: {
        webhookSecret: SECRET, backoffMs: 20, broadcast: ['global'],
        channels: {
          global: ch('/global'), 'unit-g1': ch('/unit/g1'), 'unit-c1': ch('/unit/c1'),
          family: { ...ch('/family'), secret: 'the-family-channel-own-key' }, 'family-flaky': ch('/family-flaky'),
        },
      },
    });
    const store = openStore(join(dir, 'eldergate.db'));
    const bus = new Bus();
    const clock = createManualClock();
    const response = createResponse({ store, bus, config, log, clock });
    h = { dir, file: store.file, store, bus, clock, config, response, seen: [], close: async () => { await response.close(); store.close(); } };
    buildTree(response.network);
    response.network.updateUnit('g1', { webhook: 'unit-g1' });
    response.network.updateUnit('c1', { webhook: 'unit-c1' });
    addResident(h, [
      { name: 'Son', phone: '123', webhook: 'family', recipient: 'fam-user-17' },
      { name: 'Daughter', webhook: 'family-flaky' },
      { name: 'Neighbour', phone: '456' },
    ]);
    response.start();

    const started = performance.now();
    const [o] = ingest(h, sos(), source({ residentId: 'res-1' }, clock.now()));
    // notification never blocks ingest: the alarm is applied before any request is even made
    expect(rx.got).toHaveLength(0);
    expect(performance.now() - started).toBeLessThan(5_000);
    const id = o!.incidentId;
    await response.notifications.idle();

    const paths = rx.got.map((r) => r.path).sort();
    expect(paths).toEqual(['/family', '/family-flaky', '/family-flaky', '/global', '/unit/g1']);
    for (const r of rx.got) {
      // a channel with a secret of its own signs with it; the others with notifiers.webhookSecret
      const key = r.path === '/family' ? 'the-family-channel-own-key' : SECRET;
      expect(verifySignature(key, r.raw, r.headers[SIGNATURE_HEADER] as string)).toBe(true);
      expect(r.body).toMatchObject({ event: 'incident.opened', incident: { id, priority: 'P1', type: 'sos' }, resident: { name: 'Mrs Zhao' } });
    }
    const unitMsg = rx.got.find((r) => r.path === '/unit/g1')!;
    expect(unitMsg.body).toMatchObject({ responsibleUnit: { id: 'g1', tier: 'grid' }, recipient: { kind: 'unit', channel: 'unit-g1', unitId: 'g1' } });
    // the contact's id at the channel's receiver travels in the body
    expect(rx.got.find((r) => r.path === '/family')!.body).toMatchObject({ recipient: { kind: 'contact', name: 'Son', channel: 'family', id: 'fam-user-17' } });

    const timeline = response.incidents.events(id);
    const attempts = timeline.filter((e) => e.type === 'notify-attempt');
    const notified = timeline.filter((e) => e.type === 'notified');
    expect(attempts).toHaveLength(5);
    expect(notified).toHaveLength(4);
    const flaky = attempts.filter((e) => (e.data.recipient as { name: string }).name === 'Daughter');
    expect(flaky.map((e) => [e.data.attempt, e.data.ok, e.data.status])).toEqual([[1, false, 500], [2, true, 200]]);
    expect(flaky[0]!.data.error).toBe('HTTP 500');
    // the timeline names channels, never their URLs
    expect(JSON.stringify(timeline)).not.toMatch(/127\.0\.0\.1|http:/);
    expect(flaky[0]!.data.recipient).toEqual({ kind: 'contact', name: 'Daughter', channel: 'family-flaky' });
    expect(response.incidents.rebuild(id)).toEqual(response.incidents.get(id));

    // the escalation tells the community station (and the global hook), not the family again
    rx.got.length = 0;
    clock.advance(60_000);
    await response.notifications.idle();
    expect(rx.got.map((r) => r.path).sort()).toEqual(['/global', '/unit/c1']);
    expect(rx.got[0]!.body).toMatchObject({ event: 'incident.escalated', escalation: { level: 1, renotify: false } });

    // acknowledged, and nobody on site within the reach budget (P1: 15 min): the unit responsible is told again, not
    // the family
    response.incidents.act(id, { type: 'acknowledge' }, { id: 'u' });
    rx.got.length = 0;
    clock.advance(15 * 60_000);
    await response.notifications.idle();
    expect(rx.got.map((r) => r.path).sort()).toEqual(['/global', '/unit/c1']);
    expect(rx.got.find((r) => r.path === '/unit/c1')!.body).toMatchObject({
      event: 'incident.overdue', overdue: { status: 'acknowledged' }, incident: { id, status: 'acknowledged' }, responsibleUnit: { id: 'c1' },
    });

    // a fire from an alarm receiver's account no device holds: the account is the only clue to the home, and it is told
    rx.got.length = 0;
    ingest(h, sos({ type: 'fire' }), source({ deviceId: 'receiver-1', account: '01:1:1234' }, clock.now()));
    await response.notifications.idle();
    expect(rx.got.find((r) => r.path === '/unit/g1')!.body).toMatchObject({
      event: 'incident.opened', incident: { type: 'fire', deviceId: 'receiver-1', account: '01:1:1234', residentId: null }, resident: null,
    });
  });

  it('P2, test incidents and units without a webhook notify nobody but the configured webhooks; a dead endpoint is recorded', async () => {
    const { dir, cleanup } = tempDir();
    closers.push(cleanup);
    h = openHarness({
      dir,
      config: {
        notifiers: {
          retries: 1, backoffMs: 10,
          channels: { dead: { url: await deadUrl('/dead'), allowPrivate: true }, 'dead-family': { url: await deadUrl('/family'), allowPrivate: true } },
        },
      },
    });
    buildTree(h.response.network);
    h.response.network.updateUnit('g1', { webhook: 'dead' });
    addResident(h, [{ name: 'Son', webhook: 'dead-family' }]);
    const [p2] = ingest(h, sos({ type: 'no-movement', priority: 'P2' }), source({ residentId: 'res-1' }, h.clock.now()));
    const [t] = ingest(h, sos({ test: true }), source({ residentId: 'res-1', deviceId: 't' }, h.clock.now()));
    await h.response.notifications.idle();
    const attempts = h.response.incidents.events(p2!.incidentId).filter((e) => e.type === 'notify-attempt');
    // P2: the unit only (no family), refused twice (one retry), then given up
    expect(attempts.map((e) => [(e.data.recipient as { kind: string }).kind, e.data.attempt, e.data.final])).toEqual([
      ['unit', 1, false],
      ['unit', 2, true],
    ]);
    expect(String(attempts[0]!.data.error)).toMatch(/ECONNREFUSED/);
    expect(h.response.incidents.events(t!.incidentId).map((e) => e.type)).toEqual(['opened']);
  });
  // a repeat more urgent than its card raises it (response/incidents.ts): raised to a P1 it is told as an opened P1 is,
  // unit and family; an incident moved with its resident tells the unit now responsible, not the family again
  it('a card raised to P1 tells its unit and the family; a card moved to another unit tells that unit', async () => {
    const rx = await receiver();
    closers.push(rx.close);
    const { dir, cleanup } = tempDir();
    closers.push(cleanup);
    const ch = (path: string) => ({ url: rx.url(path), allowPrivate: true });
    h = openHarness({ dir, config: { notifiers: { webhookSecret: SECRET, backoffMs: 20, channels: { 'unit-g1': ch('/unit/g1'), 'unit-g3': ch('/unit/g3'), family: ch('/family') } } } });
    buildTree(h.response.network);
    h.response.network.updateUnit('g1', { webhook: 'unit-g1' });
    h.response.network.updateUnit('g3', { webhook: 'unit-g3' });
    addResident(h, [{ name: 'Son', webhook: 'family' }]);
    const [p2] = ingest(h, sos({ type: 'call-request', priority: 'P2' }), source({ residentId: 'res-1' }, h.clock.now()));
    await h.response.notifications.idle();
    expect(rx.got.map((r) => r.path)).toEqual(['/unit/g1']);
    rx.got.length = 0;
    ingest(h, sos({ type: 'call-request', priority: 'P1' }), source({ residentId: 'res-1' }, h.clock.now()));
    await h.response.notifications.idle();
    expect(rx.got.map((r) => r.path).sort()).toEqual(['/family', '/unit/g1']);
    expect(rx.got[0]!.body).toMatchObject({ event: 'incident.raised', raised: { from: 'P2', to: 'P1' }, incident: { id: p2!.incidentId, priority: 'P1' } });
    rx.got.length = 0;
    h.response.incidents.move(p2!.incidentId, { unitId: 'g3', above: ['c2', 's2', 'd1'] }, 'the resident\'s unit was changed');
    await h.response.notifications.idle();
    expect(rx.got.map((r) => r.path)).toEqual(['/unit/g3']);
    expect(rx.got[0]!.body).toMatchObject({ event: 'incident.moved', moved: { fromUnitId: 'g1', toUnitId: 'g3' }, responsibleUnit: { id: 'g3' } });
  });
});
