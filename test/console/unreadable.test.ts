// A terminal sending unreadable messages, as a person sees it in headless Chromium: a P3 card on the board, and on
// the fleet page and the device's page how many messages were refused and why.
import { describe, expect, it } from 'vitest';
import { publishAsync } from '../helpers/gateway.js';
import { browserAndGateway, loginAs, watchErrors } from './browser.js';

describe('unreadable messages in the console', () => {
  const rig = browserAndGateway();

  it('a P3 card on the board, and the count with the last reason on the device page', async () => {
    const { t, browser } = rig;
    const dev = await t.provision('call-phone');
    const c = await t.connectDevice(dev.id, dev.secret);
    const page = await browser.newPage();
    const errors = watchErrors(page);
    await loginAs(page, t.http, 'admin', t.adminPassword);
    await publishAsync(c, `devices/${dev.id}/events`, '{"ts":1,"seq":1,"type":"levitate"}');
    await publishAsync(c, `devices/${dev.id}/telemetry`, '{"ts":2,"seq":2,"type":"heartbeat","battery":"full"}');
    c.end(true);

    const card = page.locator(`article.card[data-device="${dev.id}"]`);
    await card.waitFor({ timeout: 15_000 });
    expect(await card.getAttribute('data-priority')).toBe('P3');
    expect(await card.locator('.type').textContent()).toBe('Terminal sends unreadable messages');

    // the fleet page flags the device in its row
    await page.goto(`${t.http}/#/fleet`);
    const row = page.locator(`tr[data-device="${dev.id}"] [data-unreadable]`);
    await row.waitFor({ timeout: 15_000 });
    expect(await row.textContent()).toBe('2 unreadable');

    await page.goto(`${t.http}/#/device/${dev.id}`);
    const unreadable = page.locator('[data-unreadable]');
    await unreadable.waitFor({ timeout: 15_000 });
    expect(await unreadable.getAttribute('data-unreadable')).toBe('2');
    expect(await unreadable.textContent()).toBe('2 refused; last: "battery" is invalid for heartbeat: Expected integer');
    expect(await page.locator('[data-flags]').textContent()).toBe('sending unreadable messages');
    expect(errors).toEqual([]);
    await page.close();
  });
});
