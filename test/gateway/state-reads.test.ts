// Reading device states from the writer thread a slice at a time. The device list filtered by supervision over a whole
// fleet asked the writer for every device's state in one message: 100,000 states held the writer 90-160 ms, an alarm
// posted meanwhile waited behind all of it (the writer takes its port in order), and this thread then deserialised
// them all. Now it asks which of READ_SLICE devices are in that state (the answer is their ids), the next slice once
// the one before has answered; states are read the same way, a slice at a time. "Online" is this thread's to know and
// asks the writer nothing. A real gateway, its writer thread and a real SQLite file.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { FLEET_READS_RUNNING, FLEET_READS_WAITING } from '../../server/routes/devices.js';
import { READ_SLICE } from '../../gateway/writer/client.js';
import type { ToWriter } from '../../gateway/writer/protocol.js';

const FLEET = 2 * READ_SLICE + 500;
const SEEN = READ_SLICE + 700;
const STILL_ONLINE = 900;
const HEARD = 3;

describe('device states read from the writer a slice at a time', () => {
  let t: TestGateway;
  let ids: string[];
  const heard: string[] = [];
  /** what the main thread posted to the writer while `record` is on */
  const posted: ToWriter[] = [];
  let record = false;
  /** each slice's read answered before the next was asked for */
  let inFlight = 0;
  let mostInFlight = 0;
  let gate: Promise<void> | undefined;

  beforeAll(async () => {
    t = await startTestGateway();
    const rows = Array.from({ length: FLEET }, (_, i) => ({ line: i + 2, serial: `SLICE-${i}`, kind: 'call-phone' as const }));
    await t.gw.registry.importDevices(rows, 'tess');
    ids = await t.gw.registry.listIds({});
    expect(ids).toHaveLength(FLEET);
    // a state for SEEN of them (connected once, never a proof of life: supervision "never-seen"); STILL_ONLINE of
    // those still connected
    const at = Date.now();
    for (const [i, id] of ids.slice(0, SEEN).entries()) {
      t.gw.writer.states.setOnline(id, true, at);
      if (i >= STILL_ONLINE) t.gw.writer.states.setOnline(id, false, at + 1);
    }
    // and a few that sent a heartbeat: supervision "ok"
    for (let i = 0; i < HEARD; i++) {
      const { id, secret } = await t.provision('call-phone', `HEARD-${i}`);
      const c = await t.connectDevice(id, secret);
      await c.publishAsync(`devices/${id}/telemetry`, JSON.stringify({ ts: Date.now(), seq: 1, type: 'heartbeat', battery: 90 }), { qos: 1 });
      c.end(true);
      heard.push(id);
    }
    const writer = t.gw.writer as unknown as { post(m: ToWriter): void; call<T>(make: (id: number) => ToWriter): Promise<T> };
    const post = writer.post.bind(writer);
    writer.post = (m) => {
      if (record) posted.push(m);
      post(m);
    };
    const call = writer.call.bind(writer);
    writer.call = (<T>(make: (id: number) => ToWriter) => {
      const answer = call<T>(make);
      inFlight++;
      mostInFlight = Math.max(mostInFlight, inFlight);
      // (held while `gate` is: a slow writer, as many lists at once would make it)
      return answer.then(async (v) => { await gate; return v; }).finally(() => { inFlight--; });
    }) as typeof writer.call;
  }, 120_000);
  afterAll(async () => t.stop());

  const reads = () => posted.filter((m): m is Extract<ToWriter, { op: 'states' }> => m.op === 'states');
  const matches = () => posted.filter((m): m is Extract<ToWriter, { op: 'match-supervision' }> => m.op === 'match-supervision');

  it('GET /api/devices?supervision= over the fleet: right answer, no message asks about more than READ_SLICE devices', async () => {
    posted.length = 0;
    mostInFlight = 0;
    record = true;
    const ok = await t.api('GET', '/api/devices?supervision=ok&limit=50');
    const never = await t.api('GET', `/api/devices?supervision=never-seen&limit=50&offset=${FLEET - 10}`);
    record = false;
    expect(ok.status).toBe(200);
    expect(ok.body.total).toBe(HEARD);
    expect(ok.body.items.map((d: { id: string }) => d.id).sort()).toEqual([...heard].sort());
    expect(ok.body.items.every((d: { live: { supervision: string } }) => d.live.supervision === 'ok')).toBe(true);
    expect(never.body.total).toBe(FLEET);
    const listed = await t.gw.registry.listIds({});
    expect(never.body.items.map((d: { id: string }) => d.id)).toEqual(listed.filter((id) => !heard.includes(id)).slice(FLEET - 10));

    // each list: the fleet's supervision in ceil(fleet / READ_SLICE) slices, then its page's states (HEARD, then 10)
    const fleet = FLEET + HEARD;
    const sizes = matches().map((m) => m.deviceIds.length);
    expect(sizes.length).toBe(2 * Math.ceil(fleet / READ_SLICE));
    expect(Math.max(...sizes)).toBeLessThanOrEqual(READ_SLICE);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(2 * fleet);
    expect(reads().map((m) => m.deviceIds.length)).toEqual([HEARD, 10]);
    expect(mostInFlight, 'a slice was asked for before the one before it answered').toBe(1);
  }, 60_000);

  it('GET /api/devices?online= asks the writer for no state but the page\'s', async () => {
    posted.length = 0;
    record = true;
    const on = await t.api('GET', '/api/devices?online=true&limit=20');
    const off = await t.api('GET', '/api/devices?online=false&limit=20');
    record = false;
    expect(on.body.total).toBe(STILL_ONLINE);
    const online = new Set(ids.slice(0, STILL_ONLINE));
    const listed = await t.gw.registry.listIds({});
    expect(on.body.items.map((d: { id: string }) => d.id)).toEqual(listed.filter((id) => online.has(id)).slice(0, 20));
    expect(on.body.items.every((d: { live: { online: boolean } }) => d.live.online)).toBe(true);
    expect(off.body.total).toBe(FLEET + HEARD - STILL_ONLINE);
    expect(off.body.items.map((d: { id: string }) => d.id)).toEqual(listed.filter((id) => !online.has(id)).slice(0, 20));
    expect(reads().map((m) => m.deviceIds.length)).toEqual([20, 20]);
    expect(matches()).toEqual([]);
  }, 60_000);

  it('both filters: the connected ones first (this thread), then the writer asked about those only', async () => {
    posted.length = 0;
    record = true;
    const both = await t.api('GET', '/api/devices?online=true&supervision=never-seen&limit=20');
    record = false;
    expect(both.body.total).toBe(STILL_ONLINE);
    expect(matches().map((m) => m.deviceIds.length)).toEqual([STILL_ONLINE]);
    // a supervision state that does not exist: a clear refusal, not an empty list
    const bad = await t.api('GET', '/api/devices?supervision=gone');
    expect(bad.status).toBe(400);
    expect(JSON.stringify(bad.body)).toMatch(/supervision/);
  }, 60_000);

  it('readAll (at start-up: who was heard from before) asks for the ids, then the states a slice at a time', async () => {
    posted.length = 0;
    record = true;
    const all = await t.gw.writer.states.readAll();
    record = false;
    expect(all.size).toBe(SEEN + HEARD);
    expect([...all.values()].filter((s) => s.online)).toHaveLength(STILL_ONLINE);
    expect(posted.filter((m) => m.op === 'state-ids')).toHaveLength(1);
    const sizes = reads().map((m) => m.deviceIds.length);
    expect(sizes).toEqual([READ_SLICE, SEEN + HEARD - READ_SLICE]);
  }, 60_000);

  it('lists over the whole fleet take turns: a few at a time, a few more waiting, beyond that 503 at once', async () => {
    let open!: () => void;
    gate = new Promise((r) => { open = r; });
    mostInFlight = 0;
    const statuses: number[] = [];
    const refused = 3;
    const answers = Array.from({ length: FLEET_READS_RUNNING + FLEET_READS_WAITING + refused }, () =>
      t.api('GET', '/api/devices?supervision=ok&limit=5').then((r) => { statuses.push(r.status); return r; }));
    try {
      // those beyond the queue are told at once, while the others wait on the (held) writer
      await waitFor(() => statuses.filter((s) => s === 503).length === refused || undefined, 'the refusals');
      expect(statuses.filter((s) => s === 200)).toHaveLength(0);
      expect(mostInFlight, 'more lists asked the writer at once than may run').toBeLessThanOrEqual(FLEET_READS_RUNNING);
    } finally {
      open();
      gate = undefined;
    }
    const all = await Promise.all(answers);
    expect(all.filter((r) => r.status === 200)).toHaveLength(FLEET_READS_RUNNING + FLEET_READS_WAITING);
    expect(all.every((r) => r.status !== 200 || r.body.total === HEARD)).toBe(true);
    const busy = all.find((r) => r.status === 503)!;
    expect(busy.body).toMatchObject({ code: 'BUSY' });
    expect(busy.body.message).toMatch(/try again/);
  }, 60_000);
});
