// The map (issue 13 §2): a real gateway whose console.tileUrl points at a tiny tile server on 127.0.0.1, a locator
// sending fixes over MQTT inside then outside its resident's safe zone and an SOS; the incident page draws them on
// Leaflet tiles fetched from that server (the page's CSP allows that origin and no other). Without tiles the
// schematic plot shows the same scene. A position that is only the resident's home says "home address (no fix)"
// and is never called "last known".
import { createServer, type Server } from 'node:http';
import { crc32, deflateSync } from 'node:zlib';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../core/config.js';
import { publishAsync, startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { launchBrowser, type TestBrowser, loginAs, watchErrors, docsShot } from './browser.js';


/** A 256×256 PNG: pale paper with a grid line every 64 px, so the screenshot reads as a map background. */
function tilePng(): Buffer {
  const size = 256;
  const raw = Buffer.alloc((size * 3 + 1) * size);
  for (let y = 0; y < size; y++) {
    const row = y * (size * 3 + 1);
    raw[row] = 0; // filter: none
    for (let x = 0; x < size; x++) {
      const line = x % 64 === 0 || y % 64 === 0;
      const [r, g, b] = line ? [214, 208, 196] : [242, 239, 233];
      raw.set([r, g, b], row + 1 + x * 3);
    }
  }
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([len, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(size, 0);
  ihdr.writeUInt32BE(size, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit RGB
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

interface TileServer { origin: string; requests: string[]; close(): Promise<void> }

async function startTileServer(): Promise<TileServer> {
  const png = tilePng();
  const requests: string[] = [];
  const server: Server = createServer((req, res) => {
    requests.push(req.url ?? '');
    if (!/^\/\d+\/\d+\/\d+\.png$/.test(req.url ?? '')) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'image/png', 'content-length': png.length }).end(png);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  let closed: Promise<void> | null = null;
  return {
    origin: `http://127.0.0.1:${port}`, requests,
    close: () => closed ??= new Promise((r) => { server.close(() => r()); server.closeAllConnections(); }),
  };
}

const HOME = { lat: 39.9, lon: 116.4 };
const ZONE = { type: 'circle' as const, center: HOME, radiusM: 300 };

/** A resident with a home and a safe zone, a device of `kind` bound to her, and an operator to log in as. */
async function residentWithDevice(t: TestGateway, name: string, kind: string) {
  const resident = (await t.api('POST', '/api/residents', { name, address: '3 Hutong Lane', home: HOME, safeZone: ZONE })).body;
  const dev = await t.provision(kind);
  expect((await t.api('POST', `/api/devices/${dev.id}/bind`, { residentId: resident.id })).status).toBe(200);
  return { resident, dev };
}

const incidentOf = (t: TestGateway, deviceId: string, type: string) =>
  t.gw.store.sqlite.prepare('select id from incidents where device_id = ? and type = ?').get(deviceId, type) as { id: string } | undefined;

const positionsStored = (t: TestGateway, deviceId: string) =>
  (t.gw.store.sqlite.prepare("select count(*) n from observations where device_id = ? and type = 'position'").get(deviceId) as { n: number }).n;

async function openIncident(page: Page, t: TestGateway, id: string): Promise<void> {
  await page.goto(`${t.http}/#/incident/${encodeURIComponent(id)}`);
  await page.waitForSelector(`.incident-head[data-id="${id}"]`, { timeout: 15_000 });
}

/** The text of the position panel and of the board card: what an operator reads about where the resident is. */
const positionPanelText = (page: Page) => page.locator('section.position').textContent().then((x) => x ?? '');

describe('console.tileUrl', () => {
  const load = (url: string) => loadConfig({ ELDERGATE_CONSOLE_TILE_URL: url });
  it('is read from ELDERGATE_CONSOLE_TILE_URL, and refused with the setting, the reason and an example when unusable', () => {
    expect(load('https://tiles.example.city/{z}/{x}/{y}.png').console).toEqual({ tileUrl: 'https://tiles.example.city/{z}/{x}/{y}.png', tileAttribution: '', tileMaxZoom: 19 });
    expect(load('http://127.0.0.1:8081/tiles/{z}/{x}/{y}.png').console.tileUrl).toBe('http://127.0.0.1:8081/tiles/{z}/{x}/{y}.png');
    for (const [url, why] of [
      ['https://{s}.tile.example.org/{z}/{x}/{y}.png', 'the host must be written out (no {s} subdomains)'],
      ['ftp://tiles.example.city/{z}/{x}/{y}.png', 'ftp: is not http: or https:'],
      ['https://tiles.example.city/{z}/{x}.png', '{y} missing'],
      ['tiles/{z}/{x}/{y}.png', 'not a URL'],
      ['https://user:pw@tiles.example.city/{z}/{x}/{y}.png', 'credentials in the URL would be sent to every console'],
    ] as const) {
      expect(() => load(url)).toThrow(`ELDERGATE_CONSOLE_TILE_URL: ${why}; give an http(s) URL template with {z}, {x} and {y}, e.g. https://tiles.example.city/{z}/{x}/{y}.png`);
    }
  });
});

describe('the map on Leaflet tiles from console.tileUrl', () => {
  let t: TestGateway;
  let tiles: TileServer;
  let browser: TestBrowser;
  let walkerSos = ''; // the locator's SOS, drawn again without tiles at the end
  beforeAll(async () => {
    browser = await launchBrowser();
    tiles = await startTileServer();
    t = await startTestGateway({ console: { tileUrl: `${tiles.origin}/{z}/{x}/{y}.png`, tileAttribution: '© City GIS <tiles.example.city>', tileMaxZoom: 18 } });
    expect((await t.api('POST', '/api/users', { username: 'ops', password: 'choose-a-long-one', role: 'operator' })).status).toBe(201);
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await t?.stop();
    await tiles?.close();
  }, 30_000);

  it('allows images from the tile origin in the CSP, and from nowhere else', async () => {
    const res = await fetch(t.http + '/');
    const csp = res.headers.get('content-security-policy') ?? '';
    expect(csp).toMatch(new RegExp(`img-src 'self' data: ${tiles.origin.replace(/[.]/g, '\\.')};`));
    // nothing but img-src names it: no scripts, styles or connections to the tile server
    expect(csp.split(';').filter((d) => d.includes(tiles.origin)).map((d) => d.trim().split(' ')[0])).toEqual(['img-src']);
    expect((await fetch(t.http + '/console/images/marker-icon.png')).headers.get('content-type')).toBe('image/png');
    expect(await (await fetch(t.http + '/console/style.css')).text()).toContain('.leaflet-container');
    const settings = await t.api('GET', '/api/console/settings');
    expect(settings.body.map).toEqual({ tileUrl: `${tiles.origin}/{z}/{x}/{y}.png`, attribution: '© City GIS <tiles.example.city>', maxZoom: 18 });
  });

  it('draws home, the fix with its age and accuracy, the safe zone and the path of the last hour on the incident page', async () => {
    const { dev } = await residentWithDevice(t, 'Wang Fang', 'locator');
    const watch = await t.connectDevice(dev.id, dev.secret);
    // four fixes inside the 300 m zone, then two outside (the second ~1 km north): a safe-zone exit, then an SOS
    const fixes = [[39.9004, 116.4002], [39.9009, 116.4005], [39.9013, 116.4001], [39.9018, 116.3998], [39.906, 116.4003], [39.909, 116.4008]];
    let seq = 1;
    for (const [lat, lon] of fixes) {
      await publishAsync(watch, `devices/${dev.id}/telemetry`, JSON.stringify({ ts: Date.now(), seq: seq++, type: 'position', lat, lon, accuracy: 12 }));
    }
    await waitFor(() => incidentOf(t, dev.id, 'safe-zone-exit'), 'the safe-zone exit');
    await publishAsync(watch, `devices/${dev.id}/events`, JSON.stringify({ ts: Date.now(), seq: seq++, type: 'sos', position: { lat: 39.9092, lon: 116.4009, accuracy: 40 } }));
    const sos = await waitFor(() => incidentOf(t, dev.id, 'sos'), 'the SOS incident');
    walkerSos = sos.id;
    // and walks on: where the device is now is not where it cried for help
    fixes.push([39.9097, 116.4015]);
    await publishAsync(watch, `devices/${dev.id}/telemetry`, JSON.stringify({ ts: Date.now(), seq: seq++, type: 'position', lat: 39.9097, lon: 116.4015, accuracy: 12 }));
    watch.end(true);
    await waitFor(() => positionsStored(t, dev.id) === fixes.length, 'every fix stored');

    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    const errors = watchErrors(page); // a CSP refusal is a console error, so this also says nothing was blocked
    await loginAs(page, t.http, 'ops', 'choose-a-long-one');
    const before = tiles.requests.length;
    await openIncident(page, t, sos.id);
    const panel = page.locator('section.position[data-view=map]');
    await panel.locator('.leaflet-container').waitFor({ timeout: 15_000 });

    // tiles come from the local tile server, as z/x/y PNGs
    await expect.poll(() => tiles.requests.length - before, { timeout: 15_000 }).toBeGreaterThan(0);
    expect(tiles.requests.slice(before).every((u) => /^\/\d+\/\d+\/\d+\.png$/.test(u))).toBe(true);
    await expect.poll(() => panel.locator('img.leaflet-tile-loaded').count(), { timeout: 15_000 }).toBeGreaterThan(0);

    // home (the house marker), the alarm's fix and the device's last fix, each with its accuracy circle
    await panel.locator('.leaflet-marker-icon.map-home').waitFor();
    await expect.poll(() => panel.locator('.leaflet-marker-icon.map-fix.alarm').count()).toBe(1);
    await expect.poll(() => panel.locator('.leaflet-marker-icon.map-fix.device').count()).toBe(1);
    await expect.poll(() => panel.locator('path.map-accuracy.alarm').count()).toBe(1);
    expect(await panel.locator('path.map-accuracy.device').count()).toBe(1);
    expect(await panel.locator('.leaflet-marker-icon.map-fix.alarm').getAttribute('src')).toBe('/console/images/marker-icon.png');
    // the safe zone, and the path of the last hour: one point per stored fix
    expect(await panel.locator('path.map-zone').count()).toBe(1);
    await expect.poll(() => panel.locator('.map').getAttribute('data-path-points'), { timeout: 15_000 }).toBe(String(fixes.length));
    const d = (await panel.locator('path.map-path').getAttribute('d')) ?? '';
    expect(d.match(/[ML]/g)).toHaveLength(fixes.length);

    // the labels, on the map and in the legend: the fix's age and accuracy; the attribution as plain text
    const text = await positionPanelText(page);
    expect(text).toMatch(/alarm: fix, \d+(\.\d)? (ms|s|min) ago, ±40 m/);
    expect(text).toMatch(/device: last fix, \d+(\.\d)? (ms|s|min) ago, ±12 m/);
    expect(text).toContain('safe zone: circle of 300 m');
    expect(text).toContain(`path of the last hour: ${fixes.length} fixes`);
    expect(text).not.toContain('last known');
    expect(await panel.locator('.leaflet-control-attribution').textContent()).toContain('© City GIS <tiles.example.city>');

    // a redraw (an event on the incident) keeps the same map, not a new one
    await page.evaluate(() => { (document.querySelector('.leaflet-container') as HTMLElement & { marked?: boolean }).marked = true; });
    expect((await t.api('POST', `/api/incidents/${sos.id}/acknowledge`, {})).status).toBe(200);
    await page.waitForSelector('.incident-head[data-status=acknowledged]', { timeout: 10_000 });
    expect(await page.evaluate(() => (document.querySelector('.leaflet-container') as HTMLElement & { marked?: boolean }).marked)).toBe(true);

    await page.waitForTimeout(500); // tiles painted
    await docsShot(panel, 'console-map.png');
    expect(errors).toEqual([]);
    await page.close();
  }, 90_000);

  it('shows a position from the home address as such on the map, never as "last known"', async () => {
    const { dev } = await residentWithDevice(t, 'Li Na', 'call-phone');
    const phone = await t.connectDevice(dev.id, dev.secret);
    await publishAsync(phone, `devices/${dev.id}/events`, JSON.stringify({ ts: Date.now(), seq: 1, type: 'sos' }));
    phone.end(true);
    const sos = await waitFor(() => incidentOf(t, dev.id, 'sos'), 'the SOS incident');
    // the gateway says where the position came from
    expect((await t.api('GET', `/api/incidents/${sos.id}`)).body.position).toEqual({ ...HOME, stale: true, source: 'home' });

    const page = await browser.newPage();
    const errors = watchErrors(page);
    await loginAs(page, t.http, 'ops', 'choose-a-long-one');
    const card = page.locator(`.card[data-id="${sos.id}"]`);
    await card.waitFor({ timeout: 15_000 });
    expect(await card.textContent()).toContain('home address (no fix)');
    expect(await card.textContent()).not.toContain('last known');
    await openIncident(page, t, sos.id);
    const panel = page.locator('section.position[data-view=map]');
    await panel.locator('.leaflet-marker-icon.map-home').waitFor({ timeout: 15_000 });
    await expect.poll(() => panel.locator('.leaflet-tooltip').first().textContent()).toContain('alarm: home address (no fix)');
    expect(await panel.locator('.map-fix').count()).toBe(0); // no fix to draw: the home is the position
    const text = await positionPanelText(page);
    expect(text).toContain('alarm: home address (no fix)');
    expect(text).not.toContain('last known');
    expect(errors).toEqual([]);
    await page.close();

    // on a steward's phone the map fits the screen: nothing wider than 390 px
    const phonePage = await browser.newPage({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    const phoneErrors = watchErrors(phonePage);
    await loginAs(phonePage, t.http, 'ops', 'choose-a-long-one');
    await openIncident(phonePage, t, sos.id);
    const map = phonePage.locator('section.position[data-view=map] .leaflet-container');
    await map.waitFor({ timeout: 15_000 });
    const box = await map.boundingBox();
    expect(box!.width).toBeGreaterThan(300);
    expect(box!.x + box!.width).toBeLessThanOrEqual(390);
    expect(await phonePage.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    expect(phoneErrors).toEqual([]);
    await phonePage.close();
  }, 60_000);

  it('says so when the tile server cannot be reached, and still places everything', async () => {
    await tiles.close();
    const page = await browser.newPage();
    await loginAs(page, t.http, 'ops', 'choose-a-long-one');
    await openIncident(page, t, walkerSos);
    const panel = page.locator('section.position[data-view=map]');
    await expect.poll(() => panel.locator('.map-note').textContent(), { timeout: 15_000 })
      .toBe(`Map tiles cannot be loaded from ${tiles.origin} (console.tileUrl): the positions below are still correct.`);
    expect(await panel.locator('.leaflet-marker-icon.map-home').count()).toBe(1);
    expect(await panel.locator('.leaflet-marker-icon.map-fix.alarm').count()).toBe(1);
    // the path comes from its own request, which can answer after the tiles failed
    await expect.poll(() => panel.locator('path.map-path').count(), { timeout: 15_000 }).toBe(1);
    await page.close();
  }, 60_000);
});

describe('without tiles: the schematic plot', () => {
  let t: TestGateway;
  let browser: TestBrowser;
  beforeAll(async () => {
    browser = await launchBrowser();
    t = await startTestGateway();
    expect((await t.api('POST', '/api/users', { username: 'ops', password: 'choose-a-long-one', role: 'operator' })).status).toBe(201);
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await t?.stop();
  }, 30_000);

  it('draws the same scene with the same labels, with no image source but its own in the CSP', async () => {
    const csp = (await fetch(t.http + '/')).headers.get('content-security-policy') ?? '';
    expect(csp).toContain("img-src 'self' data:;");
    expect((await t.api('GET', '/api/console/settings')).body.map).toBeNull();

    // a watch with fixes, then an SOS without a fix: the last known fix, with its age
    const { dev } = await residentWithDevice(t, 'Zhao Min', 'locator');
    const watch = await t.connectDevice(dev.id, dev.secret);
    const fixes = [[39.9004, 116.4002], [39.9009, 116.4005], [39.9013, 116.4001]];
    let seq = 1;
    for (const [lat, lon] of fixes) {
      await publishAsync(watch, `devices/${dev.id}/telemetry`, JSON.stringify({ ts: Date.now(), seq: seq++, type: 'position', lat, lon, accuracy: 15 }));
    }
    await waitFor(() => positionsStored(t, dev.id) === fixes.length, 'the fixes stored');
    await publishAsync(watch, `devices/${dev.id}/events`, JSON.stringify({ ts: Date.now(), seq: seq++, type: 'sos' }));
    watch.end(true);
    const sos = await waitFor(() => incidentOf(t, dev.id, 'sos'), 'the SOS incident');
    expect((await t.api('GET', `/api/incidents/${sos.id}`)).body.position).toMatchObject({ stale: true, source: 'last-known' });

    const page = await browser.newPage();
    const errors = watchErrors(page);
    await loginAs(page, t.http, 'ops', 'choose-a-long-one');
    await openIncident(page, t, sos.id);
    const panel = page.locator('section.position[data-view=plot]');
    await panel.locator('svg.plot .plot-home').waitFor({ timeout: 15_000 });
    expect(await page.locator('.leaflet-container').count()).toBe(0);
    expect(await panel.locator('svg.plot .plot-zone').count()).toBe(1);
    expect(await panel.locator('svg.plot .plot-point.alarm.stale').count()).toBe(1);
    expect(await panel.locator('svg.plot .plot-acc.alarm').count()).toBe(1);
    await expect.poll(() => panel.locator('svg.plot').getAttribute('data-path-points'), { timeout: 15_000 }).toBe(String(fixes.length));
    expect((await panel.locator('svg.plot .plot-path').getAttribute('points'))?.trim().split(/\s+/)).toHaveLength(fixes.length);
    // the plot's label and the legend read in one evaluation: both carry the fix's age ("12.3 s ago"), and the page
    // redraws the panel with a new age every 1.5 s while the incident's push and delivery receipts are missing (this
    // SOS opened before the console connected, so they never come: incident.ts looks again 10 times), and every 15 s;
    // a redraw between two separate reads would make the label and the legend differ by a tenth of a second
    const { label, text } = await page.evaluate(() => ({
      label: document.querySelector('section.position[data-view=plot] svg.plot .plot-fix.alarm')?.textContent ?? null,
      text: document.querySelector('section.position')?.textContent ?? '',
    }));
    expect(label).toMatch(/^alarm: last known fix, \d+(\.\d)? (ms|s|min) ago, ±15 m$/);
    expect(text).toContain(label!); // the legend says what the plot says
    expect(text).toContain('safe zone: circle of 300 m');
    expect(text).toContain(`path of the last hour: ${fixes.length} fixes`);

    // the device page shows the watch's last fix around the home, too
    await page.goto(`${t.http}/#/device/${encodeURIComponent(dev.id)}`);
    const devicePanel = page.locator('section.position[data-view=plot]');
    await devicePanel.locator('svg.plot .plot-point.device').waitFor({ timeout: 15_000 });
    expect(await devicePanel.textContent()).toMatch(/device: last fix, \d+(\.\d)? (ms|s|min) ago, ±15 m/);

    // a phone with no GPS: the home address, said so on the plot, the legend and the card — never "last known"
    const home = await residentWithDevice(t, 'Sun Lei', 'call-phone');
    const phone = await t.connectDevice(home.dev.id, home.dev.secret);
    await publishAsync(phone, `devices/${home.dev.id}/events`, JSON.stringify({ ts: Date.now(), seq: 1, type: 'sos' }));
    phone.end(true);
    const homeSos = await waitFor(() => incidentOf(t, home.dev.id, 'sos'), 'the SOS incident');
    await openIncident(page, t, homeSos.id);
    await panel.locator('svg.plot .plot-at-home').waitFor({ timeout: 15_000 });
    expect(await panel.locator('svg.plot .plot-at-home').textContent()).toBe('alarm: home address (no fix)');
    expect(await panel.locator('svg.plot .plot-point').count()).toBe(0);
    const homeText = await positionPanelText(page);
    expect(homeText).toContain('alarm: home address (no fix)');
    expect(homeText).not.toContain('last known');
    await page.goto(`${t.http}/#/board`);
    const card = page.locator(`.card[data-id="${homeSos.id}"]`);
    await card.waitFor({ timeout: 15_000 });
    expect(await card.textContent()).toContain('home address (no fix)');
    expect(await card.textContent()).not.toContain('last known');
    expect(errors).toEqual([]);
    await page.close();
  }, 90_000);
});
