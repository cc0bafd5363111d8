// patches/aedes+1.2.0.patch and patches/aedes-persistence+11.0.0.patch (applied by `npm install`'s postinstall,
// patch-package): on every CONNECT aedes built a stream pipeline over the client's outgoing queue, empty or not, and
// finished it with an AbortController's abort — 9 % of the main thread in a reconnect storm (bench/analysis.md). The
// patched broker asks the persistence whether anything is queued first. Proved here on a real aedes on a real port
// with the real mqtt client: the patch is installed, a CONNECT with nothing queued builds no stream, and a QoS 1
// message queued for an offline persistent session is still delivered when it comes back.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { Aedes } from 'aedes';
import mqtt, { type MqttClient } from 'mqtt';

/** the broker's persistence (aedes' types do not declare the field; the broker sets it in createBroker) */
const persistenceOf = (broker: Aedes) =>
  (broker as unknown as { persistence: { outgoingStream: (c: unknown) => unknown; outgoingIsEmpty?: unknown } }).persistence;

describe('aedes with the empty-queue patch', () => {
  let broker: Aedes;
  let server: Server;
  let url: string;
  let streams = 0;
  beforeAll(async () => {
    broker = await Aedes.createBroker();
    const p = persistenceOf(broker);
    const original = p.outgoingStream.bind(p);
    p.outgoingStream = (c) => {
      streams++;
      return original(c);
    };
    server = createServer(broker.handle);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise<void>((r) => server.close(() => r()));
    await new Promise<void>((r) => broker.close(() => r()));
  });

  const connect = (clientId: string, clean: boolean) =>
    new Promise<MqttClient>((resolve, reject) => {
      const c = mqtt.connect(url, { clientId, clean, reconnectPeriod: 0 });
      c.once('connect', () => resolve(c));
      c.once('error', reject);
    });
  const end = (c: MqttClient) => new Promise<void>((r) => c.end(false, {}, () => r()));

  it('is installed (if not: run `npm install`, whose postinstall applies patches/ with patch-package)', () => {
    expect(typeof persistenceOf(broker).outgoingIsEmpty,
      'aedes-persistence has no outgoingIsEmpty: the patches in patches/ were not applied').toBe('function');
  });

  it('builds no stream for a CONNECT with nothing queued', async () => {
    const before = streams;
    const clients = await Promise.all(Array.from({ length: 20 }, (_, i) => connect(`empty-${i}`, i % 2 === 0)));
    await Promise.all(clients.map(end));
    expect(streams - before).toBe(0);
  });

  it('still delivers what was queued for an offline persistent session, once, when it comes back', async () => {
    const first = await connect('phone-1', false);
    await first.subscribeAsync('cmd/phone-1', { qos: 1 });
    await end(first);
    const sender = await connect('sender', true);
    await sender.publishAsync('cmd/phone-1', 'help is coming', { qos: 1 });
    await sender.publishAsync('cmd/phone-1', 'stay where you are', { qos: 1 });
    await end(sender);

    const before = streams;
    const got: string[] = [];
    const back = await new Promise<MqttClient>((resolve, reject) => {
      const c = mqtt.connect(url, { clientId: 'phone-1', clean: false, reconnectPeriod: 0, resubscribe: false });
      c.on('message', (_topic, payload) => got.push(payload.toString()));
      c.once('connect', () => resolve(c));
      c.once('error', reject);
    });
    const deadline = Date.now() + 5000;
    while (got.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(got).toEqual(['help is coming', 'stay where you are']);
    expect(streams - before).toBe(1);
    await end(back);

    // acknowledged: the queue is empty again, and the next CONNECT of the session builds no stream
    const after = streams;
    const again = await connect('phone-1', false);
    await new Promise((r) => setTimeout(r, 100));
    expect(streams - after).toBe(0);
    await end(again);
  });
});
