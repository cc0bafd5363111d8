import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, connectDevice, type TestGateway } from '../helpers/gateway.js';

describe('the REST API', () => {
  let t: TestGateway;
  let tech: string;
  let operator: string;
  let steward: string;
  beforeAll(async () => {
    t = await startTestGateway();
    for (const [username, role] of [['tina', 'technician'], ['otto', 'operator'], ['sara', 'steward']] as const) {
      expect((await t.api('POST', '/api/users', { username, password: `${username}-password-123`, role })).status).toBe(201);
    }
    tech = await t.token('tina', 'tina-password-123');
    operator = await t.token('otto', 'otto-password-123');
    steward = await t.token('sara', 'sara-password-123');
  });
  afterAll(async () => t.stop());

  it('401 without a token, with a forged or expired one; 403 for too weak a role', async () => {
    expect((await t.api('GET', '/api/devices', undefined, '')).status).toBe(401);
    const forged = (await t.api('GET', '/api/devices', undefined, 'eyJzdWIiOiJ1X2FkbWluIiwiZXhwIjo5OTk5OTk5OTk5OTk5fQ.bad')).body;
    expect(forged).toMatchObject({ code: 'UNAUTHORIZED', message: expect.stringMatching(/signature|malformed token/) });
    const expired = Buffer.from(JSON.stringify({ sub: 'u_x', exp: 1 })).toString('base64url') + '.x';
    expect((await t.api('GET', '/api/devices', undefined, expired)).status).toBe(401);
    const r = await t.api('POST', '/api/devices', { kind: 'call-phone', serial: 'OP-1' }, operator);
    expect(r.status).toBe(403);
    expect(r.body.message).toMatch(/admin or technician/);
    expect((await t.api('POST', '/api/users', { username: 'x', password: 'y', role: 'admin' }, tech)).status).toBe(403);
    expect((await t.api('POST', '/api/auth/login', { username: 'admin', password: 'wrong-password' }, '')).status).toBe(401);
  });

  it('400 names the field and the reason', async () => {
    let r = await t.api('POST', '/api/devices', { kind: 'toaster', serial: 'T-1' }, tech);
    expect(r.status).toBe(400);
    // a choice among fixed values is said once, with the values allowed (not "must be equal to constant" nine times)
    expect(r.body.message).toBe('body field "kind": must be one of: call-phone, fall-sensor, locator, modbus, receiver, watch, jt808, dc09');
    expect(r.body.details).toEqual([{ field: '/kind', message: 'must be one of: call-phone, fall-sensor, locator, modbus, receiver, watch, jt808, dc09' }]);
    r = await t.api('POST', '/api/devices', { kind: 'call-phone' }, tech);
    expect(r.status).toBe(400);
    expect(r.body.message).toMatch(/serial/);
    r = await t.api('POST', '/api/residents', { name: 'A', checkInBy: '25:99' }, tech);
    expect(r.status).toBe(400);
    expect(r.body.message).toMatch(/checkInBy/);
    r = await t.api('POST', '/api/users', { username: 'weak', password: 'short', role: 'operator' });
    expect(r.status).toBe(400);
    expect(r.body.message).toMatch(/password/);
    r = await t.api('GET', '/api/devices/cp-nothere12345');
    expect(r.status).toBe(404);
    r = await t.api('GET', '/api/observations');
    expect(r.status).toBe(400);
    expect(r.body.message).toMatch(/deviceId/);
  });

  it('provisions, lists with filters and paging, updates, and refuses a duplicate serial', async () => {
    const a = await t.api('POST', '/api/devices', { kind: 'fall-sensor', serial: 'FS-100', model: 'R2', firmware: '3.1' }, tech);
    expect(a.status).toBe(201);
    expect((await t.api('POST', '/api/devices', { kind: 'fall-sensor', serial: 'FS-100' }, tech)).status).toBe(409);
    for (let i = 0; i < 5; i++) await t.api('POST', '/api/devices', { kind: 'locator', serial: `LC-${i}` }, tech);
    const page = await t.api('GET', '/api/devices?kind=locator&limit=2&offset=1', undefined, operator);
    expect(page.body.total).toBe(5);
    expect(page.body.items).toHaveLength(2);
    expect(page.body.items[0]).not.toHaveProperty('secretHash');
    expect(page.body.items[0]).not.toHaveProperty('secret');
    const patched = await t.api('PATCH', `/api/devices/${a.body.id}`, { firmware: '3.2', power: 'mains' }, tech);
    expect(patched.body).toMatchObject({ firmware: '3.2', power: 'mains' });
    const offline = await t.api('GET', '/api/devices?supervision=never-seen&kind=fall-sensor', undefined, operator);
    expect(offline.body.items.map((d: { id: string }) => d.id)).toContain(a.body.id);
  });

  it('imports a factory CSV of thousands and returns each secret once, as CSV', async () => {
    const csv = 'serial,kind,model\n' + Array.from({ length: 2000 }, (_, i) => `F-${i},call-phone,K1`).join('\n');
    const r = await t.api('POST', '/api/devices/import', csv, tech);
    expect(r.status).toBe(201);
    const lines = (r.body as string).trim().split('\n');
    expect(lines[0]).toBe('id,serial,kind,secret');
    expect(lines).toHaveLength(2001);
    const [id, serial, kind, secret] = lines[1]!.split(',');
    expect(serial).toBe('F-0');
    expect(kind).toBe('call-phone');
    (await connectDevice(t.mqttUrl, id!, secret!)).end(true);
    // all or nothing: one bad line (a duplicate serial) imports none, and every problem is named
    const bad = await t.api('POST', '/api/devices/import', 'serial,kind\nNEW-1,call-phone\nF-3,call-phone\nNEW-2,kettle\n', tech);
    expect(bad.status).toBe(400);
    expect(bad.body.message).toMatch(/line 4: kind "kettle"/);
    const dup = await t.api('POST', '/api/devices/import', 'serial,kind\nNEW-1,call-phone\nF-3,call-phone\n', tech);
    expect(dup.status).toBe(409);
    expect(dup.body.message).toMatch(/F-3/);
    expect((await t.api('GET', '/api/devices?q=NEW-1', undefined, tech)).body.total).toBe(0);
    expect((await t.api('POST', '/api/devices/import', 'nothing useful', tech)).status).toBe(400);
  });

  it('stewards see only their own unit', async () => {
    for (const unit of [
      { id: 'u-d', name: 'District', tier: 'district' },
      { id: 'u-s', name: 'Street', tier: 'street', parentId: 'u-d' },
      { id: 'u-c', name: 'Community', tier: 'community', parentId: 'u-s' },
      { id: 'u-g1', name: 'Grid 1', tier: 'grid', parentId: 'u-c' },
      { id: 'u-g2', name: 'Grid 2', tier: 'grid', parentId: 'u-c' },
    ]) expect((await t.api('POST', '/api/units', unit)).status).toBe(201);
    await t.api('POST', '/api/users', { username: 'gina', password: 'gina-password-123', role: 'steward', unitId: 'u-g1' });
    const gina = await t.token('gina', 'gina-password-123');
    const r1 = await t.api('POST', '/api/residents', { name: 'In Grid 1', unitId: 'u-g1' });
    const r2 = await t.api('POST', '/api/residents', { name: 'In Grid 2', unitId: 'u-g2' });
    const d2 = await t.provision('call-phone');
    await t.api('POST', `/api/devices/${d2.id}/bind`, { residentId: r2.body.id });
    const list = await t.api('GET', '/api/residents', undefined, gina);
    expect(list.body.items.map((r: { id: string }) => r.id)).toEqual([r1.body.id]);
    expect((await t.api('GET', `/api/residents/${r2.body.id}`, undefined, gina)).status).toBe(403);
    expect((await t.api('GET', `/api/devices/${d2.id}`, undefined, gina)).status).toBe(403);
    expect((await t.api('GET', '/api/devices', undefined, gina)).body.total).toBe(0);
    expect((await t.api('GET', '/api/devices', undefined, steward)).body.total).toBeGreaterThan(0);
  });

  it('serves its OpenAPI document, health and metrics', async () => {
    // the OpenAPI document is for admins unless http.docsPublic (issue 14): the default admin token here
    const doc = await t.api('GET', '/docs/json');
    expect(doc.body.openapi).toMatch(/^3/);
    expect(Object.keys(doc.body.paths)).toEqual(expect.arrayContaining(['/api/devices', '/api/devices/{id}/bind', '/api/devices/import', '/api/residents']));
    expect((await t.api('GET', '/readyz', undefined, '')).body).toEqual({ status: 'ready' });
    const metrics = await fetch(`${t.http}/metrics`).then((r) => r.text());
    expect(metrics).toMatch(/eldergate_refused_total/);
  });
});
