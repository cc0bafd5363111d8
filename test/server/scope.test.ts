// Issue 9 §1: an alarm nobody is allowed to see. Unknown units are refused everywhere with the valid ids named;
// visibility rolls up the tree, the unplaced belong to the root (the district call centre), and whoever may see an
// incident may see its resident, her contacts and the device. Real gateway, real MQTT SOS, real HTTP.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { publishAsync, startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';

describe('scope: every alarm is visible to someone who can act on it', () => {
  let t: TestGateway;
  let district: string;
  let street: string;
  let g1: string;
  let g2: string;
  const tokens: Record<string, string> = {};

  const user = async (username: string, role: string, unitId: string | null) => {
    const password = `${username}-password-123`;
    const r = await t.api('POST', '/api/users', { username, password, role, unitId });
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    tokens[username] = await t.token(username, password);
  };

  /** a phone bound to `residentId` presses SOS; returns the incident the admin sees */
  const sos = async (residentId: string) => {
    const dev = await t.provision('call-phone');
    expect((await t.api('POST', `/api/devices/${dev.id}/bind`, { residentId })).status).toBe(200);
    const c = await t.connectDevice(dev.id, dev.secret);
    await publishAsync(c, `devices/${dev.id}/events`, JSON.stringify({ ts: Date.now(), seq: 1, type: 'sos' }), 1);
    c.end(true);
    const inc = await waitFor(async () => (await t.api('GET', `/api/incidents?deviceId=${dev.id}`)).body.items[0], 'the SOS incident');
    return { deviceId: dev.id, incidentId: inc.id as string, unitId: inc.unitId as string | null };
  };

  beforeAll(async () => {
    t = await startTestGateway();
    const unit = async (body: Record<string, unknown>) => {
      const r = await t.api('POST', '/api/units', body);
      expect(r.status, JSON.stringify(r.body)).toBe(201);
      return r.body.id as string;
    };
    district = await unit({ name: 'Dongcheng call centre', tier: 'district' });
    street = await unit({ name: 'Jingshan street', tier: 'street', parentId: district });
    const station = await unit({ name: 'Station 3', tier: 'community', parentId: street });
    g1 = await unit({ name: 'Grid 1', tier: 'grid', parentId: station });
    g2 = await unit({ name: 'Grid 2', tier: 'grid', parentId: station });
    await user('callcentre', 'operator', district);
    await user('streetop', 'operator', street);
    await user('steward1', 'steward', g1);
    await user('steward2', 'steward', g2);
  });
  afterAll(async () => t.stop());

  it('refuses a unit that does not exist, naming the field and the valid ids', async () => {
    const res = await t.api('POST', '/api/residents', { name: 'Nowhere', unitId: 'grid-99' });
    expect(res.status).toBe(400);
    expect(res.body.message).toContain('unitId');
    expect(res.body.message).toContain('grid-99');
    for (const id of [district, street, g1, g2]) expect(res.body.message).toContain(id);
    expect(res.body.message).toContain('(Grid 1)');

    const placed = await t.api('POST', '/api/residents', { name: 'Placed', unitId: g1 });
    expect(placed.status).toBe(201);
    const patched = await t.api('PATCH', `/api/residents/${placed.body.id}`, { unitId: 'grid-99' });
    expect(patched.status).toBe(400);
    expect(patched.body.message).toContain(g2);
    expect((await t.api('GET', `/api/residents/${placed.body.id}`)).body.unitId).toBe(g1);

    const u = await t.api('POST', '/api/users', { username: 'ghost', password: 'ghost-password-123', role: 'operator', unitId: 'grid-99' });
    expect(u.status).toBe(400);
    expect(u.body.message).toMatch(/^unitId: unit "grid-99" does not exist; use one of: unit_\w+ \(/);

    // an empty unit is no unit: a steward created with "" would otherwise see every unit
    const empty = await t.api('POST', '/api/users', { username: 'blank', password: 'blank-password-123', role: 'steward', unitId: '' });
    expect(empty.status).toBe(400);
    expect(empty.body.message).toContain('unitId');
    expect((await t.api('POST', '/api/residents', { name: 'Blank', unitId: '' })).status).toBe(400);

    const staff = await t.api('POST', '/api/staff', { name: 'Nobody', role: 'steward', unitId: 'grid-99' });
    expect(staff.status).toBe(400);
    expect(staff.body.message).toContain(g1);

    const devices = await t.api('GET', '/api/devices?unitId=grid-99');
    expect(devices.status).toBe(400);
    expect(devices.body.message).toContain('grid-99');
  });

  it('rolls a grid unit\'s incident up to every tier above it, and to no sibling', async () => {
    const r = await t.api('POST', '/api/residents', { name: 'Zhao Min', unitId: g1 });
    const { incidentId, deviceId } = await sos(r.body.id);
    for (const who of ['callcentre', 'streetop', 'steward1']) {
      const one = await t.api('GET', `/api/incidents/${incidentId}`, undefined, tokens[who]);
      expect(one.status, who).toBe(200);
      const list = await t.api('GET', '/api/incidents?status=open', undefined, tokens[who]);
      expect(list.body.items.map((i: { id: string }) => i.id), who).toContain(incidentId);
      expect((await t.api('GET', `/api/residents/${r.body.id}`, undefined, tokens[who])).status, who).toBe(200);
      expect((await t.api('GET', `/api/devices/${deviceId}`, undefined, tokens[who])).status, who).toBe(200);
    }
    expect((await t.api('GET', `/api/incidents/${incidentId}`, undefined, tokens.steward2)).status).toBe(404);
    expect((await t.api('GET', `/api/residents/${r.body.id}`, undefined, tokens.steward2)).status).toBe(403);
  });

  it('gives an unplaced resident\'s SOS to the call centre, with her name, contacts and device (the README walk-through)', async () => {
    const r = await t.api('POST', '/api/residents', {
      name: 'Wang Fang', address: '3 Hutong Lane', contacts: [{ name: 'Li Wei', relation: 'son', phone: '+86 10 5555 0101' }],
    });
    expect(r.status).toBe(201);
    const { incidentId, deviceId, unitId } = await sos(r.body.id);
    expect(unitId).toBeNull();

    // the district call centre sees the incident, in the list and alone, and everything the card needs
    const cc = tokens.callcentre;
    expect((await t.api('GET', `/api/incidents/${incidentId}`, undefined, cc)).status).toBe(200);
    const list = await t.api('GET', '/api/incidents?status=open', undefined, cc);
    expect(list.body.items.map((i: { id: string }) => i.id)).toContain(incidentId);
    const resident = await t.api('GET', `/api/residents/${r.body.id}`, undefined, cc);
    expect(resident.status).toBe(200);
    expect(resident.body).toMatchObject({ name: 'Wang Fang', address: '3 Hutong Lane', contacts: [{ name: 'Li Wei', phone: '+86 10 5555 0101' }] });
    expect((await t.api('GET', `/api/devices/${deviceId}`, undefined, cc)).status).toBe(200);
    expect((await t.api('GET', `/api/observations?deviceId=${deviceId}`, undefined, cc)).status).toBe(200);
    const residents = await t.api('GET', '/api/residents', undefined, cc);
    expect(residents.body.items.map((x: { id: string }) => x.id)).toContain(r.body.id);
    const devices = await t.api('GET', '/api/devices', undefined, cc);
    expect(devices.body.items.map((x: { id: string }) => x.id)).toContain(deviceId);

    // a lower tier is not the root: a grid steward does not get another's unplaced elder
    expect((await t.api('GET', `/api/incidents/${incidentId}`, undefined, tokens.steward1)).status).toBe(404);
    expect((await t.api('GET', `/api/residents/${r.body.id}`, undefined, tokens.steward1)).status).toBe(403);
  });
});

describe('scope: data from before units were checked', () => {
  it('gives an SOS of a resident placed in a unit that does not exist to the call centre, after an upgrade', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'eldergate-scope-'));
    let t: TestGateway | undefined = await startTestGateway({}, dir);
    try {
      const district = (await t.api('POST', '/api/units', { name: 'District', tier: 'district' })).body.id as string;
      expect((await t.api('POST', '/api/users', { username: 'callcentre', password: 'callcentre-password-123', role: 'operator', unitId: district })).status).toBe(201);
      const r = await t.api('POST', '/api/residents', { name: 'Legacy Liu', address: '9 Old Lane' });
      const dev = await t.provision('call-phone');
      expect((await t.api('POST', `/api/devices/${dev.id}/bind`, { residentId: r.body.id })).status).toBe(200);
      await t.stop();
      t = undefined;
      // what an older release let through: a resident in a unit that does not exist
      const db = new Database(join(dir, 'eldergate.db'));
      db.prepare('update residents set unit_id = ? where id = ?').run('grid-99', r.body.id);
      db.close();

      t = await startTestGateway({}, dir);
      const cc = await t.token('callcentre', 'callcentre-password-123');
      const c = await t.connectDevice(dev.id, dev.secret);
      await publishAsync(c, `devices/${dev.id}/events`, JSON.stringify({ ts: Date.now(), seq: 1, type: 'sos' }), 1);
      c.end(true);
      const inc = await waitFor(async () => (await t!.api('GET', `/api/incidents?deviceId=${dev.id}`, undefined, cc)).body.items?.[0], 'the call centre to see the SOS');
      expect(inc.unitId).toBe('grid-99');
      expect((await t.api('GET', `/api/incidents/${inc.id}`, undefined, cc)).status).toBe(200);
      expect((await t.api('GET', `/api/residents/${r.body.id}`, undefined, cc)).body).toMatchObject({ name: 'Legacy Liu', address: '9 Old Lane' });
      expect((await t.api('GET', `/api/devices/${dev.id}`, undefined, cc)).status).toBe(200);
      expect((await t.api('GET', '/api/kpis', undefined, cc)).status).toBe(200);
    } finally {
      await t?.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
