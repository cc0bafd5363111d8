// Admission control (issue 10, "cheaper connects"): beyond mqtt.maxConnectsInProgress CONNECTs being set up, a new
// CONNECT is answered at once with CONNACK "server unavailable" (3.1.1 return code 3), counted; the device backs off
// and retries and gets in. A place is given back however the CONNECT ends (accepted, refused, dropped).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect as netConnect, type Socket } from 'node:net';
import mqttPacket from 'mqtt-packet';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';

/** open a TCP connection and send CONNECT (at once, or when `send` is called); resolves with the CONNACK's code */
function rawConnect(port: number, id: string, secret: string, later = false): { socket: Socket; connack: Promise<number | 'closed'>; send(): void; open: Promise<void> } {
  const socket = netConnect(port, '127.0.0.1');
  socket.setNoDelay(true);
  const open = new Promise<void>((r) => socket.once('connect', () => r()));
  const connack = new Promise<number | 'closed'>((resolve) => {
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    parser.on('packet', (p: { cmd: string; returnCode?: number }) => { if (p.cmd === 'connack') resolve(p.returnCode!); });
    socket.on('data', (b) => parser.parse(b));
    socket.on('error', () => undefined);
    socket.on('close', () => resolve('closed'));
  });
  const send = () => socket.write(mqttPacket.generate({
    cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: id, username: id,
    password: Buffer.from(secret), keepalive: 60,
  } as never));
  if (!later) send();
  return { socket, connack, send, open };
}

const admissionRefusals = async (t: TestGateway) =>
  (await t.gw.metrics.connectionsRefused.get()).values.find((v) => v.labels.reason === 'admission')?.value ?? 0;

describe('admission control for CONNECTs', () => {
  let t: TestGateway;
  let devices: { id: string; secret: string }[];
  beforeAll(async () => {
    t = await startTestGateway({ mqtt: { port: 0, host: '127.0.0.1', maxConnectsInProgress: 2 } });
    devices = t.gw.registry.provisionMany(Array.from({ length: 60 }, (_, i) => ({ serial: `ADM-${i}`, kind: 'call-phone' as const })))
      .map((r) => ({ id: r.device.id, secret: r.secret }));
  });
  afterAll(async () => t.stop());

  it('beyond the bound answers "server unavailable" at once; devices that retry all get in', async () => {
    // 60 connections open, then their CONNECTs written in one go: the broker reads them all in one turn
    const first = devices.map((d) => rawConnect(t.gw.mqttPort, d.id, d.secret, true));
    await Promise.all(first.map((c) => c.open));
    await new Promise((r) => setTimeout(r, 200));
    for (const c of first) c.send();
    const codes = await Promise.all(first.map((c) => c.connack));
    const refused = codes.filter((c) => c === 3).length;
    expect(codes.filter((c) => c !== 0 && c !== 3)).toEqual([]);
    expect(codes.filter((c) => c === 0).length).toBeGreaterThanOrEqual(2);
    expect(refused).toBeGreaterThan(0);
    expect(await admissionRefusals(t)).toBe(refused);
    // a refusal is not a failed CONNECT: the address is not put into back-off, nothing was logged as a bad secret
    const badSecret = (await t.gw.metrics.refused.get()).values.find((v) => v.labels.reason === 'bad-secret')?.value ?? 0;
    expect(badSecret).toBe(0);
    // the refused back off and retry (a few at a time, as firmware spreads its retries) until all are in
    const sockets = first.filter((_, i) => codes[i] === 0).map((c) => c.socket);
    let waiting = devices.filter((_, i) => codes[i] !== 0);
    for (let round = 0; waiting.length > 0 && round < 50; round++) {
      const batch = waiting.slice(0, 2);
      const tries = batch.map((d) => rawConnect(t.gw.mqttPort, d.id, d.secret));
      const got = await Promise.all(tries.map((c) => c.connack));
      tries.forEach((c, i) => (got[i] === 0 ? sockets.push(c.socket) : c.socket.destroy()));
      waiting = waiting.filter((d) => !batch.includes(d) || got[batch.indexOf(d)] !== 0);
    }
    expect(waiting).toEqual([]);
    await waitFor(() => devices.every((d) => t.gw.broker!.isConnected(d.id)), 'all 60 devices connected');
    for (const s of sockets) s.destroy();
  });

  it('gives the place back however a CONNECT ends: refused secret, dropped mid-CONNECT, accepted', async () => {
    const [a, b] = devices;
    // a wrong secret: CONNACK 4, its place returned
    expect(await rawConnect(t.gw.mqttPort, a!.id, 'x'.repeat(32)).connack).toBe(4);
    // CONNECT written, socket dropped before the CONNACK could be read
    for (let i = 0; i < 5; i++) rawConnect(t.gw.mqttPort, b!.id, b!.secret).socket.destroy();
    // with a bound of 2, had any of those kept its place these two would be refused
    await waitFor(async () => {
      const pair = [rawConnect(t.gw.mqttPort, a!.id, a!.secret), rawConnect(t.gw.mqttPort, b!.id, b!.secret)];
      const got = await Promise.all(pair.map((c) => c.connack));
      for (const c of pair) c.socket.destroy();
      return got.every((g) => g === 0);
    }, 'two CONNECTs admitted together', 10_000, 200);
  });
});
