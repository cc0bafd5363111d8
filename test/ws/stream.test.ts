// The stream's promise: replay from the durable log, then live, in seq order, no gap and no duplicate — across the
// replay→live seam, across a disconnect, and when the bus announces events late or out of order.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDevice, publishAsync, startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { TestConsole, latestSeq, raise, seqsInLog, sleep } from './helpers.js';

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

function expectStrictlyIncreasingNoDup(seqs: number[]) {
  for (let i = 1; i < seqs.length; i++) expect(seqs[i]!, `seq at ${i} after ${seqs[i - 1]}`).toBeGreaterThan(seqs[i - 1]!);
}

describe('WebSocket /ws: replay, live, resume', () => {
  let t: TestGateway;
  let token: string;

  beforeAll(async () => {
    t = await startTestGateway();
    token = await t.token();
  });
  afterAll(async () => t?.stop());

  it('replays the log after `since`, then streams live, in order, with no gap and no duplicate at the seam', async () => {
    // a log longer than one replay page (500), so the replay pauses between pages while live events keep coming
    const before = latestSeq(t);
    raise(t, 1800, { devices: 7 });
    const c = await TestConsole.open(t, token);
    c.subscribe('all', before);
    // live traffic while the replay runs, and after it: small batches on the event loop, as real alarms arrive
    let live = 0;
    let after = 0;
    while (after < 10) {
      raise(t, 5, { devices: 3 });
      live += 5;
      if (c.frames.some((f) => f.type === 'replayed')) after++;
      await sleep(2);
    }
    const last = latestSeq(t);
    await c.waitForSeq(last);
    const seqs = c.seqs;
    expect(seqs).toEqual(range(before + 1, last)); // admin sees everything: exactly every seq, once, in order
    // the seam was crossed: events written during the replay came with it, later ones came live
    const replayed = c.frames.find((f) => f.type === 'replayed')!;
    expect(replayed.count as number).toBeGreaterThan(1800);
    expect(replayed.until as number).toBeLessThan(last);
    expect(live).toBeGreaterThanOrEqual(50);
    const subscribed = c.frames.findIndex((f) => f.type === 'subscribed');
    expect(subscribed).toBeGreaterThan(-1);
    expect(c.frames.findIndex((f) => f.type === 'replayed')).toBeGreaterThan(subscribed);
    // every frame carries its seq, equal to the event's
    for (const f of c.incidentFrames) expect(f.seq).toBe(f.event!.seq);
    await c.close();
  }, 60_000);

  it('resumes after a disconnect from the last seq seen: nothing missing, nothing twice', async () => {
    const start = latestSeq(t);
    const a = await TestConsole.open(t, token);
    a.subscribe('all', start);
    await a.waitFor((f) => f.type === 'replayed', 'replayed');
    raise(t, 40);
    await a.waitForSeq(start + 40);
    // the network drops (no closing handshake)
    a.ws.terminate();
    await a.closed;
    const seen = a.seqs;
    const lastSeen = seen[seen.length - 1]!;
    // meanwhile alarms keep coming
    raise(t, 60);
    for (let i = 0; i < 10; i++) { raise(t, 3); await sleep(1); }
    const b = await TestConsole.open(t, token);
    b.subscribe('all', lastSeen);
    const last = latestSeq(t);
    await b.waitForSeq(last);
    raise(t, 5); // and live again after the resume
    await b.waitForSeq(last + 5);
    const all = [...seen, ...b.seqs];
    expect(all).toEqual(range(start + 1, last + 5));
    await b.close();
  });

  it('dispatches in seq order even when the bus announces a later event first, and never loses the earlier one', async () => {
    const c = await TestConsole.open(t, token);
    const start = latestSeq(t);
    c.subscribe('all', start);
    await c.waitFor((f) => f.type === 'replayed', 'replayed');
    const events = raise(t, 4, { publish: false });
    const { incidents } = t.gw.response;
    incidents.publishCommitted([events[2]!]); // announced before 1 and 2 …
    incidents.publishCommitted([events[0]!, events[1]!, events[2]!, events[3]!]); // … which come late, and 3 again
    await c.waitForSeq(events[3]!.seq);
    expect(c.seqs.filter((s) => s > start && s <= events[3]!.seq)).toEqual(events.map((e) => e.seq));
    // an event committed but never announced is still streamed once a later one is
    const silent = raise(t, 1, { publish: false });
    const loud = raise(t, 1);
    await c.waitForSeq(loud[0]!.seq);
    expect(c.seqs).toContain(silent[0]!.seq);
    expectStrictlyIncreasingNoDup(c.seqs);
    await c.close();
  });

  it('answers a `since` beyond the latest sequence with a clear error, and the connection stays usable', async () => {
    const c = await TestConsole.open(t, token);
    const latest = latestSeq(t);
    c.subscribe('all', latest + 1000);
    const err = await c.waitFor((f) => f.type === 'error', 'error frame');
    expect(err.code).toBe('SINCE_BEYOND_LATEST');
    expect(err.message).toMatch(/beyond the latest sequence/);
    expect(err.details).toMatchObject({ since: latest + 1000, latest });
    c.subscribe('all', latest);
    await c.waitFor((f) => f.type === 'replayed', 'replayed after a valid subscribe');
    c.subscribe('all', latest);
    expect((await c.waitFor((f) => f.code === 'ALREADY_SUBSCRIBED', 'second subscribe refused')).type).toBe('error');
    await c.close();
  });

  it('without `since` streams from now on (live only)', async () => {
    const c = await TestConsole.open(t, token);
    const head = c.hello().head as number;
    c.subscribe('all');
    await c.waitFor((f) => f.type === 'replayed', 'replayed');
    expect(c.seqs).toEqual([]);
    raise(t, 2);
    await c.waitForSeq(head + 2);
    expect(c.seqs[0]).toBe(head + 1);
    await c.close();
  });

  it('stamps `pushed` once when an opening is first written to a console, and `delivered` once per console user on ack (receipts, not events)', async () => {
    const ops = await t.api('POST', '/api/users', { username: 'op-two', password: 'op-two-password-123', role: 'operator' });
    expect(ops.status).toBe(201);
    const c1 = await TestConsole.open(t, token);
    const c2 = await TestConsole.open(t, token);
    const c3 = await TestConsole.open(t, await t.token('op-two', 'op-two-password-123'));
    for (const c of [c1, c2, c3]) {
      c.subscribe('all');
      await c.waitFor((f) => f.type === 'replayed', 'replayed');
    }
    const [opened] = raise(t, 1, { devices: 1, unitId: null, device: 'stamp' });
    const id = opened!.incidentId;
    expect(opened!.type).toBe('opened');
    for (const c of [c1, c2, c3]) await c.waitForSeq(opened!.seq);
    const { incidents } = t.gw.response;
    await waitFor(() => incidents.get(id)?.stamps.pushed, 'pushed stamp');
    const receipts = (kind: string) => incidents.receipts(id).filter((r) => r.kind === kind);
    expect(receipts('pushed')).toHaveLength(1);
    expect(receipts('pushed')[0]).toMatchObject({ seq: opened!.seq, userId: null });

    // an ack beyond what was sent is refused
    c1.send({ type: 'ack', seq: latestSeq(t) + 50 });
    expect((await c1.waitFor((f) => f.code === 'BAD_ACK', 'bad ack')).type).toBe('error');

    c1.send({ type: 'ack', seq: opened!.seq });
    await waitFor(() => incidents.get(id)?.stamps.delivered, 'delivered stamp');
    const delivered = incidents.get(id)!.stamps.delivered!;
    c2.send({ type: 'ack', seq: c2.lastSeq }); // same user, another console: not recorded again
    c3.send({ type: 'ack', seq: c3.lastSeq }); // another user: recorded, stamp unchanged
    await waitFor(() => receipts('delivered').length === 2, 'delivery by the second user');
    await sleep(200);
    const delivered2 = receipts('delivered');
    expect(delivered2).toHaveLength(2);
    expect(new Set(delivered2.map((r) => r.userId)).size).toBe(2);
    expect(delivered2.map((r) => r.username).sort()).toEqual(['admin', 'op-two']);
    // none of it is in the incident log, nor was it streamed to any console
    expect(incidents.events(id).map((e) => e.type)).toEqual(['opened']);
    for (const c of [c1, c2, c3]) expect(c.incidentFrames.filter((f) => f.event!.incidentId === id)).toHaveLength(1);
    expect(incidents.get(id)!.stamps.delivered).toBe(delivered);
    expect(incidents.get(id)!.stamps.pushed!).toBeGreaterThanOrEqual(opened!.at);
    expect(delivered).toBeGreaterThanOrEqual(incidents.get(id)!.stamps.pushed!);
    for (const c of [c1, c2, c3]) await c.close();
  });

  it('carries a real SOS from an MQTT device to the console, and answers pings', async () => {
    const c = await TestConsole.open(t, token);
    c.subscribe('all');
    await c.waitFor((f) => f.type === 'replayed', 'replayed');
    const dev = await t.provision('call-phone');
    const mqtt = await connectDevice(t.mqttUrl, dev.id, dev.secret);
    await publishAsync(mqtt, `devices/${dev.id}/events`, JSON.stringify({ ts: Date.now(), seq: 1, type: 'sos' }));
    const f = await c.waitFor((x) => x.type === 'incident' && x.event!.type === 'opened' && x.event!.data.deviceId === dev.id, 'the SOS opening');
    const ev = f.event!;
    if (ev.type !== 'opened') throw new Error(`expected the opening, got ${ev.type}`);
    expect(ev.data).toMatchObject({ priority: 'P1', type: 'sos' });
    expect(ev.data.stamps).toMatchObject({ received: expect.any(Number), durable: expect.any(Number) });
    c.send({ type: 'ping', id: 7 });
    const pong = await c.waitFor((x) => x.type === 'pong', 'pong');
    expect(pong).toMatchObject({ id: 7, head: expect.any(Number) });
    mqtt.end(true);
    await c.close();
    expect(seqsInLog(t).length).toBe(latestSeq(t)); // the log itself has no holes
  });
});
