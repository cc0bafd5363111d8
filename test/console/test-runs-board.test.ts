// The board in headless Chromium (issue 13 §4): an SOS from a test run's device is shown apart, in the labelled
// "Test runs" section below the board, never on the board itself nor among the P1s waiting for acknowledgement;
// a real SOS beside it is on the board as always. As an operator, on a desktop and on a phone-sized viewport.
import { describe, expect, it } from 'vitest';
import { publishAsync } from '../helpers/gateway.js';
import { browserAndGateway, loginAs, watchErrors, docsShot } from './browser.js';

describe('board: test runs shown apart', () => {
  const rig = browserAndGateway();

  it('a test device\'s SOS is in the "Test runs" section, a real SOS on the board', async () => {
    const { t, browser } = rig;
    const mk = async (serial: string, test: boolean) => {
      const d = await t.api('POST', '/api/devices', { kind: 'call-phone', serial, ...(test ? { test: true } : {}) });
      const r = await t.api('POST', '/api/residents', { name: test ? 'Sim resident phone 1' : 'Wang Fang', ...(test ? { test: true } : {}) });
      await t.api('POST', `/api/devices/${d.body.id}/bind`, { residentId: r.body.id });
      return d.body as { id: string; secret: string };
    };
    const testDev = await mk('SIM-run-board-1', true);
    const realDev = await mk('REAL-BOARD-1', false);
    expect((await t.api('POST', '/api/users', { username: 'oscar', password: 'oscar-password-123', role: 'operator' })).status).toBe(201);

    for (const d of [testDev, realDev]) {
      const c = await t.connectDevice(d.id, d.secret);
      await publishAsync(c, `devices/${d.id}/events`, JSON.stringify({ ts: Date.now(), seq: 1, type: 'sos' }));
      c.end(true);
    }
    const testInc = (await t.api('GET', `/api/incidents?deviceId=${testDev.id}`)).body.items[0];
    const realInc = (await t.api('GET', `/api/incidents?deviceId=${realDev.id}`)).body.items[0];

    for (const viewport of [{ width: 1280, height: 900 }, { width: 390, height: 844 }]) {
      const page = await browser.newPage({ viewport });
      const errors = watchErrors(page);
      await loginAs(page, t.http, 'oscar', 'oscar-password-123');
      const section = page.locator('section[data-section=test-runs]');
      await section.locator(`[data-id="${testInc.id}"]`).waitFor({ timeout: 15_000 });
      expect(await section.locator('h2').textContent()).toMatch(/^Test runs TEST 1$/);
      // no budget on a test: nobody is late for it
      expect(await section.locator(`[data-countdown="${testInc.id}"]`).textContent()).toMatch(/^test · open \d+:\d\d · never escalated$/);
      await expect.poll(() => section.isVisible()).toBe(true);
      // the real alarm is on the board and on top among the waiting P1s; the test one in neither
      await page.locator(`section.board [data-id="${realInc.id}"]`).first().waitFor({ timeout: 15_000 });
      expect(await page.locator(`section.board [data-id="${testInc.id}"]`).count()).toBe(0);
      expect(await page.locator(`section.attention [data-id="${realInc.id}"]`).count()).toBe(1);
      expect(await page.locator(`section.attention [data-id="${testInc.id}"]`).count()).toBe(0);
      expect(await section.locator(`[data-id="${realInc.id}"]`).count()).toBe(0);
      // the summary counts the real alarm only
      expect(await page.locator('.summary .badge.P1').textContent()).toBe('P1: 1');
      // at 390 px the section does not make the page wider than the screen
      expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(viewport.width);
      if (viewport.width === 1280) await docsShot(page, 'console-test-runs.png', { fullPage: true });
      // "show test runs" off: the section goes away, the board stays
      await page.uncheck('#show-tests');
      await expect.poll(() => section.isHidden()).toBe(true);
      await page.check('#show-tests');
      expect(errors).toEqual([]);
      await page.close();
    }
  }, 90_000);
});
