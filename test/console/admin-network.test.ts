// Issue 13 §1, the network screen (#/network) in headless Chromium against a real gateway: an admin creates units
// (a webhook that is a URL refused with the server's reason) and a staff member, sees a unit with nobody on duty
// highlighted, puts the nurse on duty with one tap and sees it; a unit that still has staff cannot be deleted and
// the page says what still hangs on it; staff edited and removed. An operator starts a shift but sees no admin
// buttons.
import { describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { browserAndGateway, loginAs, watchErrors, docsShot } from './browser.js';

const unexpected = (errors: string[]) => errors.filter((e) => !/Failed to load resource: the server responded with a status of (400|409)/.test(e));

describe('network screen', () => {
  const rig = browserAndGateway();

  async function unitId(name: string): Promise<string> {
    const units = (await rig.t.api('GET', '/api/units')).body.items as { id: string; name: string }[];
    return units.find((u) => u.name === name)!.id;
  }
  async function createUnit(page: Page, name: string, tier: string, parentLabel: string | null, extra: { phone?: string; webhook?: string } = {}) {
    await page.click('button[data-action=new-unit]');
    const form = page.locator('form[data-form=unit]');
    await form.locator('input[name=name]').fill(name);
    await form.locator('select[name=tier]').selectOption(tier);
    if (parentLabel) await form.locator('select[name=parentId]').selectOption({ label: parentLabel });
    if (extra.phone) await form.locator('input[name=phone]').fill(extra.phone);
    await form.locator('input[name=webhook]').fill(extra.webhook ?? '');
    await form.locator('button[data-action=save-unit]').click();
    return form;
  }

  it('an admin builds units and staff, puts a nurse on duty and sees it; a unit with staff cannot be deleted', async () => {
    const { t, browser } = rig;
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const errors = watchErrors(page);
    await loginAs(page, t.http, 'admin', t.adminPassword);
    await page.click('nav a[href="#/network"]');
    await page.waitForSelector('button[data-action=new-unit]');

    await createUnit(page, 'Mitte district centre', 'district', null);
    await page.waitForSelector('.tree li >> text=Mitte district centre');
    // a URL is not a channel: the server's reason is shown beside the form, nothing is created
    const form = await createUnit(page, 'Grid A Rosenthal', 'grid', 'Mitte district centre (district)', { phone: '+49 30 111', webhook: 'https://example.org/hook' });
    await expect.poll(() => page.locator('[data-editor] [data-error]').textContent()).toMatch(/^Webhook: a URL is not accepted/);
    await form.locator('input[name=webhook]').fill('');
    await form.locator('button[data-action=save-unit]').click();
    await page.waitForSelector('.tree li >> text=Grid A Rosenthal');
    const gridA = await unitId('Grid A Rosenthal');
    await createUnit(page, 'Grid B Moabit', 'grid', 'Mitte district centre (district)');
    await page.waitForSelector('.tree li >> text=Grid B Moabit');
    const gridB = await unitId('Grid B Moabit');

    // nobody on duty anywhere: both grids highlighted and named at the top
    const tileA = page.locator(`.duty-unit[data-unit="${gridA}"]`);
    await expect.poll(() => tileA.getAttribute('class')).toMatch(/nobody/);
    expect(await page.locator('.rota-alert').textContent()).toMatch(/Nobody on duty in 2 units: Grid A Rosenthal, Grid B Moabit/);

    // a nurse for grid A (unit chosen by name), off duty at first
    await page.click('button[data-action=new-staff]');
    const sf = page.locator('form[data-form=staff]');
    await sf.locator('input[name=name]').fill('Nina Nowak');
    await sf.locator('select[name=role]').selectOption('nurse');
    await sf.locator('select[name=unitId]').selectOption({ label: 'Grid A Rosenthal (grid)' });
    await sf.locator('input[name=phone]').fill('+49 30 222');
    await sf.locator('button[data-action=save-staff]').click();
    await page.waitForSelector('table.staff tr >> text=Nina Nowak');
    const nina = ((await t.api('GET', '/api/staff')).body.items as { id: string; name: string }[]).find((s) => s.name === 'Nina Nowak')!.id;
    expect(await page.locator(`table.staff tr[data-staff="${nina}"]`).textContent()).toContain('Grid A Rosenthal');
    await expect.poll(() => tileA.getAttribute('class')).toMatch(/nobody/);

    // one tap: on duty; the tile is no longer highlighted, the alert names only grid B
    await tileA.locator(`button[data-duty="${nina}"]`).click();
    await expect.poll(() => tileA.getAttribute('data-on-duty')).toBe('1');
    expect(await tileA.getAttribute('class')).not.toMatch(/nobody/);
    expect(await tileA.locator(`li[data-staff="${nina}"]`).textContent()).toMatch(/Nina Nowak.*on duty.*End shift/);
    expect(await page.locator('.rota-alert').textContent()).toMatch(/Nobody on duty in 1 unit: Grid B Moabit/);
    expect((await t.api('GET', `/api/staff/${nina}`)).body.onDuty).toBe(true);
    // the rota is first on the page, the unit with nobody on duty first in it
    expect(await page.locator('.duty-unit').first().getAttribute('data-unit')).toBe(gridB);
    await docsShot(page, 'console-network.png', { fullPage: true });

    // rename a unit
    await page.locator(`.tree li[data-unit="${gridA}"] > button[data-action=edit-unit]`).click();
    await page.locator('form[data-form=unit] input[name=name]').fill('Grid A Rosenthal-Nord');
    await page.click('button[data-action=save-unit]');
    await page.waitForSelector('.tree li >> text=Grid A Rosenthal-Nord');

    // delete refused while the nurse belongs to it: the page says what hangs on it
    await page.locator(`.tree li[data-unit="${gridA}"] > button[data-action=edit-unit]`).click();
    await page.click('button[data-action=delete-unit]');
    await expect.poll(() => page.locator('[data-editor] [data-error]').textContent()).toMatch(/still in use.*It still has 1 staff member: move or remove them first/);
    await page.click('[data-editor] button[data-action=close]');

    // edit the nurse's phone, then remove her (on duty: a second press)
    await page.locator(`table.staff tr[data-staff="${nina}"] button[data-action=edit-staff]`).click();
    await page.locator('form[data-form=staff] input[name=phone]').fill('+49 30 333');
    await page.click('button[data-action=save-staff]');
    await expect.poll(async () => (await t.api('GET', `/api/staff/${nina}`)).body.phone).toBe('+49 30 333');
    await page.locator(`table.staff tr[data-staff="${nina}"] button[data-action=edit-staff]`).click();
    await page.click('button[data-action=remove-staff]');
    await expect.poll(() => page.locator('[data-editor] [data-error]').textContent()).toMatch(/is on duty now/);
    expect((await t.api('GET', `/api/staff/${nina}`)).status).toBe(200);
    await page.click('button[data-action=remove-staff]');
    await expect.poll(() => page.locator(`table.staff tr[data-staff="${nina}"]`).count()).toBe(0);

    // now the unit can go
    await page.locator(`.tree li[data-unit="${gridA}"] > button[data-action=edit-unit]`).click();
    await page.click('button[data-action=delete-unit]');
    await expect.poll(() => page.locator(`.tree li[data-unit="${gridA}"]`).count()).toBe(0);
    const actions = ((await t.api('GET', '/api/audit?action=staff.')).body.items as { action: string }[]).map((e) => e.action).reverse();
    expect(actions).toEqual(['staff.create', 'staff.on-duty', 'staff.update', 'staff.delete']);
    expect(unexpected(errors)).toEqual([]);
    await page.close();
  }, 120_000);

  it('an operator starts a shift from the rota but has no admin buttons', async () => {
    const { t, browser } = rig;
    const gridB = await unitId('Grid B Moabit');
    const s = await t.api('POST', '/api/staff', { name: 'Sven Stahl', role: 'steward', unitId: gridB });
    expect((await t.api('POST', '/api/users', { username: 'olga', password: 'olga-operator-passphrase', role: 'operator' })).status).toBe(201);
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const errors = watchErrors(page);
    await loginAs(page, t.http, 'olga', 'olga-operator-passphrase');
    await page.goto(`${t.http}/#/network`);
    const tile = page.locator(`.duty-unit[data-unit="${gridB}"]`);
    await tile.waitFor();
    expect(await page.locator('button[data-action=new-unit], button[data-action=new-staff], button[data-action=edit-unit], button[data-action=edit-staff]').count()).toBe(0);
    await tile.locator(`button[data-duty="${s.body.id}"]`).click();
    await expect.poll(() => tile.getAttribute('data-on-duty')).toBe('1');
    expect((await t.api('GET', `/api/staff/${s.body.id}`)).body.onDuty).toBe(true);
    expect((await t.api('POST', '/api/units', { name: 'Sneaky', tier: 'district' }, await t.token('olga', 'olga-operator-passphrase'))).status).toBe(403);
    expect(errors).toEqual([]);
    await page.close();
  }, 60_000);
});
