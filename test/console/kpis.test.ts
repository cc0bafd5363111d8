// KPIs per shift in the console (issue 13 §1): incidents the test raised and acknowledged appear on #/kpis with the
// numbers GET /api/kpis gives for the same period (the page's own from/to), in the tiles, the current shift's row and
// the total row; the uPlot chart's canvas is drawn. A steward on a phone sees her unit's numbers only; a technician
// is told the KPIs are not his.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { publishAsync, startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { buildNetwork, login, type Network } from '../ws/helpers.js';
import { fmtLatency } from '../../server/console/web/dom.js';
import { launchBrowser, type TestBrowser, loginAs, watchErrors, docsShot } from './browser.js';


interface Share { count: number; eligible: number; share: number | null }
interface Block {
  incidents: number; acknowledged: number; ackWithin60s: Share; ackWithin180s: Share; breaches: number; onSiteWithinReach: Share;
  timeToAck: { medianMs: number | null; p95Ms: number | null }; timeToOnSite: { medianMs: number | null; p95Ms: number | null };
}
interface Report { from: number; to: number; shifts: (Block & { start: number })[]; total: Block }

const pct = (s: Share) => (s.share === null ? '—' : `${(s.share * 100).toFixed(1)} %`);

/** The row as the page must show it, from the API's block. */
const expectedRow = (b: Block) => [String(b.incidents), String(b.acknowledged), pct(b.ackWithin60s), pct(b.ackWithin180s),
  fmtLatency(b.timeToAck.medianMs), fmtLatency(b.timeToAck.p95Ms), fmtLatency(b.timeToOnSite.medianMs), fmtLatency(b.timeToOnSite.p95Ms),
  pct(b.onSiteWithinReach), String(b.breaches)];

const rowOf = (page: Page, shift: string) =>
  page.$eval(`table.kpis tr[data-shift="${shift}"]`, (tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent));

/** Pixels the chart drew on its canvas (not transparent). */
const drawnPixels = (page: Page) => page.evaluate(() => {
  const c = document.querySelector<HTMLCanvasElement>('[data-kpi-chart] canvas');
  if (!c || !c.width || !c.height) return 0;
  const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 3; i < d.length; i += 4) if (d[i]! > 0) n++;
  return n;
});

describe('KPIs per shift', () => {
  let t: TestGateway;
  let n: Network;
  let browser: TestBrowser;
  beforeAll(async () => {
    browser = await launchBrowser(); // fails, naming the package, when chromium is missing
    t = await startTestGateway();
    n = await buildNetwork(t);
    // SOS from real terminals over MQTT: three in grid A (two acknowledged, one of them with a responder on site),
    // one in grid B
    const sos = async (residentId: string) => {
      const d = await t.provision('call-phone');
      const bound = await t.api('POST', `/api/devices/${d.id}/bind`, { residentId });
      if (bound.status !== 200) throw new Error(`bind: ${bound.status} ${JSON.stringify(bound.body)}`);
      const c = await t.connectDevice(d.id, d.secret);
      await publishAsync(c, `devices/${d.id}/events`, JSON.stringify({ ts: Date.now(), seq: 1, type: 'sos' }));
      c.end(true);
      return waitFor(async () => (await t.api('GET', `/api/incidents?deviceId=${d.id}`)).body.items[0]?.id as string | undefined, `the SOS of ${d.id}`);
    };
    const a = [await sos(n.residentA), await sos(n.residentA), await sos(n.residentA)];
    const b = [await sos(n.residentB)];
    for (const [id, action] of [[a[0], 'acknowledge'], [a[1], 'acknowledge'], [a[1], 'on-site'], [b[0], 'acknowledge']] as const) {
      const r = await t.api('POST', `/api/incidents/${id}/${action}`, {});
      if (r.status !== 200) throw new Error(`${action}: ${r.status} ${JSON.stringify(r.body)}`);
    }
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await t?.stop();
  });

  it('an admin sees the numbers of GET /api/kpis for the incidents raised and acknowledged, and the chart is drawn', async () => {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    page.setDefaultTimeout(15_000);
    const errors = watchErrors(page);
    await loginAs(page, t.http, 'admin', t.adminPassword);
    await page.click('nav a[href="#/kpis"]');
    await page.waitForSelector('table.kpis tr[data-shift=total]');
    const range = await page.$eval('main', (m) => ({ from: m.dataset.from!, to: m.dataset.to! }));
    // the default period is the last 7 days, to now
    expect(Number(range.to) - Number(range.from)).toBeGreaterThan(6 * 86_400_000);
    expect(Number(range.to) - Number(range.from)).toBeLessThanOrEqual(7 * 86_400_000);
    const api = (await t.api('GET', `/api/kpis?from=${range.from}&to=${range.to}`)).body as Report;
    expect(api.total.incidents).toBe(4);
    expect(api.total.acknowledged).toBe(3);

    expect(await rowOf(page, 'total')).toEqual(expectedRow(api.total));
    const current = api.shifts.find((s) => s.incidents > 0)!;
    expect(await rowOf(page, String(current.start))).toEqual(expectedRow(current));
    expect(await page.locator('[data-kpi=incidents] strong').textContent()).toBe('4');
    expect(await page.locator('[data-kpi=ack60] strong').textContent()).toBe(pct(api.total.ackWithin60s));
    expect(await page.locator('[data-kpi=ack180] strong').textContent()).toBe(pct(api.total.ackWithin180s));
    expect(await page.locator('[data-kpi=breaches] strong').textContent()).toBe(String(api.total.breaches));
    // only shifts with incidents unless asked: then every shift of the period
    expect(await page.locator('table.kpis tbody tr[data-shift]').count()).toBe(api.shifts.filter((s) => s.incidents || s.breaches).length);
    await page.check('input[name=empty]');
    expect(await page.locator('table.kpis tbody tr[data-shift]').count()).toBe(api.shifts.length);

    // uPlot drew: its stylesheet reached the page (served inside style.css) and the canvas has pixels
    await expect.poll(() => drawnPixels(page)).toBeGreaterThan(500);
    // (without uPlot.min.css its overlay would not sit on the canvas)
    expect(await page.$eval('[data-kpi-chart] .u-over', (el) => getComputedStyle(el).position)).toBe('absolute');
    expect(await page.locator('.u-legend').textContent()).toContain('ack ≤ 60 s');
    await docsShot(page, 'console-kpis.png', { fullPage: true });

    // another period: nothing in it, said so, the chart still drawn (axes)
    await page.uncheck('input[name=empty]');
    await page.fill('input[name=from]', '2020-01-01');
    await page.fill('input[name=to]', '2020-01-03');
    await page.click('form.filters button[type=submit]');
    await page.waitForFunction(() => document.querySelector('[data-kpi=incidents] strong')?.textContent === '0');
    await page.waitForSelector('table.kpis tbody td.muted');
    // a period the wrong way round is refused on the page
    await page.fill('input[name=from]', '2020-01-05');
    await page.click('form.filters button[type=submit]');
    expect(await page.locator('[data-kpi-error]').textContent()).toBe('"from" must be before "to"');
    expect(errors).toEqual([]);
    await page.close();
  }, 120_000);

  it('a steward on a phone sees her unit\'s numbers only (as the API gives them to her); a technician is told the KPIs are not his', async () => {
    const phone = await browser.newPage({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    phone.setDefaultTimeout(15_000);
    const errors = watchErrors(phone);
    await loginAs(phone, t.http, n.users.stewardA, n.passwords[n.users.stewardA]!);
    await phone.goto(`${t.http}/#/kpis`);
    await phone.waitForSelector('table.kpis tr[data-shift=total]');
    const range = await phone.$eval('main', (m) => ({ from: m.dataset.from!, to: m.dataset.to! }));
    const api = (await t.api('GET', `/api/kpis?from=${range.from}&to=${range.to}`, undefined, await login(t, n, n.users.stewardA))).body as Report;
    expect(api.total.incidents).toBe(3);
    expect(await rowOf(phone, 'total')).toEqual(expectedRow(api.total));
    await expect.poll(() => drawnPixels(phone)).toBeGreaterThan(200);
    // the page fits the phone; the table scrolls inside its own box
    expect(await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)).toBeLessThanOrEqual(0);
    expect(errors).toEqual([]);
    await phone.close();

    const tech = await browser.newPage();
    await loginAs(tech, t.http, n.users.technician, n.passwords[n.users.technician]!);
    expect(await tech.locator('nav a[href="#/kpis"]').count()).toBe(0);
    await tech.goto(`${t.http}/#/kpis`);
    await tech.waitForSelector('[data-not-allowed]');
    expect((await t.api('GET', '/api/kpis', undefined, await login(t, n, n.users.technician))).status).toBe(403);
    await tech.close();
  }, 60_000);
});
