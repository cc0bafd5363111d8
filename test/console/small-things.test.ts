// Issue 13 §5 in headless Chromium: names where the page showed ids (the fleet's resident column, who confirmed a
// delivery on the timeline), no "—%" for an unknown battery, the lifecycle as a technician reads it, and a command
// to an offline device that says it is queued.
import { describe, expect, it } from 'vitest';
import { publishAsync, waitFor } from '../helpers/gateway.js';
import { browserAndGateway, loginAs, watchErrors } from './browser.js';

describe('small things in the console', () => {
  const rig = browserAndGateway();

  it('fleet: the resident by name and the state as "provisioned (not tested)"; device page: no "—%", an offline command said to be queued', async () => {
    const { t, browser } = rig;
    const dev = await t.provision('call-phone', 'SMALL-1');
    const resident = await t.api('POST', '/api/residents', { name: 'Margarethe Osei' });
    expect((await t.api('POST', `/api/devices/${dev.id}/bind`, { residentId: resident.body.id })).status).toBe(200);
    const page = await browser.newPage();
    const errors = watchErrors(page);
    await loginAs(page, t.http, 'admin', t.adminPassword);

    await page.goto(`${t.http}/#/fleet`);
    const cell = page.locator(`tr[data-device="${dev.id}"] td[data-resident="${resident.body.id}"]`);
    await cell.waitFor({ timeout: 15_000 });
    await page.waitForFunction(([sel, name]) => document.querySelector(sel!)?.textContent === name,
      [`tr[data-device="${dev.id}"] td[data-resident="${resident.body.id}"]`, 'Margarethe Osei'], { timeout: 15_000 });
    expect(await page.locator(`tr[data-device="${dev.id}"] td[data-state]`).textContent()).toBe('provisioned (not tested)');

    await page.goto(`${t.http}/#/device/${dev.id}`);
    const battery = page.locator('[data-battery]');
    await battery.waitFor({ timeout: 15_000 });
    expect(await battery.textContent()).toBe('— / —');
    expect(await page.locator('[data-state]').first().textContent()).toBe('provisioned (not tested)');

    await page.click('button[data-action=commission]');
    const queued = page.locator('[data-queued]');
    await queued.waitFor({ timeout: 15_000 });
    expect(await queued.textContent()).toMatch(/^device offline; sent when it reconnects \(expires at \d{4}-\d\d-\d\dT[\d:.]+Z\)$/);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('the timeline names the person whose console confirmed delivery, not their account id', async () => {
    const { t, browser } = rig;
    const dev = await t.provision('call-phone', 'SMALL-2');
    const page = await browser.newPage();
    const errors = watchErrors(page);
    await loginAs(page, t.http, 'admin', t.adminPassword);
    const c = await t.connectDevice(dev.id, dev.secret);
    await publishAsync(c, `devices/${dev.id}/events`, JSON.stringify({ ts: Date.now(), seq: 1, type: 'test' }));
    c.end(true);
    const inc = await waitFor(async () => (await t.api('GET', `/api/incidents?deviceId=${dev.id}`)).body.items[0], 'the test incident');
    // the console confirms the frame over the WebSocket; the server records it with the user's name
    // (a receipt, not an incident event: the detail API joins it, the stream never carries it)
    await waitFor(async () => (await t.api('GET', `/api/incidents/${inc.id}`)).body.receipts.some((r: { kind: string }) => r.kind === 'delivered'), 'delivery recorded');

    await page.goto(`${t.http}/#/incident/${inc.id}`);
    const line = page.locator('ol.timeline li[data-type=delivered]');
    await line.first().waitFor({ timeout: 15_000 });
    const text = await line.first().textContent();
    expect(text).toMatch(/admin's console confirmed frame \d+/);
    expect(text).not.toMatch(/u_/);
    expect(errors).toEqual([]);
    await page.close();
  });
});
