// Issue 9 part 2, in headless Chromium against real gateways with devices speaking real MQTT: a fresh console shows
// an old P1 behind 600 newer P3; a failed lazy fetch is retried, never dropped; the budget line never resets at an
// escalation and repeated escalations are one timeline line; a repeated SOS sounds and toasts, and the tone repeats
// until the P1 is acknowledged; the newest waiting P1 is in view among 40, with a list mode, filters and search.
// (A session in use, renewed past its first token's life: test/console/session-renewal.test.ts.)
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import type { MqttClient } from 'mqtt';
import { connectDevice, publishAsync, startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { buildNetwork, raise, raiseP3, type Network } from '../ws/helpers.js';
import { launchBrowser, type TestBrowser, loginAs, watchErrors, watchLoads } from './browser.js';

interface Phone { id: string; serial: string; client: MqttClient; press(type: string): Promise<void> }

async function phone(t: TestGateway, residentId: string): Promise<Phone> {
  const serial = `CP-${Math.random().toString(36).slice(2, 10).toUpperCase()}`;
  const d = await t.provision('call-phone', serial);
  const r = await t.api('POST', `/api/devices/${d.id}/bind`, { residentId });
  if (r.status !== 200) throw new Error(`bind: ${r.status} ${JSON.stringify(r.body)}`);
  const client = await connectDevice(t.mqttUrl, d.id, d.secret);
  let seq = 0;
  return {
    id: d.id, serial, client,
    press: (type) => publishAsync(client, `devices/${d.id}/events`, JSON.stringify({ ts: Date.now(), seq: ++seq, type })),
  };
}


type Eg = { eldergate: { sounds: { incidentId: string; reason: string; at: number }[]; incident(id: string): { status: string; lastSeq: number } | null } };
const sounds = (page: Page) => page.evaluate(() => (window as unknown as Eg).eldergate.sounds);
const incidentOf = async (t: TestGateway, deviceId: string) =>
  waitFor(() => t.gw.response.incidents.list({ deviceId, status: ['open'] }).items[0], `incident of ${deviceId}`);

describe('the board (issue 9, part 2)', () => {
  let browser: TestBrowser;
  let t: TestGateway;
  let n: Network;
  const clients: MqttClient[] = [];

  beforeAll(async () => {
    browser = await launchBrowser();
    t = await startTestGateway();
    n = await buildNetwork(t);
  }, 60_000);
  afterAll(async () => {
    for (const c of clients) c.end(true);
    await browser?.close();
    await t?.stop();
  });

  it('a fresh console shows an old open P1 behind 600 newer P3 at once (complete snapshot, not the newest 500)', async () => {
    const [old] = raise(t, 1, { unitId: 'gA', device: 'old-p1' });
    await new Promise((r) => setTimeout(r, 5));
    raiseP3(t, 600, (i) => (i % 2 ? 'gA' : 'gB'));
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    const errors = watchErrors(page);
    await loginAs(page, t.http, n.users.operator, n.passwords[n.users.operator]!);
    await page.waitForSelector(`.card[data-id="${old!.incidentId}"]`, { timeout: 15_000 });
    await expect.poll(() => page.locator('.card').count(), { timeout: 15_000 }).toBe(601);
    expect(await page.locator('.card').first().getAttribute('data-id')).toBe(old!.incidentId);
    expect(errors.filter((e) => !e.includes('404'))).toEqual([]);
    await t.gw.response.incidents.act(old!.incidentId, { type: 'acknowledge' }, { id: 'x', username: 'x' });
    await page.close();
  }, 90_000);

  it('a failed fetch of an unknown incident is retried with back-off until it arrives, its events kept', async () => {
    const [gone] = raise(t, 1, { unitId: 'gA', device: 'closed-before-login' });
    const id = gone!.incidentId;
    await t.gw.response.incidents.act(id, { type: 'cancel', reason: 'pressed by mistake' }, { id: 'x', username: 'x' });
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    await loginAs(page, t.http, n.users.operator, n.passwords[n.users.operator]!);
    // the operator's network fails the first three fetches of that incident (fault injection; the server is real)
    let refused = 0;
    await page.route(`**/api/incidents/${id}`, (route) => (refused++ < 3 ? route.abort('connectionreset') : route.continue()));
    const [note] = await t.gw.response.incidents.record(id, 'note', { text: 'the daughter called back' }, null);
    await expect.poll(() => page.evaluate((x) => (window as unknown as Eg).eldergate.incident(x), id), { timeout: 20_000 })
      .toEqual(expect.objectContaining({ status: 'cancelled', lastSeq: note!.seq }));
    expect(refused).toBeGreaterThanOrEqual(4);
    await page.close();
  }, 60_000);

  it('a repeated SOS sounds again with a toast linking to the incident; the tone repeats until the P1 is acknowledged', async () => {
    const p = await phone(t, n.residentA);
    clients.push(p.client);
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    // the elder's card cannot be loaded until the second press (fault injection on the operator's network)
    let residentsDown = true;
    await page.route('**/api/residents/*', (route) => (residentsDown ? route.abort('connectionreset') : route.continue()));
    // the page's clock runs as the real one until the test moves it forward past the reminder interval (10 s)
    await page.clock.install();
    await loginAs(page, t.http, n.users.operator, n.passwords[n.users.operator]!);
    await p.press('sos');
    const inc = await incidentOf(t, p.id);
    await page.waitForSelector(`.card[data-id="${inc.id}"]`, { timeout: 15_000 });
    await expect.poll(async () => (await sounds(page)).filter((s) => s.incidentId === inc.id).map((s) => s.reason)).toEqual(['new']);

    await p.press('sos');
    await expect.poll(async () => (await sounds(page)).filter((s) => s.incidentId === inc.id && s.reason === 'repeat').length, { timeout: 10_000 }).toBe(1);
    const toast = page.locator(`.toast[data-incident="${inc.id}"]`);
    await toast.waitFor({ timeout: 5000 });
    // shown at once without her name; it comes once her card can be loaded
    expect(await toast.textContent()).toMatch(/SOS pressed again \(×2\): /);
    residentsDown = false;
    await expect.poll(() => toast.textContent(), { timeout: 15_000 }).toMatch(/SOS pressed again \(×2\) — Anna Alt/);
    expect(await toast.locator('a').getAttribute('href')).toBe(`#/incident/${inc.id}`);

    // unacknowledged: the tone comes back by itself
    const before = (await sounds(page)).length;
    await page.clock.fastForward(11_000);
    await expect.poll(async () => (await sounds(page)).slice(before).some((s) => s.reason === 'reminder'), { timeout: 15_000 }).toBe(true);
    // acknowledged (every open P1): silence
    for (const i of t.gw.response.incidents.list({ status: ['open'], priority: ['P1'], limit: 500 }).items) {
      await t.gw.response.incidents.act(i.id, { type: 'acknowledge' }, { id: 'x', username: 'x' });
    }
    await page.waitForSelector(`.card[data-id="${inc.id}"][data-status=acknowledged]`, { timeout: 10_000 });
    const after = (await sounds(page)).length;
    // past two reminder intervals, second by second (each tick of the board's reminder timer runs)
    for (let i = 0; i < 24; i++) await page.clock.runFor(1000);
    expect((await sounds(page)).slice(after)).toEqual([]);
    await page.close();
  }, 90_000);

  it('with 40 open P1s the newest waiting P1 is in view; list mode, filters and search find incidents', async () => {
    raise(t, 40, { unitId: 'gA', device: 'many', devices: 40 });
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    const errors = watchErrors(page);
    const residentLoads = watchLoads(page, '/api/residents/');
    await loginAs(page, t.http, n.users.operator, n.passwords[n.users.operator]!);
    await expect.poll(() => page.locator('.card[data-priority=P1]').count(), { timeout: 15_000 }).toBeGreaterThanOrEqual(40);
    const p = await phone(t, n.residentB);
    clients.push(p.client);
    await p.press('sos');
    const inc = await incidentOf(t, p.id);
    // in view without scrolling, with its acknowledge button
    const waiting = page.locator(`.attention [data-id="${inc.id}"]`);
    await waiting.waitFor({ timeout: 15_000 });
    // (seen twice in loaded full runs, not reproduced alone: the name missing after 10 s; the loads then say why)
    await expect.poll(() => waiting.textContent(), { timeout: 10_000 }).toContain('Bruno Berg')
      .catch((e: Error) => { throw new Error(`${e.message}\nthe residents' loads: ${residentLoads.join('; ')}`); });
    await expect.poll(async () => { const b = await waiting.boundingBox(); return b ? b.y + b.height : null; }).toBeLessThanOrEqual(900);
    expect(await page.evaluate(() => window.scrollY)).toBe(0);
    expect(await waiting.locator('button[data-action=acknowledge]').count()).toBe(1);
    // the old board put it as card 41 of the P1s, far below the fold
    await page.locator(`.card[data-id="${inc.id}"]`).waitFor({ state: "attached", timeout: 5000 });
    const card = (await page.locator(`.card[data-id="${inc.id}"]`).boundingBox())!;
    expect(card.y).toBeGreaterThan(900);

    // the compact list: one line per incident
    await page.click('button[data-mode=list]');
    const row = page.locator(`tr.row[data-id="${inc.id}"]`);
    await row.waitFor();
    expect((await row.boundingBox())!.height).toBeLessThan(44);
    const rows = () => page.locator('tr.row').evaluateAll((els) => els.map((e) => ({ id: e.getAttribute('data-id')!, p: e.getAttribute('data-priority'), s: e.getAttribute('data-status') })));

    await page.selectOption('select[name=priority]', 'P3');
    await expect.poll(async () => (await rows()).length, { timeout: 10_000 }).toBe(600);
    expect((await rows()).every((r) => r.p === 'P3')).toBe(true);
    await page.selectOption('select[name=unit]', 'gB');
    await expect.poll(async () => (await rows()).length).toBe(300);
    const unitsShown = new Set((await rows()).map((r) => t.gw.response.incidents.get(r.id)!.unitId));
    expect(unitsShown).toEqual(new Set(['gB']));
    await page.click('button[data-action=clear-filters]');
    await page.selectOption('select[name=status]', 'open');
    await page.selectOption('select[name=type]', 'sos');
    await expect.poll(async () => (await rows()).map((r) => r.id).sort()).toEqual(
      t.gw.response.incidents.list({ status: ['open'], type: 'sos', limit: 500 }).items.map((i) => i.id).sort());
    expect((await rows()).every((r) => r.s === 'open')).toBe(true);
    await page.click('button[data-action=clear-filters]');

    const search = async (q: string) => {
      await page.fill('input[name=q]', q);
      await page.waitForTimeout(300);
      return (await rows()).map((r) => r.id);
    };
    await expect.poll(() => search('bruno'), { timeout: 10_000 }).toEqual([inc.id]);
    expect(await search(p.serial.toLowerCase())).toEqual([inc.id]);
    expect(await search('Bruno Berg street')).toEqual([inc.id]);
    // a phone number typed differently from the record (+49 30 1234567): both residents' incidents carry it
    const byPhone = await search('30-123 4567');
    expect(byPhone).toContain(inc.id);
    expect(byPhone.every((id) => [n.residentA, n.residentB].includes(t.gw.response.incidents.get(id)!.residentId!))).toBe(true);
    expect(await search('nobody-by-this-name')).toEqual([]);
    await expect.poll(() => page.locator('p.empty').textContent()).toMatch(/No incident matches the filters/);
    await page.fill('input[name=q]', '');
    await page.click('button[data-mode=cards]');
    expect(errors.filter((e) => !e.includes('404'))).toEqual([]);
    await page.close();
  }, 120_000);

  it('an alarm from a receiver\'s unregistered account names the account on the card, in search and on the incident', async () => {
    const [e] = raise(t, 1, { unitId: null, device: 'receiver', account: '07:2:4321' });
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    const errors = watchErrors(page);
    await loginAs(page, t.http, n.users.operator, n.passwords[n.users.operator]!);
    const card = page.locator(`.card[data-id="${e!.incidentId}"]`);
    await card.waitFor({ timeout: 15_000 });
    expect(await card.locator('dd.resident').textContent()).toBe('unregistered account 07:2:4321');
    await page.fill('input[name=q]', '4321');
    await expect.poll(() => page.locator('.card').evaluateAll((els) => els.map((x) => x.getAttribute('data-id'))), { timeout: 10_000 }).toEqual([e!.incidentId]);
    await page.fill('input[name=q]', '');
    await page.goto(`${t.http}/#/incident/${encodeURIComponent(e!.incidentId)}`);
    const panel = page.locator('section[data-account="07:2:4321"]');
    await panel.waitFor({ timeout: 15_000 });
    expect(await panel.textContent()).toContain('no device holds it');
    expect(errors.filter((x) => !x.includes('404'))).toEqual([]);
    await t.gw.response.incidents.act(e!.incidentId, { type: 'acknowledge' }, { id: 'x', username: 'x' });
    await page.close();
  }, 60_000);

  it('a new P1\'s elder is named at once while the board is still loading 600 other cards\' records', async () => {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    // a slow server: records (devices, residents) answered one after another, 25 ms each, in the order asked; the
    // 600 P3 cards' devices take 15 s. Fault injection on the page's network; the server behind it is real.
    // The board shows only P3 cards (its filter, kept in the browser): the P1s waiting are in the attention list above
    // whatever the filter, and the new P1's elder is the one urgent load.
    await page.addInitScript(() => localStorage.setItem('eldergate.boardFilter', JSON.stringify({ priority: 'P3' })));
    let line = Promise.resolve();
    await page.route(/\/api\/(devices|residents)\/[^/?]+$/, (route) => {
      line = line.then(() => new Promise((r) => setTimeout(r, 25))).then(() => route.continue().catch(() => undefined));
    });
    await loginAs(page, t.http, n.users.operator, n.passwords[n.users.operator]!);
    await expect.poll(() => page.locator('.card[data-priority=P3]').count(), { timeout: 15_000 }).toBeGreaterThanOrEqual(600);
    // an elder with no open incident yet: the board has not asked for her record
    const clara = await t.api('POST', '/api/residents', { name: 'Clara Cole', unitId: 'gA' });
    expect(clara.status).toBe(201);
    const p = await phone(t, clara.body.id);
    clients.push(p.client);
    await p.press('sos');
    const inc = await incidentOf(t, p.id);
    const waiting = page.locator(`.attention [data-id="${inc.id}"]`);
    await waiting.waitFor({ timeout: 15_000 });
    // asked before the hundreds of devices still waiting (first come, first served, it came after them: 13 s here)
    await expect.poll(() => waiting.textContent(), { timeout: 5000 }).toContain('Clara Cole');
    await page.close();
  }, 60_000);

  // her unit changed while her SOS is open (response/follow-resident.ts): the board of the grid she left drops the card
  // as it is told, the board of her new grid shows it and sounds once, as for a new P1 there
  it('a resident moved to another grid: her open SOS leaves the old grid\'s board and arrives, sounding, on the new one\'s', async () => {
    const res = await t.api('POST', '/api/residents', { name: 'Carla Chen', unitId: n.gridA });
    expect(res.status).toBe(201);
    const p = await phone(t, res.body.id);
    clients.push(p.client);
    const pages = { a: await browser.newPage({ viewport: { width: 1400, height: 900 } }), b: await browser.newPage({ viewport: { width: 1400, height: 900 } }) };
    await loginAs(pages.a, t.http, n.users.stewardA, n.passwords[n.users.stewardA]!);
    await loginAs(pages.b, t.http, n.users.stewardB, n.passwords[n.users.stewardB]!);
    await p.press('sos');
    const inc = await incidentOf(t, p.id);
    await pages.a.waitForSelector(`.card[data-id="${inc.id}"]`, { timeout: 15_000 });
    expect(await pages.b.locator(`.card[data-id="${inc.id}"]`).count()).toBe(0);

    expect((await t.api('PATCH', `/api/residents/${res.body.id}`, { unitId: n.gridB })).status).toBe(200);
    await pages.b.waitForSelector(`.card[data-id="${inc.id}"]`, { timeout: 15_000 });
    await pages.a.waitForSelector(`.card[data-id="${inc.id}"]`, { state: 'detached', timeout: 15_000 });
    await expect.poll(async () => (await sounds(pages.b)).filter((s) => s.incidentId === inc.id).map((s) => s.reason)).toEqual(['new']);
    await pages.a.close();
    await pages.b.close();
  }, 60_000);
});

/** A browser and a gateway with these P1 budgets, its network built; the phone a test makes is closed after. */
function rigWith(p1: { pushMs: number; ackMs: number; reachMs: number }) {
  const rig = {} as { browser: TestBrowser; t: TestGateway; n: Network; p?: Phone; sos(): Promise<{ page: Page; inc: { id: string } }> };
  /** resident A's phone presses SOS with the operator's board open */
  rig.sos = async () => {
    const p = rig.p = await phone(rig.t, rig.n.residentA);
    const page = await rig.browser.newPage({ viewport: { width: 1400, height: 900 } });
    await loginAs(page, rig.t.http, rig.n.users.operator, rig.n.passwords[rig.n.users.operator]!);
    await p.press('sos');
    return { page, inc: await incidentOf(rig.t, p.id) };
  };
  beforeAll(async () => {
    rig.browser = await launchBrowser();
    rig.t = await startTestGateway({ budgets: { P1: p1 } });
    rig.n = await buildNetwork(rig.t);
  }, 60_000);
  afterAll(async () => {
    rig.p?.client.end(true);
    await rig.browser?.close();
    await rig.t?.stop();
  });
  return rig;
}

describe('the budget line and the timeline under escalation', () => {
  const rig = rigWith({ pushMs: 1000, ackMs: 1500, reachMs: 15 * 60_000 });

  it('shows how long the elder has waited and how late the acknowledgement is, never reset; escalations are one line', async () => {
    const { t } = rig;
    const { page, inc } = await rig.sos();
    const line = page.locator(`.card[data-id="${inc.id}"] .countdown`);
    await line.waitFor({ timeout: 15_000 });
    await waitFor(() => (t.gw.response.incidents.get(inc.id)!.escalationLevel >= 3 ? true : undefined), 'three escalations', 20_000);
    await page.waitForTimeout(1200);
    const text = (await line.textContent())!;
    // before: "acknowledge in 0:01 · escalated ×3" — the budget of the new tier, as if the elder had just pressed
    expect(text).toMatch(/^waiting 0:0[4-9]|^waiting 0:[1-5]\d/);
    expect(text).toMatch(/acknowledgement 0:\d\d late \(budget 0:01\)/);
    expect(await line.getAttribute('class')).toContain('late');

    await page.click(`.card[data-id="${inc.id}"] a.details`);
    await page.waitForSelector('.timeline li[data-type=escalated]', { timeout: 10_000 });
    await expect.poll(() => page.locator('.timeline li[data-type=escalated]').count()).toBe(1);
    const esc = page.locator('.timeline li[data-type=escalated]');
    expect(Number(await esc.getAttribute('data-count'))).toBeGreaterThanOrEqual(3);
    expect(await esc.locator('summary').textContent()).toMatch(/escalated ×\d+: first .* last /);
    await page.close();
  }, 60_000);
});

// an acknowledged P1 that nobody reached within the reach budget (response/escalation.ts, `overdue`): the board sounds
// and says so, though it is no longer waiting for acknowledgement (whoever took it may have gone)
describe('a P1 acknowledged and not reached in time', () => {
  const rig = rigWith({ pushMs: 1000, ackMs: 1000, reachMs: 1500 });

  it('sounds again and says nobody is on site yet', async () => {
    const { t } = rig;
    const { page, inc } = await rig.sos();
    await page.waitForSelector(`.card[data-id="${inc.id}"]`, { timeout: 15_000 });
    expect((await t.api('POST', `/api/incidents/${inc.id}/acknowledge`, {})).status).toBe(200);
    await page.waitForSelector(`.card[data-id="${inc.id}"][data-status=acknowledged]`, { timeout: 10_000 });
    await expect.poll(async () => (await sounds(page)).filter((s) => s.incidentId === inc.id && s.reason === 'reminder').length, { timeout: 10_000 }).toBeGreaterThan(0);
    const toast = page.locator(`.toast[data-incident="${inc.id}"]`).last();
    await expect.poll(() => toast.textContent(), { timeout: 5000 }).toMatch(/SOS — Anna Alt: nobody on site yet \(acknowledged\)/);
    await page.close();
  }, 60_000);
});
