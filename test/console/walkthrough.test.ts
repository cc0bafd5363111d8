// The README walk-through, as a new user does it: a resident created without a unit, a phone bound to her, the
// district call centre's operator logged in to the console in headless Chromium, the phone presses SOS over real
// MQTT. The card must name the elder, her address and her son's number — not ids (issue 9 §1).
import { describe, expect, it } from 'vitest';
import { publishAsync } from '../helpers/gateway.js';
import { browserAndGateway, loginAs, watchErrors } from './browser.js';

describe('the README walk-through in the console', () => {
  const rig = browserAndGateway();

  it('ends with the call-centre operator seeing Wang Fang, her address and her son\'s number on the card', async () => {
    const { t, browser } = rig;
    const unit = await t.api('POST', '/api/units', { name: 'Dongcheng call centre', tier: 'district' });
    expect((await t.api('POST', '/api/users', { username: 'zhou', password: 'choose-a-long-one', role: 'operator', unitId: unit.body.id })).status).toBe(201);
    const res = await t.api('POST', '/api/residents', {
      name: 'Wang Fang', address: '3 Hutong Lane', contacts: [{ name: 'Li Wei', relation: 'son', phone: '+86 10 5555 0101' }],
    });
    const dev = await t.api('POST', '/api/devices', { kind: 'call-phone', serial: 'CP-0001' });
    expect((await t.api('POST', `/api/devices/${dev.body.id}/bind`, { residentId: res.body.id })).status).toBe(200);

    const page = await browser.newPage();
    const errors = watchErrors(page);
    await loginAs(page, t.http, 'zhou', 'choose-a-long-one');

    const phone = await t.connectDevice(dev.body.id, dev.body.secret);
    await publishAsync(phone, `devices/${dev.body.id}/events`, JSON.stringify({ ts: Date.now(), seq: 1, type: 'sos' }), 1);
    phone.end(true);

    const card = page.locator(`.card[data-device="${dev.body.id}"][data-priority=P1]`);
    await card.waitFor({ timeout: 20_000 });
    await expect.poll(() => card.textContent(), { timeout: 10_000 }).toContain('Wang Fang');
    const text = (await card.textContent()) ?? '';
    expect(text).toContain('3 Hutong Lane');
    expect(text).toContain('Li Wei');
    expect(text).toContain('+86 10 5555 0101');
    expect(errors).toEqual([]);

    // logging out ends the session at the gateway too: the token the page held is refused from then on
    const token = await page.evaluate(() => sessionStorage.getItem('eldergate.token'));
    expect((await t.api('GET', '/api/auth/me', undefined, token!)).status).toBe(200);
    await page.getByRole('button', { name: 'log out' }).click();
    await page.waitForSelector('input[name=username]');
    await expect.poll(async () => (await t.api('GET', '/api/auth/me', undefined, token!)).status, { timeout: 10_000 }).toBe(401);
    await page.close();
  }, 90_000);
});
