import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { startTestGateway, publishAsync, waitFor, type TestGateway } from '../helpers/gateway.js';

describe('an SOS from a provisioned phone', () => {
  let t: TestGateway;
  let reader: Database.Database;
  beforeAll(async () => {
    t = await startTestGateway();
    // a second, independent connection to the same file: what it sees is on disk, not in the writer's memory
    reader = new Database(join(t.dataDir, 'eldergate.db'), { readonly: true });
  });
  afterAll(async () => {
    reader.close();
    await t.stop();
  });

  it('is stored durably before the device gets its PUBACK, and shows in the API', async () => {
    const resident = await t.api('POST', '/api/residents', { name: 'Wang Fang', address: '3 Hutong Lane', contacts: [{ name: 'Li Wei', relation: 'son', phone: '+86 10 5555 0101' }] });
    expect(resident.status).toBe(201);
    const dev = await t.api('POST', '/api/devices', { kind: 'call-phone', serial: 'CP-0001', model: 'K1', firmware: '1.2.0' });
    expect(dev.status).toBe(201);
    expect(dev.body.secret).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(dev.body.mqtt).toMatchObject({ clientId: dev.body.id, username: dev.body.id, port: t.gw.mqttPort });
    const bound = await t.api('POST', `/api/devices/${dev.body.id}/bind`, { residentId: resident.body.id });
    // bound, not yet tested: still provisioned (commissioned once its commissioning test passes)
    expect(bound.body).toMatchObject({ residentId: resident.body.id, state: 'provisioned' });

    const client = await t.connectDevice(dev.body.id, dev.body.secret, {
      will: { topic: `devices/${dev.body.id}/status`, payload: Buffer.from('{"online":false}'), qos: 1, retain: true },
    });
    const rowsAtPuback: number[] = [];
    client.on('packetreceive', (packet) => {
      if (packet.cmd === 'puback') {
        rowsAtPuback.push((reader.prepare("select count(*) n from observations where device_id = ? and type = 'sos'").get(dev.body.id) as { n: number }).n);
      }
    });
    const ts = Date.now();
    await publishAsync(client, `devices/${dev.body.id}/events`, JSON.stringify({ ts, seq: 1, type: 'sos', position: { lat: 39.91, lon: 116.39 } }), 1);
    expect(rowsAtPuback).toEqual([1]);

    const obs = await t.api('GET', `/api/observations?deviceId=${dev.body.id}`);
    expect(obs.status).toBe(200);
    expect(obs.body.items[0]).toMatchObject({ type: 'sos', seq: 1, deviceTs: ts, lifeSafety: true, data: { position: { lat: 39.91, lon: 116.39 } } });

    const state = await t.api('GET', `/api/devices/${dev.body.id}`);
    expect(state.body.state).toBe('provisioned'); // bound, never tested: not commissioned, so not in service
    expect(state.body.live).toMatchObject({ online: true, supervision: 'ok', position: { lat: 39.91, lon: 116.39 } });

    // telemetry: heartbeat with battery is batched and shows in the live state
    await publishAsync(client, `devices/${dev.body.id}/telemetry`, JSON.stringify({ ts: ts + 1, seq: 2, type: 'heartbeat', battery: 77, signal: -71 }), 0);
    await waitFor(async () => (await t.api('GET', `/api/devices/${dev.body.id}`)).body.live.battery === 77, 'battery in live state');

    // a resend of the same (seq, ts) is acknowledged and stored once; a rebooted phone's seq 1 with a new ts is new
    await publishAsync(client, `devices/${dev.body.id}/events`, JSON.stringify({ ts, seq: 1, type: 'sos' }), 1);
    await publishAsync(client, `devices/${dev.body.id}/events`, JSON.stringify({ ts: ts + 5000, seq: 1, type: 'sos' }), 1);
    const sos = reader.prepare("select seq, device_ts from observations where device_id = ? and type = 'sos' order by id").all(dev.body.id);
    expect(sos).toEqual([{ seq: 1, device_ts: ts }, { seq: 1, device_ts: ts + 5000 }]);

    // the SOS opened one P1 incident, joined by the rebooted phone's second press
    const incidents = await t.api('GET', `/api/incidents?status=open`);
    const mine = incidents.body.items.filter((i: { deviceId: string }) => i.deviceId === dev.body.id);
    expect(mine).toHaveLength(1);
    expect(mine[0]).toMatchObject({ type: 'sos', priority: 'P1', count: 2, residentId: resident.body.id });

    client.end(true);
    await waitFor(async () => (await t.api('GET', `/api/devices/${dev.body.id}`)).body.live.online === false, 'offline after disconnect');
  });

  it('is accepted even when its position is malformed: the field is dropped and flagged', async () => {
    const { id, secret } = await t.provision('locator');
    const c = await t.connectDevice(id, secret);
    await publishAsync(c, `devices/${id}/events`, JSON.stringify({ ts: 1, seq: 1, type: 'sos', position: { lat: 'north', lon: 500 } }));
    await publishAsync(c, `devices/${id}/events`, '{"ts": 2, "seq": 2, "type": "sos", "position": {lat: 1');
    await publishAsync(c, `devices/${id}/events`, JSON.stringify({ type: 'fall', confidence: 7 }));
    c.end(true);
    const rows = reader.prepare('select type, flags, data from observations where device_id = ? order by id').all(id) as { type: string; flags: string; data: string }[];
    expect(rows.map((r) => r.type)).toEqual(['sos', 'sos', 'fall']);
    expect(JSON.parse(rows[0]!.flags)).toContain('invalid:position');
    expect(JSON.parse(rows[0]!.data)).toEqual({});
    expect(JSON.parse(rows[1]!.flags)).toContain('malformed-json');
    expect(JSON.parse(rows[2]!.flags)).toEqual(expect.arrayContaining(['no-dedup-key']));
  });
});
