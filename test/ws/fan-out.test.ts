// One SOS, twenty consoles attached and acknowledging (issue 10): the incident log holds the incident's events only
// (no receipt is an event), the receipts table holds the one push and the twenty deliveries, and each console gets
// a constant number of frames for the SOS — the log's events of it — not one per console. A real gateway, a real
// MQTT device, twenty real WebSocket clients of twenty users.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { connectDevice, publishAsync, startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { TestConsole } from './helpers.js';

const CONSOLES = 20;

describe('one SOS with twenty consoles attached', () => {
  let t: TestGateway;
  const consoles: TestConsole[] = [];
  const usernames: string[] = [];
  beforeAll(async () => {
    t = await startTestGateway();
  }, 60_000);
  afterAll(async () => {
    await Promise.all(consoles.map((c) => c.close()));
    await t?.stop();
  });

  it('logs only the incident\'s events, 20 delivery receipts apart, and O(1) frames per console', async () => {
    for (let i = 0; i < CONSOLES; i++) {
      const username = `console-op-${i}`;
      const password = `pw-${randomBytes(9).toString('base64url')}`;
      const r = await t.api('POST', '/api/users', { username, password, role: 'operator' });
      expect(r.status).toBe(201);
      usernames.push(username);
      const c = await TestConsole.open(t, await t.token(username, password));
      // a console acknowledges every incident frame it processed (the protocol's delivery ack)
      c.ws.on('message', (data) => {
        const f = JSON.parse(String(data)) as { type: string; seq?: number };
        if (f.type === 'incident') c.send({ type: 'ack', seq: f.seq });
      });
      c.subscribe('all');
      await c.waitFor((f) => f.type === 'replayed', 'replayed');
      consoles.push(c);
    }
    const metric = async (name: string) => {
      const text = (await t.api('GET', '/metrics')).body as string;
      const line = text.split('\n').find((l) => l.startsWith(`${name} `));
      return line ? Number(line.split(' ')[1]) : 0;
    };
    const pushesBefore = await metric('eldergate_incident_pushes_total');
    const deliveriesBefore = await metric('eldergate_incident_deliveries_total');

    const dev = await t.provision('call-phone');
    const mqtt = await connectDevice(t.mqttUrl, dev.id, dev.secret);
    await publishAsync(mqtt, `devices/${dev.id}/events`, JSON.stringify({ ts: Date.now(), seq: 1, type: 'sos' }));
    const opened = await consoles[0]!.waitFor((f) => f.type === 'incident' && f.event!.type === 'opened', 'the SOS on the first console');
    const id = opened.event!.incidentId;
    for (const c of consoles) await c.waitFor((f) => f.event?.incidentId === id, 'the SOS on every console');

    const sqlite = t.gw.store.sqlite;
    const deliveries = () => sqlite.prepare(`SELECT count(*) FROM incident_receipts WHERE incident_id = ? AND kind = 'delivered'`).pluck().get(id) as number;
    await waitFor(() => deliveries() === CONSOLES, `${CONSOLES} delivery receipts`, 20_000);

    // a person acknowledges: the next event of the incident, and a marker for "everything before it has arrived"
    const ack = await t.api('POST', `/api/incidents/${id}/acknowledge`);
    expect(ack.status).toBe(200);
    for (const c of consoles) await c.waitFor((f) => f.event?.incidentId === id && f.event.type === 'acknowledged', 'the acknowledgement on every console');

    const { incidents } = t.gw.response;
    // "help is coming" is recorded once the writer thread stored the command (after the acknowledgement's answer): the
    // log is complete with it (the phone does not listen for commands, so no command-acked follows)
    await waitFor(() => incidents.events(id).some((e) => e.type === 'command-sent') || undefined, 'command-sent on the timeline');
    const events = incidents.events(id);
    const types = events.map((e) => e.type);
    expect(types.slice(0, 2)).toEqual(['opened', 'acknowledged']);
    // after the acknowledgement the gateway tells the phone "help is coming" (command-sent); nothing per console
    expect(types.every((x) => ['opened', 'acknowledged', 'command-sent', 'command-acked'].includes(x))).toBe(true);
    expect(events.length).toBeLessThanOrEqual(4);
    const logged = sqlite.prepare(`SELECT count(*) FROM incident_events WHERE incident_id = ? AND type IN ('pushed', 'delivered')`).pluck().get(id);
    expect(logged).toBe(0);

    // each console got exactly the log's events of the SOS: a constant, not a number that grows with the consoles
    await waitFor(() => consoles.every((c) => c.incidentFrames.filter((f) => f.event!.incidentId === id).length === incidents.events(id).length), 'every console at the log\'s end');
    for (const c of consoles) {
      const mine = c.incidentFrames.filter((f) => f.event!.incidentId === id);
      expect(mine.map((f) => f.event!.type)).toEqual(incidents.events(id).map((e) => e.type));
      expect(mine.length).toBeLessThan(CONSOLES / 4);
    }

    // the receipts: one push, twenty deliveries naming the twenty users; the first of each is the incident's stamp
    const receipts = incidents.receipts(id);
    expect(receipts.filter((r) => r.kind === 'pushed')).toHaveLength(1);
    const delivered = receipts.filter((r) => r.kind === 'delivered');
    expect(delivered.map((r) => r.username).sort()).toEqual([...usernames].sort());
    const row = incidents.get(id)!;
    expect(row.stamps.pushed).toBe(receipts.find((r) => r.kind === 'pushed')!.at);
    expect(row.stamps.delivered).toBe(Math.min(...delivered.map((r) => r.at)));
    expect(row.stamps.delivered!).toBeGreaterThanOrEqual(row.stamps.pushed!);

    // the detail API joins them (what a console's timeline shows as "<name>'s console confirmed …")
    const detail = await t.api('GET', `/api/incidents/${id}`);
    expect(detail.status).toBe(200);
    expect(detail.body.events.map((e: { type: string }) => e.type)).toEqual(incidents.events(id).map((e) => e.type));
    expect(detail.body.receipts.filter((r: { kind: string }) => r.kind === 'delivered').map((r: { username: string }) => r.username).sort())
      .toEqual([...usernames].sort());
    expect(detail.body.stamps).toMatchObject({ pushed: row.stamps.pushed, delivered: row.stamps.delivered });

    // counted: one push per console written, one delivery per user
    expect(await metric('eldergate_incident_pushes_total') - pushesBefore).toBe(CONSOLES);
    expect(await metric('eldergate_incident_deliveries_total') - deliveriesBefore).toBe(CONSOLES);
    mqtt.end(true);
  }, 120_000);
});
