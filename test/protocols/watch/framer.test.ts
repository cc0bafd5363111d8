// The watch framer: captured frames, LEN over escaped binary, resynchronisation after every kind of bad input, bounds.
import { describe, expect, it } from 'vitest';
import { createWatchFramer, escapeContent, type WatchFrame } from '../../../gateway/protocols/watch/framer.js';
import type { Framed } from '../../../gateway/protocols/types.js';
import { BRACKET_SSID_HEX, CAPTURED, STREAM_HEX, TK_ESCAPED, TK_ESCAPED_SENT_LEN, ZJ_LK } from './frames.js';

const MAX = 2048;
const push = (...chunks: (string | Buffer)[]) => {
  const f = createWatchFramer(MAX);
  return chunks.flatMap((c) => f.push(typeof c === 'string' ? Buffer.from(c, 'latin1') : c));
};
const frames = (out: Framed<WatchFrame>[]) => out.filter((x): x is Extract<typeof x, { ok: true }> => x.ok).map((x) => x.frame);
const refusals = (out: Framed<WatchFrame>[]) => out.filter((x) => !x.ok).map((x) => x.reason);
const GOOD = '[3G*1234567890*000B*LK,0,10,100]';

describe('watch framer: captured frames', () => {
  for (const [name, c] of Object.entries(CAPTURED)) {
    it(`${name} (${c.source.split(' ').pop()})`, () => {
      const out = push(c.frame);
      expect(refusals(out)).toEqual([]);
      const [f] = frames(out);
      expect(f).toBeDefined();
      const inner = c.frame.slice(1, -1).split('*');
      expect(f!.manufacturer).toBe(inner[0]);
      expect(f!.id).toBe(inner[1]);
      const content = inner[inner.length - 1]!;
      expect(f!.content.toString('latin1')).toBe(content);
      expect(f!.keyword).toBe(content.split(',')[0]);
      // LEN as captured: a mismatch is framed by the bracket and marked, never refused
      expect(f!.lengthMismatch).toBe(parseInt(inner[inner.length - 2]!, 16) !== Buffer.byteLength(content));
    });
  }

  it(`four frames in one read (${STREAM_HEX.source})`, () => {
    const out = push(Buffer.from(STREAM_HEX.hex, 'hex'));
    expect(frames(out).map((f) => f.keyword)).toEqual(['LK', 'UD', 'TKQ', 'LK']);
    expect(refusals(out)).toEqual([]);
  });

  it('the same stream one byte at a time', () => {
    const f = createWatchFramer(MAX);
    const bytes = Buffer.from(STREAM_HEX.hex, 'hex');
    const out: Framed<WatchFrame>[] = [];
    for (const b of bytes) out.push(...f.push(Buffer.from([b])));
    expect(frames(out).map((x) => x.keyword)).toEqual(['LK', 'UD', 'TKQ', 'LK']);
    expect(f.buffered()).toBe(0);
  });

  it(`an SSID with raw brackets and a LEN 9 bytes too long (${BRACKET_SSID_HEX.source})`, () => {
    const [f, ...rest] = push(Buffer.from(BRACKET_SSID_HEX.hex, 'hex'), GOOD);
    expect(f).toMatchObject({ ok: true, frame: { keyword: 'UD', lengthMismatch: true } });
    expect((f as { frame: WatchFrame }).frame.content.toString()).toContain('[LG_Wall-Mount A/C]e725');
    expect(frames(rest).map((x) => x.keyword)).toEqual(['LK']);
  });

  it(`the index form [ZJ*ID*INDEX*LEN*…] (${ZJ_LK.source})`, () => {
    const [f] = frames(push(ZJ_LK.frame));
    expect(f).toMatchObject({ manufacturer: 'ZJ', id: '014111001350304', index: '0034', declaredLength: 9, keyword: 'LK', lengthMismatch: false });
  });

  it(`binary voice with all five escapes, LEN counted unescaped (${TK_ESCAPED.source})`, () => {
    const [f] = frames(push(TK_ESCAPED.bytes()));
    expect(f!.content.equals(TK_ESCAPED.unescaped)).toBe(true);
    expect(f!.lengthMismatch).toBe(false);
  });

  it(`the same escapes with LEN counted as sent (${TK_ESCAPED_SENT_LEN.source})`, () => {
    const [f] = frames(push(TK_ESCAPED_SENT_LEN.bytes()));
    expect(f).toMatchObject({ keyword: 'TK', lengthMismatch: false });
    expect(f!.content.subarray(3).equals(Buffer.from('7d5b5d2c2a', 'hex'))).toBe(true);
  });

  it('binary content full of ] [ , * } bytes is framed by LEN, split anywhere', () => {
    const data = Buffer.alloc(600);
    for (let i = 0; i < data.length; i++) data[i] = [0x5d, 0x5b, 0x2c, 0x2a, 0x7d, 0x00, 0xff, 0x41][i % 8]!;
    const content = Buffer.concat([Buffer.from('TK,'), data]);
    const wire = Buffer.concat([Buffer.from(`[CS*1234567890*${content.length.toString(16).padStart(4, '0')}*TK,`), escapeContent(data), Buffer.from(']'), Buffer.from(GOOD)]);
    for (const cut of [1, 7, 40, 333, 700, wire.length - 1]) {
      const out = push(wire.subarray(0, cut), wire.subarray(cut));
      expect(refusals(out)).toEqual([]);
      const [tk, lk] = frames(out);
      expect(tk!.content.equals(content)).toBe(true);
      expect(lk!.keyword).toBe('LK');
    }
  });
});

describe('watch framer: bad input is refused and never blocks the next good frame', () => {
  const cases: [string, string | Buffer, string][] = [
    ['garbage before a frame', 'hello\r\n\x00\xff', 'garbage'],
    ['a truncated frame (the next header arrives inside it)', '[3G*1234567890*0030*UD,120316,1406', 'truncated'],
    ['a LEN that is not hex', '[3G*1234567890*00ZZ*LK]', 'bad-length'],
    ['a header without LEN', '[3G*1234567890*LK]', 'bad-length'],
    ['a bad header', '[hello world]', 'bad-header'],
    ['a declared LEN beyond maxFrameBytes', `[3G*1234567890*ffff*TK,${'\x01'.repeat(100)}`, 'oversized'],
    ['text that never ends', `[3G*1234567890*0010*${'A'.repeat(MAX + 10)}`, 'oversized'],
    ['binary content with a wrong LEN', `[CS*1234567890*0005*TK,\x01\x02\x03\x04\x05\x06]`, 'bad-length'],
  ];
  for (const [what, bad, reason] of cases) {
    it(`${what} → ${reason}`, () => {
      const out = push(bad, GOOD);
      expect(refusals(out)[0]).toBe(reason);
      expect(frames(out).map((f) => f.keyword)).toEqual(['LK']);
    });
    it(`${what}, fed a byte at a time`, () => {
      const f = createWatchFramer(MAX);
      const out: Framed<WatchFrame>[] = [];
      for (const b of Buffer.concat([typeof bad === 'string' ? Buffer.from(bad, 'latin1') : bad, Buffer.from(GOOD)])) out.push(...f.push(Buffer.from([b])));
      expect(refusals(out)).toContain(reason);
      expect(frames(out).map((x) => x.keyword)).toEqual(['LK']);
    });
  }

  it('a LEN too short on a text frame is framed by its bracket and marked', () => {
    const [f] = frames(push('[3G*1234567890*0002*LK,0,10,100]'));
    expect(f).toMatchObject({ keyword: 'LK', lengthMismatch: true });
  });

  it('an unescaped } is kept literally and marked', () => {
    const [f] = frames(push('[3G*1234567890*0004*A}BC]'));
    expect(f).toMatchObject({ keyword: 'A}BC', looseEscape: true });
  });

  it('holds at most maxFrameBytes, whatever is sent', () => {
    const f = createWatchFramer(256);
    let max = 0;
    for (let i = 0; i < 200; i++) {
      f.push(Buffer.from(i % 2 ? 'x'.repeat(97) : `[3G*1*0fff*${'y'.repeat(50)}`));
      max = Math.max(max, f.buffered());
    }
    expect(max).toBeLessThanOrEqual(256);
    const out = f.push(Buffer.from(GOOD));
    expect(frames(out).map((x) => x.keyword)).toEqual(['LK']);
  });

  it('random garbage of every kind, split at random: the good frame after it is always found, nothing throws', () => {
    let seed = 42;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const alphabet = Buffer.from('[]}*,0123456789abcdefSG3G\x01\x02\x03\x04\x05\x00\xff LK');
    for (let round = 0; round < 400; round++) {
      const garbage = Buffer.alloc(rnd(120));
      for (let i = 0; i < garbage.length; i++) garbage[i] = rnd(3) === 0 ? rnd(256) : alphabet[rnd(alphabet.length)]!;
      const wire = Buffer.concat([garbage, Buffer.from(GOOD)]);
      const f = createWatchFramer(512);
      const out: Framed<WatchFrame>[] = [];
      let at = 0;
      while (at < wire.length) {
        const n = 1 + rnd(40);
        out.push(...f.push(wire.subarray(at, at + n)));
        at += n;
      }
      const last = frames(out).pop();
      expect(last?.content.toString(), `round ${round}: ${garbage.toString('hex')}`).toBe('LK,0,10,100');
      expect(f.buffered()).toBe(0);
    }
  });
});
