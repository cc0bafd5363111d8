// Issue 13 §1, the users screen (#/admin/users) in headless Chromium against a real gateway: an admin creates a user
// (the password policy's refusal shown next to the form), resets a password (a temporary one shown once, that logs
// in), changes role and unit (chosen by name), disables and enables; each is in the audit log. An operator sees no
// admin link, gets a "not allowed" page, and the API answers 403.
import { describe, expect, it } from 'vitest';
import { browserAndGateway, loginAs, watchErrors, docsShot } from './browser.js';

/** a refused form is a 4xx the browser logs as a failed resource: expected here, anything else is not */
const unexpected = (errors: string[]) => errors.filter((e) => !/Failed to load resource: the server responded with a status of (400|409)/.test(e));

describe('users screen', () => {
  const rig = browserAndGateway();

  it('an admin creates a user, resets the password, changes role and unit, disables and enables; all audited', async () => {
    const { t, browser } = rig;
    for (const u of [
      { id: 'd1', name: 'Mitte district centre', tier: 'district' },
      { id: 'gA', name: 'Grid A Rosenthal', tier: 'grid', parentId: 'd1' },
      { id: 'gB', name: 'Grid B Moabit', tier: 'grid', parentId: 'd1' },
    ]) expect((await t.api('POST', '/api/units', u)).status).toBe(201);
    expect((await t.api('POST', '/api/users', { username: 'olga', password: 'olga-operator-passphrase', role: 'operator', displayName: 'Olga Ost' })).status).toBe(201);

    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: t.http });
    const page = await context.newPage();
    const errors = watchErrors(page);
    await loginAs(page, t.http, 'admin', t.adminPassword);
    await page.click('nav a[href="#/admin/users"]');
    await page.waitForSelector('tr[data-user=olga]');
    expect(await page.locator('tr[data-user=olga]').textContent()).toContain('all units');

    // create: too short, then the username with a few characters (the server's policy), then a good one
    await page.click('button[data-action=new-user]');
    const form = page.locator('form[data-form=new-user]');
    await form.locator('input[name=username]').fill('nadia');
    await form.locator('input[name=displayName]').fill('Nadia Nowak');
    await form.locator('select[name=role]').selectOption('steward');
    const options = await form.locator('select[name=unitId] option').allTextContents();
    expect(options.join('|')).not.toMatch(/\bgA\b|\bgB\b|\bd1\b/); // names, never ids
    await form.locator('select[name=unitId]').selectOption({ label: 'Grid A Rosenthal (grid)' });
    await form.locator('input[name=password]').fill('short');
    await form.locator('button[type=submit]').click();
    await expect.poll(() => form.locator('[data-error]').textContent()).toMatch(/at least 12 characters long \(it has 5\)/);
    await form.locator('input[name=password]').fill('nadia-nadia-1');
    await form.locator('button[type=submit]').click();
    await expect.poll(() => form.locator('[data-error]').textContent()).toMatch(/^Password refused: it is the username with only a few characters added/);
    expect(await page.locator('tr[data-user=nadia]').count()).toBe(0);
    await form.locator('input[name=password]').fill('lantern orchard copper violin');
    await form.locator('button[type=submit]').click();
    const row = page.locator('tr[data-user=nadia]');
    await row.waitFor();
    expect(await row.textContent()).toMatch(/nadia.*Nadia Nowak.*steward.*Grid A Rosenthal.*active/);
    const users = (await t.api('GET', '/api/users')).body.items as { id: string; username: string; role: string; unitId: string | null; disabled: boolean }[];
    const nadia = users.find((u) => u.username === 'nadia')!;
    expect(nadia).toMatchObject({ role: 'steward', unitId: 'gA', disabled: false });
    await t.token('nadia', 'lantern orchard copper violin'); // she can log in

    // reset the password: two steps, then a temporary password shown once, copyable, that logs in
    await row.locator('button[data-action=manage]').click();
    const editor = page.locator('[data-editor=nadia]');
    await editor.locator('button[data-action=reset-password]').click();
    await editor.locator('button[data-action=confirm]').click();
    const shown = editor.locator('[data-temp-password]');
    await shown.waitFor();
    const temp = (await shown.getAttribute('data-temp-password'))!;
    expect(temp).toMatch(/^[a-z2-9]{4}(-[a-z2-9]{4}){3}$/);
    expect(await shown.textContent()).toMatch(/Give this to the person yourself/);
    await shown.locator('button[data-action=copy]').click();
    await expect.poll(() => page.evaluate(() => navigator.clipboard.readText())).toBe(temp);
    await t.token('nadia', temp);
    await expect(t.token('nadia', 'lantern orchard copper violin')).rejects.toThrow(/401/);
    await docsShot(page, 'console-users.png', { fullPage: true });
    await shown.locator('button[data-action=done]').click();
    expect(await editor.locator('[data-temp-password]').count()).toBe(0);

    // role and unit, by name
    await editor.locator('select[name=role]').selectOption('operator');
    await editor.locator('select[name=unitId]').selectOption({ label: 'Grid B Moabit (grid)' });
    await editor.locator('button[data-action=save-user]').click();
    await expect.poll(() => row.textContent()).toMatch(/operator.*Grid B Moabit/);

    // disable (two steps), she cannot log in; enable, she can
    await editor.locator('button[data-action=disable]').click();
    await editor.locator('button[data-action=confirm]').click();
    await expect.poll(() => row.locator('[data-status]').getAttribute('data-status')).toBe('disabled');
    await expect(t.token('nadia', temp)).rejects.toThrow(/401/);
    await editor.locator('button[data-action=enable]').click();
    await expect.poll(() => row.locator('[data-status]').getAttribute('data-status')).toBe('active');
    await t.token('nadia', temp);

    const audit = (await t.api('GET', `/api/audit?target=user:${nadia.id}`)).body.items as { action: string; actor: string }[];
    expect(audit.map((e) => e.action).reverse()).toEqual(['user.create', 'user.password-reset', 'user.update', 'user.disable', 'user.enable']);
    expect(audit.every((e) => e.actor === 'admin')).toBe(true);
    expect(JSON.stringify(audit)).not.toContain(temp);
    expect(unexpected(errors)).toEqual([]);
    await context.close();
  }, 120_000);

  it('an operator sees no admin link, gets a "not allowed" page at #/admin/users, and the API refuses (403)', async () => {
    const { t, browser } = rig;
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const errors = watchErrors(page);
    await loginAs(page, t.http, 'olga', 'olga-operator-passphrase');
    expect(await page.locator('nav a[href^="#/admin"]').count()).toBe(0);
    await page.goto(`${t.http}/#/admin/users`);
    await page.waitForSelector('[data-page=not-allowed]');
    expect(await page.locator('[data-page=not-allowed]').textContent()).toMatch(/Not allowed.*olga \(operator\)/);
    expect(await page.locator('table.admin-users').count()).toBe(0);
    const token = await t.token('olga', 'olga-operator-passphrase');
    for (const [method, path, body] of [['GET', '/api/users'], ['POST', '/api/users', { username: 'mallory', password: 'mallory-long-passphrase', role: 'admin' }]] as const) {
      expect((await t.api(method, path, body, token)).status, `${method} ${path}`).toBe(403);
    }
    expect(errors).toEqual([]);
    await page.close();
  }, 60_000);
});
