// Review: a user bound to a unit may only touch the devices of residents in their units (server/routes/devices.ts).
// A technician of one grid must not obtain a working secret for another grid's device (rotate-secret answers with
// it), nor cut it off (suspend/decommission disconnect it at once), nor read its commands or its raw rejects.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';

describe('device routes for a technician bound to a unit', () => {
  let t: TestGateway;
  let tina: string;
  let mine: string;
  let theirs: string;
  let r1: string;
  let r2: string;
  beforeAll(async () => {
    t = await startTestGateway();
    const unit = async (body: Record<string, unknown>) => (await t.api('POST', '/api/units', body)).body.id as string;
    const district = await unit({ name: 'District', tier: 'district' });
    const g1 = await unit({ name: 'Grid 1', tier: 'grid', parentId: district });
    const g2 = await unit({ name: 'Grid 2', tier: 'grid', parentId: district });
    const created = await t.api('POST', '/api/users', { username: 'tina', password: 'tina-password-123', role: 'technician', unitId: g1 });
    expect(created.status).toBe(201);
    tina = await t.token('tina', 'tina-password-123');
    r1 = (await t.api('POST', '/api/residents', { name: 'In Grid 1', unitId: g1 })).body.id;
    r2 = (await t.api('POST', '/api/residents', { name: 'In Grid 2', unitId: g2 })).body.id;
    mine = (await t.provision('call-phone')).id;
    theirs = (await t.provision('call-phone')).id;
    expect((await t.api('POST', `/api/devices/${mine}/bind`, { residentId: r1 })).status).toBe(200);
    expect((await t.api('POST', `/api/devices/${theirs}/bind`, { residentId: r2 })).status).toBe(200);
  });
  afterAll(async () => t.stop());

  it('cannot rotate the secret of, suspend, decommission, change or read another unit\'s device', async () => {
    const rotated = await t.api('POST', `/api/devices/${theirs}/rotate-secret`, undefined, tina);
    expect(rotated.status).toBe(403);
    expect(rotated.body.secret).toBeUndefined();
    expect((await t.api('POST', `/api/devices/${theirs}/suspend`, undefined, tina)).status).toBe(403);
    expect((await t.api('POST', `/api/devices/${theirs}/decommission`, undefined, tina)).status).toBe(403);
    expect((await t.api('PATCH', `/api/devices/${theirs}`, { notes: 'x' }, tina)).status).toBe(403);
    expect((await t.api('POST', `/api/devices/${theirs}/bind`, { residentId: null }, tina)).status).toBe(403);
    expect((await t.api('POST', `/api/devices/${theirs}/clear-flags`, undefined, tina)).status).toBe(403);
    expect((await t.api('GET', `/api/devices/${theirs}/commands`, undefined, tina)).status).toBe(403);
    expect((await t.api('GET', `/api/devices/${theirs}/rejects`, undefined, tina)).status).toBe(403);
    // nothing changed
    const d = await t.api('GET', `/api/devices/${theirs}`);
    expect(d.body.state).toBe('provisioned');
    expect(d.body.residentId).not.toBeNull();
  });

  it('still manages the devices of their own unit', async () => {
    expect((await t.api('POST', `/api/devices/${mine}/rotate-secret`, undefined, tina)).status).toBe(200);
    expect((await t.api('PATCH', `/api/devices/${mine}`, { notes: 'checked' }, tina)).status).toBe(200);
    expect((await t.api('GET', `/api/devices/${mine}/commands`, undefined, tina)).status).toBe(200);
    expect((await t.api('POST', `/api/devices/${mine}/suspend`, undefined, tina)).status).toBe(200);
    expect((await t.api('POST', `/api/devices/${mine}/resume`, undefined, tina)).status).toBe(200);
    // commissioning: a fresh (unbound) device may be bound to a resident of their units, not to another unit's
    const fresh = (await t.provision('call-phone')).id;
    expect((await t.api('POST', `/api/devices/${fresh}/bind`, { residentId: r2 }, tina)).status).toBe(403);
    expect((await t.api('POST', `/api/devices/${fresh}/bind`, { residentId: r1 }, tina)).status).toBe(200);
  });
});
