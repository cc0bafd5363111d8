// Refused at the door: logged with the reason, counted, nothing stored.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect as netConnect } from 'node:net';
import mqttPacket from 'mqtt-packet';
import { connectDevice, publishAsync, startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';

const refusedCount = async (t: TestGateway, stage: string, reason: string) => {
  const m = (await t.gw.metrics.refused.get()).values.find((v) => v.labels.stage === stage && v.labels.reason === reason);
  return m?.value ?? 0;
};
const obsCount = (t: TestGateway) => (t.gw.store.sqlite.prepare('select count(*) n from observations').get() as { n: number }).n;

/** Send raw bytes and resolve with what happened to the socket. */
function raw(port: number, bytes: Buffer): Promise<'closed'> {
  return new Promise((resolve, reject) => {
    const s = netConnect(port, '127.0.0.1', () => s.write(bytes));
    s.on('error', () => undefined);
    s.on('close', () => resolve('closed'));
    setTimeout(() => { s.destroy(); reject(new Error('socket stayed open')); }, 8000);
  });
}

describe('the broker refuses at the door', () => {
  let t: TestGateway;
  let dev: { id: string; secret: string };
  beforeAll(async () => {
    t = await startTestGateway({ mqtt: { port: 0, host: '127.0.0.1', maxPacketBytes: 4096, maxPreConnectBytes: 512, connectTimeoutMs: 2000 } });
    dev = await t.provision('call-phone');
  });
  afterAll(async () => t.stop());

  it('a wrong secret, an unknown device, a clientId that is not the username', async () => {
    await expect(connectDevice(t.mqttUrl, dev.id, 'x'.repeat(32))).rejects.toThrow(/Bad username or password/i);
    await expect(connectDevice(t.mqttUrl, 'cp-doesnotexist1', 'x'.repeat(32))).rejects.toThrow(/Bad username or password/i);
    await expect(connectDevice(t.mqttUrl, dev.id, dev.secret, { username: 'cp-someoneelse1' })).rejects.toThrow(/Identifier rejected/i);
    await expect(connectDevice(t.mqttUrl, 'cp-#', dev.secret, { username: 'cp-#' })).rejects.toThrow(/Identifier rejected/i);
    expect(await refusedCount(t, 'connect', 'bad-secret')).toBe(1);
    expect(await refusedCount(t, 'connect', 'unknown-device')).toBe(1);
    expect(await refusedCount(t, 'connect', 'client id differs from username')).toBe(1);
  });

  it('a suspended device, and suspension/rotation disconnect at once', async () => {
    const d = await t.provision('fall-sensor');
    const c = await connectDevice(t.mqttUrl, d.id, d.secret);
    const closed = new Promise<void>((r) => c.once('close', () => r()));
    expect((await t.api('POST', `/api/devices/${d.id}/suspend`)).body.state).toBe('suspended');
    await closed;
    c.end(true);
    await expect(connectDevice(t.mqttUrl, d.id, d.secret)).rejects.toThrow(/Not authorized/i);
    expect(await refusedCount(t, 'connect', 'suspended')).toBe(1);
    await t.api('POST', `/api/devices/${d.id}/resume`);
    const c2 = await connectDevice(t.mqttUrl, d.id, d.secret);
    const closed2 = new Promise<void>((r) => c2.once('close', () => r()));
    const rotated = await t.api('POST', `/api/devices/${d.id}/rotate-secret`);
    expect(rotated.body.secret).not.toBe(d.secret);
    await closed2;
    c2.end(true);
    await expect(connectDevice(t.mqttUrl, d.id, d.secret)).rejects.toThrow(/Bad username or password/i);
    (await connectDevice(t.mqttUrl, d.id, rotated.body.secret)).end(true);
    await t.api('POST', `/api/devices/${d.id}/decommission`);
    await expect(connectDevice(t.mqttUrl, d.id, rotated.body.secret)).rejects.toThrow(/Not authorized/i);
  });

  it('publishing outside its own topics, and $SYS, disconnects and stores nothing', async () => {
    const other = await t.provision('call-phone');
    const before = obsCount(t);
    for (const topic of [`devices/${other.id}/events`, '$SYS/broker/uptime', `devices/${dev.id}/commands`, `devices/${dev.id}/events/x`]) {
      const c = await connectDevice(t.mqttUrl, dev.id, dev.secret);
      const closed = new Promise<void>((r) => c.once('close', () => r()));
      c.publish(topic, JSON.stringify({ ts: 1, seq: 1, type: 'sos' }), { qos: 1 });
      await closed;
      c.end(true);
    }
    expect(obsCount(t)).toBe(before);
    expect(await refusedCount(t, 'publish', 'topic outside the device contract')).toBe(4);
  });

  it('subscribing outside its own commands topic, or to #, gets a failure SUBACK', async () => {
    const c = await connectDevice(t.mqttUrl, dev.id, dev.secret);
    const grant = (topic: string) => new Promise<number>((resolve, reject) =>
      c.subscribe(topic, { qos: 1 }, (err, granted) => {
        // mqtt.js reports a failure SUBACK as an error carrying the packet
        const codes = (err as { packet?: { granted?: number[] } } | null)?.packet?.granted;
        if (codes) return resolve(codes[0]!);
        return err ? reject(err) : resolve(granted![0]!.qos);
      }));
    expect(await grant('#')).toBe(128);
    expect(await grant(`devices/+/commands`)).toBe(128);
    expect(await grant(`devices/${dev.id}/events`)).toBe(128);
    expect(await grant(`devices/${dev.id}/commands`)).toBe(1);
    c.end(true);
    expect(await refusedCount(t, 'subscribe', 'topic outside the device contract')).toBe(3);
  });

  it('a first packet that is not CONNECT, too many bytes before CONNECT, an oversized packet', async () => {
    const before = obsCount(t);
    const publish = mqttPacket.generate({ cmd: 'publish', topic: `devices/${dev.id}/events`, payload: '{"type":"sos"}', qos: 0, retain: false, dup: false } as never);
    await raw(t.gw.mqttPort, publish);
    expect(await refusedCount(t, 'connect', 'first packet is not CONNECT')).toBe(1);

    // a CONNECT whose declared length is 64 MiB: refused on its header, before aedes buffers it
    await raw(t.gw.mqttPort, Buffer.from([0x10, 0x80, 0x80, 0x80, 0x20, 0x00, 0x04]));
    await waitFor(async () => (await refusedCount(t, 'connect', `packet of ${64 * 1024 * 1024} bytes exceeds the limit of 4096`)) === 1, 'oversized refusal');

    // an authenticated device sending a packet beyond maxPacketBytes is cut off
    const c = await connectDevice(t.mqttUrl, dev.id, dev.secret);
    const closed = new Promise<void>((r) => c.once('close', () => r()));
    c.publish(`devices/${dev.id}/events`, JSON.stringify({ ts: 5, seq: 5, type: 'test', pad: 'x'.repeat(8000) }), { qos: 1 });
    await closed;
    c.end(true);
    expect(obsCount(t)).toBe(before);
  });

  it('a slow trickle of bytes before CONNECT is bounded', async () => {
    // a CONNECT declaring 400 bytes, then junk: the pre-CONNECT budget (512) runs out first
    const header = Buffer.from([0x10, 0x90, 0x03]);
    await raw(t.gw.mqttPort, Buffer.concat([header, Buffer.alloc(600, 0x41)]));
    expect(await refusedCount(t, 'connect', 'more than 512 bytes before CONNECT completed')).toBe(1);
  });
});

describe('unreadable messages from an authenticated device', () => {
  let t: TestGateway;
  beforeAll(async () => { t = await startTestGateway(); });
  afterAll(async () => t.stop());

  it('never become observations: counted, kept raw, and flagged on the device', async () => {
    const { id, secret } = await t.provision('fall-sensor');
    const c = await connectDevice(t.mqttUrl, id, secret);
    await publishAsync(c, `devices/${id}/telemetry`, '{not json');
    await publishAsync(c, `devices/${id}/telemetry`, JSON.stringify({ ts: 1, seq: 1, type: 'heartbeat', battery: 500 }));
    await publishAsync(c, `devices/${id}/events`, JSON.stringify({ ts: 2, seq: 2, type: 'levitation' }));
    await publishAsync(c, `devices/${id}/events`, JSON.stringify({ ts: 3, seq: 3 }));
    await publishAsync(c, `devices/${id}/telemetry`, JSON.stringify({ ts: 4, seq: 4, type: 'heartbeat', note: 'y'.repeat(6000) }));
    // the connection stays up: a device with a bad firmware field still gets its alarms through
    await publishAsync(c, `devices/${id}/events`, JSON.stringify({ ts: 5, seq: 5, type: 'fall', confidence: 0.93 }));
    c.end(true);
    const types = (t.gw.store.sqlite.prepare("select type from observations where device_id = ? and source = 'mqtt'").all(id) as { type: string }[]).map((r) => r.type);
    expect(types).toEqual(['fall']);
    // the gateway's own report of them (test/gateway/unreadable-end-to-end.test.ts): one, not one per frame
    const reports = t.gw.store.sqlite.prepare("select type from observations where device_id = ? and source = 'gateway'").all(id);
    expect(reports).toEqual([{ type: 'unreadable' }]);
    const rejects = await waitFor(async () => {
      const r = await t.api('GET', `/api/devices/${id}/rejects`);
      return r.body.items.length === 5 ? r.body.items : undefined;
    }, 'five rejects');
    expect(rejects.map((r: { reason: string }) => r.reason).reverse()).toEqual([
      expect.stringMatching(/^malformed JSON/),
      expect.stringMatching(/"battery" is invalid for heartbeat/),
      'unknown events type "levitation" for a fall-sensor',
      expect.stringMatching(/no usable "type"/),
      expect.stringMatching(/exceeds the limit of 4096/),
    ]);
    expect(rejects[0].raw.length).toBeLessThanOrEqual(2048);
    const dev = await t.api('GET', `/api/devices/${id}`);
    expect(dev.body.live.flags).toContain('sending unreadable messages');
    expect(dev.body.live.unreadableCount).toBe(5);
  });
});
