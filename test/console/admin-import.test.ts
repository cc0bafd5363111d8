// CSV import in the console (issue 13 §1): an admin pastes a CSV with two bad lines and sees both, each with its
// line, field and reason, and nothing imported; then uploads a good file and sees the devices with their one-time
// secrets, the warning that they are shown once, and a CSV download that is the server's answer (a secret from it
// connects over MQTT). An operator and a steward on a phone are told the import is not theirs.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { buildNetwork, type Network } from '../ws/helpers.js';
import { launchBrowser, type TestBrowser, loginAs, watchErrors, docsShot } from './browser.js';


describe('CSV import', () => {
  let t: TestGateway;
  let n: Network;
  let browser: TestBrowser;
  beforeAll(async () => {
    browser = await launchBrowser(); // fails, naming the package, when chromium is missing
    t = await startTestGateway();
    n = await buildNetwork(t);
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await t?.stop();
  });

  it('two bad lines are both shown with line, field and reason; a good file gives the secrets once, downloadable as CSV', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
    page.setDefaultTimeout(15_000);
    const errors = watchErrors(page);
    await loginAs(page, t.http, 'admin', t.adminPassword);
    await page.click('nav a[href="#/admin/import"]');

    const bad = [
      'serial,kind,model,firmware',
      'IMP-0001,call-phone,CP-200,1.4.2',
      'IMP 0002,call-phone,CP-200,1.4.2', // line 3: a space in the serial
      'IMP-0003,toaster,CP-200,1.4.2', // line 4: no such kind
      'IMP-0004,locator,"LT-9, rev B",2.0',
    ].join('\n');
    await page.fill('textarea[name=csv]', bad);
    await page.click('button[type=submit]');
    await page.waitForSelector('table.import-errors tbody tr');
    const rows = await page.$$eval('table.import-errors tbody tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent)));
    expect(rows).toEqual([
      ['3', 'serial', 'serial "IMP 0002" must be 3–64 letters, digits or . _ : -'],
      ['4', 'kind', expect.stringMatching(/^kind "toaster" is not one of call-phone, /)],
    ]);
    expect(await page.locator('[data-import-status]').textContent()).toMatch(/^Nothing was imported: 2 problems on 2 line\(s\)/);
    expect((await t.api('GET', '/api/devices?q=IMP-')).body.total).toBe(0);

    // the good file, chosen as a file (with an Excel byte-order mark and a quoted cell with a comma)
    const good = '\uFEFFserial,kind,model,firmware\nIMP-0001,call-phone,CP-200,1.4.2\nIMP-0002,locator,"LT-9, rev B",2.0\n';
    await page.setInputFiles('input[name=file]', { name: 'delivery.csv', mimeType: 'text/csv', buffer: Buffer.from(good, 'utf8') });
    await page.waitForFunction(() => (document.querySelector('textarea[name=csv]') as HTMLTextAreaElement).value.includes('IMP-0002'));
    await page.click('button[type=submit]');
    await page.waitForSelector('table.import-created tbody tr');
    expect(await page.locator('[data-secret-warning]').textContent()).toMatch(/These secrets are shown once/);
    const created = await page.$$eval('table.import-created tbody tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent!)));
    expect(created.map((r) => [r[1], r[2]])).toEqual([['IMP-0001', 'call-phone'], ['IMP-0002', 'locator']]);
    for (const r of created) expect(r[3]!.length).toBeGreaterThanOrEqual(20);
    const stored = (await t.api('GET', '/api/devices?q=IMP-')).body.items as { id: string; serial: string; model: string }[];
    expect(stored.map((d) => d.serial).sort()).toEqual(['IMP-0001', 'IMP-0002']);
    expect(stored.find((d) => d.serial === 'IMP-0002')!.model).toBe('LT-9, rev B');

    await docsShot(page, 'console-import.png', { fullPage: true });

    // the download is the server's CSV: header and the same ids and secrets
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('a[data-download]')]);
    expect(download.suggestedFilename()).toMatch(/^eldergate-devices-.*\.csv$/);
    const text = readFileSync((await download.path())!, 'utf8');
    const lines = text.trim().split(/\r?\n/);
    expect(lines[0]).toBe('id,serial,kind,secret');
    expect(lines.slice(1)).toEqual(created.map((r) => r.join(',')));
    // and a secret from it is the device's: it connects
    const c = await t.connectDevice(created[0]![0]!, created[0]![3]!);
    c.end(true);

    // a serial imported twice: the 409 names the line
    await page.fill('textarea[name=csv]', 'serial,kind\nIMP-0009,call-phone\nIMP-0001,call-phone\n');
    await page.click('button[type=submit]');
    await page.waitForSelector('table.import-errors tbody tr');
    expect(await page.$$eval('table.import-errors tbody tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent))))
      .toEqual([['3', 'serial', 'serial "IMP-0001" is already provisioned']]);
    // the two refusals asked for, nothing else
    expect(errors.filter((e) => !/status of (400|409)/.test(e))).toEqual([]);
    await page.close();
  }, 120_000);

  it('a technician may import; an operator and a steward on a phone are told it is not theirs', async () => {
    const tech = await browser.newPage();
    await loginAs(tech, t.http, n.users.technician, n.passwords[n.users.technician]!);
    await tech.click('nav a[href="#/admin/import"]');
    await tech.waitForSelector('textarea[name=csv]');
    await tech.close();

    const op = await browser.newPage();
    await loginAs(op, t.http, n.users.operator, n.passwords[n.users.operator]!);
    expect(await op.locator('nav a[href="#/admin/import"]').count()).toBe(0);
    await op.goto(`${t.http}/#/admin/import`);
    await op.waitForSelector('[data-not-allowed]');
    expect(await op.locator('[data-not-allowed]').textContent()).toMatch(/for admins and technicians; you are logged in as olga \(operator\)/);
    expect(await op.locator('textarea[name=csv]').count()).toBe(0);
    // the server refuses anyway
    expect((await t.api('POST', '/api/devices/import', 'serial,kind\nX-1,call-phone\n', await t.token(n.users.operator, n.passwords[n.users.operator]))).status).toBe(403);
    await op.close();

    const phone = await browser.newPage({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    const errors = watchErrors(phone);
    await loginAs(phone, t.http, n.users.stewardA, n.passwords[n.users.stewardA]!);
    await phone.goto(`${t.http}/#/admin/import`);
    await phone.waitForSelector('[data-not-allowed]');
    expect(await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)).toBeLessThanOrEqual(0);
    expect(errors).toEqual([]);
    await phone.close();
  }, 60_000);
});
