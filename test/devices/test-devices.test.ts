// A test run's device (devices.test) makes every incident of its own a test incident, never escalated
// (response/incidents.ts). Bound to a person in care it would silence her real alarms: the registry refuses that
// binding with a 409 saying why and what to do, and an admin (only) can clear a device's test mark, audited.
// A real gateway, real SQLite, real HTTP, a real MQTT device for the alarm.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { publishAsync, startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';

describe('test devices and real residents', () => {
  let t: TestGateway;
  beforeAll(async () => { t = await startTestGateway(); });
  afterAll(async () => t?.stop());

  const provisionTest = async (serial: string) => {
    const r = await t.api('POST', '/api/devices', { kind: 'call-phone', serial, test: true });
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    return r.body as { id: string; secret: string };
  };

  it('a test device cannot be bound to a person in care (409 saying why and what to do); to a test resident it can', async () => {
    const dev = await provisionTest('TESTDEV-1');
    const real = (await t.api('POST', '/api/residents', { name: 'Wang Fang' })).body;
    const refused = await t.api('POST', `/api/devices/${dev.id}/bind`, { residentId: real.id });
    expect(refused.status).toBe(409);
    expect(refused.body.message).toMatch(/test run's device/);
    expect(refused.body.message).toMatch(/real alarms silent/);
    expect(refused.body.message).toContain(`PATCH /api/devices/${dev.id} {"test": false}`);
    expect((await t.api('GET', `/api/devices/${dev.id}`)).body.residentId).toBeNull();

    const sim = (await t.api('POST', '/api/residents', { name: 'Sim resident', test: true })).body;
    expect(sim.test).toBe(true);
    const ok = await t.api('POST', `/api/devices/${dev.id}/bind`, { residentId: sim.id });
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
    // a real device binds to a real resident as before
    const realDev = await t.provision('call-phone', 'REALDEV-1');
    expect((await t.api('POST', `/api/devices/${realDev.id}/bind`, { residentId: real.id })).status).toBe(200);
  });

  it('an admin clears the test mark (audited); a technician may not; then it binds and its SOS is a real incident', async () => {
    const dev = await provisionTest('TESTDEV-2');
    expect((await t.api('POST', '/api/users', { username: 'tech1', password: 'technician-password-1', role: 'technician' })).status).toBe(201);
    const tech = await t.token('tech1', 'technician-password-1');
    const forbidden = await t.api('PATCH', `/api/devices/${dev.id}`, { test: false }, tech);
    expect(forbidden.status).toBe(403);
    expect(forbidden.body.message).toMatch(/admin/);
    expect((await t.api('GET', `/api/devices/${dev.id}`)).body.test).toBe(true);
    // it cannot be set (a real device's alarms made silent)
    expect((await t.api('PATCH', `/api/devices/${dev.id}`, { test: true })).status).toBe(400);

    const cleared = await t.api('PATCH', `/api/devices/${dev.id}`, { test: false });
    expect(cleared.status, JSON.stringify(cleared.body)).toBe(200);
    expect(cleared.body.test).toBe(false);
    const audit = (await t.api('GET', `/api/audit?targetId=${dev.id}`)).body.items as { action: string; actor: string; details: Record<string, unknown> }[];
    expect(audit.find((a) => a.action === 'device.update')).toMatchObject({ actor: 'admin', details: { test: { before: true, after: false } } });

    const real = (await t.api('POST', '/api/residents', { name: 'Zhao Lei' })).body;
    expect((await t.api('POST', `/api/devices/${dev.id}/bind`, { residentId: real.id })).status).toBe(200);
    const c = await t.connectDevice(dev.id, dev.secret);
    try {
      await publishAsync(c, `devices/${dev.id}/events`, JSON.stringify({ ts: Date.now(), seq: 1, type: 'sos' }));
      const inc = await waitFor(async () => (await t.api('GET', `/api/incidents?deviceId=${dev.id}&type=sos`)).body.items[0], 'the SOS incident');
      expect(inc).toMatchObject({ test: false, priority: 'P1' });
    } finally {
      c.end(true);
    }
  });
  // The rules ask for the device's open incident of a type (a low battery already on the board is not raised again).
  // A device put into service keeps its test run's open incidents, which are test incidents: they must not stand in
  // for a real one, or the real device's low battery, power loss or offline would never reach anyone.
  it('a device put into service with its test run\'s low-battery incident still open raises a real one', async () => {
    const dev = await provisionTest('TESTDEV-3');
    const c = await t.connectDevice(dev.id, dev.secret);
    try {
      await publishAsync(c, `devices/${dev.id}/telemetry`, JSON.stringify({ ts: Date.now(), seq: 1, type: 'heartbeat', battery: 5 }));
      const testCard = await waitFor(async () => (await t.api('GET', `/api/incidents?deviceId=${dev.id}&type=low-battery&test=true`)).body.items[0], 'the test low-battery incident');
      expect(testCard).toMatchObject({ test: true, status: 'open' });
      expect((await t.api('PATCH', `/api/devices/${dev.id}`, { test: false })).status).toBe(200);
      await publishAsync(c, `devices/${dev.id}/telemetry`, JSON.stringify({ ts: Date.now(), seq: 2, type: 'heartbeat', battery: 4 }));
      const real = await waitFor(async () => ((await t.api('GET', `/api/incidents?deviceId=${dev.id}&type=low-battery`)).body.items as { test: boolean }[])
        .find((i) => !i.test), 'a real low-battery incident for the device now in service');
      expect(real).toMatchObject({ test: false, status: 'open' });
    } finally {
      c.end(true);
    }
  });
  // What the rules remember of a test run is not the real device's either: a locator tested outside its test resident's
  // zone, put into service and bound to a person in care who is outside hers, must raise her exit at the first fix.
  it('a locator put into service forgets its test run: the first fix outside the real resident\'s zone raises her exit', async () => {
    const zone = { type: 'circle', center: { lat: 39.9, lon: 116.4 }, radiusM: 200 };
    const sim = (await t.api('POST', '/api/residents', { name: 'Sim walker', test: true, safeZone: zone })).body;
    const dev = (await t.api('POST', '/api/devices', { kind: 'locator', serial: 'TESTLOC-1', test: true })).body as { id: string; secret: string };
    expect((await t.api('POST', `/api/devices/${dev.id}/bind`, { residentId: sim.id })).status).toBe(200);
    const fix = (seq: number, lat: number) => JSON.stringify({ ts: Date.now(), seq, type: 'position', lat, lon: 116.4, accuracy: 10 });
    const c = await t.connectDevice(dev.id, dev.secret);
    try {
      await publishAsync(c, `devices/${dev.id}/telemetry`, fix(1, 39.91));
      await waitFor(async () => (await t.api('GET', `/api/incidents?deviceId=${dev.id}&type=safe-zone-exit&test=true`)).body.items[0], 'the test run\'s exit');
      expect((await t.api('PATCH', `/api/devices/${dev.id}`, { test: false })).status).toBe(200);
      const real = (await t.api('POST', '/api/residents', { name: 'Sun Lan', safeZone: zone })).body;
      expect((await t.api('POST', `/api/devices/${dev.id}/bind`, { residentId: real.id })).status).toBe(200);
      await publishAsync(c, `devices/${dev.id}/telemetry`, fix(2, 39.91));
      const exit = await waitFor(async () => ((await t.api('GET', `/api/incidents?deviceId=${dev.id}&type=safe-zone-exit`)).body.items as { test: boolean }[])
        .find((i) => !i.test), 'a real safe-zone exit at the first fix outside after going into service');
      expect(exit).toMatchObject({ test: false, status: 'open', priority: 'P2' });
    } finally {
      c.end(true);
    }
  });
});
