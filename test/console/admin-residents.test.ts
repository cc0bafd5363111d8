// Residents in the console (issue 13 §1): an admin registers a resident with a contact, her home and a circular safe
// zone, and finds her by name and by address; a refusal of the server is shown beside its field; an operator may
// edit (the server lets operators write residents of their units); a steward on a phone reads, within her unit.
// The API underneath: search by name or address, and every change of a resident audited.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { buildNetwork, login, type Network } from '../ws/helpers.js';
import { launchBrowser, type TestBrowser, loginAs, watchErrors, docsShot } from './browser.js';


describe('residents', () => {
  let t: TestGateway;
  let n: Network;
  let browser: TestBrowser;

  beforeAll(async () => {
    browser = await launchBrowser(); // fails, naming the package, when chromium is missing
    // one notification channel, so that a contact can name it (nothing is sent in these tests)
    t = await startTestGateway({ notifiers: { channels: { 'family-app': { url: 'http://127.0.0.1:9/hook', allowPrivate: true, secret: 'family-app-secret-0123456789' } } } });
    n = await buildNetwork(t);
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await t?.stop();
  });

  const residentsNamed = async (q: string, token?: string) =>
    ((await t.api('GET', `/api/residents?q=${encodeURIComponent(q)}`, undefined, token)).body.items as { id: string }[]).map((r) => r.id);

  it('API: GET /api/residents?q= matches a name or an address, wildcards typed are letters, within the scope', async () => {
    const mk = async (name: string, address: string, unitId: string) => {
      const r = await t.api('POST', '/api/residents', { name, address, unitId });
      expect(r.status).toBe(201);
      return r.body.id as string;
    };
    const a = await mk('Hedwig Sommer', 'Lindenweg 7', 'gA');
    const b = await mk('Otto 100% Winter', 'Am Markt 2', 'gB');
    expect(await residentsNamed('sommer')).toEqual([a]);
    expect(await residentsNamed('lindenweg')).toEqual([a]);
    expect(await residentsNamed('100%')).toEqual([b]);
    expect(await residentsNamed('%')).toEqual([b]); // a literal percent sign, not "everything"
    expect(await residentsNamed('_')).toEqual([]);
    // a steward of grid A finds only the residents of grid A
    const steward = await login(t, n, n.users.stewardA);
    expect(await residentsNamed('markt', steward)).toEqual([]);
    expect(await residentsNamed('linden', steward)).toEqual([a]);
  });

  it('API: creating and changing a resident is audited: who, which fields, the unit before and after (no personal values)', async () => {
    const created = await t.api('POST', '/api/residents', { name: 'Ilse Audit', address: 'Geheimweg 1', notes: 'diabetic' });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    expect((await t.api('PATCH', `/api/residents/${id}`, { unitId: 'gA', notes: 'insulin in the fridge' })).status).toBe(200);
    const log = await t.api('GET', `/api/audit?target=resident:${id}`);
    expect(log.status).toBe(200);
    const entries = (log.body.items as { action: string; actor: string; details: Record<string, unknown> }[]).reverse();
    expect(entries.map((e) => e.action)).toEqual(['resident.create', 'resident.update']);
    expect(entries[0]!.actor).toBe('admin');
    expect(entries[0]!.details).toEqual({ unitId: null, fields: ['name', 'address', 'notes'] });
    expect(entries[1]!.details).toEqual({ fields: ['unitId', 'notes'], unitId: { before: null, after: 'gA' } });
    expect(JSON.stringify(log.body)).not.toMatch(/Geheimweg|diabetic|insulin/);
  });

  const errorFor = (page: Page, key: string) => page.locator(`[data-error-for="${key}"]`);

  it('an admin registers a resident with a contact, home and a circular safe zone, sees refusals beside their fields, and finds her', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    page.setDefaultTimeout(15_000);
    const errors = watchErrors(page);
    await loginAs(page, t.http, 'admin', t.adminPassword);
    await page.click('nav a[href="#/residents"]');
    await page.click('a[href="#/resident/new"]');
    await page.waitForSelector('select[name=unitId] option[value=gA]', { state: 'attached' });

    await page.fill('input[name=name]', 'Gertrud Lindqvist');
    await page.fill('input[name=address]', 'Kastanienallee 12, 10435 Berlin');
    await page.selectOption('select[name=unitId]', 'gA');
    await page.fill('textarea[name=notes]', 'Key with the neighbour (flat 3); small dog.');
    await page.click('button[data-add-contact]');
    const contact = page.locator('[data-contact]').first();
    await contact.locator('input[data-key=name]').fill('Jonas Lindqvist');
    await contact.locator('input[data-key=relation]').fill('son');
    await contact.locator('input[data-key=phone]').fill('+49 30 5550123');
    await contact.locator('input[data-key=webhook]').fill('family-ap'); // a typo: the server lists the channels there are
    await page.fill('input[name="home.lat"]', '95'); // out of range: said beside the field, nothing sent
    await page.fill('input[name="home.lon"]', '13.4105');
    await page.selectOption('select[name="safeZone.type"]', 'circle');
    await page.click('button[type=submit]');
    await expect.poll(() => errorFor(page, 'home.lat').textContent()).toBe('latitude must be between -90 and 90');
    expect(await errorFor(page, 'safeZone.center.lat').textContent()).toMatch(/latitude: give a number/);
    expect(await errorFor(page, 'safeZone.radiusM').textContent()).toMatch(/radius: a number of metres from 10 to 100000/);
    expect(await residentsNamed('Lindqvist')).toEqual([]);

    await page.fill('input[name="home.lat"]', '52.5388');
    await page.click('text=centre on home');
    await page.fill('input[name="safeZone.radiusM"]', '250');
    await page.fill('input[name=noMovementSeconds]', '14400');
    await page.fill('input[name=checkInBy]', '10:30');
    await page.click('button[type=submit]');
    // the server's refusal of the channel name, beside the contact's channel field
    await expect.poll(() => errorFor(page, 'contacts.0.webhook').textContent(), { timeout: 15_000 })
      .toMatch(/contacts\[0\]\.webhook: "family-ap" is not a configured notification channel; give one of: family-app/);
    expect(await residentsNamed('Lindqvist')).toEqual([]);

    await contact.locator('input[data-key=webhook]').fill('family-app');
    await page.click('button[type=submit]');
    await page.waitForURL(/#\/resident\/(?!new)/, { timeout: 15_000 });
    const id = decodeURIComponent(page.url().split('#/resident/')[1]!);
    const r = (await t.api('GET', `/api/residents/${id}`)).body;
    expect(r).toMatchObject({
      name: 'Gertrud Lindqvist', address: 'Kastanienallee 12, 10435 Berlin', unitId: 'gA', notes: 'Key with the neighbour (flat 3); small dog.',
      contacts: [{ name: 'Jonas Lindqvist', relation: 'son', phone: '+49 30 5550123', webhook: 'family-app' }],
      home: { lat: 52.5388, lon: 13.4105 },
      safeZone: { type: 'circle', center: { lat: 52.5388, lon: 13.4105 }, radiusM: 250 },
      noMovementSeconds: 14400, checkInBy: '10:30',
    });
    // the page shows what was stored, the unit by its name
    await page.waitForFunction(() => document.querySelector('h1')?.textContent === 'Gertrud Lindqvist');
    expect(await page.locator('.toolbar .muted').textContent()).toContain('Grid A');
    expect(await page.inputValue('input[name="safeZone.radiusM"]')).toBe('250');

    // a device bound to her is listed on her page and in the list
    const dev = await t.provision('call-phone', 'RES-UI-1');
    expect((await t.api('POST', `/api/devices/${dev.id}/bind`, { residentId: id })).status).toBe(200);

    // found by name and by address, from the list; the unit by name, never its id
    await page.click('a[href="#/residents"]');
    for (const q of ['lindqv', 'kastanienallee']) {
      await page.fill('input[name=q]', q);
      await page.waitForFunction(([rid]) => {
        const rows = document.querySelectorAll('tr[data-resident]');
        return rows.length === 1 && rows[0]!.getAttribute('data-resident') === rid;
      }, [id], { timeout: 15_000 });
    }
    const row = page.locator(`tr[data-resident="${id}"]`);
    expect(await row.locator('td[data-unit]').textContent()).toBe('Grid A');
    await expect.poll(() => row.locator('td[data-devices]').textContent(), { timeout: 15_000 }).toBe('call-phone RES-UI-1');
    await page.fill('input[name=q]', 'nobody-by-this-name');
    await page.waitForSelector('[data-empty]');

    // changing her: only the changed field is sent (the audit log says which), the contact removed
    await page.goto(`${t.http}/#/resident/${id}`);
    await page.waitForFunction(() => document.querySelector('h1')?.textContent === 'Gertrud Lindqvist');
    await page.waitForSelector(`[data-resident-devices] li[data-device="${dev.id}"]`);
    await docsShot(page, 'console-residents.png', { fullPage: true });
    await page.click('[data-contact] button[data-remove-contact]');
    await page.click('button[type=submit]');
    await waitFor(async () => (await t.api('GET', `/api/residents/${id}`)).body.contacts.length === 0, 'the contact removed');
    const audit = (await t.api('GET', `/api/audit?target=resident:${id}`)).body.items as { action: string; details: { fields: string[] } }[];
    expect(audit[0]).toMatchObject({ action: 'resident.update', details: { fields: ['contacts'] } });
    // the one refusal asked for (the channel's name) and nothing else
    expect(errors).toEqual(['console: Failed to load resource: the server responded with a status of 400 (Bad Request)']);
    await page.close();
  }, 120_000);

  it('an operator may change a resident (the server allows it); a steward on a phone reads her own unit only', async () => {
    const a = (await t.api('GET', `/api/residents/${n.residentA}`)).body;
    // operator: the form is editable and a change is saved
    const op = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const opErrors = watchErrors(op);
    await loginAs(op, t.http, n.users.operator, n.passwords[n.users.operator]!);
    await op.goto(`${t.http}/#/resident/${n.residentA}`);
    await op.waitForFunction((name) => document.querySelector('h1')?.textContent === name, a.name);
    await op.fill('input[name=noMovementSeconds]', '30'); // below the minimum
    await op.click('button[type=submit]');
    await expect.poll(() => errorFor(op, 'noMovementSeconds').textContent()).toMatch(/whole seconds from 60/);
    await op.fill('input[name=noMovementSeconds]', '7200');
    await op.click('button[type=submit]');
    await waitFor(async () => (await t.api('GET', `/api/residents/${n.residentA}`)).body.noMovementSeconds === 7200, 'the operator\'s change');
    // the page has taken the answer and filled the form again with what was stored (a choice made before that is reset)
    await op.locator('.toast.ok', { hasText: `${a.name}: saved` }).first().waitFor();
    await op.waitForFunction(() => !document.querySelector<HTMLButtonElement>('button[type=submit]')?.disabled);
    // a polygon safe zone: two points are too few (said beside the list), a third is added, one removed and added again
    await op.selectOption('select[name="safeZone.type"]', 'polygon');
    const pts = [[52.521, 13.404], [52.519, 13.409], [52.517, 13.401]];
    const point = (i: number) => op.locator('li[data-point]').nth(i);
    await point(2).locator('button').click();
    for (const [i, [lat, lon]] of pts.slice(0, 2).entries()) {
      await point(i).locator('input[data-key=lat]').fill(String(lat));
      await point(i).locator('input[data-key=lon]').fill(String(lon));
    }
    await op.click('button[type=submit]');
    await expect.poll(() => errorFor(op, 'safeZone.points').textContent()).toBe('a polygon needs at least 3 points');
    await op.click('button[data-add-point]');
    await point(2).locator('input[data-key=lat]').fill(String(pts[2]![0]));
    await op.click('button[type=submit]');
    await expect.poll(() => errorFor(op, 'safeZone.points.2.lon').textContent()).toMatch(/^longitude: give a number/);
    await point(2).locator('input[data-key=lon]').fill(String(pts[2]![1]));
    await op.click('button[type=submit]');
    await waitFor(async () => (await t.api('GET', `/api/residents/${n.residentA}`)).body.safeZone?.type === 'polygon', 'the polygon saved');
    expect((await t.api('GET', `/api/residents/${n.residentA}`)).body.safeZone).toEqual({ type: 'polygon', points: pts.map(([lat, lon]) => ({ lat, lon })) });
    expect(opErrors).toEqual([]);
    await op.close();

    // steward of grid A on a 390 px phone: her unit's residents only, read only, nothing wider than the screen
    const phone = await browser.newPage({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    const phErrors = watchErrors(phone);
    await loginAs(phone, t.http, n.users.stewardA, n.passwords[n.users.stewardA]!);
    await phone.goto(`${t.http}/#/residents`);
    await phone.waitForSelector(`tr[data-resident="${n.residentA}"]`);
    expect(await phone.locator(`tr[data-resident="${n.residentB}"]`).count()).toBe(0);
    expect(await phone.locator('a[href="#/resident/new"]').count()).toBe(0);
    await phone.click(`tr[data-resident="${n.residentA}"] a`);
    await phone.waitForSelector('[data-read-only]');
    await phone.waitForFunction((name) => document.querySelector('h1')?.textContent === name, a.name);
    expect(await phone.locator('button[type=submit]').count()).toBe(0);
    expect(await phone.locator('input[name=name]').isDisabled()).toBe(true);
    expect(await phone.locator('[data-contact] input[data-key=name]').first().inputValue()).toBe('Anna Alt junior');
    const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow).toBeLessThanOrEqual(0);
    // another unit's resident: the server refuses, the page says so
    await phone.goto(`${t.http}/#/resident/${n.residentB}`);
    await phone.waitForSelector('.notice.error');
    expect(await phone.locator('.notice.error').textContent()).toMatch(/cannot be shown: unit gB is outside your units/);
    expect(phErrors.filter((e) => !/403/.test(e))).toEqual([]);
    await phone.close();
  }, 120_000);
});
