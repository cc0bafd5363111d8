// Captured DC-09 messages from public sources (captured-frames.ts names each): what the receiver makes of them and
// answers. The clock is set to each message's own timestamp, as if it had just arrived.
import { afterEach, describe, expect, it } from 'vitest';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDc09Protocol, type Dc09Handler } from '../../../gateway/protocols/dc09/index.js';
import { siaDcsToObservations, admCidToObservation } from '../../../gateway/protocols/dc09/map.js';
import { parseAdmCid, splitDataAccount } from '../../../gateway/protocols/dc09/message.js';
import { decodeDc09Answer } from '../../../firmware-sim/protocols/dc09.js';
import type { ListenerSettings } from '../../../gateway/protocols/types.js';
import { answerText, fakePeer, recordingServices } from './fakes.js';
import * as C from './captured-frames.js';

const listener: ListenerSettings = {
  enabled: true, host: '127.0.0.1', port: 0, udp: true, maxConnections: 10, maxConnectionsPerAddress: 10,
  idleTimeoutMs: 60_000, maxFrameBytes: 1024, bindTimeoutMs: 60_000,
};

let handlers: Dc09Handler[] = [];
afterEach(async () => {
  await Promise.all(handlers.map((h) => h.close?.()));
  handlers = [];
});

function receive(frame: C.Captured, opts: { accounts: string[]; at?: number; keys?: Record<string, string> }) {
  const r = recordingServices(Object.fromEntries(opts.accounts.map((a) => [a, {}])));
  if (opts.at !== undefined) r.clock.now = opts.at;
  let keysFile: string | undefined;
  if (opts.keys) {
    keysFile = join(mkdtempSync(join(tmpdir(), 'dc09-cap-')), 'keys.json');
    writeFileSync(keysFile, JSON.stringify(opts.keys));
    chmodSync(keysFile, 0o600);
  }
  const h = createDc09Protocol(r.services, { ...listener, ...(keysFile && { keysFile }) });
  handlers.push(h);
  const peer = fakePeer('udp');
  return {
    r, peer,
    async run() {
      const out = h.framer().push(Buffer.from(`\n${frame.text}\r`, 'latin1'));
      expect(out).toHaveLength(1);
      const f = out[0]!;
      if (!f.ok) throw new Error(f.reason);
      await h.onFrame(peer, f.frame, f.raw);
      return peer.sent.map((s) => answerText(s));
    },
  };
}

describe(`NULL polls (${C.NULL_SIGMA.source}; ${C.NULL_BARE_L.source})`, () => {
  it('Sigma S PRO: ACK echoing seq, prefix and account; a heartbeat for the device', async () => {
    const x = receive(C.NULL_SIGMA, { accounts: ['008312'] });
    const [ans] = await x.run();
    expect(ans).toMatch(/^[0-9A-F]{8}"ACK"0000L0#008312\[\]$/);
    expect(decodeDc09Answer(ans!)).toMatchObject({ crcOk: true, lengthOk: true });
    expect(x.r.observations[0]).toMatchObject({ type: 'heartbeat', deviceId: 'dev-008312', source: 'dc09', detail: { token: 'NULL', prefix: 'L0' } });
  });

  it('a bare line prefix "L" is echoed as sent; the timestamp becomes deviceTs', async () => {
    const x = receive(C.NULL_BARE_L, { accounts: ['7303658550'], at: Date.UTC(2019, 5, 7, 15, 39, 40) });
    const [ans] = await x.run();
    expect(ans).toMatch(/"ACK"0001L#7303658550\[\]$/);
    expect(x.r.observations[0]).toMatchObject({ type: 'heartbeat', deviceTs: Date.UTC(2019, 5, 7, 15, 39, 38) });
  });

  it('the same poll hours later is outside the window: NAK with our time, which has the form of the published NAK', async () => {
    const x = receive(C.NULL_BARE_L, { accounts: ['7303658550'], at: Date.UTC(2019, 6, 5, 15, 39, 35) });
    const [ans] = await x.run();
    expect(ans).toBe(C.NAK_IOBROKER.text.replace('05-07-2019', '07-05-2019').replace(/^..../, ans!.slice(0, 4)));
    expect(decodeDc09Answer(ans!)).toMatchObject({ kind: 'NAK', crcOk: true, lengthOk: true, ts: Date.UTC(2019, 6, 5, 15, 39, 35) });
    expect(x.r.refusals.map((f) => f.reason)).toEqual(['timestamp-window']);
  });
});

describe(`ADM-CID from panels (${C.ADM_PIMA_407.source}; ${C.ADM_HA_401.source}; ${C.ADM_DEFENDER_302.source})`, () => {
  it('Pima 3407: an unmapped code is stored as its own unknown observation (restore), ACKed; the header account wins', async () => {
    const x = receive(C.ADM_PIMA_407, { accounts: ['AAAA'], at: Date.UTC(2023, 8, 21, 1, 59, 20) });
    const [ans] = await x.run();
    expect(ans).toMatch(/"ACK"0078R1L0#AAAA\[\]$/);
    expect(x.r.observations[0]).toMatchObject({
      type: 'unknown', code: '407', restore: true, seq: 78, deviceTs: Date.UTC(2023, 8, 21, 1, 59, 16),
      detail: { account: 'AAAA', dataAccount: '00AAAA', zone: '001', group: '01', receiver: 'R1' },
    });
  });

  it('Pima 3408 with a 6-digit account', async () => {
    const x = receive(C.ADM_PIMA_408, { accounts: ['AAAAAA'], at: Date.UTC(2023, 9, 4, 13, 26, 16) });
    expect((await x.run())[0]).toMatch(/"ACK"1285R1L0#AAAAAA\[\]$/);
  });

  it('3401 without a timestamp: accepted (plaintext), no dedup key', async () => {
    const x = receive(C.ADM_HA_401, { accounts: ['AAA'] });
    expect((await x.run())[0]).toMatch(/"ACK"0068R0L0#AAA\[\]$/);
    expect(x.r.observations[0]!.seq).toBeUndefined();
  });

  it('Defender ST-7 1302: low system battery through the Contact ID table', async () => {
    const x = receive(C.ADM_DEFENDER_302, { accounts: ['13E3186'] });
    await x.run();
    expect(x.r.observations[0]).toMatchObject({ type: 'battery', level: 0, deviceId: 'dev-13E3186' });
  });

  it(`a message edited after capture fails its CRC: NAK (${C.ADM_EDITED.source})`, async () => {
    const x = receive(C.ADM_EDITED, { accounts: ['1111'] });
    const [ans] = await x.run();
    expect(ans).toMatch(/"NAK"0000R0L0A0\[\]_/);
    expect(x.r.refusals[0]).toMatchObject({ reason: 'bad-crc' });
    expect(x.r.refusals[0]!.detail).toMatch(/CRC A819 sent, AC31 computed/);
  });

  it(`a length field that does not count the message: NAK (${C.SIA_WRONG_LENGTH.source})`, async () => {
    const x = receive(C.SIA_WRONG_LENGTH, { accounts: ['AAA'] });
    await x.run();
    expect(x.r.refusals[0]).toMatchObject({ reason: 'bad-length' });
  });
});

describe(`encrypted (${C.NULL_ENCRYPTED.source})`, () => {
  it('the encrypted NULL of account AAAB decrypts under its key: encrypted ACK with our timestamp, heartbeat', async () => {
    const at = C.NULL_ENCRYPTED_AT + 3000;
    const x = receive(C.NULL_ENCRYPTED, { accounts: ['AAAB'], at, keys: { AAAB: C.NULL_ENCRYPTED_KEY } });
    const [ans] = await x.run();
    expect(ans).toMatch(/^[0-9A-F]{8}"\*ACK"0000R0L0#AAAB\[[0-9A-F]{32,}$/);
    expect(decodeDc09Answer(ans!, C.NULL_ENCRYPTED_KEY)).toMatchObject({ kind: 'ACK', encrypted: true, crcOk: true, lengthOk: true, ts: at });
    expect(x.r.observations[0]).toMatchObject({ type: 'heartbeat', deviceTs: C.NULL_ENCRYPTED_AT, detail: { encrypted: true } });
  });

  it('without a key for the account: DUH, counted as no-key; the encrypted text alone is kept', async () => {
    const x = receive(C.ADM_ENCRYPTED_UNKNOWN_KEY, { accounts: ['123F'] });
    const [ans] = await x.run();
    expect(ans).toMatch(/"DUH"6879R0L0#123F\[\]$/);
    expect(x.r.refusals).toEqual([expect.objectContaining({ reason: 'no-key', raw: `\n${C.ADM_ENCRYPTED_UNKNOWN_KEY.text}\r` })]);
  });

  it('under a key that is not the panel\'s: DUH, decrypt-failed', async () => {
    const x = receive(C.ADM_ENCRYPTED_UNKNOWN_KEY, { accounts: ['123F'], keys: { '123F': C.NULL_ENCRYPTED_KEY } });
    await x.run();
    expect(x.r.refusals.map((f) => f.reason)).toEqual(['decrypt-failed']);
  });
});

describe('data blocks of published messages whose CRC does not survive publication', () => {
  const m = { deviceId: 'd', receivedAt: 0, account: '123456', model: null, flags: [], detail: {} };
  it(`SIA-DCS with caret text: the code before the text is read (${C.SIA_CARET_TEXT.source})`, () => {
    const data = splitDataAccount('#123456|Nri1CL0^VX FRONTE ^').rest;
    const [o] = siaDcsToObservations(data, m);
    expect(o).toMatchObject({ source: 'dc09', detail: { code: 'CL', zone: '0', modifiers: { ri: '1', text: 'VX FRONTE ' } } });
  });
  it(`ADM-CID 1110 of the DC-09 example account: fire (${C.ADM_DC09_EXAMPLE.source})`, () => {
    const ev = parseAdmCid('1110 00 129');
    if (!ev.ok) throw new Error(ev.detail);
    expect(admCidToObservation(ev.value, '1110 00 129', { ...m, account: '12345A' })).toMatchObject({ type: 'fire', source: 'dc09', detail: { zone: '129' } });
  });
});
