// Issue 9 part 2, in headless Chromium against a real gateway: a 24/7 board's session is renewed while it is open (and
// still gets alarms past its first token's life); a board that cannot renew warns before its session could end, then
// says why it ended. On its own file because it waits out a real token life (the shortest the config allows, 60 s):
// beside the rest of the suite, not after it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { buildNetwork, raise, type Network } from '../ws/helpers.js';
import { launchBrowser, type TestBrowser, loginAs } from './browser.js';

describe('a 24/7 board and its session', () => {
  let browser: TestBrowser;
  let t: TestGateway;
  let n: Network;

  beforeAll(async () => {
    browser = await launchBrowser();
    // the shortest token the config allows, and the server checking it every 2 s on the socket
    t = await startTestGateway({ http: { port: 0, host: '127.0.0.1', tokenTtlS: 60, wsPingIntervalMs: 2000 } });
    n = await buildNetwork(t);
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await t?.stop();
  });

  it('is renewed while open (and still gets alarms past the first token\'s life); if renewal fails it warns, then says why it ended', async () => {
    const kept = await browser.newPage({ viewport: { width: 1200, height: 800 } });
    const failing = await (await browser.newContext({ viewport: { width: 1200, height: 800 } })).newPage();
    // the second board cannot reach the renewal (fault injection on its network; the server is real)
    await failing.route('**/api/auth/renew', (route) => route.abort('connectionreset'));
    await loginAs(kept, t.http, n.users.operator, n.passwords[n.users.operator]!);
    await loginAs(failing, t.http, n.users.operator, n.passwords[n.users.operator]!);
    const firstToken = await kept.evaluate(() => sessionStorage.getItem('eldergate.token'));

    const warning = failing.locator('.session-warning');
    await warning.waitFor({ state: 'visible', timeout: 60_000 });
    expect(await warning.textContent()).toMatch(/Your session ends in 0:\d\d and could not be renewed/);
    await failing.waitForSelector('[data-logout-reason]', { timeout: 30_000 });
    expect(await failing.locator('[data-logout-reason]').textContent()).toMatch(/You were logged out: .*(expired|token)/);

    // past the first token's expiry: the kept board is still logged in and live, on a renewed token
    await kept.waitForTimeout(Math.max(0, 3000));
    expect(await kept.evaluate(() => sessionStorage.getItem('eldergate.token'))).not.toBe(firstToken);
    expect(await kept.locator('header.top').count()).toBe(1);
    expect(await kept.locator('[data-logout-reason]').count()).toBe(0);
    await kept.waitForSelector('.conn[data-conn=live]', { timeout: 10_000 });
    const [late] = raise(t, 1, { unitId: 'gA', device: 'after-expiry' });
    await kept.waitForSelector(`.card[data-id="${late!.incidentId}"]`, { timeout: 10_000 });
    await kept.close();
    await failing.close();
  }, 120_000);
});
