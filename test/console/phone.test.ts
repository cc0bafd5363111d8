// Issue 13 §1 on a steward's phone (390×844, touch) in headless Chromium against a real gateway with a device
// speaking real MQTT: the header, the board, the alarm card and the incident page never scroll sideways
// (document.documentElement.scrollWidth ≤ 390), and the card's actions are thumb-sized (≥ 44 px tall) and inside the
// screen; the steward acknowledges from the card. An unknown route is "Page not found" with a way back to the board.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MqttClient } from 'mqtt';
import type { Page } from 'playwright-core';
import { connectDevice, publishAsync, waitFor } from '../helpers/gateway.js';
import { buildNetwork, type Network } from '../ws/helpers.js';
import { browserAndGateway, loginAs, watchErrors, docsShot } from './browser.js';

const WIDTH = 390;

/** Nothing wider than the phone: the page cannot be scrolled sideways. Names what sticks out when it can. */
async function fits(page: Page, what: string): Promise<void> {
  const { scroll, culprits } = await page.evaluate((w) => ({
    scroll: document.documentElement.scrollWidth,
    culprits: [...document.querySelectorAll('body *')].filter((e) => e.getBoundingClientRect().right > w + 0.5)
      .slice(0, 5).map((e) => `${e.tagName.toLowerCase()}.${e.className}`),
  }), WIDTH);
  expect(scroll, `${what}: scrollWidth ${scroll}; sticking out: ${culprits.join(', ')}`).toBeLessThanOrEqual(WIDTH);
}

/** Every action control of a card (or the incident page): ≥ 44 px tall and wholly inside the screen's width. */
async function thumbSized(page: Page, scope: string): Promise<number> {
  // found and measured in one evaluation: a locator's evaluateAll finds the elements and measures them in two calls
  // into the page, and a board that re-renders the card in between (an update of the incident) hands it detached
  // elements, 0 px tall (seen in CI right after Chromium was installed: every ancestor up to the card had no display)
  const selector = `${scope} .actions button, ${scope} .actions select, ${scope} .actions input`;
  const boxes = await page.evaluate((sel) =>
    [...document.querySelectorAll(sel)].map((e) => {
      const r = e.getBoundingClientRect();
      // where a control has no size, the ancestors say why (one was display: none, hidden, or had no height yet)
      const up: string[] = [];
      for (let x: Element | null = e.parentElement; x && x !== document.body && r.height === 0; x = x.parentElement) {
        up.push(`${x.tagName.toLowerCase()}.${[...x.classList].join('.')}${x.hasAttribute('hidden') ? '[hidden]' : ''} ${getComputedStyle(x).display} ${Math.round(x.getBoundingClientRect().height)}px`);
      }
      const what = `${e.tagName.toLowerCase()}[${e.getAttribute('data-action') ?? e.getAttribute('aria-label')}]${up.length ? ` (in ${up.join(' < ')})` : ''}`;
      return { what, h: r.height, left: r.left, right: r.right };
    }), selector);
  for (const b of boxes) {
    expect(b.h, `${b.what} is ${b.h}px tall`).toBeGreaterThanOrEqual(44);
    expect(b.left, `${b.what} starts at ${b.left}`).toBeGreaterThanOrEqual(0);
    expect(b.right, `${b.what} ends at ${b.right}`).toBeLessThanOrEqual(WIDTH);
  }
  return boxes.length;
}

describe('a steward on a phone (390 px)', () => {
  const rig = browserAndGateway();
  let n: Network;
  let client: MqttClient;
  let deviceId: string;

  beforeAll(async () => {
    const { t } = rig;
    n = await buildNetwork(t);
    // a long name and address and several contacts: what makes a card wide
    const r = await t.api('PATCH', `/api/residents/${n.residentA}`, {
      name: 'Annegret Mechthild Alt-Wittenberg', address: 'Schwedter Straße 263, Hinterhaus, 3. Obergeschoss links, 10119 Berlin',
      contacts: [
        { name: 'Konstantin Alt-Wittenberg', relation: 'son', phone: '+49 30 12345678' },
        { name: 'Dr. Friederike Sonnenschein', relation: 'family doctor', phone: '+49 30 87654321' },
      ],
    });
    expect(r.status).toBe(200);
    for (const [name, role] of [['Nina Nowak-Schimmelpfennig', 'nurse'], ['Sven Stahl', 'steward']] as const) {
      expect((await t.api('POST', '/api/staff', { name, role, unitId: n.gridA, onDuty: true, phone: '+49 30 5550100' })).status).toBe(201);
    }
    const d = await t.provision('call-phone', 'CP-PHONE-0001');
    expect((await t.api('POST', `/api/devices/${d.id}/bind`, { residentId: n.residentA })).status).toBe(200);
    deviceId = d.id;
    client = await connectDevice(t.mqttUrl, d.id, d.secret);
  }, 60_000);
  afterAll(() => { client?.end(true); });

  it('sees the board, the alarm card and the incident without sideways scrolling, and acknowledges with a thumb', async () => {
    const { t, browser } = rig;
    const page = await browser.newPage({ viewport: { width: WIDTH, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
    const errors = watchErrors(page);
    await loginAs(page, t.http, n.users.stewardA, n.passwords[n.users.stewardA]!);
    await fits(page, 'the empty board');
    expect(await page.locator('nav a[href^="#/admin"]').count()).toBe(0); // a steward never sees admin links
    await expect.poll(() => page.locator('header.top .who').textContent()).toBe('stefan · steward · Grid A'); // the unit's name, not its id

    await publishAsync(client, `devices/${deviceId}/events`, JSON.stringify({ ts: Date.now(), seq: 1, type: 'sos' }));
    const card = page.locator(`.card[data-device="${deviceId}"]`);
    await card.waitFor({ timeout: 15_000 });
    await waitFor(() => page.locator(`.card[data-device="${deviceId}"] .resident`).textContent().then((x) => x?.includes('Annegret')), 'the resident on the card');
    await fits(page, 'the board with an open P1');
    // measured once it is shown (once, right after installing Chromium, the card's controls measured 0 px for an
    // instant: a board still being laid out; thumbSized names the ancestors should it happen after this)
    await card.locator('button[data-action=acknowledge]').waitFor({ state: 'visible', timeout: 10_000 });
    expect(await thumbSized(page, `.card[data-device="${deviceId}"]`)).toBeGreaterThanOrEqual(1);
    await docsShot(page, 'console-phone.png');

    // acknowledge with a tap; the card then offers dispatch, on site, resolve, note: all thumb-sized, all on screen
    await card.locator('button[data-action=acknowledge]').tap();
    await expect.poll(() => card.getAttribute('data-status'), { timeout: 10_000 }).toBe('acknowledged');
    await card.locator('select.staff-select option:nth-child(2)').waitFor({ state: 'attached' });
    await fits(page, 'the board with an acknowledged card');
    expect(await thumbSized(page, `.card[data-device="${deviceId}"]`)).toBeGreaterThanOrEqual(5);
    const id = (await card.getAttribute('data-id'))!;
    expect(t.gw.response.incidents.events(id).filter((e) => e.type === 'acknowledged')).toHaveLength(1);

    // the incident page
    await card.locator('a.details').tap();
    await page.waitForSelector('.incident-head');
    await page.waitForTimeout(500); // the timeline, plot and resident arrive by their own requests
    await fits(page, 'the incident page');
    await thumbSized(page, 'main');

    // the rest of what a steward opens
    for (const hash of ['#/network', '#/fleet', '#/board']) {
      await page.goto(`${t.http}/${hash}`);
      await page.waitForSelector('main#view > *');
      await page.waitForTimeout(300);
      await fits(page, hash);
    }
    expect(errors).toEqual([]);
    await page.close();
  }, 120_000);

  it("an admin's users and network screens fit the phone too", async () => {
    const { t, browser } = rig;
    const page = await browser.newPage({ viewport: { width: WIDTH, height: 844 }, isMobile: true, hasTouch: true });
    const errors = watchErrors(page);
    await loginAs(page, t.http, 'admin', t.adminPassword);
    await fits(page, 'the board, as admin (the longest nav)');
    await page.goto(`${t.http}/#/admin/users`);
    await page.waitForSelector('tr[data-user=stefan]');
    await page.click('tr[data-user=stefan] button[data-action=manage]');
    await page.click('button[data-action=reset-password]');
    await page.waitForSelector('button[data-action=confirm]');
    await fits(page, '#/admin/users with the editor open');
    await page.click('button[data-action=new-user]');
    await fits(page, '#/admin/users with the new-user form');
    await page.goto(`${t.http}/#/network`);
    await page.waitForSelector('.duty-unit');
    await fits(page, '#/network as admin');
    await page.click('button[data-action=new-staff]');
    await fits(page, '#/network with the staff form');
    expect(errors).toEqual([]);
    await page.close();
  }, 60_000);

  it('an unknown route is "Page not found" with a link back to the board, not the board', async () => {
    const { t, browser } = rig;
    const page = await browser.newPage({ viewport: { width: WIDTH, height: 844 }, isMobile: true, hasTouch: true });
    const errors = watchErrors(page);
    await loginAs(page, t.http, n.users.stewardA, n.passwords[n.users.stewardA]!);
    await page.goto(`${t.http}/#/no-such-page/42`);
    const notFound = page.locator('[data-page=not-found]');
    await notFound.waitFor();
    expect(await notFound.textContent()).toMatch(/Page not found.*#\/no-such-page\/42/);
    expect(await page.locator('.board, .attention').count()).toBe(0);
    await fits(page, 'not found');
    await notFound.locator('a[href="#/board"]').tap();
    await page.waitForSelector('.board');
    expect(errors).toEqual([]);
    await page.close();
  }, 60_000);
});
