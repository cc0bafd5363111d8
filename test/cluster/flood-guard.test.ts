// Cluster mode: a device that stays over mqtt.publishRatePerS for mqtt.publishOverRateCloseMs is disconnected, as the
// embedded broker does, from the rate RabbitMQ counted (its management statistics; gateway/cluster/flood-guard.ts).
// A device within its rate beside it stays connected, and the flooder, back within its rate, is left alone. One
// RabbitMQ node with its MQTT plugin and management API, an eldergate node in cluster mode in this process.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { metricValue, waitFor, type TestGateway } from '../helpers/gateway.js';
import { startRabbitTestGateway, type RabbitTestGateway } from '../helpers/rabbit-gateway.js';

const RATE = 20;
const heartbeat = (seq: number) => JSON.stringify({ ts: Date.now(), seq, type: 'heartbeat', battery: 90 });

/** publish `perS` heartbeats a second (QoS 0) until stopped, what is due by the clock at each 50 ms tick */
function sendAt(c: MqttClient, deviceId: string, perS: number): () => void {
  let seq = 0;
  const started = Date.now();
  const timer = setInterval(() => {
    const due = Math.floor(((Date.now() - started) * perS) / 1000);
    while (seq < due) c.publish(`devices/${deviceId}/telemetry`, heartbeat(++seq));
  }, 50);
  return () => clearInterval(timer);
}

describe('cluster mode: a device that floods is closed through RabbitMQ', () => {
  const dir = mkdtempSync(join(tmpdir(), 'eldergate-flood-guard-'));
  let g: RabbitTestGateway;
  let t: TestGateway;
  const stops: (() => void)[] = [];

  beforeAll(async () => {
    // band 7: no other test file's (grep `band` and freeBasePort under test/)
    g = await startRabbitTestGateway({
      dir, band: 7, management: true, rabbitmq: { floodCheckMs: 1000 },
      config: { mqtt: { port: 0, host: '127.0.0.1', publishRatePerS: RATE, publishBurst: 100, publishOverRateCloseMs: 3000 } },
    });
    t = g.t;
  }, 120_000);

  afterAll(async () => {
    for (const s of stops) s();
    await g?.stop();
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('closes the flooder once it stayed over its rate, never the device within it; back within its rate it stays', { timeout: 120_000 }, async () => {
    const flooder = await t.provision('call-phone', 'FLOOD-GUARD-1');
    const calm = await t.provision('call-phone', 'FLOOD-GUARD-CALM');
    const fc = await g.connect(flooder.id, flooder.secret);
    const cc = await g.connect(calm.id, calm.secret);
    let calmClosed = false;
    cc.on('close', () => { calmClosed = true; });
    const flooderGone = new Promise<void>((r) => fc.once('close', () => r()));

    stops.push(sendAt(fc, flooder.id, 10 * RATE), sendAt(cc, calm.id, RATE / 2));
    await flooderGone;
    stops.shift()!();
    // (how long it stays over before it is closed, reading by reading, is test/security/flood-guard.test.ts)
    expect(calmClosed).toBe(false);
    expect(await metricValue(t.gw, 'eldergate_connections_refused_total', { listener: 'rabbitmq', reason: 'over-rate' })).toBe(1);
    // RabbitMQ logged why (the X-Reason header)
    await waitFor(() => readFileSync(g.rabbit.nodes[0]!.log, 'utf8').includes('eldergate: device over its publish rate'), 'RabbitMQ logging the reason');

    // back within its rate: connected and left alone, like the calm one, over several readings
    const again = await g.connect(flooder.id, flooder.secret);
    let againClosed = false;
    again.on('close', () => { againClosed = true; });
    stops.push(sendAt(again, flooder.id, RATE / 2));
    await new Promise((r) => setTimeout(r, 10_000));
    expect(againClosed).toBe(false);
    expect(calmClosed).toBe(false);
    expect(await metricValue(t.gw, 'eldergate_connections_refused_total', { listener: 'rabbitmq', reason: 'over-rate' })).toBe(1);
  });
});
