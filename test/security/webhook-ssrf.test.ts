// Issue 14, SSRF through contact webhooks: an operator could make the gateway POST incident JSON to any URL
// (internal addresses, cloud metadata) and read the answer on the timeline. Notifications now go only to channels
// an admin configured, every address is checked before a connection is made, redirects are not followed and only
// a status and a short reason reach the timeline.
//
// No packet of these tests leaves 127.0.0.0/8: refused targets are judged by the validation function or by a
// notifier whose DNS (`resolve`) and connector are spies; a safety-net global dispatcher refuses any connection
// outside 127.0.0.1 that would bypass them (on an older notifier that used the global fetch, for one).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { join } from 'node:path';
import { Agent, buildConnector, getGlobalDispatcher, setGlobalDispatcher, type Dispatcher } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createWebhookNotifier, type WebhookAttempt } from '../../response/notifiers/webhook.js';
import { createResponse } from '../../response/index.js';
import { Bus } from '../../core/bus.js';
import { openStore } from '../../core/db.js';
import { createLogger } from '../../core/logger.js';
import { createManualClock } from '../../response/clock.js';
import { buildTree, ingest, log, source, sos, tempDir, testConfig } from '../response/helpers.js';
import { publishAsync, startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';

/** A connector that records every connection asked for and makes one only to 127.0.0.1. */
function spyConnector() {
  const asked: { hostname: string; port: string }[] = [];
  const real = buildConnector({});
  const connect: buildConnector.connector = (opts, cb) => {
    asked.push({ hostname: opts.hostname, port: opts.port });
    if (opts.hostname === '127.0.0.1') return real(opts, cb);
    cb(new Error(`test safety net: no connection to ${opts.hostname}`), null);
  };
  return { asked, agent: new Agent({ connect }) };
}

/** DNS spy: answers from a table, records every name asked; nothing goes to a resolver. */
function spyResolve(table: Record<string, string[] | ((n: number) => string[])>) {
  const asked: string[] = [];
  const resolve = async (hostname: string) => {
    asked.push(hostname);
    const entry = table[hostname];
    if (!entry) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
    const list = typeof entry === 'function' ? entry(asked.filter((h) => h === hostname).length) : entry;
    return list.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };
  return { asked, resolve };
}

interface Got { path: string; body: string }
async function receiver(answer: (req: IncomingMessage, res: ServerResponse) => void = (_q, r) => r.end('ok')) {
  const got: Got[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      got.push({ path: req.url ?? '', body: Buffer.concat(chunks).toString('utf8') });
      answer(req, res);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    got, port, url: (p: string) => `http://127.0.0.1:${port}${p}`,
    close: async () => { server.closeAllConnections(); await new Promise((r) => server.close(r)); },
  };
}

let previousDispatcher: Dispatcher;
const safetyNet = spyConnector();
beforeAll(() => {
  previousDispatcher = getGlobalDispatcher();
  setGlobalDispatcher(safetyNet.agent);
});
afterAll(async () => {
  setGlobalDispatcher(previousDispatcher);
  await safetyNet.agent.close();
  // whatever happened above, nothing tried to reach beyond loopback through the global dispatcher
  expect(safetyNet.asked.filter((a) => a.hostname !== '127.0.0.1')).toEqual([]);
});

describe('the address check (validation only, no traffic)', () => {
  it('refuses loopback, private, link-local/metadata, CGNAT, unspecified and translated addresses; allowPrivate opens only the private ones', async () => {
    const { addressRefusal, checkTarget } = await import('../../response/notifiers/address-guard.js');
    const strict = { allowPrivate: false };
    const lenient = { allowPrivate: true };
    for (const a of ['169.254.169.254', '10.0.0.1', '192.168.1.1', '172.16.0.1', '127.0.0.1', '127.8.9.10', '::1', 'fd00:ec2::254',
      '::ffff:10.0.0.1', '::ffff:169.254.169.254', '100.100.100.200', '0.0.0.0', '::', 'fe80::1', '64:ff9b::a9fe:a9fe', '2002:a9fe:a9fe::1',
      '224.0.0.1', '255.255.255.255', '192.0.2.1']) {
      expect(addressRefusal(a, strict), a).not.toBeNull();
    }
    expect(addressRefusal('169.254.169.254', strict)).toMatch(/link-local .*metadata/);
    expect(addressRefusal('10.0.0.1', strict)).toMatch(/private .*allowPrivate/);
    // an admin's allowPrivate opens loopback and private ranges, never metadata, unspecified or multicast
    for (const a of ['127.0.0.1', '10.0.0.1', '192.168.1.1', 'fd00::1', '::1']) expect(addressRefusal(a, lenient), a).toBeNull();
    for (const a of ['169.254.169.254', '::ffff:169.254.169.254', 'fe80::1', '0.0.0.0', '224.0.0.1']) expect(addressRefusal(a, lenient), a).not.toBeNull();
    // public unicast passes
    expect(addressRefusal('93.184.215.14', strict)).toBeNull();
    expect(addressRefusal('2606:4700::1111', strict)).toBeNull();

    const dns = spyResolve({ 'mixed.example': ['93.184.215.14', '10.1.2.3'], 'public.example': ['93.184.215.14'] });
    // one private answer among public ones refuses the host
    expect(await checkTarget('https://mixed.example/hook', strict, dns.resolve)).toMatchObject({ ok: false, reason: expect.stringMatching(/mixed\.example resolves to 10\.1\.2\.3/) });
    expect(await checkTarget('https://public.example/hook', strict, dns.resolve)).toMatchObject({ ok: true, addresses: ['93.184.215.14'] });
    // literals are judged without DNS; IPv6 literals without their brackets; credentials in a URL are refused
    expect(await checkTarget('http://[::ffff:a9fe:a9fe]/latest', strict, dns.resolve)).toMatchObject({ ok: false });
    expect(await checkTarget('http://169.254.169.254/latest/meta-data/', lenient, dns.resolve)).toMatchObject({ ok: false });
    expect(await checkTarget('https://user:pw@public.example/', strict, dns.resolve)).toMatchObject({ ok: false, reason: expect.stringMatching(/credentials/) });
    expect(await checkTarget('ftp://public.example/', strict, dns.resolve)).toMatchObject({ ok: false });
    expect(dns.asked).toEqual(['mixed.example', 'public.example']);
  });
});

describe('channels in the configuration', () => {
  it('names, URLs, secretEnv and broadcast are checked at start-up, every problem at once; secretEnv fills the key', async () => {
    const { loadConfig } = await import('../../core/config.js');
    const ok = loadConfig({ FAMILY_APP_KEY: 'k'.repeat(24), ELDERGATE_NOTIFIERS_CHANNELS: JSON.stringify({ 'family-app': { url: 'https://family.example/hook', secretEnv: 'FAMILY_APP_KEY' } }) }, { notifiers: { broadcast: ['family-app'] } });
    expect(ok.notifiers.channels['family-app']).toMatchObject({ secret: 'k'.repeat(24), url: 'https://family.example/hook' });
    let message = '';
    try {
      loadConfig({}, { notifiers: { broadcast: ['ghost'], channels: { 'Bad Name': { url: 'https://a.example/' }, nourl: { url: 'file:///etc/passwd' }, nokey: { url: 'https://b.example/', secretEnv: 'NOT_SET_ANYWHERE' } } } });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/Bad Name/);
    expect(message).toMatch(/nourl\/url/);
    expect(message).toMatch(/NOT_SET_ANYWHERE is not set/);
    expect(message).toMatch(/"ghost" is not a channel/);
    expect(message).not.toMatch(/kkkk/);
  });
});

describe('the webhook notifier refuses before connecting', () => {
  const closers: (() => Promise<unknown> | void)[] = [];
  afterEach(async () => {
    for (const c of closers.splice(0).reverse()) await c();
  });

  it('metadata, private and rebinding-prone targets: refused with the reason, not retried, no connection asked for', async () => {
    const spy = spyConnector();
    closers.push(() => spy.agent.close());
    const dns = spyResolve({ 'intranet.example': ['10.0.0.1'], 'mixed.example': ['93.184.215.14', '10.0.0.5'] });
    const attempts: WebhookAttempt[] = [];
    const wh = createWebhookNotifier({
      retries: 3, backoffMs: 10, log, onAttempt: (a) => attempts.push(a), resolve: dns.resolve, dispatcher: spy.agent,
    } as Parameters<typeof createWebhookNotifier>[0]);
    closers.push(() => wh.close());
    wh.enqueue({ id: 'metadata', url: 'http://169.254.169.254/latest/meta-data/iam/security-credentials/', event: 'e', body: {} });
    wh.enqueue({ id: 'metadata-allowed', url: 'http://169.254.169.254/latest/', event: 'e', body: {}, allowPrivate: true });
    wh.enqueue({ id: 'intranet', url: 'http://intranet.example/admin', event: 'e', body: {} });
    wh.enqueue({ id: 'ten', url: 'http://10.0.0.1:8080/', event: 'e', body: {} });
    wh.enqueue({ id: 'mixed', url: 'https://mixed.example/hook', event: 'e', body: {} });
    await wh.idle();

    const of = (id: string) => attempts.filter((a) => a.delivery.id === id);
    for (const id of ['metadata', 'metadata-allowed', 'intranet', 'ten', 'mixed']) {
      // one attempt, final: a refused target is a configuration error, not a network hiccup
      expect(of(id).map((a) => [a.attempt, a.ok, a.final]), id).toEqual([[1, false, true]]);
      expect(of(id)[0]!.error, id).toMatch(/^refused: /);
    }
    expect(of('metadata')[0]!.error).toMatch(/169\.254\.169\.254 is a link-local address/);
    expect(of('intranet')[0]!.error).toMatch(/intranet\.example resolves to 10\.0\.0\.1 is a private/);
    expect(of('mixed')[0]!.error).toMatch(/10\.0\.0\.5/);
    // the proof that nothing was sent: the connector was never asked for a connection; DNS only for the names
    expect(spy.asked).toEqual([]);
    expect(dns.asked.sort()).toEqual(['intranet.example', 'mixed.example']);
    expect(wh.stats()).toMatchObject({ sent: 0, failed: 5 });
  });

  it('a name that answers a public address at the check and loopback at connect (DNS rebinding) is refused by the connection itself', async () => {
    const rx = await receiver();
    closers.push(rx.close);
    // first answer public (passes the check), then 127.0.0.1: only ever loopback is connectable here
    const dns = spyResolve({ localhost: (n) => (n === 1 ? ['93.184.215.14'] : ['127.0.0.1']) });
    const attempts: WebhookAttempt[] = [];
    const wh = createWebhookNotifier({ retries: 2, backoffMs: 10, log, onAttempt: (a) => attempts.push(a), resolve: dns.resolve } as Parameters<typeof createWebhookNotifier>[0]);
    closers.push(() => wh.close());
    wh.enqueue({ id: 'rebind', url: `http://localhost:${rx.port}/hook`, event: 'e', body: {} });
    await wh.idle();
    expect(rx.got).toEqual([]);
    expect(attempts.map((a) => [a.attempt, a.final])).toEqual([[1, true]]);
    expect(attempts[0]!.error).toMatch(/refused: localhost resolves to 127\.0\.0\.1 is a loopback address/);
    expect(dns.asked.length).toBeGreaterThanOrEqual(2);
  });

  it('does not follow redirects, reads a bounded part of the answer and records only the status and a short reason', async () => {
    const spy = spyConnector();
    closers.push(() => spy.agent.close());
    const total = 64 * 1024 * 1024;
    let written = 0;
    const rx = await receiver((req, res) => {
      if (req.url === '/redirect') {
        res.writeHead(302, { location: 'http://169.254.169.254/latest/meta-data/' });
        res.end('moved');
      } else if (req.url === '/leak') {
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end('INTERNAL-SECRET-ANSWER '.repeat(50));
      } else {
        // an endless answer: the notifier must stop reading it
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        const chunk = Buffer.alloc(64 * 1024, 'x');
        const pump = () => {
          while (written < total) {
            written += chunk.length;
            if (!res.write(chunk)) return void res.once('drain', pump);
          }
          res.end();
        };
        res.on('close', () => undefined);
        pump();
      }
    });
    closers.push(rx.close);
    const attempts: WebhookAttempt[] = [];
    const wh = createWebhookNotifier({
      retries: 2, backoffMs: 10, log, onAttempt: (a) => attempts.push(a), dispatcher: spy.agent, maxResponseBytes: 16 * 1024,
    } as Parameters<typeof createWebhookNotifier>[0]);
    closers.push(() => wh.close());
    wh.enqueue({ id: 'redirect', url: rx.url('/redirect'), event: 'e', body: {}, allowPrivate: true });
    wh.enqueue({ id: 'leak', url: rx.url('/leak'), event: 'e', body: {}, allowPrivate: true });
    wh.enqueue({ id: 'huge', url: rx.url('/huge'), event: 'e', body: {}, allowPrivate: true });
    await wh.idle();
    const of = (id: string) => attempts.filter((a) => a.delivery.id === id);
    expect(of('redirect')).toHaveLength(1);
    expect(of('redirect')[0]).toMatchObject({ ok: false, status: 302, final: true });
    expect(of('redirect')[0]!.error).toMatch(/redirected/);
    // the receiver's answer never reaches the record
    expect(of('leak').every((a) => a.error === 'HTTP 500')).toBe(true);
    expect(JSON.stringify(attempts)).not.toMatch(/INTERNAL-SECRET|meta-data/);
    expect(of('huge')[0]).toMatchObject({ ok: true, status: 200 });
    // the redirect was not followed: only loopback was ever asked for
    expect(spy.asked.every((a) => a.hostname === '127.0.0.1')).toBe(true);
    expect(rx.got.map((g) => g.path).sort()).toEqual(['/huge', '/leak', '/leak', '/leak', '/redirect']);
    // stopped reading: far less than the 64 MiB offered left the receiver (socket buffers hold a few MiB at most)
    await waitFor(() => written > 0, 'the receiver to have written');
    expect(written).toBeLessThan(total / 2);
    expect(attempts.every((a) => (a.error ?? '').length <= 200)).toBe(true);
  });
});

describe('incidents notify channels by name; stored URLs from before are mapped or refused', () => {
  it('a contact URL matching no channel is not sent and says so; a unit URL equal to a channel\'s goes through it; start-up counts them', async () => {
    const rx = await receiver();
    const { dir, cleanup } = tempDir();
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({ write(chunk, _e, cb) { for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l)); cb(); } });
    const capture = createLogger('info', sink as never);
    const config = testConfig({
      budgets: { P1: { ackMs: 600_000 } },
      notifiers: { retries: 0, backoffMs: 10, channels: { 'grid-g1': { url: rx.url('/unit/g1'), allowPrivate: true }, family: { url: rx.url('/family'), allowPrivate: true } } },
    });
    const file = join(dir, 'eldergate.db');
    // before the upgrade: a unit and a resident's contacts with URLs in `webhook`
    {
      const store = openStore(file);
      const first = createResponse({ store, bus: new Bus(), config, log, clock: createManualClock() });
      buildTree(first.network);
      await first.close();
      store.sqlite.prepare('UPDATE units SET webhook = ? WHERE id = ?').run(rx.url('/unit/g1'), 'g1');
      store.sqlite.prepare('UPDATE units SET webhook = ? WHERE id = ?').run('http://10.0.0.1/old-hook', 'c1');
      store.sqlite
        .prepare('INSERT INTO residents (id, name, address, unit_id, contacts, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)')
        .run('res-1', 'Mrs Zhao', '3 Elm Lane', 'g1', JSON.stringify([
          { name: 'Son', webhook: 'http://169.254.169.254/latest/meta-data/?token=abc' },
          { name: 'Daughter', webhook: 'family', recipient: 'app-user-9' },
          { name: 'Gone', webhook: 'removed-channel' },
        ]), 0, 0);
      store.close();
    }
    const store = openStore(file);
    const clock = createManualClock();
    const bus = new Bus();
    const spy = spyConnector();
    const response = createResponse({ store, bus, config, log: capture, clock, webhook: { dispatcher: spy.agent } } as Parameters<typeof createResponse>[0]);
    try {
      response.start();
      const warning = lines.find((l) => /names no configured notification channel/.test(String(l.msg)));
      expect(warning).toMatchObject({ units: 1, residentContacts: 2, residents: 1, storedUrls: 2, unitIds: ['c1'], residentIds: ['res-1'] });
      expect(JSON.stringify(warning)).not.toMatch(/10\.0\.0\.1|169\.254/);

      const [o] = ingest({ store, bus, clock, config, response } as never, sos(), source({ residentId: 'res-1', unitId: 'g1' }, clock.now()));
      await response.notifications.idle();
      expect(rx.got.map((g) => g.path).sort()).toEqual(['/family', '/unit/g1']);
      expect(JSON.parse(rx.got.find((g) => g.path === '/family')!.body)).toMatchObject({ recipient: { kind: 'contact', channel: 'family', id: 'app-user-9' } });
      const attempts = response.incidents.events(o!.incidentId).filter((e) => e.type === 'notify-attempt');
      const byName = (n: string) => attempts.find((e) => (e.data.recipient as { name: string }).name === n)!;
      expect(byName('Son').data).toMatchObject({ ok: false, final: true, attempt: 0 });
      expect(String(byName('Son').data.error)).toMatch(/URL from before notification channels.*configured: family, grid-g1/);
      expect(String(byName('Gone').data.error)).toMatch(/"removed-channel" is not a configured notification channel/);
      expect(byName('Grid One').data).toMatchObject({ ok: true, recipient: { kind: 'unit', channel: 'grid-g1' } });
      // nothing asked for beyond loopback, and the stored URLs never reach the timeline
      expect(spy.asked.every((a) => a.hostname === '127.0.0.1')).toBe(true);
      expect(JSON.stringify(response.incidents.events(o!.incidentId))).not.toMatch(/169\.254|token=|http:/);
    } finally {
      await response.close();
      store.close();
      await spy.agent.close();
      await rx.close();
      cleanup();
    }
  });
});

describe('the API takes channel names, never URLs', () => {
  let t: TestGateway;
  let rx: Awaited<ReturnType<typeof receiver>>;
  beforeAll(async () => {
    rx = await receiver();
    t = await startTestGateway({
      notifiers: { channels: { 'family-app': { url: rx.url('/family-app'), allowPrivate: true }, 'grid-desk': { url: rx.url('/grid'), allowPrivate: true } } },
    });
  }, 60_000);
  afterAll(async () => {
    await t?.stop();
    await rx?.close();
  });

  it('a resident contact or a unit with a URL (or an unknown name) is a 400 listing the channels; a channel name is taken and used', async () => {
    for (const webhook of ['http://169.254.169.254/latest/meta-data/', 'http://10.0.0.1/', 'https://hooks.example.org/x', 'no-such-channel']) {
      const r = await t.api('POST', '/api/residents', { name: 'Mrs Li', contacts: [{ name: 'Son', webhook }] });
      expect(r.status, webhook).toBe(400);
      expect(r.body.message).toMatch(/contacts\[0\]\.webhook: .*give one of: family-app, grid-desk/);
      expect(r.body.details).toEqual({ field: 'contacts[0].webhook', channels: ['family-app', 'grid-desk'] });
    }
    const d = await t.api('POST', '/api/units', { id: 'd1', name: 'District', tier: 'district' });
    expect(d.status).toBe(201);
    const bad = await t.api('POST', '/api/units', { id: 's1', name: 'Street', tier: 'street', parentId: 'd1', webhook: 'http://127.0.0.1:1/' });
    expect(bad.status).toBe(400);
    expect(bad.body.details).toMatchObject({ field: 'webhook', channels: ['family-app', 'grid-desk'] });
    expect((await t.api('PATCH', '/api/units/d1', { webhook: 'http://[::1]/' })).status).toBe(400);
    expect((await t.api('PATCH', '/api/units/d1', { webhook: 'grid-desk' })).body).toMatchObject({ webhook: 'grid-desk' });

    const res = await t.api('POST', '/api/residents', { name: 'Mrs Li', contacts: [{ name: 'Son', webhook: 'family-app', recipient: 'fam-42' }] });
    expect(res.status).toBe(201);
    expect(res.body.contacts).toEqual([{ name: 'Son', webhook: 'family-app', recipient: 'fam-42' }]);
    expect((await t.api('PATCH', `/api/residents/${res.body.id}`, { contacts: [{ name: 'Son', webhook: 'https://evil.example/' }] })).status).toBe(400);

    // and an SOS from her phone reaches the family app through the channel, with her son's id in the body
    const dev = await t.provision();
    expect((await t.api('POST', `/api/devices/${dev.id}/bind`, { residentId: res.body.id })).status).toBe(200);
    const c = await t.connectDevice(dev.id, dev.secret);
    await publishAsync(c, `devices/${dev.id}/events`, JSON.stringify({ ts: Date.now(), seq: 1, type: 'sos' }), 1);
    c.end(true);
    await waitFor(() => rx.got.some((g) => g.path === '/family-app'), 'the family app to be told', 20_000);
    expect(JSON.parse(rx.got.find((g) => g.path === '/family-app')!.body)).toMatchObject({
      event: 'incident.opened', recipient: { kind: 'contact', name: 'Son', channel: 'family-app', id: 'fam-42' },
    });
  }, 60_000);
});
