// The field adapters through a real gateway: a Contact ID panic from a landline alarm receiver and a bed exit read
// over Modbus TCP from a simulated controller in another process become incidents like any MQTT device's.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { startPtyPair, type PtyPair } from '../serial/helpers.js';
import { ReceiverSim } from '../../firmware-sim/serial/receiver-sim.js';
import { killAll, startSim } from '../modbus/helpers.js';
import { loadConfig } from '../../core/config.js';
import { createLogger } from '../../core/logger.js';
import { startEldergate, type Eldergate } from '../../eldergate.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

describe('field adapters in the running gateway', () => {
  let pty: PtyPair;
  let sim: ReceiverSim | undefined;
  let gw: Eldergate | undefined;
  let t: TestGateway;
  beforeAll(async () => {
    pty = await startPtyPair();
    // the registry comes first: a gateway provisions the receiver line, the phone's account and the Modbus devices
    t = await startTestGateway();
  });
  afterAll(async () => {
    await sim?.close();
    await gw?.close();
    await t.stop();
    await pty.close();
    await killAll();
  });

  it('a Contact ID panic is ACKed once durable and opens a P1 incident; bed exit over Modbus opens one too', { timeout: 90_000 }, async () => {
    const receiver = t.gw.registry.provision({ kind: 'receiver', serial: 'MLR2-001' }).device;
    const phone = t.gw.registry.provision({ kind: 'call-phone', serial: 'LANDLINE-1' }).device;
    t.gw.registry.setAccount(phone.id, { scheme: 'contact-id', id: '4321' }); // the account identifier (admins set it over HTTP)
    const controller = t.gw.registry.provision({ kind: 'modbus', serial: 'BEDCTL-1' }).device;
    const bed2 = t.gw.registry.provision({ kind: 'modbus', serial: 'BED-2' }).device;
    const { proc, ready } = await startSim(['--map', 'bed-exit-controller', '--tcp-port', '0']);
    const dataDir = t.dataDir;
    await t.gw.close();

    // the same data, now with a serial receiver and a Modbus link configured
    const config = loadConfig({}, {
      dataDir, logLevel: process.env.TEST_LOG_LEVEL ?? 'silent',
      mqtt: { port: 0, host: '127.0.0.1' }, http: { port: 0, host: '127.0.0.1' },
      serial: [{ path: pty.a, receiverDeviceId: receiver.id, baudRate: 19200, heartbeatTimeoutMs: 60_000 }],
      modbus: [{ name: 'ward-a', deviceId: controller.id, link: { transport: 'tcp', host: '127.0.0.1', port: ready.port }, unitId: 1, map: 'bed-exit-controller', pollMs: 100, channels: { '2': bed2.id } }],
    });
    gw = await startEldergate({ config, log: createLogger(config.logLevel) });
    const open = () => gw!.response.incidents.list({ status: ['open'] }).items;

    sim = await ReceiverSim.open({ path: pty.b, baudRate: 19200 });
    const outcome = await sim.sendEvent({ account: '4321', qualifier: 'E', code: 120, group: 1, zone: 3 });
    expect(JSON.stringify(outcome)).toMatch(/ACK/);
    const panic = open().find((i) => i.deviceId === phone.id);
    expect(panic).toMatchObject({ type: 'panic', priority: 'P1' });
    const obs = gw.store.sqlite.prepare("select source, type from observations where device_id = ?").all(phone.id);
    expect(obs).toEqual([{ source: 'serial', type: 'panic' }]);

    // bed 2 empties: bed-exit (P2 at night, P3 by day: either way an incident, never dropped)
    await waitFor(() => (gw!.modbus.stats()[0]?.okPolls ?? 0) > 1, 'the first polls (baseline: every bed occupied)');
    await proc.send('point bed-2-exit 0');
    const exit = await waitFor(() => open().find((i) => i.deviceId === bed2.id && i.type === 'bed-exit'), 'bed-exit incident', 20_000);
    expect(['P2', 'P3']).toContain(exit.priority);
  });
});
