// Issue 14, High 2: a client that sends pings (WebSocket control pings and our JSON {"type":"ping"}) and never reads
// grew the server by ~430 MiB: the replies were not counted against http.wsMaxBufferedBytes, and the memory is outside
// the V8 heap. The gateway runs as its own process; its resident set is read from /proc/<pid>/status.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { publishAsync, waitFor } from '../helpers/gateway.js';
import { type Watched, rawWebSocket, sleep, startWatched } from './helpers.js';

const MiB = 1024 * 1024;

describe('WebSocket ping flood (issue 14, High 2)', () => {
  let w: Watched;

  beforeAll(async () => {
    w = await startWatched({
      env: {
        ELDERGATE_HTTP_WS_MAX_BUFFERED_BYTES: String(256 * 1024),
        // the frame-rate bound is proven elsewhere: here it is lifted so that the byte bound alone is tested
        ELDERGATE_HTTP_WS_MAX_MESSAGES_PER_SECOND: '1000000',
      },
    });
  }, 90_000);

  afterAll(async () => w?.stop());

  /** Flood `frames` without ever reading; returns how many were sent, the RSS growth and whether the server cut it off. */
  async function flood(frames: { opcode: number; payload: Buffer }[], sosAfter: number) {
    const { g, device, deviceId } = w;
    const flooder = await rawWebSocket(g.httpPort, await g.token());
    await waitFor(async () => (await g.metric('eldergate_consoles_connected')) === 2, 'two consoles connected', 10_000);
    const rss0 = g.rssBytes();
    let maxRss = rss0;
    let cut = false;
    flooder.socket.once('close', () => { cut = true; });
    const sampler = setInterval(() => {
      try { maxRss = Math.max(maxRss, g.rssBytes()); } catch { /* exited: asserted below */ }
    }, 100);
    let sent = 0;
    let sos = false;
    // until it is cut off: ~100-170k frames on a quiet machine, which a loaded one sent in 25 s only now and then
    // (77,000 once); the test's own timeout is the bound
    const until = Date.now() + 80_000;
    try {
      while (!cut && Date.now() < until) {
        let ok = true;
        for (let i = 0; i < 1000 && ok; i++) {
          for (const f of frames) ok = flooder.send(f.opcode, f.payload) && ok;
          sent += frames.length;
        }
        if (!ok) await Promise.race([new Promise((r) => flooder.socket.once('drain', r)), sleep(200)]);
        else await new Promise((r) => setImmediate(r));
        if (!sos && sent >= sosAfter) {
          // an alarm in the middle of the flood
          sos = true;
          await publishAsync(device, `devices/${deviceId}/events`, JSON.stringify({ ts: Date.now(), seq: sosSeq++, type: 'sos' }), 1);
        }
        if ((await g.metric('eldergate_consoles_connected')) < 2) cut = true;
      }
    } finally {
      clearInterval(sampler);
      flooder.socket.destroy();
    }
    return { sent, growth: maxRss - rss0, rss0, maxRss, cut, sos };
  }
  let sosSeq = 1;

  it('JSON pings: bounds the pongs queued for a client that never reads, cuts it off, alarms keep flowing', async () => {
    const { g, device, deviceId, console: console_ } = w;
    const ping = Buffer.from(JSON.stringify({ type: 'ping', id: 'x'.repeat(64) }));
    const r = await flood([{ opcode: 0x1, payload: ping }], 100_000);
    console.log(`JSON ping flood: ${r.sent} frames, RSS ${Math.round(r.rss0 / MiB)} → max ${Math.round(r.maxRss / MiB)} MiB, cut off: ${r.cut}`);
    expect(g.alive()).toBe(true);
    expect(r.cut, 'the flooding client was cut off').toBe(true);
    expect(r.growth).toBeLessThan(96 * MiB);
    if (!r.sos) await publishAsync(device, `devices/${deviceId}/events`, JSON.stringify({ ts: Date.now(), seq: sosSeq++, type: 'sos' }), 1);
    await waitFor(() => console_.opened(deviceId), 'the SOS on the other console', 30_000);
    expect(console_.ws.readyState).toBe(console_.ws.OPEN);
  }, 150_000);

  it('control pings: pongs are queued within the same bound (autoPong is off), the client is cut off', async () => {
    const { g, console: console_ } = w;
    const r = await flood([{ opcode: 0x9, payload: Buffer.alloc(125, 0x61) }], Infinity);
    console.log(`control ping flood: ${r.sent} frames, RSS ${Math.round(r.rss0 / MiB)} → max ${Math.round(r.maxRss / MiB)} MiB, cut off: ${r.cut}`);
    expect(g.alive()).toBe(true);
    expect(r.cut, 'the flooding client was cut off').toBe(true);
    expect(r.growth).toBeLessThan(96 * MiB);
    expect(console_.ws.readyState).toBe(console_.ws.OPEN);
  }, 150_000);
});
