// gateway/broker/no-fanout.ts: aedes' fan-out of what devices send is skipped (nothing may subscribe to a device
// channel). What must still hold, on a real gateway and real MQTT clients: every device message is stored and
// acknowledged, no client receives another's (or its own) messages, and
// the broker's own publishes — a person's command — still reach the device.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { publishAsync, startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';

describe('a device\'s publishes go to the writer and to no MQTT client', () => {
  let t: TestGateway;
  beforeAll(async () => {
    t = await startTestGateway();
  });
  afterAll(async () => t.stop());

  it('stored and acknowledged; never echoed to a client; commands still delivered', async () => {
    const a = await t.provision('call-phone');
    const b = await t.provision('call-phone');
    const ca = await t.connectDevice(a.id, a.secret);
    const cb = await t.connectDevice(b.id, b.secret);
    const got: { to: string; topic: string }[] = [];
    ca.on('message', (topic) => got.push({ to: a.id, topic }));
    cb.on('message', (topic) => got.push({ to: b.id, topic }));
    await ca.subscribeAsync(`devices/${a.id}/commands`, { qos: 1 });
    await cb.subscribeAsync(`devices/${b.id}/commands`, { qos: 1 });

    const ts = Date.now();
    // PUBACKed (publishAsync resolves on the PUBACK) and stored, each of them
    await publishAsync(ca, `devices/${a.id}/telemetry`, JSON.stringify({ ts, seq: 1, type: 'heartbeat', battery: 50 }));
    await publishAsync(ca, `devices/${a.id}/events`, JSON.stringify({ ts: ts + 1, seq: 2, type: 'sos' }));
    await new Promise<void>((resolve, reject) => ca.publish(`devices/${a.id}/status`, JSON.stringify({ online: true }), { qos: 1, retain: true }, (err) => (err ? reject(err) : resolve())));
    const rows = t.gw.store.sqlite.prepare('select type from observations where device_id = ? order by id').all(a.id) as { type: string }[];
    expect(rows.map((r) => r.type)).toEqual(expect.arrayContaining(['heartbeat', 'sos']));

    // a person's command: the broker's own publish, delivered
    const res = await t.api('POST', `/api/devices/${a.id}/commands`, { type: 'locate-now' });
    expect(res.status).toBe(202);
    await waitFor(() => (got.some((g) => g.to === a.id && g.topic === `devices/${a.id}/commands`) || undefined), 'the command at the device');
    // and nothing but it reached any client
    await new Promise((r) => setTimeout(r, 300));
    expect(got).toEqual([{ to: a.id, topic: `devices/${a.id}/commands` }]);

    ca.end(true);
    cb.end(true);
  });
});
