// Issue 14, High 4 and the audit log. An account identifier (the Contact ID account a serial receiver reports under)
// decides whose alarms arrive on a device: unique across the registry (the database refuses a second holder), set by
// admins only, audited. The audit log: who did what, when, from where; append-only; admins query it; an incident's
// entries travel with the incident. Numeric query parameters that SQLite cannot hold are a 400 naming the limit.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, publishAsync, waitFor, type TestGateway } from '../helpers/gateway.js';

describe('account identifiers, the audit log and bounded paging', () => {
  let t: TestGateway;
  let tech: string;
  beforeAll(async () => {
    t = await startTestGateway();
    for (const unit of [
      { id: 'd1', name: 'District', tier: 'district' },
      { id: 's1', name: 'Street', tier: 'street', parentId: 'd1' },
      { id: 'c1', name: 'Community', tier: 'community', parentId: 's1' },
      { id: 'g1', name: 'Grid 1', tier: 'grid', parentId: 'c1' },
      { id: 'g2', name: 'Grid 2', tier: 'grid', parentId: 'c1' },
    ]) expect((await t.api('POST', '/api/units', unit)).status).toBe(201);
    expect((await t.api('POST', '/api/users', { username: 'tess', password: 'tess-password-12345', role: 'technician', unitId: 'g1' })).status).toBe(201);
    tech = await t.token('tess', 'tess-password-12345');
  });
  afterAll(async () => t?.stop());

  async function deviceIn(unitId: string) {
    const d = await t.provision('call-phone');
    const r = await t.api('POST', '/api/residents', { name: `Elder in ${unitId}`, unitId });
    expect((await t.api('POST', `/api/devices/${d.id}/bind`, { residentId: r.body.id })).status).toBe(200);
    return d;
  }

  it("a technician cannot take another grid's Contact ID account; an account has one holder, enforced by the database", async () => {
    const victim = await deviceIn('g2');
    expect((await t.api('PATCH', `/api/devices/${victim.id}`, { account: '4321' })).status).toBe(200);
    expect(t.gw.registry.deviceForAccount('4321')).toBe(victim.id);
    const mine = await deviceIn('g1');

    // the attack of the issue: config.account on one's own device
    const attack = await t.api('PATCH', `/api/devices/${mine.id}`, { config: { account: '4321' } }, tech);
    expect(attack.status).toBe(403);
    expect(attack.body.message).toMatch(/account identifier is an admin action/);
    expect((await t.api('PATCH', `/api/devices/${mine.id}`, { account: '9999' }, tech)).status).toBe(403);
    expect(t.gw.registry.deviceForAccount('4321')).toBe(victim.id);
    // a technician still edits ordinary configuration
    expect((await t.api('PATCH', `/api/devices/${mine.id}`, { config: { heartbeatS: 300 } }, tech)).status).toBe(200);

    // an admin neither: the account has a holder, and the answer names it
    const taken = await t.api('PATCH', `/api/devices/${mine.id}`, { config: { account: '4321' } });
    expect(taken.status).toBe(409);
    expect(taken.body.message).toContain(victim.id);
    // nor another device's serial, under which that device's receiver alarms arrive
    const bySerial = await t.provision('receiver', 'ACCT-7777');
    const serialTaken = await t.api('PATCH', `/api/devices/${mine.id}`, { account: 'ACCT-7777' });
    expect(serialTaken.status).toBe(409);
    expect(serialTaken.body.message).toContain(bySerial.id);
    expect(t.gw.registry.deviceForAccount('ACCT-7777')).toBe(bySerial.id);

    // the database refuses a second holder even if the code's check were bypassed
    const sqlite = t.gw.store.sqlite;
    expect(() => sqlite.prepare(`UPDATE devices SET account_scheme = 'contact-id', account = '4321' WHERE id = ?`).run(mine.id)).toThrow(/UNIQUE/);

    // decommissioning gives the account back; then it may move, and the move is audited
    expect((await t.api('POST', `/api/devices/${victim.id}/decommission`)).status).toBe(200);
    const moved = await t.api('PATCH', `/api/devices/${mine.id}`, { account: '4321' });
    expect(moved.status).toBe(200);
    expect(moved.body).toMatchObject({ accountScheme: 'contact-id', account: '4321' });
    expect(t.gw.registry.deviceForAccount('4321')).toBe(mine.id);
    const audit = await t.api('GET', `/api/audit?action=device.account&target=device:${mine.id}`);
    expect(audit.body.items).toHaveLength(1);
    expect(audit.body.items[0]).toMatchObject({ actor: 'admin', role: 'admin', ip: expect.stringMatching(/127\.0\.0\.1/), details: { before: null, after: { scheme: 'contact-id', id: '4321' } } });
  });

  it('audits provisioning, secret rotation, binding, lifecycle, imports and incident actions — never a secret', async () => {
    const d = await t.provision('call-phone');
    const rot = await t.api('POST', `/api/devices/${d.id}/rotate-secret`, undefined, tech);
    expect(rot.status).toBe(403); // outside tess's units (unbound devices are only hers to bind)
    const rotated = await t.api('POST', `/api/devices/${d.id}/rotate-secret`);
    expect(rotated.status).toBe(200);
    expect(rotated.body.secret).toMatch(/^[\w-]{32}$/);
    expect((await t.api('POST', `/api/devices/${d.id}/suspend`)).status).toBe(200);
    expect((await t.api('POST', `/api/devices/${d.id}/resume`)).status).toBe(200);
    const imp = await t.api('POST', '/api/devices/import', 'serial,kind\nAUD-1,locator\nAUD-2,locator\n', tech);
    expect(imp.status).toBe(201);

    const mine = await t.api('GET', `/api/audit?target=${d.id}&limit=50`);
    expect(mine.body.items.map((e: { action: string }) => e.action).reverse()).toEqual(['device.provision', 'device.rotate-secret', 'device.suspend', 'device.resume']);
    const imports = await t.api('GET', '/api/audit?action=device.import&actor=tess');
    expect(imports.body.items[0]).toMatchObject({ actor: 'tess', role: 'technician', targetType: 'import', details: { count: 2 } });
    const everything = await t.api('GET', '/api/audit?limit=1000');
    const text = JSON.stringify(everything.body);
    expect(text).not.toContain(rotated.body.secret);
    expect(text).not.toContain(d.secret);
    expect(text).not.toMatch(/"secret"|secretHash|password/i);
    const prefix = await t.api('GET', '/api/audit?action=device.&limit=1000');
    expect(prefix.body.total).toBeGreaterThanOrEqual(6);
    expect(prefix.body.items.every((e: { action: string }) => e.action.startsWith('device.'))).toBe(true);
    const future = await t.api('GET', `/api/audit?from=${Date.now() + 60_000}`);
    expect(future.body).toEqual({ items: [], total: 0 });
    const paged = await t.api('GET', '/api/audit?limit=2&offset=1');
    expect(paged.body.items).toHaveLength(2);
    expect(paged.body.items[0].id).toBe(everything.body.items[1].id);

    // admins only
    const denied = await t.api('GET', '/api/audit', undefined, tech);
    expect(denied.status).toBe(403);

    // an incident's actions are audited and exported with it
    const dev = await deviceIn('g1');
    const client = await t.connectDevice(dev.id, dev.secret);
    await publishAsync(client, `devices/${dev.id}/events`, JSON.stringify({ ts: Date.now(), seq: 1, type: 'sos' }), 1);
    client.end(true);
    const inc = await waitFor(async () => (await t.api('GET', `/api/incidents?deviceId=${dev.id}`)).body.items[0], 'the SOS incident');
    expect((await t.api('POST', `/api/incidents/${inc.id}/acknowledge`)).status).toBe(200);
    expect((await t.api('POST', `/api/incidents/${inc.id}/note`, { text: 'called the daughter' })).status).toBe(200);
    const detail = await t.api('GET', `/api/incidents/${inc.id}`);
    expect(detail.body.audit.map((e: { action: string }) => e.action)).toEqual(['incident.acknowledge', 'incident.note']);
    expect(detail.body.audit[0]).toMatchObject({ actor: 'admin', targetType: 'incident', targetId: inc.id, ip: expect.stringMatching(/127\.0\.0\.1/) });
  });

  it('the audit log is append-only: the database refuses UPDATE and DELETE', () => {
    const sqlite = t.gw.store.sqlite;
    const n = (sqlite.prepare('SELECT count(*) AS n FROM audit_log').get() as { n: number }).n;
    expect(n).toBeGreaterThan(0);
    expect(() => sqlite.prepare(`UPDATE audit_log SET actor = 'nobody'`).run()).toThrow(/append-only/);
    expect(() => sqlite.prepare('DELETE FROM audit_log').run()).toThrow(/append-only/);
    expect((sqlite.prepare('SELECT count(*) AS n FROM audit_log').get() as { n: number }).n).toBe(n);
  });

  it('an offset SQLite cannot hold is a 400 naming the limit, not a 500', async () => {
    for (const path of ['/api/devices', '/api/residents', '/api/incidents', '/api/audit']) {
      for (const offset of ['9223372036854775808', '1e300', '10000001']) {
        const r = await t.api('GET', `${path}?offset=${offset}`);
        expect(r.status, `${path}?offset=${offset}: ${JSON.stringify(r.body)}`).toBe(400);
        expect(r.body.message).toMatch(/offset/);
        expect(r.body.message).toMatch(/10000000/);
      }
      expect((await t.api('GET', `${path}?offset=10000000`)).status).toBe(200);
    }
    const dev = await t.provision('call-phone');
    const r = await t.api('GET', `/api/observations?deviceId=${dev.id}&before=9223372036854775808`);
    expect(r.status).toBe(400);
    expect(r.body.message).toMatch(/before/);
  });

  it('ts and seq a double cannot hold exactly are not stored as a dedup key (through MQTT); the SOS still opens', async () => {
    const dev = await t.provision('call-phone');
    const client = await t.connectDevice(dev.id, dev.secret);
    // raw JSON: 1e308 and 2^53 + 2 exactly as a device would write them
    await publishAsync(client, `devices/${dev.id}/events`, `{"ts": 1e308, "seq": 9007199254740994, "type": "sos"}`, 1);
    client.end(true);
    const obs = await waitFor(async () => (await t.api('GET', `/api/observations?deviceId=${dev.id}`)).body.items[0], 'the observation');
    expect(obs).toMatchObject({ type: 'sos', seq: null, deviceTs: null });
    expect(obs.flags).toEqual(expect.arrayContaining(['invalid:ts', 'invalid:seq', 'no-dedup-key']));
    expect((await t.api('GET', `/api/incidents?deviceId=${dev.id}`)).body.items[0]).toMatchObject({ type: 'sos' });
  });
});
