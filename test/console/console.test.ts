// The console in headless Chromium against a real gateway, with simulated devices speaking real MQTT:
// an SOS reaches the board, the operator acknowledges, the device hears "help is coming"; a technician provisions
// and commissions a device; a steward sees only their grid unit; a dropped network loses nothing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MqttClient } from 'mqtt';
import { connectDevice, publishAsync, startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { buildNetwork, latestSeq, type Network } from '../ws/helpers.js';
import { launchBrowser, type TestBrowser, loginAs, watchErrors, docsShot } from './browser.js';
import { startProxy, type Proxy } from './proxy.js';


interface SimDevice {
  id: string;
  client: MqttClient;
  commands: { id: string; type: string; incidentId?: string }[];
  press(type: string, extra?: Record<string, unknown>): Promise<void>;
}

/** A terminal as firmware would behave: answers every command, and a test-alarm command with a test alarm. */
async function simDevice(t: TestGateway, id: string, secret: string): Promise<SimDevice> {
  const client = await connectDevice(t.mqttUrl, id, secret);
  let seq = 0;
  const commands: SimDevice['commands'] = [];
  const press = (type: string, extra: Record<string, unknown> = {}) =>
    publishAsync(client, `devices/${id}/events`, JSON.stringify({ ts: Date.now(), seq: ++seq, type, ...extra }));
  client.on('message', (topic, payload) => {
    if (topic !== `devices/${id}/commands`) return;
    const cmd = JSON.parse(payload.toString()) as SimDevice['commands'][number];
    commands.push(cmd);
    void publishAsync(client, `devices/${id}/commands/ack`, JSON.stringify({ id: cmd.id, ok: true }));
    if (cmd.type === 'test-alarm') void press('test');
  });
  await new Promise<void>((resolve, reject) => client.subscribe(`devices/${id}/commands`, { qos: 1 }, (err) => (err ? reject(err) : resolve())));
  return { id, client, commands, press };
}

async function boundDevice(t: TestGateway, kind: string, residentId: string): Promise<SimDevice> {
  const d = await t.provision(kind);
  const r = await t.api('POST', `/api/devices/${d.id}/bind`, { residentId });
  if (r.status !== 200) throw new Error(`bind: ${r.status} ${JSON.stringify(r.body)}`);
  return simDevice(t, d.id, d.secret);
}

describe('the console in headless Chromium', () => {
  let t: TestGateway;
  let n: Network;
  let browser: TestBrowser;
  const devices: SimDevice[] = [];
  const staff: Record<string, string> = {};

  beforeAll(async () => {
    browser = await launchBrowser(); // fails, naming the package, when chromium is missing
    t = await startTestGateway();
    n = await buildNetwork(t);
    for (const [name, role, unitId, onDuty] of [
      ['Nina Nowak', 'nurse', 'gA', true], ['Chris Chief', 'chief-steward', 'gA', true], ['Paul Park', 'nurse', 'gA', false],
      ['Berta Busch', 'nurse', 'gB', true],
    ] as const) {
      const r = await t.api('POST', '/api/staff', { name, role, unitId, onDuty });
      if (r.status !== 201) throw new Error(`staff: ${r.status} ${JSON.stringify(r.body)}`);
      staff[name] = r.body.id;
    }
  }, 60_000);

  afterAll(async () => {
    for (const d of devices) d.client.end(true);
    await browser?.close();
    await t?.stop();
  });

  it('an SOS appears on the board with its countdown and sound; acknowledging sends acknowledge-alarm to the device', async () => {
    const phone = await boundDevice(t, 'call-phone', n.residentA);
    const watch = await boundDevice(t, 'locator', n.residentB);
    const fall = await boundDevice(t, 'fall-sensor', n.residentA);
    devices.push(phone, watch, fall);
    const page = await browser.newPage({ viewport: { width: 1600, height: 900 } });
    const errors = watchErrors(page);
    await loginAs(page, t.http, n.users.operator, n.passwords[n.users.operator]!);

    await phone.press('sos', { position: { lat: 52.5206, lon: 13.4063, accuracy: 20 } });
    const card = page.locator(`.card[data-device="${phone.id}"]`);
    await card.waitFor({ timeout: 15_000 });
    expect(await card.getAttribute('data-priority')).toBe('P1');
    await expect.poll(() => card.locator('.countdown').textContent(), { timeout: 5000 }).toMatch(/acknowledge in 0:[0-5]\d/);
    await expect.poll(() => card.locator('.resident').textContent(), { timeout: 10_000 }).toContain('Anna Alt');
    // the P1 sound played (headless Chromium has no speakers: the page logs each sound it made)
    await expect.poll(() => page.evaluate(() => (window as unknown as { eldergate: { sounds: unknown[] } }).eldergate.sounds.length)).toBe(1);

    // more alarms of other kinds, for a realistic board
    await watch.press('sos', { position: { lat: 52.5231, lon: 13.4101, accuracy: 35 } });
    await fall.press('fall', { confidence: 0.92 });
    await phone.press('power-lost');
    await expect.poll(() => page.locator('.card').count(), { timeout: 15_000 }).toBe(4);
    // P1 first
    const prios = await page.locator('.card').evaluateAll((els) => els.map((e) => e.getAttribute('data-priority')));
    expect(prios).toEqual([...prios].sort());

    // acknowledge the SOS with a double click: one acknowledgement, one command
    const sosCard = page.locator(`.card[data-device="${phone.id}"][data-priority=P1]`);
    await sosCard.locator('button[data-action=acknowledge]').dblclick();
    await expect.poll(() => sosCard.getAttribute('data-status'), { timeout: 10_000 }).toBe('acknowledged');
    const cmd = await waitFor(() => phone.commands.find((c) => c.type === 'acknowledge-alarm'), 'acknowledge-alarm on devices/{id}/commands');
    const incidentId = await sosCard.getAttribute('data-id');
    expect(cmd.incidentId).toBe(incidentId);
    const inc = t.gw.response.incidents;
    expect(inc.events(incidentId!).filter((e) => e.type === 'acknowledged')).toHaveLength(1);
    await waitFor(() => inc.events(incidentId!).some((e) => e.type === 'command-acked'), 'the device confirmed the command');
    expect(phone.commands.filter((c) => c.type === 'acknowledge-alarm')).toHaveLength(1);

    // dispatch a nurse on duty, then the board shows who is coming
    await sosCard.locator(`select.staff-select option[value="${staff['Nina Nowak']}"]`).waitFor({ state: 'attached' });
    await sosCard.locator('select.staff-select').selectOption(staff['Nina Nowak']!);
    await sosCard.locator('button[data-action=dispatch]').click();
    await expect.poll(() => sosCard.getAttribute('data-status'), { timeout: 10_000 }).toBe('dispatched');
    await expect.poll(() => sosCard.textContent()).toContain('Nina Nowak');
    await expect.poll(() => sosCard.locator('.countdown').textContent()).toMatch(/reach resident in 1[0-4]:\d\d/);
    await sosCard.locator('input[aria-label=note]').fill('Nina is on her way, 5 minutes');
    await sosCard.locator('button[data-action=note]').click();
    await waitFor(() => inc.events(incidentId!).some((e) => e.type === 'note'), 'the note');
    await page.waitForTimeout(800);
    await docsShot(page, 'console-board.png');

    // the incident detail: timeline with every stamp, resident, contacts, device, position plot
    await sosCard.locator('a.details').click();
    await page.waitForSelector(`.incident-head[data-id="${incidentId}"]`);
    for (const stamp of ['deviceTs', 'received', 'ruleEvaluated', 'durable', 'pushed', 'delivered', 'acknowledged', 'dispatched']) {
      await page.waitForSelector(`tr[data-stamp=${stamp}]`, { timeout: 10_000 });
    }
    for (const type of ['opened', 'pushed', 'delivered', 'acknowledged', 'command-sent', 'command-acked', 'dispatched', 'note']) {
      await page.waitForSelector(`.timeline li[data-type="${type}"]`, { timeout: 10_000 });
    }
    await expect.poll(() => page.locator('section.resident').textContent()).toContain('Anna Alt junior');
    await page.waitForSelector('svg.plot .plot-zone');
    await page.waitForSelector('svg.plot .plot-point.alarm');
    await page.waitForSelector('svg.plot .plot-home');
    await expect.poll(() => page.locator('tr[data-budget=push] td').last().textContent()).toBe('within');

    // on site and resolved from the detail page; it leaves the board
    await page.click('button[data-action=on-site]');
    await page.waitForSelector('.incident-head[data-status=on-site]', { timeout: 10_000 });
    await page.fill('input[aria-label=outcome]', 'help given at home');
    await page.waitForSelector('.timeline li[data-type="on-site"]');
    await page.locator('input[aria-label=outcome]').blur();
    await docsShot(page, 'console-incident.png', { fullPage: true });
    await page.click('button[data-action=resolve]');
    await page.waitForSelector('.incident-head[data-status=resolved]', { timeout: 10_000 });
    await page.goto(`${t.http}/#/board`);
    await expect.poll(() => page.locator(`.card[data-id="${incidentId}"]`).count()).toBe(0);
    expect(errors).toEqual([]);
    await page.close();
  }, 120_000);

  it('works on a phone: one column, nothing wider than the screen', async () => {
    const page = await browser.newPage({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    await loginAs(page, t.http, n.users.operator, n.passwords[n.users.operator]!);
    await expect.poll(() => page.locator('.card').count(), { timeout: 10_000 }).toBeGreaterThan(0);
    for (const hash of ['#/board', '#/fleet', '#/network']) {
      await page.goto(`${t.http}/${hash}`);
      await page.waitForTimeout(500);
      const [scroll, width] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
      expect(scroll, `${hash} fits the phone`).toBeLessThanOrEqual(width + 1);
    }
    await page.close();
  }, 60_000);

  it('a technician provisions a device (secret shown once), binds it and runs the commissioning test end to end', async () => {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    const errors = watchErrors(page);
    await loginAs(page, t.http, n.users.technician, n.passwords[n.users.technician]!);
    await page.click('nav a[href="#/devices/new"]');
    await page.waitForSelector('select[name=kind] option[value=call-phone]', { state: 'attached' });
    await page.selectOption('select[name=kind]', 'call-phone');
    await page.fill('input[name=serial]', 'CP-COMMISSION-001');
    await page.fill('input[name=model]', 'Vita 2');
    await page.click('form.form button[type=submit]');
    const secret = await page.locator('[data-secret]').getAttribute('data-secret');
    const id = await page.locator('[data-device-id]').getAttribute('data-device-id');
    expect(secret).toMatch(/^.{20,}$/);
    // the device is configured with what the page showed, and connects for real
    const dev = await simDevice(t, id!, secret!);
    devices.push(dev);
    await page.click('button[data-action=secret-stored]');
    await page.waitForURL(new RegExp(`#/device/${id}`));
    expect(await page.locator('[data-secret]').count()).toBe(0);

    await page.waitForSelector('select[aria-label=resident] option:nth-child(2)', { state: 'attached' });
    await page.selectOption('select[aria-label=resident]', n.residentA);
    await page.click('button[data-action=bind]');
    await expect.poll(() => page.locator('[data-resident]').getAttribute('data-resident'), { timeout: 10_000 }).toBe(n.residentA);

    await page.click('button[data-action=commission]');
    const result = page.locator('[data-test-result=passed]');
    // alone it passes in about 3 s; beside the whole suite the test took 7-18 s in CI, and once over 28 s: what the
    // page's steps said then is kept in the failure
    await result.waitFor({ timeout: 30_000 }).catch(async (err: Error) => {
      const steps = await page.locator('.commissioning ol.steps').innerText().catch(() => '(no steps shown)');
      // what the page's alarm stream and the gateway itself say, so that a slow run says where the alarm was
      const conn = await page.locator('[data-conn]').first().getAttribute('data-conn').catch(() => '(unknown)');
      const stored = await t.api('GET', `/api/incidents?deviceId=${encodeURIComponent(id!)}`).catch((e: Error) => ({ status: 0, body: e.message }));
      throw new Error(`${err.message}\nthe commissioning steps on the page:\n${steps}\ncommands the device got: ${dev.commands.map((c) => c.type).join(', ') || 'none'}` +
        `\nthe page's alarm stream: ${conn}\nthe gateway's incidents of the device (${stored.status}): ${JSON.stringify(stored.body).slice(0, 1500)}`);
    });
    const text = await result.textContent();
    expect(text).toMatch(/Test alarm arrived end to end: device → console in \d+ (ms|\.\d s)/);
    const latency = Number(await result.getAttribute('data-latency-ms'));
    expect(latency).toBeGreaterThanOrEqual(0);
    expect(latency).toBeLessThan(t.gw.config.budgets.P1.pushMs * 10);
    expect(dev.commands.map((c) => c.type)).toContain('test-alarm');
    await expect.poll(() => page.locator('ol.steps li.done').count(), { timeout: 10_000 }).toBe(6);
    // recorded as a test, never as an emergency
    const tests = t.gw.response.incidents.list({ deviceId: id!, test: true }).items;
    expect(tests).toHaveLength(1);
    expect(tests[0]!.priority).toBe('P3');
    // rotating shows a new secret once; the old one no longer connects
    page.once('dialog', (d) => void d.accept());
    await page.click('button[data-action=rotate]');
    const rotated = await page.locator('[data-secret]').getAttribute('data-secret');
    expect(rotated).not.toBe(secret);
    await expect(connectDevice(t.mqttUrl, id!, secret!)).rejects.toThrow();
    // suspend and resume
    page.once('dialog', (d) => void d.accept());
    await page.click('button[data-action=suspend]');
    await expect.poll(() => page.locator('[data-state]').getAttribute('data-state'), { timeout: 10_000 }).toBe('suspended');
    await page.click('button[data-action=resume]');
    await expect.poll(() => page.locator('[data-state]').getAttribute('data-state'), { timeout: 10_000 }).toBe('in-service');
    expect(errors).toEqual([]);
    await page.close();
  }, 90_000);

  it('a steward sees only their grid unit, and the server refuses them the others', async () => {
    const a = await boundDevice(t, 'call-phone', n.residentA);
    const b = await boundDevice(t, 'call-phone', n.residentB);
    devices.push(a, b);
    const ctx = await browser.newContext({ viewport: { width: 1200, height: 800 } });
    const page = await ctx.newPage();
    await loginAs(page, t.http, n.users.stewardB, n.passwords[n.users.stewardB]!);
    await a.press('sos');
    await b.press('sos');
    const openA = await waitFor(() => t.gw.response.incidents.list({ deviceId: a.id }).items[0], 'incident of A');
    const openB = await waitFor(() => t.gw.response.incidents.list({ deviceId: b.id }).items[0], 'incident of B');
    await page.waitForSelector(`.card[data-id="${openB.id}"]`, { timeout: 15_000 });
    await page.waitForTimeout(500);
    expect(await page.locator(`.card[data-id="${openA.id}"]`).count()).toBe(0);
    const ids = await page.locator('.card').evaluateAll((els) => els.map((e) => e.getAttribute('data-id')));
    const units = ids.map((id) => t.gw.response.incidents.get(id!)?.unitId);
    expect(new Set(units)).toEqual(new Set(['gB']));
    // not only hidden: the server answers as if A's incident did not exist, and refuses to act on it
    const answers = await page.evaluate(async (id) => {
      const token = sessionStorage.getItem('eldergate.token');
      const h = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
      const get = await fetch(`/api/incidents/${id}`, { headers: h });
      const ack = await fetch(`/api/incidents/${id}/acknowledge`, { method: 'POST', headers: h, body: '{}' });
      const list = await (await fetch('/api/incidents?limit=500', { headers: h })).json() as { items: { unitId: string }[] };
      return { get: get.status, ack: ack.status, units: [...new Set(list.items.map((i) => i.unitId))] };
    }, openA.id);
    expect(answers.get).toBe(404);
    expect([403, 404]).toContain(answers.ack);
    expect(answers.units).toEqual(['gB']);
    expect(t.gw.response.incidents.get(openA.id)!.status).toBe('open');
    // their own they may acknowledge
    await page.locator(`.card[data-id="${openB.id}"] button[data-action=acknowledge]`).click();
    await waitFor(() => t.gw.response.incidents.get(openB.id)!.status === 'acknowledged', 'steward acknowledged B');
    await ctx.close();
  }, 60_000);

  it('the fleet board filters by kind and unit, and a steward\'s fleet holds only their unit\'s devices', async () => {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    await loginAs(page, t.http, n.users.operator, n.passwords[n.users.operator]!);
    await page.goto(`${t.http}/#/fleet`);
    await page.waitForSelector('tr[data-device]');
    const all = await page.locator('tr[data-device]').count();
    await page.waitForSelector('select[name=kind] option[value=locator]', { state: 'attached' });
    await page.selectOption('select[name=kind]', 'locator');
    await expect.poll(async () => {
      const kinds = await page.locator('tr[data-device] td:nth-child(2)').allTextContents();
      return kinds.length > 0 && kinds.every((k) => k === 'locator');
    }, { timeout: 10_000 }).toBe(true);
    await page.selectOption('select[name=kind]', '');
    await page.waitForSelector('select[name=unitId] option[value=gB]', { state: 'attached' });
    await page.selectOption('select[name=unitId]', 'gB');
    await expect.poll(async () => (await page.locator('tr[data-device] td:nth-child(5)').allTextContents()).every((u) => u === 'Grid B'), { timeout: 10_000 }).toBe(true);
    expect(await page.locator('tr[data-device]').count()).toBeLessThan(all);
    await page.close();

    const steward = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    await loginAs(steward, t.http, n.users.stewardA, n.passwords[n.users.stewardA]!);
    await steward.goto(`${t.http}/#/fleet`);
    await steward.waitForSelector('tr[data-device]');
    const ids = await steward.locator('tr[data-device]').evaluateAll((els) => els.map((e) => e.getAttribute('data-device')!));
    for (const id of ids) expect(t.gw.registry.entry(id)?.unitId).toBe('gA');
    await steward.close();
  }, 60_000);

  it('after the network drops, the board reconnects and shows everything that happened meanwhile, nothing twice', async () => {
    const proxy: Proxy = await startProxy(t.gw.httpPort);
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    try {
      const base = `http://127.0.0.1:${proxy.port}`;
      await loginAs(page, base, n.users.operator, n.passwords[n.users.operator]!);
      const before = await page.evaluate(() => (window as unknown as { eldergate: { lastSeq: number } }).eldergate.lastSeq);
      const dev = await boundDevice(t, 'call-phone', n.residentA);
      devices.push(dev);

      await proxy.cut();
      await page.waitForSelector('.conn[data-conn=offline]', { timeout: 30_000 });
      // meanwhile: a new SOS, and another operator acknowledges an open one
      await dev.press('sos');
      const opened = await waitFor(() => t.gw.response.incidents.list({ deviceId: dev.id }).items[0], 'new SOS');
      const other = t.gw.response.incidents.list({ status: ['open'], priority: ['P1'] }).items.find((i) => i.id !== opened.id)!;
      await t.gw.response.incidents.act(other.id, { type: 'acknowledge' }, { id: 'someone-else', username: 'someone-else' });
      await new Promise((r) => setTimeout(r, 1500));
      expect(await page.locator(`.card[data-id="${opened.id}"]`).count()).toBe(0);

      await proxy.restore();
      await page.waitForSelector('.conn[data-conn=live]', { timeout: 30_000 });
      await page.waitForSelector(`.card[data-id="${opened.id}"]`, { timeout: 10_000 });
      await expect.poll(() => page.locator(`.card[data-id="${other.id}"]`).getAttribute('data-status')).toBe('acknowledged');
      // nothing missing, nothing twice: the page folded every seq after `before`, once each, in order, up to the log's
      // head. The log may grow meanwhile (other open P1s escalate on the gateway's clock), so the page's last seq and
      // what it applied are read in one evaluation, and compared with each other once the page has caught up
      const last = latestSeq(t);
      const pageState = () => page.evaluate(() => {
        const e = (window as unknown as { eldergate: { lastSeq: number; applied: number[] } }).eldergate;
        return { lastSeq: e.lastSeq, applied: [...e.applied] };
      });
      await expect.poll(async () => (await pageState()).lastSeq, { timeout: 10_000 }).toBeGreaterThanOrEqual(last);
      const seen = await pageState();
      const after = seen.applied.filter((s) => s > before);
      expect(after).toEqual(Array.from({ length: seen.lastSeq - before }, (_, i) => before + 1 + i));
      expect(seen.lastSeq).toBeLessThanOrEqual(latestSeq(t));
      expect(await page.locator(`.card[data-id="${opened.id}"]`).count()).toBe(1);
    } finally {
      await page.close();
      await proxy.close();
    }
  }, 90_000);
});
