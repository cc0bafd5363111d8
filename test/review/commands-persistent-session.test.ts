// Review: a device that keeps an MQTT persistent session (clean = false) does not send SUBSCRIBE again when it
// reconnects — the broker restores its subscription. A command stored while it was offline (e.g. "help is coming")
// must still be sent when it comes back.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';

describe('pending commands and a persistent MQTT session', () => {
  let t: TestGateway;
  beforeAll(async () => {
    t = await startTestGateway();
  });
  afterAll(async () => t.stop());

  it('are sent when the device reconnects with clean=false and its subscription is restored by the broker', async () => {
    const { id, secret } = await t.provision('call-phone');
    const first = await t.connectDevice(id, secret, { clean: false });
    await new Promise<void>((resolve, reject) =>
      first.subscribe(`devices/${id}/commands`, { qos: 1 }, (err) => (err ? reject(err) : resolve())));
    await new Promise<void>((r) => first.end(false, {}, () => r()));
    await waitFor(() => !t.gw.broker!.isConnected(id), 'the device to be gone');

    // stored while the device is offline
    const sent = await t.api('POST', `/api/devices/${id}/commands`, { type: 'locate-now' });
    expect(sent.status).toBe(202);

    // same session, no SUBSCRIBE: the broker restores the subscription (session present)
    const again = await t.connectDevice(id, secret, { clean: false, resubscribe: false });
    const got: { id: string; type: string }[] = [];
    again.on('message', (_topic, payload) => got.push(JSON.parse(payload.toString())));
    try {
      const cmd = await waitFor(() => got.find((c) => c.id === sent.body.id), 'the pending command on reconnect', 8000);
      expect(cmd.type).toBe('locate-now');
    } finally {
      again.end(true);
    }
  });
});
