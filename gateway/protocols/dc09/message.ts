// One DC-09 message (ANSI/SIA DC-09-2013 §5): pure parsing and building, no I/O, no clock, no keys.
//
//   <crc 4 hex><0LLL>"<id>"<seq 4 digits>[R<rcvr>]L<pref>[#<acct>][<data>][<x-data>]…[_HH:MM:SS,MM-DD-YYYY]
//
// The CRC and the length cover the part from the first `"` to the end of the timestamp. `id` is SIA-DCS, ADM-CID or
// NULL, preceded by `*` when everything after the `[` is encrypted (hex of AES-CBC, see cipher.ts).
import { crc16arc, hex4 } from './crc.js';

export const TOKENS = ['SIA-DCS', 'ADM-CID', 'NULL'] as const;
export type Token = (typeof TOKENS)[number];

/** The part of a message before the data: enough to answer it (ACK/DUH echo these) and to find its key. */
export interface Dc09Header {
  /** as sent, without `*` and quotes */
  id: string;
  encrypted: boolean;
  /** 4 digits, as sent (echoed in the answer) */
  seq: string;
  /** `R…` as sent, or '' when absent */
  receiver: string;
  /** `L…` as sent (some panels send a bare `L`) */
  prefix: string;
  /** account of the header, upper case, without `#`; '' when the panel put it only in the data */
  account: string;
  /** what follows `[`: the plaintext data, extended data and timestamp, or the hex of their encryption */
  rest: string;
}

export interface Dc09Body {
  /** between `[` and the first `]` (encrypted: after the pad and its `|`) */
  data: string;
  /** extended data blocks `[X…]`, without brackets */
  xdata: string[];
  /** the `_HH:MM:SS,MM-DD-YYYY` timestamp (UTC) as epoch ms, if present */
  timestamp?: number;
  /** the timestamp as sent, without `_` */
  timestampText?: string;
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; reason: string; detail: string };

const fail = (reason: string, detail: string): { ok: false; reason: string; detail: string } => ({ ok: false, reason, detail });

/** Printable for details: control and non-ASCII bytes as <xx>, bounded. */
export function printable(s: string, max = 200): string {
  // eslint-disable-next-line no-control-regex
  const p = s.replace(/[\x00-\x1f\x7f-\xff]/g, (c) => `<${c.charCodeAt(0).toString(16).padStart(2, '0')}>`);
  return p.length > max ? `${p.slice(0, max)}…` : p;
}

const HEADER = /^"(\*?)([A-Z0-9-]{1,16})"(\d{4})(R[0-9A-F]{1,6})?(L[0-9A-F]{0,6})(?:#([0-9A-F]{3,16}))?\[/i;

/**
 * Check CRC and length and read the header. The length is the count of bytes from the first `"` to the end, as 4 hex
 * digits ("0LLL"). A message whose CRC or length is wrong is answered NAK (the panel sends it again).
 */
export function parseHeader(text: string): Parsed<Dc09Header> {
  // eslint-disable-next-line no-control-regex
  if (/[^\x20-\x7e]/.test(text)) return fail('malformed', `message contains a byte that is not printable ASCII: "${printable(text)}"`);
  if (text.length < 8 + 2) return fail('truncated', `message of ${text.length} characters is shorter than CRC + length + "id": "${printable(text)}"`);
  const crcText = text.slice(0, 4);
  const lenText = text.slice(4, 8);
  const body = text.slice(8);
  if (!/^[0-9A-Fa-f]{4}$/.test(crcText)) return fail('malformed', `CRC "${crcText}" is not 4 hex digits`);
  if (!/^[0-9A-Fa-f]{4}$/.test(lenText)) return fail('malformed', `length "${lenText}" is not 4 hex digits ("0LLL")`);
  if (!body.startsWith('"')) return fail('malformed', `no "id" token after CRC and length: "${printable(text)}"`);
  const crc = crc16arc(body);
  if (crc !== parseInt(crcText, 16)) return fail('bad-crc', `CRC ${crcText.toUpperCase()} sent, ${hex4(crc)} computed over ${body.length} characters`);
  const len = parseInt(lenText, 16);
  if (len !== body.length) return fail('bad-length', `length ${lenText} (${len}) sent, the message has ${body.length} (${hex4(body.length)}) characters`);
  const m = HEADER.exec(body);
  if (!m) return fail('malformed', `header is not "id"seq[Rrcvr]Lpref[#acct][ : "${printable(body)}"`);
  return {
    ok: true,
    value: {
      encrypted: m[1] === '*',
      id: m[2]!.toUpperCase(),
      seq: m[3]!,
      receiver: (m[4] ?? '').toUpperCase(),
      prefix: m[5]!.toUpperCase(),
      account: (m[6] ?? '').toUpperCase(),
      rest: body.slice(m[0].length),
    },
  };
}

const TS = /^_(\d{2}):(\d{2}):(\d{2}),(\d{2})-(\d{2})-(\d{4})$/;

/** `HH:MM:SS,MM-DD-YYYY` (UTC, DC-09 §5.5.1.7) → epoch ms, or undefined when it is not a real time. */
export function parseTimestamp(t: string): number | undefined {
  const m = TS.exec(`_${t}`);
  if (!m) return undefined;
  const [h, mi, s, mo, d, y] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  if (h > 23 || mi > 59 || s > 59 || mo < 1 || mo > 12 || d < 1 || d > 31) return undefined;
  const ms = Date.UTC(y, mo - 1, d, h, mi, s);
  return new Date(ms).getUTCDate() === d ? ms : undefined;
}

export function formatTimestamp(ms: number): string {
  const d = new Date(ms);
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `_${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())},${p(d.getUTCMonth() + 1)}-${p(d.getUTCDate())}-${p(d.getUTCFullYear(), 4)}`;
}

/** Bounds on what is kept of extended data (a panel may send text, a MAC, a position): counted and clipped. */
const MAX_XDATA = 8;
const MAX_XDATA_LEN = 128;

/**
 * What follows `[` in plaintext: data up to the first `]`, then `[x…]` blocks, then an optional timestamp.
 * For a decrypted message the caller has already removed the pad.
 */
export function parseBody(rest: string): Parsed<Dc09Body> {
  const close = rest.indexOf(']');
  if (close < 0) return fail('malformed', `data block has no closing "]": "${printable(rest)}"`);
  const data = rest.slice(0, close);
  if (data.includes('[')) return fail('malformed', `data block contains "[": "${printable(rest)}"`);
  let tail = rest.slice(close + 1);
  const xdata: string[] = [];
  while (tail.startsWith('[')) {
    const end = tail.indexOf(']');
    if (end < 0) return fail('malformed', `extended data has no closing "]": "${printable(tail)}"`);
    if (xdata.length < MAX_XDATA) xdata.push(tail.slice(1, end).slice(0, MAX_XDATA_LEN));
    tail = tail.slice(end + 1);
  }
  const body: Dc09Body = { data, xdata };
  if (tail.length > 0) {
    const ts = tail.startsWith('_') ? parseTimestamp(tail.slice(1)) : undefined;
    if (ts === undefined) return fail('malformed', `"${printable(tail)}" after the data is not a timestamp _HH:MM:SS,MM-DD-YYYY`);
    body.timestamp = ts;
    body.timestampText = tail.slice(1);
  }
  return { ok: true, value: body };
}

/**
 * A decrypted `rest`: pad characters (anything but `|`, `[`, `]`), then `|` and the data, or directly the `]` of an
 * empty data block (a NULL poll). Undefined when the plaintext is not shaped like that (wrong key).
 */
export function stripPad(plain: string): string | undefined {
  // eslint-disable-next-line no-control-regex
  if (/[^\x20-\x7e]/.test(plain)) return undefined;
  const m = /^[^|[\]]*(\||(?=\]))/.exec(plain);
  return m ? plain.slice(m[0].length) : undefined;
}

/** LF crc 0LLL message CR */
export function frameMessage(message: string): Buffer {
  return Buffer.from(`\n${hex4(crc16arc(message))}${hex4(message.length)}${message}\r`, 'latin1');
}

/** `#acct|…` at the start of the data: the account there and what follows. */
export function splitDataAccount(data: string): { account?: string; rest: string } {
  const m = /^#([0-9A-Fa-f]{3,16})\|/.exec(data);
  if (m) return { account: m[1]!.toUpperCase(), rest: data.slice(m[0].length) };
  return { rest: data.startsWith('|') ? data.slice(1) : data };
}

export interface AdmCid {
  /** 1 new event, 3 restore, 6 previous event still present */
  qualifier: '1' | '3' | '6';
  code: string;
  group: string;
  zone: string;
}

/** ADM-CID data after the account: `Qeee gg zzz` (Contact ID, SIA DC-05, in the DC-09 envelope). */
export function parseAdmCid(data: string): Parsed<AdmCid> {
  const m = /^([136])([0-9A-Fa-f]{3}) ([0-9A-Fa-f]{2}) ([0-9A-Fa-f]{3})$/.exec(data);
  if (!m) return fail('malformed', `ADM-CID data "${printable(data)}" is not "Qeee gg zzz" (qualifier 1/3/6, event, group, zone)`);
  return { ok: true, value: { qualifier: m[1] as AdmCid['qualifier'], code: m[2]!.toUpperCase(), group: m[3]!.toUpperCase(), zone: m[4]!.toUpperCase() } };
}
