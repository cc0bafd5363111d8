// JT/T 808 framing (gateway/protocols/jt808/framer.ts, codec.ts): delimiters, escapes, check code, headers of both
// editions, and resynchronisation after garbage, truncated, oversized and wrongly checked frames.
import { describe, expect, it } from 'vitest';
import { createJt808Framer, type Jt808Unit } from '../../../gateway/protocols/jt808/framer.js';
import { buildFrame, escape, unescape } from '../../../gateway/protocols/jt808/codec.js';
import { bcdTime, timeToBcd } from '../../../gateway/protocols/jt808/location.js';
import { textBody } from '../../../gateway/protocols/jt808/messages.js';
import { CAPTURED, hex } from './frames.js';

const units = (chunks: (Buffer | string)[], max = 8192): Jt808Unit[] => {
  const f = createJt808Framer(max);
  const out: Jt808Unit[] = [];
  for (const c of chunks) for (const r of f.push(typeof c === 'string' ? hex(c) : c)) {
    expect(r.ok).toBe(true);
    if (r.ok) out.push(r.frame);
  }
  return out;
};
const kinds = (u: Jt808Unit[]) => u.map((x) => (x.kind === 'frame' ? `0x${x.frame.msgId.toString(16).padStart(4, '0')}` : x.reason));

describe('jt808 codec', () => {
  it('unescapes 7D 02 → 7E and 7D 01 → 7D (Traccar Jt808FrameDecoderTest) and escapes back', () => {
    const inner = hex(CAPTURED.escaped).subarray(1, -1);
    const plain = unescape(inner);
    expect(Buffer.isBuffer(plain) && plain.toString('hex')).toBe(CAPTURED.escapedUnescaped.slice(2, -2));
    expect(escape(plain as Buffer).toString('hex')).toBe(inner.toString('hex'));
    expect(unescape(Buffer.from([0x30, 0x7d, 0x03]))).toMatch(/7D 01 and 7D 02/);
  });

  it('decodes the captured 2013 and 2019 headers', () => {
    const [reg13, reg19, batch19, hb] = units([CAPTURED.register2013, CAPTURED.register2019, CAPTURED.batch2019, CAPTURED.heartbeat2013]);
    expect(reg13).toMatchObject({ kind: 'frame', frame: { msgId: 0x0100, edition: 2013, phone: '013511221122', serial: 5, encryption: 0 } });
    expect(reg19).toMatchObject({ kind: 'frame', frame: { msgId: 0x0100, edition: 2019, protocolVersion: 1, phone: '00000866496077582164', serial: 0x5218 } });
    expect(batch19).toMatchObject({ kind: 'frame', frame: { msgId: 0x0704, edition: 2019, serial: 0x881d } });
    expect(hb).toMatchObject({ kind: 'frame', frame: { msgId: 0x0002, phone: '043048325465', serial: 0xb7 } });
    if (hb?.kind === 'frame') expect(hb.frame.body.length).toBe(0);
  });

  it('builds what Traccar\'s encoder test expects for a 0x8300 text (same header, body and check code)', () => {
    const body = textBody(0x01, 'Test, Command, 123#', 2013);
    const frame = buildFrame({ msgId: 0x8300, edition: 2013, phone: hex('0b3a73ce2ff2'), serial: 0 }, body as Buffer);
    expect(frame.toString('hex')).toBe(CAPTURED.text8300);
  });

  it('round-trips a 2019 frame whose header and body need escaping', () => {
    const body = Buffer.from([0x7e, 0x7d, 0x01, 0x02, 0x7e]);
    const wire = buildFrame({ msgId: 0x0200, edition: 2019, phone: '13912345678', serial: 0x7e7d }, body);
    const [u] = units([wire]);
    expect(u).toMatchObject({ kind: 'frame', frame: { msgId: 0x0200, edition: 2019, phone: '00000000013912345678', serial: 0x7e7d } });
    if (u?.kind === 'frame') expect(u.frame.body.equals(body)).toBe(true);
  });

  it('converts the GMT+8 BCD time to epoch correctly, and refuses impossible dates', () => {
    expect(new Date(bcdTime(hex('130412164952'), 480)!).toISOString()).toBe('2013-04-12T08:49:52.000Z');
    expect(new Date(bcdTime(hex('250101003000'), 480)!).toISOString()).toBe('2024-12-31T16:30:00.000Z');
    expect(bcdTime(hex('130231120000'), 480)).toBeUndefined();
    expect(bcdTime(hex('13041216495a'), 480)).toBeUndefined();
    expect(bcdTime(timeToBcd(Date.UTC(2026, 5, 1, 23, 59, 59), 480), 480)).toBe(Date.UTC(2026, 5, 1, 23, 59, 59));
  });
});

describe('jt808 framer: bad input never blocks the next good frame', () => {
  it('a frame split across many chunks is found once whole', () => {
    const wire = hex(CAPTURED.sos2013);
    const chunks = [...wire].map((b) => Buffer.from([b]));
    expect(kinds(units(chunks))).toEqual(['0x0200']);
  });

  it('garbage before a frame is refused, the frame is read (Traccar Jt808FrameDecoderTest: 2424 before 7E)', () => {
    expect(kinds(units(['2424' + CAPTURED.heartbeat2013.slice(0), 'deadbeef', CAPTURED.heartbeat2013]))).toEqual(['garbage', '0x0002', 'garbage', '0x0002']);
  });

  it('a wrong check code is refused (a captured frame Traccar accepts) and the next frame is read', () => {
    const u = units([CAPTURED.locationBadCheck2013 + CAPTURED.heartbeat2013]);
    expect(kinds(u)).toEqual(['bad-checksum', '0x0002']);
    expect(u[0]).toMatchObject({ detail: expect.stringMatching(/check code 0xd0.*0xf0/) });
  });

  it('a truncated frame (its end lost) followed by a good one costs only itself', () => {
    const cut = CAPTURED.sos2013.slice(0, 40);
    expect(kinds(units([cut, CAPTURED.heartbeat2013, CAPTURED.heartbeat2013]))).toEqual(['bad-checksum', '0x0002', '0x0002']);
  });

  it('a short frame, a bad escape, a body length that lies, a non-BCD phone: each refused with its reason', () => {
    const lying = buildFrame({ msgId: 0x0002, edition: 2013, phone: '13912345678', serial: 1 }, Buffer.alloc(0));
    // claim a 5-byte body (properties) and fix the check code, so only the length is wrong
    const plain = unescape(lying.subarray(1, -1)) as Buffer;
    plain.writeUInt16BE(5, 2);
    plain[plain.length - 1] = plain.subarray(0, -1).reduce((a, b) => a ^ b, 0);
    const lie = Buffer.concat([Buffer.from([0x7e]), escape(plain), Buffer.from([0x7e])]);
    const u = units(['7e0102037e', '7e01027d057e', lie, CAPTURED.nonBcdPhone, CAPTURED.heartbeat2013]);
    expect(kinds(u)).toEqual(['truncated', 'bad-escape', 'bad-length', 'bad-phone', '0x0002']);
  });

  it('an oversized frame is dropped without holding more than maxFrameBytes, and the next frame is read', () => {
    const f = createJt808Framer(64);
    const out: Jt808Unit[] = [];
    const push = (b: Buffer | string) => {
      for (const r of f.push(typeof b === 'string' ? hex(b) : b)) if (r.ok) out.push(r.frame);
      expect(f.buffered()).toBeLessThanOrEqual(64);
    };
    push(Buffer.concat([Buffer.from([0x7e]), Buffer.alloc(50, 0x11)]));
    for (let i = 0; i < 20; i++) push(Buffer.alloc(50, 0x22));
    push(Buffer.from([0x33, 0x7e]));
    push(CAPTURED.heartbeat2013);
    expect(kinds(out)).toEqual(['oversized', '0x0002']);
    // a complete frame longer than the bound, in one chunk
    const big = buildFrame({ msgId: 0x0200, edition: 2013, phone: '13912345678', serial: 2 }, Buffer.alloc(200, 1));
    const u = units([Buffer.concat([big, hex(CAPTURED.heartbeat2013)])], 64);
    expect(kinds(u)).toEqual(['oversized', '0x0002']);
  });

  it('7E 7E between frames (end and start back to back) is no frame at all', () => {
    const hb = CAPTURED.heartbeat2013;
    expect(kinds(units([hb + hb, '7e7e7e', hb]))).toEqual(['0x0002', '0x0002', '0x0002']);
  });
});
