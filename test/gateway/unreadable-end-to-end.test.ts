// Issue 9, part 3: an SOS spelled "SOS" or written with single quotes is an SOS; and whatever the gateway refuses
// from a device reaches a person as one P3 "terminal sends unreadable messages" incident per device, which later
// refusals join. A real aedes broker on a real port, the real `mqtt` client, a real console on the stream.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { publishAsync, startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { TestConsole } from '../ws/helpers.js';

interface Inc { id: string; type: string; priority: string; status: string; count: number; deviceId: string; residentId: string | null }

describe('frames the gateway used to refuse from an authenticated terminal', () => {
  let t: TestGateway;
  let reader: Database.Database;
  let board: TestConsole;
  const clients: MqttClient[] = [];
  beforeAll(async () => {
    t = await startTestGateway();
    // a second connection to the same file: what it sees is on disk, not in the writer's memory
    reader = new Database(join(t.dataDir, 'eldergate.db'), { readonly: true });
    board = await TestConsole.open(t, await t.token());
    board.subscribe('all', 0);
    await board.waitFor((f) => f.type === 'subscribed', 'subscribed');
  });
  afterAll(async () => {
    for (const c of clients) c.end(true);
    board.ws.close();
    reader.close();
    await t.stop();
  });

  const phone = async (kind = 'call-phone') => {
    const resident = await t.api('POST', '/api/residents', { name: 'Wang Fang', address: '3 Hutong Lane' });
    const dev = await t.provision(kind);
    await t.api('POST', `/api/devices/${dev.id}/bind`, { residentId: resident.body.id });
    const c = await t.connectDevice(dev.id, dev.secret);
    clients.push(c);
    return { ...dev, c, residentId: resident.body.id as string };
  };
  const incidentsOf = async (deviceId: string): Promise<Inc[]> =>
    (await t.api('GET', `/api/incidents?deviceId=${deviceId}`)).body.items;
  /** incidents of the device on disk at the moment each PUBACK arrives */
  const onDiskAtPuback = (c: MqttClient, deviceId: string, type: string) => {
    const seen: number[] = [];
    c.on('packetreceive', (p) => {
      if (p.cmd === 'puback') {
        seen.push((reader.prepare('select count(*) n from incidents where device_id = ? and type = ?').get(deviceId, type) as { n: number }).n);
      }
    });
    return seen;
  };

  it('{"type":"SOS"} opens an SOS incident, durable before the PUBACK', async () => {
    const p = await phone();
    const atPuback = onDiskAtPuback(p.c, p.id, 'sos');
    await publishAsync(p.c, `devices/${p.id}/events`, '{"type":"SOS"}');
    expect(atPuback).toEqual([1]);
    const [inc, ...rest] = await incidentsOf(p.id);
    expect(rest).toEqual([]);
    expect(inc).toMatchObject({ type: 'sos', priority: 'P1', status: 'open', residentId: p.residentId });
    const obs = reader.prepare('select type, flags from observations where device_id = ?').all(p.id);
    expect(obs).toEqual([{ type: 'sos', flags: JSON.stringify(['normalized:type', 'no-dedup-key']) }]);
    await board.waitFor((f) => f.event?.incidentId === inc!.id && f.event.type === 'opened', 'the SOS on the board');
  });

  it("{'type':'sos'} (single-quoted JSON) opens an SOS incident, durable before the PUBACK", async () => {
    const p = await phone();
    const atPuback = onDiskAtPuback(p.c, p.id, 'sos');
    await publishAsync(p.c, `devices/${p.id}/events`, "{'type':'sos'}");
    expect(atPuback).toEqual([1]);
    expect(await incidentsOf(p.id)).toEqual([expect.objectContaining({ type: 'sos', priority: 'P1', status: 'open' })]);
    const obs = reader.prepare('select type, flags from observations where device_id = ?').all(p.id);
    expect(obs).toEqual([{ type: 'sos', flags: JSON.stringify(['malformed-json', 'no-dedup-key']) }]);
    // a locator's single-quoted SOS keeps its position and its dedup key
    const w = await phone('locator');
    await publishAsync(w.c, `devices/${w.id}/events`, "{'ts':1718000000000,'seq':9,'type':'SOS','position':{'lat':39.91,'lon':116.39}}");
    const [sos] = await incidentsOf(w.id);
    expect(sos).toMatchObject({ type: 'sos', priority: 'P1', position: { lat: 39.91, lon: 116.39 } });
    expect(reader.prepare('select seq, device_ts from observations where device_id = ?').all(w.id)).toEqual([{ seq: 9, device_ts: 1718000000000 }]);
  });

  it('garbage opens exactly one P3 "unreadable messages" incident per device, which later garbage joins', async () => {
    const p = await phone('fall-sensor');
    const atPuback = onDiskAtPuback(p.c, p.id, 'unreadable-messages');
    await publishAsync(p.c, `devices/${p.id}/events`, '{not json');
    // the first refusal is acknowledged only once a person can see it
    expect(atPuback).toEqual([1]);
    await publishAsync(p.c, `devices/${p.id}/telemetry`, JSON.stringify({ ts: 2, seq: 2, type: 'heartbeat', battery: 500 }));
    await publishAsync(p.c, `devices/${p.id}/events`, JSON.stringify({ ts: 3, seq: 3, type: 'levitation' }));
    await publishAsync(p.c, `devices/${p.id}/events`, '\u0000\u0001\u0002');
    let incs = await incidentsOf(p.id);
    expect(incs).toEqual([expect.objectContaining({ type: 'unreadable-messages', priority: 'P3', status: 'open', residentId: p.residentId })]);
    const id = incs[0]!.id;
    const detail = await t.api('GET', `/api/incidents/${id}`);
    expect(detail.body.events[0]).toMatchObject({
      type: 'opened',
      data: { type: 'unreadable-messages', rule: 'technical', data: { title: 'terminal sends unreadable messages', refused: 1, reason: expect.stringMatching(/^malformed JSON/) } },
    });
    // on the board: the console stream carries it like any incident
    await board.waitFor((f) => f.event?.incidentId === id && f.event.type === 'opened', 'the technical incident on the board');

    // the refusals counted in the meantime join it (within a few seconds), and so does later garbage
    incs = await waitFor(async () => {
      const r = await incidentsOf(p.id);
      return r.length === 1 && r[0]!.count >= 2 ? r : undefined;
    }, 'the later refusals joined', 15_000);
    expect(incs[0]).toMatchObject({ id, type: 'unreadable-messages', status: 'open' });
    // single quotes salvage an alarm, not a heartbeat: a terminal with this firmware needs looking at
    await publishAsync(p.c, `devices/${p.id}/telemetry`, "{'ts':9,'seq':9,'type':'heartbeat','battery':80}");
    await waitFor(async () => ((await incidentsOf(p.id))[0]!.count >= 3 ? true : undefined), 'later garbage joined', 15_000);
    const after = await incidentsOf(p.id);
    expect(after).toEqual([expect.objectContaining({ id, type: 'unreadable-messages', status: 'open' })]);
    const joined = (await t.api('GET', `/api/incidents/${id}`)).body.events.filter((e: { type: string }) => e.type === 'joined');
    expect(joined.length).toBe(after[0]!.count - 1);

    // the fleet: the device's live state says it sends unreadable messages, how many, and the last reason
    const dev = await t.api('GET', `/api/devices?q=${p.id}`);
    expect(dev.body.items[0].live).toMatchObject({
      flags: ['sending unreadable messages'], unreadableCount: 5, lastUnreadableReason: expect.stringMatching(/^malformed JSON: /),
    });
    // nothing else came of it: no other incident, no observation of the device's own
    expect(reader.prepare("select count(*) n from observations where device_id = ? and source = 'mqtt'").get(p.id)).toEqual({ n: 0 });
  });

  it('a device spamming garbage costs a report every few seconds, not a write per frame', async () => {
    const p = await phone();
    const frames = 300;
    await Promise.all(Array.from({ length: frames }, (_, i) => publishAsync(p.c, `devices/${p.id}/events`, `{"seq":${i},"type":`)));
    const live = await waitFor(async () => {
      const d = (await t.api('GET', `/api/devices?q=${p.id}`)).body.items[0];
      return d?.live.unreadableCount === frames ? d.live : undefined;
    }, 'every refusal counted');
    expect(live.flags).toEqual(['sending unreadable messages']);
    const reports = (reader.prepare("select count(*) n from observations where device_id = ? and type = 'unreadable'").get(p.id) as { n: number }).n;
    expect(reports).toBeGreaterThanOrEqual(1);
    expect(reports).toBeLessThanOrEqual(3);
    const incs = await incidentsOf(p.id);
    expect(incs).toEqual([expect.objectContaining({ type: 'unreadable-messages', priority: 'P3' })]);
    expect(incs[0]!.count).toBe(reports);
    // the reports add up to every frame refused, once the last one is written
    await waitFor(() => {
      const sum = reader.prepare("select sum(json_extract(data, '$.count')) s from observations where device_id = ? and type = 'unreadable'").get(p.id) as { s: number };
      return sum.s === frames ? true : undefined;
    }, 'all refusals reported', 15_000);
  });
});
