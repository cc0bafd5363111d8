// npm run bench:aedes-fanout — what aedes' fan-out of a client's publish costs, with and without
// gateway/broker/no-fanout.ts (which eldergate's broker uses: nothing can subscribe to what a device sends).
//
// Two aedes brokers in this one process, each with a real mqtt client over TCP on 127.0.0.1 subscribed to 200 topics
// (as devices hold their commands topics), take QoS 1 publishes in alternating batches of 3000; the process's CPU
// time per publish (broker and client together, so the difference is the fan-out's) over the last 20 batches of each,
// median. Pin it for a steady figure: `taskset -c 1 npm run bench:aedes-fanout`.
import { createServer } from 'node:net';
import { Aedes } from 'aedes';
import mqtt, { type MqttClient } from 'mqtt';
import { skipClientFanOut } from '../gateway/broker/no-fanout.js';

const BATCH = 3000;
const ROUNDS = 24;
const WARM = 4;

async function broker(skip: boolean): Promise<{ client: MqttClient; close(): Promise<void> }> {
  const aedes = await Aedes.createBroker({ authorizePublish: (_c, _p, done) => done(null) });
  if (skip) skipClientFanOut(aedes);
  const server = createServer({ noDelay: true }, (socket) => aedes.handle(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, { clientId: skip ? 'dev-skip' : 'dev-fanout', protocolVersion: 4, reconnectPeriod: 0 });
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  });
  for (let i = 0; i < 200; i++) await client.subscribeAsync(`devices/d${i}/commands`);
  return {
    client,
    async close() {
      await client.endAsync(true);
      await new Promise<void>((r) => server.close(() => r()));
      await new Promise<void>((r) => aedes.close(() => r()));
    },
  };
}

async function batch(client: MqttClient, payload: string): Promise<number> {
  const t = process.cpuUsage();
  const sent: Promise<unknown>[] = [];
  for (let i = 0; i < BATCH; i++) sent.push(client.publishAsync('devices/dev/telemetry', payload, { qos: 1 }));
  await Promise.all(sent);
  const u = process.cpuUsage(t);
  return (u.user + u.system) / BATCH;
}

const median = (xs: number[]) => {
  const s = xs.slice(WARM).sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};

const withFanOut = await broker(false);
const without = await broker(true);
const payload = JSON.stringify({ ts: Date.now(), seq: 1, type: 'heartbeat', battery: 80, signal: -70 });
const a: number[] = [];
const b: number[] = [];
for (let r = 0; r < ROUNDS; r++) {
  a.push(await batch(withFanOut.client, payload));
  b.push(await batch(without.client, payload));
}
await withFanOut.close();
await without.close();
const [ma, mb] = [median(a), median(b)];
console.log(`CPU per QoS 1 publish, broker and client in one process (median of ${ROUNDS - WARM} alternating batches of ${BATCH}):`);
console.log(`  aedes' fan-out:        ${ma.toFixed(2)} µs`);
console.log(`  skipped (no-fanout.ts): ${mb.toFixed(2)} µs  (${(ma - mb).toFixed(2)} µs less, ${(((ma - mb) / ma) * 100).toFixed(0)} %)`);
