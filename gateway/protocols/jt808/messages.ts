// Message ids and bodies: what the terminal sends (register, authenticate, its general response) and what the platform
// sends (general response, register response, location query, text, call-back, phone book).
import iconv from 'iconv-lite';
import { MAX_BODY } from './codec.js';

export const MSG = {
  terminalResponse: 0x0001,
  heartbeat: 0x0002,
  logout: 0x0003,
  register: 0x0100,
  authenticate: 0x0102,
  location: 0x0200,
  locationQueryResponse: 0x0201,
  batch: 0x0704,
  platformResponse: 0x8001,
  registerResponse: 0x8100,
  locationQuery: 0x8201,
  text: 0x8300,
  callBack: 0x8400,
  phoneBook: 0x8401,
} as const;

/** 0x8001 results (2013 §8.2): 4 is "alarm processing confirmed" */
export const RESULT = { ok: 0, failure: 1, messageError: 2, unsupported: 3 } as const;

/** 0x8100 results */
export const REGISTER_RESULT = { ok: 0, vehicleRegistered: 1, noVehicle: 2, terminalRegistered: 3, noTerminal: 4 } as const;

export function platformResponse(replySerial: number, replyId: number, result: number): Buffer {
  const b = Buffer.alloc(5);
  b.writeUInt16BE(replySerial, 0);
  b.writeUInt16BE(replyId, 2);
  b[4] = result;
  return b;
}

/** 0x8100: reply serial, result, and on success the authentication code (a STRING, to the end of the body). */
export function registerResponse(replySerial: number, result: number, authCode?: string): Buffer {
  const head = Buffer.alloc(3);
  head.writeUInt16BE(replySerial, 0);
  head[2] = result;
  return result === REGISTER_RESULT.ok && authCode !== undefined ? Buffer.concat([head, Buffer.from(authCode, 'latin1')]) : head;
}

/** 0x0100 fields kept for the log and the observation detail (never used to decide anything). */
export interface RegisterInfo {
  province?: number;
  city?: number;
  manufacturer?: string;
  model?: string;
  terminalId?: string;
}

export function decodeRegister(body: Buffer, edition: 2013 | 2019): RegisterInfo {
  // 2013: province 2, city 2, manufacturer 5, model 20, terminal id 7, plate colour 1, plate
  // 2019: province 2, city 2, manufacturer 11, model 30, terminal id 30, plate colour 1, plate
  const [man, model, tid] = edition === 2019 ? [11, 30, 30] : [5, 20, 7];
  const text = (from: number, len: number) =>
    body.length >= from + len ? body.subarray(from, from + len).toString('latin1').replace(/\0+$/g, '').replace(/[^\x20-\x7e]/g, '?').trim() : undefined;
  const info: RegisterInfo = {};
  if (body.length >= 4) {
    info.province = body.readUInt16BE(0);
    info.city = body.readUInt16BE(2);
  }
  const m = text(4, man);
  if (m !== undefined) info.manufacturer = m;
  const mo = text(4 + man, model);
  if (mo !== undefined) info.model = mo;
  const t = text(4 + man + model, tid);
  if (t !== undefined) info.terminalId = t;
  return info;
}

/**
 * 0x0102. 2013: the whole body is the authentication code. 2019: code length BYTE, code, IMEI BYTE[15], software
 * version BYTE[20].
 */
export function decodeAuthenticate(body: Buffer, edition: 2013 | 2019): { code: string; imei?: string; software?: string } | string {
  if (edition === 2013) {
    if (body.length === 0) return 'an empty authentication code';
    return { code: body.toString('latin1') };
  }
  if (body.length < 1) return 'an empty 2019 authentication body';
  const len = body[0]!;
  if (len === 0 || body.length < 1 + len) return `the 2019 authentication code says ${len} bytes, ${Math.max(0, body.length - 1)} follow`;
  const code = body.subarray(1, 1 + len).toString('latin1');
  const rest = body.subarray(1 + len);
  const printable = (b: Buffer) => b.toString('latin1').replace(/\0+$/g, '').replace(/[^\x20-\x7e]/g, '?').trim();
  return {
    code,
    ...(rest.length >= 15 && { imei: printable(rest.subarray(0, 15)) }),
    ...(rest.length >= 35 && { software: printable(rest.subarray(15, 35)) }),
  };
}

/** 0x0001: reply serial WORD, reply id WORD, result BYTE (0 ok, 1 failure, 2 message error, 3 unsupported). */
export function decodeTerminalResponse(body: Buffer): { replySerial: number; replyId: number; result: number } | undefined {
  if (body.length < 5) return undefined;
  return { replySerial: body.readUInt16BE(0), replyId: body.readUInt16BE(2), result: body[4]! };
}

/** 0x8300 text flags (2013 Table 38): bit 0 emergency, bit 2 terminal display, bit 3 terminal TTS read aloud */
export const TEXT_FLAG = { emergency: 0x01, display: 0x04, tts: 0x08 } as const;

/** 0x8300 text: "at most 1024 bytes, GBK encoded" (JT/T 808-2013 and 2019, the 0x8300 body table). */
export const MAX_TEXT_BYTES = 1024;

/**
 * 0x8300 body: flag BYTE, (2019: text type BYTE, 1 = notification), text in GBK to the end of the body. Bounded by the
 * standard's 1024 bytes and by what one unsplit message carries (a body of 1023 bytes: the 10-bit length field; this
 * gateway does not send subpackages), so 1022 bytes in 2013 and 1021 in 2019: about 510 Chinese characters.
 */
export function textBody(flag: number, text: string, edition: 2013 | 2019): Buffer | string {
  const head = edition === 2019 ? Buffer.from([flag, 1]) : Buffer.from([flag]);
  const bytes = gbk(text, 'text');
  if (typeof bytes === 'string') return bytes;
  if (bytes.length === 0) return 'the text is empty';
  const limit = Math.min(MAX_TEXT_BYTES, MAX_BODY - head.length);
  if (bytes.length > limit) {
    return `the text is ${bytes.length} bytes in GBK (${[...text].length} characters; a Chinese character takes 2): a JT/T 808 text message carries at most ${limit} bytes. Shorten it`;
  }
  return Buffer.concat([head, bytes]);
}

/** 0x8400 body: flag BYTE (0 normal call, 1 monitor), phone number STRING (max 20). */
export function callBackBody(number: string): Buffer | string {
  const bad = checkNumber(number);
  if (bad) return bad;
  return Buffer.concat([Buffer.from([0]), Buffer.from(number, 'latin1')]);
}

export interface PhoneBookEntry { number: string; name: string }

/**
 * 0x8401 body: type BYTE (1 = replace the whole book), count BYTE, per contact: flag BYTE (3 = calls in and out),
 * number length BYTE, number, name length BYTE, name (GBK, so at most 255 bytes).
 */
export function phoneBookBody(entries: PhoneBookEntry[]): Buffer | string {
  if (entries.length === 0) return 'no numbers to set';
  if (entries.length > 255) return 'at most 255 contacts';
  const parts: Buffer[] = [Buffer.from([1, entries.length])];
  for (const e of entries) {
    const bad = checkNumber(e.number);
    if (bad) return bad;
    const name = gbk(e.name, 'contact name');
    if (typeof name === 'string') return name;
    if (name.length > 255) return `the contact name "${e.name}" is ${name.length} bytes in GBK: at most 255`;
    parts.push(Buffer.from([3, e.number.length]), Buffer.from(e.number, 'latin1'), Buffer.from([name.length]), name);
  }
  return Buffer.concat(parts);
}

function checkNumber(n: string): string | undefined {
  if (!/^\+?[0-9]{2,19}$/.test(n)) return `"${n}" is not a phone number (digits, an optional leading +, at most 20 characters)`;
  return undefined;
}

/**
 * A STRING field: GBK, what terminals for the Chinese market display and read aloud (ASCII is the same bytes). A
 * character GBK cannot carry (an emoji, a character outside GBK's Chinese, Latin, Greek, Cyrillic and kana) is refused with its name, never
 * sent as the '?' an encoder would put in its place; control characters (other than line breaks) are refused too.
 */
export function gbk(s: string, what: string): Buffer | string {
  const bad = new Set<string>();
  for (const ch of s) {
    if (/[\x00-\x09\x0b\x0c\x0e-\x1f\x7f]/.test(ch)) bad.add(ch);
  }
  const bytes = iconv.encode(s, 'gbk');
  if (bad.size === 0 && iconv.decode(bytes, 'gbk') === s) return bytes;
  for (const ch of s) {
    if (iconv.decode(iconv.encode(ch, 'gbk'), 'gbk') !== ch) bad.add(ch);
  }
  const shown = [...bad].slice(0, 5).map((ch) => `U+${ch.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}${/\p{L}|\p{S}|\p{P}|\p{N}/u.test(ch) ? ` "${ch}"` : ''}`);
  return `the ${what} has ${bad.size} character(s) a JT/T 808 terminal cannot show (its text is GBK): ${shown.join(', ')}${bad.size > 5 ? ', …' : ''}. Remove or replace them`;
}
