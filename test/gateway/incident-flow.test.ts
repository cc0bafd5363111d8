// Issue 3 end to end: a real device presses SOS → an incident opens, routed to the resident's grid unit; nobody
// acknowledges → it escalates tier by tier at its budget; an operator acknowledges → escalation stops and the device
// receives "help is coming".
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { publishAsync, startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';

async function network(t: TestGateway) {
  const mk = async (body: Record<string, unknown>) => {
    const r = await t.api('POST', '/api/units', body);
    if (r.status !== 201) throw new Error(`unit: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body.id as string;
  };
  const district = await mk({ name: 'Dongcheng District Call Centre', tier: 'district' });
  const street = await mk({ name: 'Jingshan Street Centre', tier: 'street', parentId: district });
  const community = await mk({ name: 'Huangchenggen Community Station', tier: 'community', parentId: street });
  const grid = await mk({ name: 'Grid 7', tier: 'grid', parentId: community });
  return { district, street, community, grid };
}

describe('an SOS through the response network', () => {
  let t: TestGateway;
  beforeAll(async () => {
    t = await startTestGateway({ budgets: { P1: { pushMs: 1000, ackMs: 700, reachMs: 60_000 } } });
  });
  afterAll(async () => t.stop());

  it('opens, escalates tier by tier, stops on acknowledgement, and tells the device help is coming', { timeout: 60_000 }, async () => {
    const units = await network(t);
    const res = await t.api('POST', '/api/residents', { name: 'Zhao Min', unitId: units.grid });
    const { id, secret } = await t.provision('call-phone');
    await t.api('POST', `/api/devices/${id}/bind`, { residentId: res.body.id });
    const c = await t.connectDevice(id, secret);
    const commands: { type: string; id: string; incidentId?: string }[] = [];
    await new Promise<void>((r) => c.subscribe(`devices/${id}/commands`, { qos: 1 }, () => r()));
    c.on('message', (_topic, payload) => {
      const cmd = JSON.parse(payload.toString());
      commands.push(cmd);
      c.publish(`devices/${id}/commands/ack`, JSON.stringify({ id: cmd.id, ok: true }), { qos: 1 });
    });

    await publishAsync(c, `devices/${id}/events`, JSON.stringify({ ts: Date.now(), seq: 1, type: 'sos' }));
    const list = await t.api('GET', '/api/incidents?status=open');
    const incident = list.body.items.find((i: { deviceId: string }) => i.deviceId === id);
    expect(incident).toMatchObject({ type: 'sos', priority: 'P1', unitId: units.grid, tierUnitId: units.grid, status: 'open' });

    // no acknowledgement: grid → community → street → district, one budget each
    const reached = await waitFor(async () => {
      const d = await t.api('GET', `/api/incidents/${incident.id}`);
      return d.body.tierUnitId === units.district ? d.body : undefined;
    }, 'escalation to the district centre', 20_000);
    const escalations = reached.events.filter((e: { type: string }) => e.type === 'escalated');
    expect(escalations.map((e: { data: { toUnitId: string } }) => e.data.toUnitId)).toEqual([units.community, units.street, units.district]);

    const operator = await t.api('POST', '/api/users', { username: 'op1', password: 'operator-password-1', role: 'operator' });
    expect(operator.status).toBe(201);
    const token = await t.token('op1', 'operator-password-1');
    const ack = await t.api('POST', `/api/incidents/${incident.id}/acknowledge`, {}, token);
    expect(ack.status).toBe(200);
    expect(ack.body.incident ?? ack.body).toMatchObject({ status: 'acknowledged' });

    const cmd = await waitFor(() => commands.find((x) => x.type === 'acknowledge-alarm'), 'acknowledge-alarm command at the device');
    expect(cmd.incidentId).toBe(incident.id);
    await waitFor(async () => {
      const d = await t.api('GET', `/api/incidents/${incident.id}`);
      return d.body.events.some((e: { type: string }) => e.type === 'command-acked');
    }, 'command-acked on the timeline');

    // acknowledged: no more escalation
    const before = (await t.api('GET', `/api/incidents/${incident.id}`)).body.events.filter((e: { type: string }) => e.type === 'escalated').length;
    await new Promise((r) => setTimeout(r, 1500));
    const after = (await t.api('GET', `/api/incidents/${incident.id}`)).body;
    expect(after.events.filter((e: { type: string }) => e.type === 'escalated').length).toBe(before);
    expect(after.stamps).toEqual(expect.objectContaining({ received: expect.any(Number), ruleEvaluated: expect.any(Number), durable: expect.any(Number), acknowledged: expect.any(Number) }));
    c.end(true);
  });

  it('50 SOS frames from one device within a millisecond open exactly one incident with count 50', async () => {
    const { id, secret } = await t.provision('call-phone');
    const c = await t.connectDevice(id, secret);
    const ts = Date.now();
    await Promise.all(Array.from({ length: 50 }, (_, i) => publishAsync(c, `devices/${id}/events`, JSON.stringify({ ts: ts + i, seq: i + 1, type: 'sos' }))));
    c.end(true);
    const list = await t.api('GET', `/api/incidents?status=open`);
    const mine = list.body.items.filter((i: { deviceId: string }) => i.deviceId === id);
    expect(mine).toHaveLength(1);
    expect(mine[0].count).toBe(50);

    const metrics = await fetch(`${t.http}/metrics`).then((r) => r.text());
    expect(metrics).toMatch(/eldergate_stage_seconds_bucket\{le="[^"]+",stage="commit_urgent"\}/);
    // received → the writer's answer on the main thread, once per alarm
    expect(metrics).toMatch(/eldergate_stage_seconds_count\{stage="answered"\} ([5-9]\d|\d{3,})/);
    expect(metrics).toMatch(/eldergate_incidents_open\{priority="P1"\} [1-9]/);
    expect(metrics).toMatch(/eldergate_budget_breaches\{priority="P1"\} [1-9]/);
    expect(metrics).toMatch(/eldergate_observations_total\{source="mqtt",class="alarm",result="stored"\} [1-9]/);
  });

  it('a fall cancelled inside the window closes itself as cancelled by the resident', async () => {
    const { id, secret } = await t.provision('fall-sensor');
    const c = await t.connectDevice(id, secret);
    await publishAsync(c, `devices/${id}/events`, JSON.stringify({ ts: Date.now(), seq: 1, type: 'fall', confidence: 0.9 }));
    await publishAsync(c, `devices/${id}/events`, JSON.stringify({ ts: Date.now(), seq: 2, type: 'cancel' }));
    c.end(true);
    const list = await t.api('GET', `/api/incidents?status=cancelled`);
    const mine = list.body.items.filter((i: { deviceId: string }) => i.deviceId === id);
    expect(mine).toHaveLength(1);
    expect(mine[0]).toMatchObject({ type: 'fall', priority: 'P1', status: 'cancelled', outcome: expect.stringMatching(/cancelled by resident/) });
  });

  it('a test alarm is recorded as a test and closes itself as passed; a technician may not touch an emergency', async () => {
    const { id, secret } = await t.provision('call-phone');
    const c = await t.connectDevice(id, secret);
    await publishAsync(c, `devices/${id}/events`, JSON.stringify({ ts: Date.now(), seq: 1, type: 'test' }));
    c.end(true);
    // recorded as a test (P3), then closed by the gateway itself once recorded: the test passed
    const inc = await waitFor(async () => {
      const items = (await t.api('GET', `/api/incidents?deviceId=${id}`)).body.items as { status: string }[];
      return items.length === 1 && items[0]!.status === 'resolved' ? items[0] : undefined;
    }, 'the test incident closed as passed');
    expect(inc).toMatchObject({ test: true, priority: 'P3', status: 'resolved', outcome: expect.stringMatching(/test passed/) });
    await t.api('POST', '/api/users', { username: 'tech9', password: 'technician-pass-9', role: 'technician' });
    const tech = await t.token('tech9', 'technician-pass-9');
    // but an emergency is not theirs
    const sos = await t.provision('call-phone');
    const c2 = await t.connectDevice(sos.id, sos.secret);
    await publishAsync(c2, `devices/${sos.id}/events`, JSON.stringify({ ts: Date.now(), seq: 1, type: 'sos' }));
    c2.end(true);
    const real = (await t.api('GET', `/api/incidents?deviceId=${sos.id}`)).body.items[0];
    const refused = await t.api('POST', `/api/incidents/${real.id}/acknowledge`, {}, tech);
    expect(refused.status).toBe(403);
    expect(refused.body.message).toMatch(/test alarms/);
  });
});
