// The DC-09 codec on its own: CRC, framing (LF…CR, bounded, resynchronising), header, body, timestamp, AES.
// Messages are built by the simulated panel's independent encoder (firmware-sim/protocols/dc09.ts) or captured.
import { describe, expect, it } from 'vitest';
import { crc16arc } from '../../../gateway/protocols/dc09/crc.js';
import { createDc09Framer } from '../../../gateway/protocols/dc09/framer.js';
import { parseBody, parseHeader, parseTimestamp, stripPad, formatTimestamp, parseAdmCid } from '../../../gateway/protocols/dc09/message.js';
import { decryptRest, encryptRest } from '../../../gateway/protocols/dc09/cipher.js';
import { encodeDc09, dc09Crc, decodeDc09Answer } from '../../../firmware-sim/protocols/dc09.js';
import { NAK_IOBROKER, NULL_SIGMA, NULL_BARE_L } from './captured-frames.js';

const text = (b: Buffer) => b.toString('latin1').slice(1, -1);

describe('CRC-16/ARC', () => {
  it('has the catalogued check value and agrees with the simulated panel', () => {
    expect(crc16arc('123456789')).toBe(0xbb3d);
    expect(dc09Crc('123456789')).toBe('BB3D');
    // a receiver's NAK as published (ioBroker.sia issue #11)
    expect(crc16arc(NAK_IOBROKER.text.slice(8)).toString(16).toUpperCase()).toBe(NAK_IOBROKER.text.slice(0, 4));
  });
});

describe('framer', () => {
  const msg = encodeDc09({ token: 'NULL', seq: 1, account: '1234', data: '' });

  it('finds messages split anywhere and several in one chunk', () => {
    const f = createDc09Framer(1024);
    const two = Buffer.concat([msg, msg]);
    const out = [...f.push(two.subarray(0, 7)), ...f.push(two.subarray(7, 40)), ...f.push(two.subarray(40))];
    expect(out.map((o) => o.ok)).toEqual([true, true]);
    expect(out[0]!.ok && out[0]!.frame.text).toBe(text(msg));
    expect(f.buffered()).toBe(0);
  });

  it('refuses garbage and resynchronises on the next LF; noise between messages is skipped', () => {
    const f = createDc09Framer(1024);
    const out = f.push(Buffer.concat([Buffer.from('hello world'), msg, Buffer.from('\x00\r\n'), msg]));
    expect(out.map((o) => (o.ok ? 'frame' : o.reason))).toEqual(['garbage', 'frame', 'frame']);
  });

  it('refuses a message cut short by the next LF, and takes the next', () => {
    const f = createDc09Framer(1024);
    const out = f.push(Buffer.concat([msg.subarray(0, 15), msg]));
    expect(out.map((o) => (o.ok ? 'frame' : o.reason))).toEqual(['truncated', 'frame']);
  });

  it('bounds a message without CR: oversized, dropped to the next LF, and the next good one passes', () => {
    const f = createDc09Framer(128);
    const out = [...f.push(Buffer.concat([Buffer.from('\n'), Buffer.alloc(100, 0x41)])), ...f.push(Buffer.alloc(5000, 0x42))];
    expect(out.map((o) => (o.ok ? 'frame' : o.reason))).toEqual(['oversized']);
    expect(f.buffered()).toBe(0);
    expect(out[0]!.raw.length).toBeLessThanOrEqual(512);
    const next = f.push(Buffer.concat([Buffer.alloc(5000, 0x43), msg]));
    expect(next.map((o) => (o.ok ? 'frame' : o.reason))).toEqual(['frame']);
  });

  it('bounds garbage without any LF', () => {
    const f = createDc09Framer(128);
    const out = f.push(Buffer.alloc(10_000, 0x5a));
    expect(out.map((o) => (o.ok ? 'frame' : o.reason))).toEqual(['garbage']);
    expect(f.buffered()).toBe(0);
  });
});

describe('header and body', () => {
  it('reads the captured NULL polls, with and without timestamp, with a bare L', () => {
    const a = parseHeader(NULL_SIGMA.text);
    expect(a).toMatchObject({ ok: true, value: { id: 'NULL', seq: '0000', receiver: '', prefix: 'L0', account: '008312', rest: ']' } });
    const b = parseHeader(NULL_BARE_L.text);
    expect(b).toMatchObject({ ok: true, value: { prefix: 'L', account: '7303658550' } });
    const body = parseBody(b.ok ? b.value.rest : '');
    expect(body).toMatchObject({ ok: true, value: { data: '', timestamp: Date.UTC(2019, 5, 7, 15, 39, 38) } });
  });

  it('says what is wrong: CRC, length, header, body', () => {
    const good = text(encodeDc09({ token: 'ADM-CID', seq: 12, account: '1234', data: '#1234|1101 00 001' }));
    expect(parseHeader(good).ok).toBe(true);
    expect(parseHeader(`0000${good.slice(4)}`)).toMatchObject({ ok: false, reason: 'bad-crc' });
    expect(parseHeader(`${good.slice(0, 4)}0FFF${good.slice(8)}`)).toMatchObject({ ok: false, reason: 'bad-length' });
    expect(parseHeader('12')).toMatchObject({ ok: false, reason: 'truncated' });
    expect(parseHeader('ZZZZ0010"NULL"')).toMatchObject({ ok: false, reason: 'malformed' });
    const noBracket = '"NULL"0000L0#1234';
    expect(parseHeader(`${dc09Crc(noBracket)}${noBracket.length.toString(16).padStart(4, '0')}${noBracket}`)).toMatchObject({ ok: false, reason: 'malformed' });
    expect(parseBody('#1234|1101 00 001')).toMatchObject({ ok: false, reason: 'malformed' });
    expect(parseBody('#1234|1101 00 001]junk')).toMatchObject({ ok: false, reason: 'malformed' });
    expect(parseBody('#1234|1101 00 001][XE007.1][YN45.2]_01:02:03,12-31-2024')).toMatchObject({
      ok: true, value: { xdata: ['XE007.1', 'YN45.2'], timestamp: Date.UTC(2024, 11, 31, 1, 2, 3) },
    });
  });

  it('timestamps are UTC and real', () => {
    expect(parseTimestamp('23:59:59,02-29-2024')).toBe(Date.UTC(2024, 1, 29, 23, 59, 59));
    expect(parseTimestamp('12:00:00,02-30-2024')).toBeUndefined();
    expect(parseTimestamp('24:00:00,01-01-2024')).toBeUndefined();
    expect(formatTimestamp(Date.UTC(2024, 0, 2, 3, 4, 5))).toBe('_03:04:05,01-02-2024');
  });

  it('ADM-CID data', () => {
    expect(parseAdmCid('1101 00 001')).toEqual({ ok: true, value: { qualifier: '1', code: '101', group: '00', zone: '001' } });
    expect(parseAdmCid('9101 00 001').ok).toBe(false);
    expect(parseAdmCid('1101 0 001').ok).toBe(false);
  });
});

describe('AES (zero IV, DC-09 pad)', () => {
  for (const bytes of [16, 24, 32]) {
    it(`AES-${bytes * 8}: the panel's encryption decrypts here and ours decrypts at the panel`, () => {
      const key = Buffer.alloc(bytes, 0x5c).toString('hex');
      const sim = text(encodeDc09({ token: 'SIA-DCS', seq: 7, account: 'ABC123', data: '#ABC123|Nri1/PA001', ts: Date.UTC(2025, 0, 1), key }));
      const h = parseHeader(sim);
      if (!h.ok) throw new Error(h.detail);
      const plain = decryptRest(h.value.rest, Buffer.from(key, 'hex'))!;
      expect(stripPad(plain)).toBe('#ABC123|Nri1/PA001]_00:00:00,01-01-2025');
      // a wrong key gives no readable plaintext
      const wrong = decryptRest(h.value.rest, Buffer.alloc(bytes, 0x11))!;
      expect(stripPad(wrong)).toBeUndefined();
      // the other way: an encrypted ACK
      const rest = encryptRest(']_00:00:01,01-01-2025', Buffer.from(key, 'hex'));
      const ack = `"*ACK"0007R0L0#ABC123[${rest}`;
      const answer = decodeDc09Answer(`${dc09Crc(ack)}${ack.length.toString(16).padStart(4, '0').toUpperCase()}${ack}`, key);
      expect(answer).toMatchObject({ kind: 'ACK', encrypted: true, crcOk: true, lengthOk: true, seq: '0007', ts: Date.UTC(2025, 0, 1, 0, 0, 1) });
    });
  }
});
