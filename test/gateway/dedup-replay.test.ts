// A duplicate of a life-safety observation is dropped only when it is a plausible resend of an alarm someone is
// handling; otherwise it is raised again, flagged possible-replay. Every dropped duplicate is logged and counted.
// Real broker, real mqtt client, real SQLite file; lost PUBACKs are real bytes lost on a TCP proxy.
import { createServer, connect, type Server, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import mqtt, { type MqttClient } from 'mqtt';
import { createLogger } from '../../core/logger.js';
import { metricValue, publishAsync, startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { IN_OPENING_ORDER } from '../helpers/incident-order.js';

interface IncidentRow { id: string; status: string; count: number }

const incidentsOf = (t: TestGateway, deviceId: string) =>
  t.gw.store.sqlite.prepare(`select id, status, count from incidents where device_id = ? ${IN_OPENING_ORDER}`).all(deviceId) as IncidentRow[];

/** A TCP proxy whose broker→device direction can swallow bytes (a PUBACK lost on the air) and be cut. */
async function lossyProxy(targetPort: number) {
  const sockets = new Set<Socket>();
  let dropDown = false;
  const server: Server = createServer((device) => {
    const broker = connect(targetPort, '127.0.0.1');
    for (const s of [device, broker]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => undefined);
    }
    device.pipe(broker);
    broker.on('data', (chunk) => { if (!dropDown) device.write(chunk); });
    device.on('close', () => broker.destroy());
    broker.on('close', () => device.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as { port: number }).port,
    set dropDown(v: boolean) { dropDown = v; },
    cut() { for (const s of sockets) s.destroy(); },
    close: () => new Promise<void>((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); }),
  };
}

describe('duplicates of life-safety observations', () => {
  let t: TestGateway;
  const lines: Record<string, unknown>[] = [];
  beforeAll(async () => {
    const sink = new Writable({ write(chunk, _e, cb) { for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l)); cb(); } });
    t = await startTestGateway({}, undefined, createLogger('debug', sink as never));
  });
  afterAll(async () => t.stop());

  const incidents = (deviceId: string) => incidentsOf(t, deviceId);
  const openedData = (incidentId: string) =>
    JSON.parse((t.gw.store.sqlite.prepare("select data from incident_events where incident_id = ? and type = 'opened'").pluck().get(incidentId)) as string) as Record<string, unknown>;
  // (a gateway without these counters reads 0, so the test fails on what it checks, not on a TypeError)
  // counted in the writer thread: read as /metrics gives them
  const counter = async (name: 'duplicates' | 'replays') =>
    metricValue(t.gw, name === 'duplicates' ? 'eldergate_duplicates_dropped_total' : 'eldergate_possible_replays_total');
  const close = async (incidentId: string) => {
    const actor = { id: 'test-operator', username: 'operator' };
    await t.gw.response.incidents.act(incidentId, { type: 'acknowledge' }, actor);
    await t.gw.response.incidents.act(incidentId, { type: 'resolve', outcome: 'false alarm' }, actor);
  };

  // the RTC reset to its epoch, the counter restarted at 1
  const frame = JSON.stringify({ ts: 946_684_800_000, seq: 1, type: 'sos' });

  it('a resend on the same session while its incident is open is dropped, logged at debug with its key, and counted', async () => {
    const { id, secret } = await t.provision('call-phone');
    const before = await counter('duplicates');
    const c = await t.connectDevice(id, secret);
    await publishAsync(c, `devices/${id}/events`, frame);
    const [first] = await waitFor(() => (incidents(id).length === 1 ? incidents(id) : undefined), 'the first incident');
    await publishAsync(c, `devices/${id}/events`, frame);
    c.end(true);
    expect(incidents(id)).toEqual([{ id: first!.id, status: 'open', count: 1 }]);
    expect(await counter('duplicates')).toBe(before + 1);
    expect(lines.find((l) => l.deviceId === id && l.msg === 'duplicate dropped: a resend of an observation already stored'))
      .toMatchObject({ level: 20, key: 'seq-ts', seq: 1, deviceTs: 946_684_800_000 });
  });

  it('a terminal whose clock and counter reset repeats an old (seq, ts): its SOS opens an incident flagged possible-replay', async () => {
    const { id, secret } = await t.provision('call-phone');
    const c = await t.connectDevice(id, secret);
    await publishAsync(c, `devices/${id}/events`, frame);
    const [first] = await waitFor(() => (incidents(id).length === 1 ? incidents(id) : undefined), 'the first incident');
    c.end(true);

    // the operator closed it; weeks later the terminal reboots with the same clock and counter and she presses again
    await close(first!.id);
    const again = await t.connectDevice(id, secret);
    await publishAsync(again, `devices/${id}/events`, frame);
    again.end(true);
    const all = await waitFor(() => (incidents(id).length === 2 ? incidents(id) : undefined), 'a new incident for the new press');
    expect(all[1]).toMatchObject({ status: 'open', count: 1 });
    expect(openedData(all[1]!.id)).toMatchObject({ type: 'sos', priority: 'P1', flags: ['possible-replay'] });
    expect(await counter('replays')).toBeGreaterThanOrEqual(1);
    const rows = t.gw.store.sqlite.prepare('select generation, flags from observations where device_id = ? order by id').all(id);
    expect(rows).toEqual([{ generation: 0, flags: null }, { generation: 1, flags: '["possible-replay"]' }]);
  });
});

describe('envelopes without ts/seq', () => {
  let t: TestGateway;
  beforeAll(async () => { t = await startTestGateway(); });
  afterAll(async () => t.stop());

  const incidents = (deviceId: string) => incidentsOf(t, deviceId);

  it('a resend after a lost PUBACK is recognised by session, packet id and arrival order; after the incident closed it is flagged', async () => {
    const { id, secret } = await t.provision('call-phone');
    const proxy = await lossyProxy(t.gw.mqttPort);
    try {
      const c: MqttClient = mqtt.connect(`mqtt://127.0.0.1:${proxy.port}`, {
        clientId: id, username: id, password: secret, reconnectPeriod: 0, connectTimeout: 5000, protocolVersion: 4,
      });
      c.on('error', () => undefined);
      await new Promise<void>((r) => c.once('connect', () => r()));
      const sos = JSON.stringify({ type: 'sos' });
      const publishLosingAck = async () => {
        proxy.dropDown = true;
        let acked = false;
        const ack = new Promise<void>((resolve) => c.publish(`devices/${id}/events`, sos, { qos: 1 }, (err) => { if (!err) { acked = true; resolve(); } }));
        return { ack, acked: () => acked };
      };
      const reconnect = async () => {
        const closed = new Promise<void>((r) => c.once('close', () => r()));
        proxy.cut();
        await closed;
        proxy.dropDown = false;
        const connected = new Promise<void>((r) => c.once('connect', () => r()));
        // the client keeps its store and replays its unacknowledged publish, same packet id, before anything new
        c.reconnect({ incomingStore: c.incomingStore, outgoingStore: c.outgoingStore });
        await connected;
      };

      // 1. stored, incident opened, the PUBACK lost; the resend on the next session while it is open is dropped
      const p1 = await publishLosingAck();
      const [first] = await waitFor(() => (incidents(id).length === 1 ? incidents(id) : undefined), 'the incident');
      expect(p1.acked()).toBe(false);
      const drops = () => metricValue(t.gw, 'eldergate_duplicates_dropped_total', { key: 'packet-id' });
      const dropsBefore = await drops();
      await reconnect();
      await p1.ack;
      expect(incidents(id)).toEqual([{ id: first!.id, status: 'open', count: 1 }]);
      expect(await drops()).toBe(dropsBefore + 1);

      // 2. a new press on that session is a new cry for help: it joins
      const p2 = await publishLosingAck();
      await waitFor(() => incidents(id)[0]!.count === 2, 'the new press joins');
      // the operator resolves it while the terminal is still waiting for that PUBACK
      const actor = { id: 'test-operator', username: 'operator' };
      await t.gw.response.incidents.act(first!.id, { type: 'acknowledge' }, actor);
      await t.gw.response.incidents.act(first!.id, { type: 'resolve', outcome: 'help arrived' }, actor);
      await reconnect();
      await p2.ack;
      // the resend of a closed incident's alarm is raised again, but says what it probably is
      const all = await waitFor(() => (incidents(id).length === 2 ? incidents(id) : undefined), 'the resend raised');
      const opened = JSON.parse(t.gw.store.sqlite.prepare("select data from incident_events where incident_id = ? and type = 'opened'").pluck().get(all[1]!.id) as string);
      expect(opened).toMatchObject({ type: 'sos', flags: ['possible-replay'] });

      // 3. and a new press after that (fresh session traffic) is neither dropped nor flagged
      await publishAsync(c, `devices/${id}/events`, sos);
      await waitFor(() => incidents(id)[1]!.count === 2, 'the next press joins the open incident');
      const joined = t.gw.store.sqlite.prepare("select data from incident_events where incident_id = ? and type = 'joined' order by seq desc limit 1").pluck().get(all[1]!.id) as string;
      expect(JSON.parse(joined).flags).toBeUndefined();
      c.end(true);
    } finally {
      await proxy.close();
    }
  });
});
