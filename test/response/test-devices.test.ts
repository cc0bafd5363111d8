// A test run's devices (issue 13 §4) on a real gateway: every incident of a device provisioned with "test": true is
// a test incident — never escalated, never notified to anyone, not in the KPIs — while the same alarm from a real
// device beside it is escalated, notified and counted. Real webhook receiver on loopback, real MQTT, real SQLite.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { publishAsync, startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';

describe('test devices: test incidents, never escalated or notified, not in KPIs', () => {
  let t: TestGateway;
  let server: Server;
  const hooks: { incidentId: string; event: string }[] = [];
  const clients: { end(force: boolean): unknown }[] = [];

  beforeAll(async () => {
    server = createServer((req, res) => {
      let raw = '';
      req.on('data', (c: Buffer) => (raw += c.toString()));
      req.on('end', () => {
        const body = JSON.parse(raw) as { incident: { id: string } };
        hooks.push({ incidentId: body.incident.id, event: String(req.headers['x-eldergate-event'] ?? req.url) });
        res.end('ok');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
    // a P1 budget short enough to see an escalation in a test; every incident goes to the broadcast channel
    t = await startTestGateway({
      budgets: { P1: { ackMs: 400 } },
      notifiers: { webhookSecret: 'a-webhook-secret-of-some-length', backoffMs: 20, broadcast: ['all'], channels: { all: { url, allowPrivate: true } } },
    });
  });
  afterAll(async () => {
    for (const c of clients) c.end(true);
    await t?.stop();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  const provision = async (serial: string, test: boolean) => {
    const d = await t.api('POST', '/api/devices', { kind: 'call-phone', serial, ...(test ? { test: true } : {}) });
    expect(d.status, JSON.stringify(d.body)).toBe(201);
    const r = await t.api('POST', '/api/residents', { name: `Resident ${serial}`, ...(test ? { test: true } : {}) });
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    expect(r.body.test).toBe(test);
    expect((await t.api('POST', `/api/devices/${d.body.id}/bind`, { residentId: r.body.id })).status).toBe(200);
    const got = await t.api('GET', `/api/devices/${d.body.id}`);
    expect(got.body.test).toBe(test);
    return d.body as { id: string; secret: string };
  };

  it('provisioning says test (admin/technician only, audited); an operator may not register a test resident', async () => {
    const d = await t.api('POST', '/api/devices', { kind: 'call-phone', serial: 'TEST-AUDIT-1', test: true });
    expect(d.status).toBe(201);
    const audit = await t.api('GET', `/api/audit?target=${d.body.id}`);
    expect(audit.status, JSON.stringify(audit.body)).toBe(200);
    expect(JSON.stringify(audit.body)).toContain('"test":true');

    const unit = await t.api('POST', '/api/units', { name: 'Centre', tier: 'district' });
    expect((await t.api('POST', '/api/users', { username: 'olga', password: 'olga-password-123', role: 'operator', unitId: unit.body.id })).status).toBe(201);
    const olga = await t.token('olga', 'olga-password-123');
    const refused = await t.api('POST', '/api/residents', { name: 'Not a test', test: true }, olga);
    expect(refused.status).toBe(403);
    expect(refused.body.message).toMatch(/admin or a technician/);
    // the import takes test=true too (how firmware-sim provisions a scenario's devices)
    const csv = await t.api('POST', '/api/devices/import?test=true', 'serial,kind\nTEST-IMP-1,call-phone\n');
    expect(csv.status).toBe(201);
    const id = String(csv.body).split('\n')[1]!.split(',')[0]!;
    expect((await t.api('GET', `/api/devices/${id}`)).body.test).toBe(true);
  });

  it('an SOS from a test device is a test incident: not escalated, not notified, not in KPIs; a real one beside it is all three', async () => {
    const from = Date.now() - 1000;
    const testDev = await provision('TEST-RUN-SOS-1', true);
    const realDev = await provision('REAL-SOS-1', false);
    const tc = await t.connectDevice(testDev.id, testDev.secret);
    const rc = await t.connectDevice(realDev.id, realDev.secret);
    clients.push(tc, rc);
    // the test device first: by the time the real one has escalated and been notified, the test one had every chance
    await publishAsync(tc, `devices/${testDev.id}/events`, JSON.stringify({ ts: Date.now(), seq: 1, type: 'sos' }));
    await publishAsync(rc, `devices/${realDev.id}/events`, JSON.stringify({ ts: Date.now(), seq: 1, type: 'sos' }));

    const testInc = (await t.api('GET', `/api/incidents?deviceId=${testDev.id}`)).body.items[0];
    const realInc = (await t.api('GET', `/api/incidents?deviceId=${realDev.id}`)).body.items[0];
    expect(testInc).toMatchObject({ type: 'sos', priority: 'P1', test: true, deadlineAt: null });
    expect(realInc).toMatchObject({ type: 'sos', priority: 'P1', test: false });

    // the real one escalates (budget 400 ms) and is notified at open and at escalation
    await waitFor(async () => (await t.api('GET', `/api/incidents/${realInc.id}`)).body.events.some((e: { type: string }) => e.type === 'escalated'), 'the real incident escalated', 15_000);
    await waitFor(() => hooks.filter((h) => h.incidentId === realInc.id).length >= 2, 'the real incident notified at open and escalation', 15_000);
    // and another escalation round for good measure: the test incident stays where it was
    await waitFor(async () => (await t.api('GET', `/api/incidents/${realInc.id}`)).body.escalationLevel >= 2, 'a second escalation', 15_000);
    const testDetail = (await t.api('GET', `/api/incidents/${testInc.id}`)).body;
    expect(testDetail.status).toBe('open');
    expect(testDetail.escalationLevel).toBe(0);
    expect(testDetail.events.map((e: { type: string }) => e.type)).not.toContain('escalated');
    expect(testDetail.events.map((e: { type: string }) => e.type)).not.toContain('notify-attempt');
    expect(hooks.filter((h) => h.incidentId === testInc.id)).toEqual([]);

    // KPIs: the real one counted, the test one not
    const kpis = (await t.api('GET', `/api/kpis?from=${from}&to=${Date.now() + 1000}`)).body;
    expect(kpis.total.incidents).toBe(1);
    expect(kpis.total.breaches).toBeGreaterThanOrEqual(2);
    // the open-incident gauge counts the real alarm only
    const metrics = await (await fetch(`${t.http}/metrics`)).text();
    expect(metrics).toMatch(/eldergate_incidents_open\{priority="P1"\} 1\b/);

    // the real one acknowledged: its escalation stops (and the gateway can shut down without a notification storm)
    expect((await t.api('POST', `/api/incidents/${realInc.id}/acknowledge`)).status).toBe(200);
  }, 60_000);

  it('a fall cancelled on a test fall sensor cancels its test incident', async () => {
    const d = await t.api('POST', '/api/devices', { kind: 'fall-sensor', serial: 'TEST-RUN-FALL-1', test: true });
    const r = await t.api('POST', '/api/residents', { name: 'Test fall', test: true });
    await t.api('POST', `/api/devices/${d.body.id}/bind`, { residentId: r.body.id });
    const c = await t.connectDevice(d.body.id, d.body.secret);
    clients.push(c);
    await publishAsync(c, `devices/${d.body.id}/events`, JSON.stringify({ ts: Date.now(), seq: 1, type: 'fall', confidence: 0.95 }));
    await publishAsync(c, `devices/${d.body.id}/events`, JSON.stringify({ ts: Date.now(), seq: 2, type: 'cancel' }));
    const inc = (await t.api('GET', `/api/incidents?deviceId=${d.body.id}`)).body.items[0];
    expect(inc).toMatchObject({ type: 'fall', test: true, status: 'cancelled', outcome: 'cancelled by resident' });
  });
});
