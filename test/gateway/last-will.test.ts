// The Last Will on devices/{id}/status reaches the gateway when a device dies without a goodbye; the per-address
// connection limit holds.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDevice, metricValue, startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';

describe('Last Will and connection limits', () => {
  let t: TestGateway;
  beforeAll(async () => {
    t = await startTestGateway({ mqtt: { port: 0, host: '127.0.0.1', maxConnectionsPerAddress: 3 } });
  });
  afterAll(async () => t.stop());

  it('a device that drops dead publishes its Last Will: folded into its state (no row), the device shown offline', async () => {
    const { id, secret } = await t.provision('fall-sensor');
    const c = await connectDevice(t.mqttUrl, id, secret, {
      will: { topic: `devices/${id}/status`, payload: Buffer.from('{"online":false}'), qos: 1, retain: true },
    });
    await waitFor(async () => (await t.api('GET', `/api/devices/${id}`)).body.live.online === true, 'online');
    const folded = () => metricValue(t.gw, 'eldergate_observations_total', { source: 'mqtt', result: 'state' });
    const syncs = () => metricValue(t.gw, 'eldergate_stage_seconds_count', { stage: 'sync_telemetry' });
    const before = await folded();
    const syncsBefore = await syncs();
    // no DISCONNECT packet: the socket just dies, as when the battery falls out
    (c as unknown as { stream: { destroy(): void } }).stream.destroy();
    // the Will reaches the writer and the rules (supervision counts the drop), as state: heartbeats and Wills are
    // state, not rows (issue 10)
    await waitFor(async () => (await folded()) > before, 'the Last Will folded into the device state');
    expect((await t.api('GET', `/api/observations?deviceId=${id}&type=status`)).body.items).toEqual([]);
    expect((await t.api('GET', `/api/devices/${id}`)).body.live.online).toBe(false);
    // a Will is acknowledged to no one, whatever its QoS: its batch was not fsynced for it (it raised no incident)
    expect(await syncs()).toBe(syncsBefore);
    c.end(true);
  });

  it('refuses connections beyond the per-address limit, and counts them', async () => {
    const devices = await Promise.all([0, 1, 2, 3].map(() => t.provision('call-phone')));
    const clients = [];
    for (const d of devices.slice(0, 3)) clients.push(await connectDevice(t.mqttUrl, d.id, d.secret));
    await expect(connectDevice(t.mqttUrl, devices[3]!.id, devices[3]!.secret)).rejects.toThrow();
    const refused = (await t.gw.metrics.refused.get()).values.find((v) => v.labels.reason === 'too many connections');
    expect(refused?.value).toBeGreaterThanOrEqual(1);
    for (const c of clients) c.end(true);
    await waitFor(async () => {
      try {
        (await connectDevice(t.mqttUrl, devices[3]!.id, devices[3]!.secret)).end(true);
        return true;
      } catch {
        return false;
      }
    }, 'a connection once the others left');
  });
});
