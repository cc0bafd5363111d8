// The protocol counters in Prometheus (gateway/protocols/index.ts, docs/protocols.md § Metrics): one running gateway
// with all three listeners on real TCP, terminals (simulated, and a raw watch socket) that get answers, send what is
// not used, and finally meet a store that refuses (the gateway's own ingest, closed as at shutdown); GET /metrics
// shows each counter, incremented at the event, with bounded labels.
import { createConnection, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { Dc09SimTerminal, encodeDc09 } from '../../firmware-sim/protocols/dc09.js';
import { Jt808SimTerminal } from '../../firmware-sim/protocols/jt808.js';

type Sample = { name: string; labels: Record<string, string>; value: number };

function parse(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    const m = /^([a-z_:][a-z0-9_:]*)(?:\{(.*)\})? (\S+)$/i.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-z_]+)="([^"]*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

/** A watch frame `[SG*id*LEN*content]` (LEN: the content's length, 4 hex digits), written by hand. */
const watchFrame = (id: string, content: string) => `[SG*${id}*${content.length.toString(16).padStart(4, '0').toUpperCase()}*${content}]`;

describe('protocol counters at GET /metrics', () => {
  let t: TestGateway;
  const sockets: Socket[] = [];
  const drops: (() => void)[] = [];
  const metrics = async () => parse(await (await fetch(`${t.http}/metrics`)).text());
  const value = async (name: string, labels: Record<string, string>) =>
    (await metrics()).find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value ?? 0;

  beforeAll(async () => {
    t = await startTestGateway({
      protocols: {
        watch: { port: 0, host: '127.0.0.1' },
        jt808: { port: 0, host: '127.0.0.1' },
        dc09: { port: 0, host: '127.0.0.1' },
      },
    });
  });
  afterAll(async () => {
    for (const d of drops) d();
    for (const s of sockets) s.destroy();
    await t?.stop();
  });

  it('replies, ignored keywords and store failures are counted per protocol', { timeout: 60_000 }, async () => {
    // before anything: the store-failure counter of each running listener is there, at 0 (an alert can rely on it)
    for (const protocol of ['watch', 'jt808', 'dc09']) {
      expect((await metrics()).find((s) => s.name === 'eldergate_protocol_store_failures_total' && s.labels.protocol === protocol)?.value).toBe(0);
    }

    // DC-09: an SOS is ACKed, a wrong CRC NAKed, an unknown token DUHed
    await t.provision('dc09', 'E2E9A1');
    const panel = new Dc09SimTerminal({ host: '127.0.0.1', port: t.gw.protocols.port('dc09')!, identifier: 'E2E9A1', ackTimeoutMs: 3000 });
    drops.push(() => panel.drop());
    await panel.connect();
    await panel.sos();
    const good = encodeDc09({ token: 'ADM-CID', seq: 7, account: 'E2E9A1', data: '#E2E9A1|1101 00 001', ts: Date.now() });
    const badCrc = Buffer.from(good);
    badCrc[1] = badCrc[1] === 0x30 ? 0x31 : 0x30; // the first CRC digit
    await panel.sendRaw(badCrc);
    expect(await panel.nextAnswer()).toMatchObject({ kind: 'NAK' });
    await panel.sendRaw(encodeDc09({ token: 'CID-XYZ', seq: 8, account: 'E2E9A1', data: '#E2E9A1|1101 00 001', ts: Date.now() }));
    expect(await panel.nextAnswer()).toMatchObject({ kind: 'DUH' });
    expect(await value('eldergate_protocol_replies_total', { protocol: 'dc09', reply: 'ACK' })).toBeGreaterThanOrEqual(1);
    expect(await value('eldergate_protocol_replies_total', { protocol: 'dc09', reply: 'NAK' })).toBe(1);
    expect(await value('eldergate_protocol_replies_total', { protocol: 'dc09', reply: 'DUH' })).toBe(1);

    // JT/T 808: registration (0x8100 ok), authentication and a heartbeat (0x8001 ok)
    await t.provision('jt808', '13800138099');
    const term = new Jt808SimTerminal({ host: '127.0.0.1', port: t.gw.protocols.port('jt808')!, identifier: '13800138099', ackTimeoutMs: 3000 });
    drops.push(() => term.drop());
    await term.connect();
    await term.heartbeat();
    expect(await value('eldergate_protocol_replies_total', { protocol: 'jt808', reply: '0x8100-ok' })).toBe(1);
    expect(await value('eldergate_protocol_replies_total', { protocol: 'jt808', reply: '0x8001-ok' })).toBe(2);

    // watch, on a raw socket: LK answered, a blood-pressure reading and a voice message ignored (counted by keyword)
    await t.provision('watch', '8800000099');
    const s = await new Promise<Socket>((resolve, reject) => {
      const c = createConnection({ host: '127.0.0.1', port: t.gw.protocols.port('watch')! }, () => resolve(c));
      c.once('error', reject);
    });
    sockets.push(s);
    let got = '';
    s.on('data', (d: Buffer) => { got += d.toString('latin1'); });
    s.write(watchFrame('8800000099', 'LK,0,0,88'));
    await waitFor(() => got.includes('*LK]'), 'the LK reply');
    s.write(watchFrame('8800000099', 'bphrt,120,79,73') + watchFrame('8800000099', 'bphrt,121,80,70') + watchFrame('8800000099', 'TK,#!AMR'));
    await waitFor(async () => (await value('eldergate_protocol_ignored_total', { protocol: 'watch', keyword: 'bphrt' })) === 2, 'two bphrt ignored');
    expect(await value('eldergate_protocol_ignored_total', { protocol: 'watch', keyword: 'TK' })).toBe(1);
    expect(await value('eldergate_protocol_replies_total', { protocol: 'watch', reply: 'LK' })).toBe(1);

    // the store refuses (the ingest closed, as at shutdown): the keepalive is not answered, the failure is counted
    t.gw.ingest.close();
    const before = got.length;
    s.write(watchFrame('8800000099', 'LK,0,0,87'));
    await waitFor(async () => (await value('eldergate_protocol_store_failures_total', { protocol: 'watch' })) === 1, 'the store failure counted');
    expect(got.length).toBe(before);
    expect(await value('eldergate_protocol_replies_total', { protocol: 'watch', reply: 'LK' })).toBe(1);
  });

  it('a terminal cannot grow the keyword label set: past 32 keywords they count as "other"', { timeout: 30_000 }, async () => {
    // ingest closed by the test above does not matter: ignored keywords store nothing
    const s = await new Promise<Socket>((resolve, reject) => {
      const c = createConnection({ host: '127.0.0.1', port: t.gw.protocols.port('watch')! }, () => resolve(c));
      c.once('error', reject);
    });
    sockets.push(s);
    let frames = '';
    for (let i = 0; i < 40; i++) frames += watchFrame('8800000099', `X${i},1`);
    s.write(frames);
    await waitFor(async () => (await metrics()).filter((m) => m.name === 'eldergate_protocol_ignored_total' && m.labels.protocol === 'watch')
      .reduce((n, m) => n + m.value, 0) >= 43, 'all ignored frames counted');
    const labels = (await metrics()).filter((m) => m.name === 'eldergate_protocol_ignored_total' && m.labels.protocol === 'watch');
    expect(labels.length).toBeLessThanOrEqual(33);
    expect(labels.find((m) => m.labels.keyword === 'other')?.value).toBeGreaterThanOrEqual(40 + 2 - 32);
  });
});
