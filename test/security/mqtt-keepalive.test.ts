// Issue 14, Low: a CONNECT with keepalive 0 was refused with return code 6, which MQTT 3.1.1 does not define
// [MQTT-3.2.2-6]. Keepalive 0 turns the keepalive mechanism off and is legal [MQTT-3.1.2-10]: it is accepted, and the
// server's own idle timeout (mqtt.keepaliveLimitS × 1.5 without traffic) closes a connection that went silent.
import { connect as netConnect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';

/** A raw MQTT 3.1.1 CONNECT (§3.1) with the given keepalive; clean session. */
function connectPacket(clientId: string, password: string, keepalive: number): Buffer {
  const str = (s: string) => { const b = Buffer.from(s); return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]); };
  const variable = Buffer.concat([str('MQTT'), Buffer.from([4, 0b11000010, keepalive >> 8, keepalive & 0xff])]);
  const payload = Buffer.concat([str(clientId), str(clientId), str(password)]);
  const rest = Buffer.concat([variable, payload]);
  return Buffer.concat([Buffer.from([0x10, rest.length]), rest]);
}

function rawConnect(port: number, packet: Buffer): Promise<{ socket: Socket; connack: Buffer; closedAt: Promise<number> }> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host: '127.0.0.1', port });
    const closedAt = new Promise<number>((r) => socket.once('close', () => r(Date.now())));
    socket.once('error', reject);
    socket.once('connect', () => socket.write(packet));
    socket.once('data', (d) => resolve({ socket, connack: d, closedAt }));
    setTimeout(() => reject(new Error('no CONNACK')), 5000);
  });
}

describe('MQTT keepalive 0 (issue 14)', () => {
  let t: TestGateway;
  beforeAll(async () => {
    t = await startTestGateway({ mqtt: { port: 0, host: '127.0.0.1', keepaliveLimitS: 2 } });
  });
  afterAll(async () => t?.stop());

  it('accepts keepalive 0 (CONNACK 0) and closes the silent connection after the server idle timeout', async () => {
    const d = await t.provision();
    const start = Date.now();
    const { socket, connack, closedAt } = await rawConnect(t.gw.mqttPort, connectPacket(d.id, d.secret, 0));
    // CONNACK: 0x20 0x02 <session present> <return code>
    expect([...connack.subarray(0, 4)]).toEqual([0x20, 0x02, 0x00, 0x00]);
    const closed = await Promise.race([closedAt, new Promise<number>((r) => setTimeout(() => r(0), 15_000))]);
    socket.destroy();
    expect(closed, 'the server closed the silent connection').toBeGreaterThan(0);
    // not before keepaliveLimitS × 1.5 = 3 s of silence
    expect(closed - start).toBeGreaterThanOrEqual(2900);
  }, 30_000);

  it('accepts a keepalive above the limit too, under the same idle timeout, and never answers return code 6', async () => {
    const d = await t.provision();
    const { socket, connack } = await rawConnect(t.gw.mqttPort, connectPacket(d.id, d.secret, 3600));
    socket.destroy();
    expect(connack[3]).toBe(0);
  });

  it('still refuses a bad secret with a defined code (4)', async () => {
    const d = await t.provision();
    const { socket, connack } = await rawConnect(t.gw.mqttPort, connectPacket(d.id, 'wrong-secret', 30));
    socket.destroy();
    expect(connack[3]).toBe(4);
  });
});
