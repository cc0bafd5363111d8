// JT/T 808 byte codec: the 0x7E-delimited frame, its 0x7D escapes, the XOR check code and the message header of the
// 2013 and 2019 editions. Pure functions over Buffers (no gateway imports), shared by the framer and the encoder.
//
// On the wire:  7E | header | body | check | 7E, with 7E → 7D 02 and 7D → 7D 01 inside.
// Header 2013:  id WORD | properties WORD | phone BCD[6]  | serial WORD | [packages WORD, index WORD]
// Header 2019:  id WORD | properties WORD | version BYTE | phone BCD[10] | serial WORD | [packages WORD, index WORD]
// Properties:   bits 0-9 body length, 10-12 encryption (0 = none, bit 10 = RSA), 13 subpackage, 14 version flag (2019).

export const DELIMITER = 0x7e;
export const ESCAPE = 0x7d;

/** The 10-bit body length field bounds a body to 1023 bytes: nothing longer is a valid message. */
export const MAX_BODY = 0x3ff;

export type Jt808Edition = 2013 | 2019;

export interface Jt808Header {
  msgId: number;
  edition: Jt808Edition;
  /** 2019 only: the protocol version byte (1 for the 2019 edition) */
  protocolVersion?: number;
  /** the terminal's phone number / terminal id as BCD digits, as sent (12 digits in 2013, 20 in 2019) */
  phone: string;
  /** the message's flow serial number */
  serial: number;
  /** properties bits 10-12; 0 = plain */
  encryption: number;
  subpackage?: { total: number; index: number };
}

export interface Jt808Frame extends Jt808Header {
  body: Buffer;
}

export function xor(buf: Buffer, start = 0, end = buf.length): number {
  let x = 0;
  for (let i = start; i < end; i++) x ^= buf[i]!;
  return x;
}

/** The escaped bytes between two delimiters → the plain bytes, or the reason they are not a valid escape sequence. */
export function unescape(escaped: Buffer): Buffer | string {
  const out = Buffer.allocUnsafe(escaped.length);
  let n = 0;
  for (let i = 0; i < escaped.length; i++) {
    const b = escaped[i]!;
    if (b !== ESCAPE) {
      out[n++] = b;
      continue;
    }
    const next = escaped[i + 1];
    if (next === 0x02) out[n++] = DELIMITER;
    else if (next === 0x01) out[n++] = ESCAPE;
    else return `0x7D followed by ${next === undefined ? 'the end of the frame' : `0x${next.toString(16).padStart(2, '0')}`} (only 7D 01 and 7D 02 are escapes)`;
    i++;
  }
  return out.subarray(0, n);
}

export function escape(plain: Buffer): Buffer {
  const out: number[] = [];
  for (const b of plain) {
    if (b === DELIMITER) out.push(ESCAPE, 0x02);
    else if (b === ESCAPE) out.push(ESCAPE, 0x01);
    else out.push(b);
  }
  return Buffer.from(out);
}

/** BCD bytes → digits, or undefined when a nibble is not a decimal digit. */
export function bcdToDigits(buf: Buffer): string | undefined {
  let s = '';
  for (const b of buf) {
    const hi = b >> 4;
    const lo = b & 0x0f;
    if (hi > 9 || lo > 9) return undefined;
    s += String(hi) + String(lo);
  }
  return s;
}

/** Digits → BCD bytes of `bytes` length, left-padded with zeros (a phone number shorter than the field). */
export function digitsToBcd(digits: string, bytes: number): Buffer {
  if (!/^[0-9]*$/.test(digits) || digits.length > bytes * 2) throw new Error(`"${digits}" does not fit ${bytes} BCD bytes`);
  const padded = digits.padStart(bytes * 2, '0');
  const out = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i++) out[i] = (Number(padded[2 * i]) << 4) | Number(padded[2 * i + 1]);
  return out;
}

/**
 * Plain bytes (header + body + check, delimiters and escapes removed) → a frame, or the reason it is not one.
 * `reason` is a stable slug for the refusal counter, `detail` says what was wrong for a person.
 */
export function parsePlain(plain: Buffer): { ok: true; frame: Jt808Frame } | { ok: false; reason: string; detail: string } {
  if (plain.length < 2 + 2 + 6 + 2 + 1) {
    return { ok: false, reason: 'truncated', detail: `${plain.length} bytes between the delimiters: shorter than the smallest header and check code (13)` };
  }
  const check = plain[plain.length - 1]!;
  const computed = xor(plain, 0, plain.length - 1);
  if (check !== computed) {
    return { ok: false, reason: 'bad-checksum', detail: `check code 0x${hex2(check)} but the header and body XOR to 0x${hex2(computed)}` };
  }
  const msgId = plain.readUInt16BE(0);
  const props = plain.readUInt16BE(2);
  const bodyLength = props & MAX_BODY;
  const encryption = (props >> 10) & 0x07;
  const split = (props & 0x2000) !== 0;
  const edition: Jt808Edition = (props & 0x4000) !== 0 ? 2019 : 2013;
  let at = 4;
  let protocolVersion: number | undefined;
  if (edition === 2019) protocolVersion = plain[at++]!;
  const phoneBytes = edition === 2019 ? 10 : 6;
  const headerLength = at + phoneBytes + 2 + (split ? 4 : 0);
  const content = plain.length - 1;
  if (content < headerLength) {
    return { ok: false, reason: 'truncated', detail: `the ${edition} header${split ? ' with subpackage fields' : ''} needs ${headerLength} bytes, the frame has ${content}` };
  }
  const phone = bcdToDigits(plain.subarray(at, at + phoneBytes));
  if (phone === undefined) {
    return { ok: false, reason: 'bad-phone', detail: `terminal phone number 0x${plain.subarray(at, at + phoneBytes).toString('hex')} is not BCD digits` };
  }
  at += phoneBytes;
  const serial = plain.readUInt16BE(at);
  at += 2;
  let subpackage: Jt808Header['subpackage'];
  if (split) {
    subpackage = { total: plain.readUInt16BE(at), index: plain.readUInt16BE(at + 2) };
    at += 4;
  }
  if (content - at !== bodyLength) {
    return { ok: false, reason: 'bad-length', detail: `the header says a ${bodyLength}-byte body, the frame carries ${content - at}` };
  }
  const frame: Jt808Frame = {
    msgId, edition, phone, serial, encryption, body: Buffer.from(plain.subarray(at, content)),
    ...(protocolVersion !== undefined && { protocolVersion }),
    ...(subpackage && { subpackage }),
  };
  return { ok: true, frame };
}

/** A whole message on the wire: header (never subpackaged, never encrypted) + body + check, escaped and delimited. */
export function buildFrame(h: { msgId: number; edition: Jt808Edition; protocolVersion?: number; phone: string | Buffer; serial: number }, body: Buffer): Buffer {
  if (body.length > MAX_BODY) throw new Error(`a JT/T 808 body holds at most ${MAX_BODY} bytes (got ${body.length})`);
  const phoneBytes = h.edition === 2019 ? 10 : 6;
  const phone = typeof h.phone === 'string' ? digitsToBcd(h.phone, phoneBytes) : h.phone;
  const head = Buffer.alloc(4 + (h.edition === 2019 ? 1 : 0));
  head.writeUInt16BE(h.msgId, 0);
  head.writeUInt16BE(body.length | (h.edition === 2019 ? 0x4000 : 0), 2);
  if (h.edition === 2019) head[4] = h.protocolVersion ?? 1;
  const serial = Buffer.alloc(2);
  serial.writeUInt16BE(h.serial & 0xffff, 0);
  const plain = Buffer.concat([head, phone, serial, body, Buffer.alloc(1)]);
  plain[plain.length - 1] = xor(plain, 0, plain.length - 1);
  return Buffer.concat([Buffer.from([DELIMITER]), escape(plain), Buffer.from([DELIMITER])]);
}

export function hex2(n: number): string {
  return n.toString(16).padStart(2, '0');
}

export function hex4(n: number): string {
  return n.toString(16).padStart(4, '0');
}
