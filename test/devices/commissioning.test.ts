// Commissioning end to end on a real gateway (issue 13 §4): the technician sends the test-alarm command, the device
// answers with its test alarm, the gateway records it as a test incident, and that incident closes itself as
// "test passed" — which commissions the bound device. An emergency from the same device never closes itself.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { publishAsync, startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';

describe('commissioning test incidents close themselves when the test passes', () => {
  let t: TestGateway;
  beforeAll(async () => { t = await startTestGateway(); });
  afterAll(async () => t?.stop());

  it('test-alarm command → test alarm → test incident resolved "test passed" by the gateway → device commissioned', async () => {
    const dev = await t.provision('call-phone', 'COMM-1');
    const resident = await t.api('POST', '/api/residents', { name: 'Liu Min' });
    await t.api('POST', `/api/devices/${dev.id}/bind`, { residentId: resident.body.id });
    const c = await t.connectDevice(dev.id, dev.secret);
    try {
      // firmware: answer the test-alarm command with a test alarm
      let seq = 0;
      c.on('message', (topic, payload) => {
        const cmd = JSON.parse(payload.toString()) as { id: string; type: string };
        c.publish(`devices/${dev.id}/commands/ack`, JSON.stringify({ id: cmd.id, ok: true }), { qos: 1 });
        if (cmd.type === 'test-alarm') c.publish(`devices/${dev.id}/events`, JSON.stringify({ ts: Date.now(), seq: ++seq, type: 'test' }), { qos: 1 });
      });
      await new Promise<void>((resolve, reject) => c.subscribe(`devices/${dev.id}/commands`, { qos: 1 }, (err) => (err ? reject(err) : resolve())));
      const sent = await t.api('POST', `/api/devices/${dev.id}/commands`, { type: 'test-alarm' });
      expect(sent.status, JSON.stringify(sent.body)).toBe(202);

      const inc = await waitFor(async () => (await t.api('GET', `/api/incidents?deviceId=${dev.id}&type=test`)).body.items[0], 'the test incident');
      expect(inc).toMatchObject({ test: true, priority: 'P3' });
      const closed = await waitFor(async () => {
        const d = (await t.api('GET', `/api/incidents/${inc.id}`)).body;
        return d.status === 'resolved' ? d : null;
      }, 'the test incident closed');
      expect(closed.outcome).toBe('test passed');
      const resolved = closed.events.find((e: { type: string }) => e.type === 'resolved');
      expect(resolved).toMatchObject({ actor: null, data: { by: 'gateway', outcome: 'test passed' } });
      // recorded first (opened, durable), closed after
      expect(closed.events[0].type).toBe('opened');
      expect(closed.stamps.durable).toBeLessThanOrEqual(closed.stamps.resolved);
      await waitFor(async () => (await t.api('GET', `/api/devices/${dev.id}`)).body.state === 'commissioned', 'commissioned');
      // nothing of it is left on the board
      const active = (await t.api('GET', '/api/incidents/active')).body.items as { id: string }[];
      expect(active.map((i) => i.id)).not.toContain(inc.id);

      // an SOS from the same device is an emergency: it stays open for a person
      await publishAsync(c, `devices/${dev.id}/events`, JSON.stringify({ ts: Date.now(), seq: 100, type: 'sos' }));
      const sos = (await t.api('GET', `/api/incidents?deviceId=${dev.id}&type=sos`)).body.items[0];
      await new Promise((r) => setTimeout(r, 300));
      expect((await t.api('GET', `/api/incidents/${sos.id}`)).body.status).toBe('open');
    } finally {
      c.end(true);
    }
  });

  it('a monthly test of a device in service closes as passed too, and leaves its state alone', async () => {
    const dev = await t.provision('call-phone', 'COMM-2');
    const c = await t.connectDevice(dev.id, dev.secret);
    try {
      await publishAsync(c, `devices/${dev.id}/events`, JSON.stringify({ ts: Date.now(), seq: 1, type: 'test' }));
      const inc = (await t.api('GET', `/api/incidents?deviceId=${dev.id}`)).body.items[0];
      await waitFor(async () => (await t.api('GET', `/api/incidents/${inc.id}`)).body.outcome === 'test passed', 'closed as passed');
      // bound to nobody: a bench test proves the radio, not a resident's protection, so it stays provisioned
      expect((await t.api('GET', `/api/devices/${dev.id}`)).body.state).toBe('provisioned');
    } finally {
      c.end(true);
    }
  });
});
