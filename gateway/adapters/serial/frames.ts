// Frame decoder for the Sur-Gard / DSC "automation output" of central-station alarm receivers (PROTOCOLS.md).
// Pure: one frame in (the bytes before the DC4 terminator), one discriminated result out. No I/O, no clock.
//
// Formats:
//   Contact ID, MLR2          `5RRL 18AAAAQXYZGGCCC`          (type 98 also occurs)
//   Contact ID, System II/III `5RRLLL 18AAAAQXYZGGCCC`
//   Contact ID, 10-digit acct `5RRLLL 58AAAAAAAAAAQXYZGGCCC`
//   heartbeat, MLR2           `1011` + 11 spaces + `@` + 4 spaces
//   heartbeat, System II/III  `1RR000` + 11 spaces + `@` + 4 spaces
//   SIA (protocol 2)          `SRRL[#AAAAAA|Nri01/FA129/…]`  (also with a 3-character line)

/** DC4 ends every frame; the automation software answers ACK or NAK (Sur-Gard MLR2E manual §9.2). */
export const DC4 = 0x14;
export const ACK = 0x06;
export const NAK = 0x15;

export type ContactIdFormat = 'mlr2' | 'system3' | 'account10';
export type Qualifier = 'E' | 'R' | 'P';

export interface ContactIdFrame {
  kind: 'contact-id';
  format: ContactIdFormat;
  /** receiver number RR */
  receiver: string;
  /** line L (MLR2) or LLL (System II/III) */
  line: string;
  /** 18 = Contact ID, 98 = Contact ID variant seen on System II/III, 58 = 10-digit account */
  messageType: '18' | '98' | '58';
  account: string;
  /** normalised: E new event (or 1), R restore (or 3), P previous event still present (or 6) */
  qualifier: Qualifier;
  /** the qualifier character as it came on the wire */
  qualifierRaw: string;
  /** XYZ */
  code: string;
  /** GG group / partition */
  group: string;
  /** CCC zone or user */
  zone: string;
  raw: string;
}

export interface HeartbeatFrame {
  kind: 'heartbeat';
  format: 'mlr2' | 'system3';
  receiver: string;
  line: string;
  raw: string;
}

export interface SiaEvent {
  /** two-letter SIA event code, e.g. FA (fire alarm) */
  code: string;
  /** zone / user / point number after the code, possibly empty */
  zone: string;
}

export interface SiaFrame {
  kind: 'sia';
  receiver: string;
  line: string;
  /** account after `#`, if it could be read */
  account?: string;
  /** N new event, O old event (SIA DC-03 data-block qualifier), if present */
  qualifier?: string;
  events: SiaEvent[];
  /** lower-case SIA modifiers such as ri (area), id (user), ti (time): name → value */
  modifiers: Record<string, string>;
  /** the part between the brackets, as received */
  body: string;
  /** what could not be structured; the frame is kept anyway (store and show, PROTOCOLS.md) */
  issues: string[];
  raw: string;
}

export type Frame = ContactIdFrame | HeartbeatFrame | SiaFrame;

export type DecodeResult =
  | { ok: true; frame: Frame }
  | { ok: false; reason: string; raw: string };

const HEX = '[0-9A-F]';
const CID_MLR2 = new RegExp(`^5(${HEX}{2})(${HEX}) (18|98)(${HEX}{4})([ERP136])(${HEX}{3})(${HEX}{2})(${HEX}{3})$`);
const CID_SYS3 = new RegExp(`^5(${HEX}{2})(${HEX}{3}) (18|98)(${HEX}{4})([ERP136])(${HEX}{3})(${HEX}{2})(${HEX}{3})$`);
const CID_ACCT10 = new RegExp(`^5(${HEX}{2})(${HEX}{3}|${HEX}) (58)(${HEX}{10})([ERP136])(${HEX}{3})(${HEX}{2})(${HEX}{3})$`);
const HB_MLR2 = new RegExp(`^1(${HEX}{2})(${HEX}) {11}@ {4}$`);
const HB_SYS3 = new RegExp(`^1(${HEX}{2})(000) {11}@ {4}$`);
const SIA = /^S([0-9A-F]{2})([0-9A-Z]{1,3})\[(.*)\]$/;

const QUALIFIERS: Record<string, Qualifier> = { E: 'E', '1': 'E', R: 'R', '3': 'R', P: 'P', '6': 'P' };

/** Printable for logs and reasons: control bytes shown as <XX>. */
export function printable(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\x00-\x1f\x7f-\xff]/g, (c) => `<${c.charCodeAt(0).toString(16).padStart(2, '0')}>`);
}

function fail(raw: string, reason: string): DecodeResult {
  return { ok: false, reason, raw };
}

/**
 * Decode one frame. `input` is what came before DC4; a trailing DC4 is tolerated. Leading CR/LF/NUL (line noise
 * between frames on some receivers) are skipped; spaces are significant (heartbeat layout) and kept.
 */
export function decodeFrame(input: Buffer | string): DecodeResult {
  let raw = typeof input === 'string' ? input : input.toString('latin1');
  if (raw.length > 0 && raw.charCodeAt(raw.length - 1) === DC4) raw = raw.slice(0, -1);
  // eslint-disable-next-line no-control-regex
  const text = raw.replace(/^[\r\n\x00]+/, '').replace(/[\r\n\x00]+$/, '');
  if (text.length === 0) return fail(raw, 'empty frame');
  // eslint-disable-next-line no-control-regex
  if (/[^\x20-\x7e]/.test(text)) return fail(raw, `non-printable byte in frame "${printable(text)}" (line noise or wrong line settings: check baud rate, data bits, parity)`);

  switch (text[0]) {
    case '5':
      return decodeContactId(text, raw);
    case '1':
      return decodeHeartbeat(text, raw);
    case 'S':
      return decodeSia(text, raw);
    default:
      return fail(raw, `unknown frame type "${text[0]}" in "${text}" (expected 5 event, 1 heartbeat or S SIA)`);
  }
}

function decodeContactId(text: string, raw: string): DecodeResult {
  const up = text.toUpperCase();
  for (const [format, re] of [
    ['mlr2', CID_MLR2],
    ['system3', CID_SYS3],
    ['account10', CID_ACCT10],
  ] as const) {
    const m = re.exec(up);
    if (!m) continue;
    const [, receiver, line, messageType, account, q, code, group, zone] = m as unknown as string[];
    return {
      ok: true,
      frame: {
        kind: 'contact-id',
        format,
        receiver: receiver!,
        line: line!,
        messageType: messageType as ContactIdFrame['messageType'],
        account: account!,
        qualifier: QUALIFIERS[q!]!,
        qualifierRaw: q!,
        code: code!,
        group: group!,
        zone: zone!,
        raw,
      },
    };
  }
  return fail(raw, contactIdReason(up));
}

/** Say what is wrong with an event frame, as precisely as the layout allows. */
function contactIdReason(t: string): string {
  const sp = t.indexOf(' ');
  if (sp < 0) return `event frame "${t}" has no space after the receiver/line header (truncated or corrupt)`;
  const header = t.slice(1, sp);
  if (!new RegExp(`^${HEX}{3}$|^${HEX}{5}$`).test(header))
    return `event frame "${t}": header "5${header}" is not 5RRL or 5RRLLL`;
  const body = t.slice(sp + 1);
  const type = body.slice(0, 2);
  if (type !== '18' && type !== '98' && type !== '58')
    return `event frame "${t}": message type "${type}" is not Contact ID (18, 98 or 58)`;
  const expected = type === '58' ? 21 : 15;
  if (body.length < expected) return `event frame "${t}" is truncated: ${body.length} of ${expected} characters after the header`;
  if (body.length > expected) return `event frame "${t}" is too long: ${body.length} characters after the header, expected ${expected}`;
  const acctLen = type === '58' ? 10 : 4;
  const q = body[2 + acctLen]!;
  if (!QUALIFIERS[q]) return `event frame "${t}": qualifier "${q}" is not E/R/P (or 1/3/6)`;
  return `event frame "${t}": account, code, group or zone contains a character that is not a hex digit`;
}

function decodeHeartbeat(text: string, raw: string): DecodeResult {
  const m = HB_SYS3.exec(text) ?? HB_MLR2.exec(text);
  if (m) {
    const format = m[2] === '000' ? 'system3' : 'mlr2';
    return { ok: true, frame: { kind: 'heartbeat', format, receiver: m[1]!, line: m[2]!, raw } };
  }
  return fail(raw, `heartbeat "${text}" does not match 1RRL or 1RR000 + 11 spaces + "@" + 4 spaces (truncated or corrupt)`);
}

function decodeSia(text: string, raw: string): DecodeResult {
  const m = SIA.exec(text);
  if (!m) return fail(raw, `SIA frame "${text}" is not SRRL[...] (missing brackets: truncated or corrupt)`);
  const [, receiver, line, bodyAll] = m as unknown as [string, string, string, string];
  const issues: string[] = [];
  const modifiers: Record<string, string> = {};
  const events: SiaEvent[] = [];
  let account: string | undefined;
  let qualifier: string | undefined;

  // Several data blocks may follow one another: `[#1234|Nri1/FA129][#1234|NMA001]`.
  const blocks = bodyAll.split('][');
  for (const block of blocks) {
    let data = block;
    const bar = data.indexOf('|');
    if (data.startsWith('#')) {
      const acct = bar >= 0 ? data.slice(1, bar) : data.slice(1);
      if (/^[0-9A-Fa-f]{1,16}$/.test(acct)) account ??= acct.toUpperCase();
      else issues.push(`account "${acct}" is not 1-16 hex digits`);
      data = bar >= 0 ? data.slice(bar + 1) : '';
    } else if (bar >= 0) {
      issues.push('no "#account" before "|"');
      data = data.slice(bar + 1);
    }
    if (!data) continue;
    // SIA DC-03: data block begins with N (new) or O (old event)
    // (`NFA129`, `Nri01/…`; but `NL001` is the event NL, not N + `L001`)
    if (/^[NO](?=[a-z]{2}|[A-Z]{2})/.test(data)) {
      qualifier ??= data[0];
      data = data.slice(1);
    }
    for (const item of data.split('/')) {
      if (!item) continue;
      let mm: RegExpExecArray | null;
      // text between carets is free text (SIA level 3); keep it as a modifier
      if ((mm = /^\^(.*)\^?$/.exec(item))) modifiers.text = mm[1]!.replace(/\^$/, '');
      else if ((mm = /^([a-z]{2})(.*)$/.exec(item))) {
        // a modifier, optionally followed by an event in the same item: `ri01FA129`
        const rest = /^([0-9:.-]*)([A-Z]{2})([0-9A-Za-z]*)$/.exec(mm[2]!);
        if (rest) {
          modifiers[mm[1]!] = rest[1]!;
          events.push({ code: rest[2]!, zone: rest[3]! });
        } else modifiers[mm[1]!] = mm[2]!;
      } else if ((mm = /^([A-Z]{2})([0-9A-Za-z]*)$/.exec(item))) events.push({ code: mm[1]!, zone: mm[2]! });
      else issues.push(`cannot read "${item}"`);
    }
  }
  if (events.length === 0) issues.push('no SIA event code found');
  const frame: SiaFrame = { kind: 'sia', receiver, line, events, modifiers, body: bodyAll, issues, raw };
  if (account !== undefined) frame.account = account;
  if (qualifier !== undefined) frame.qualifier = qualifier;
  return { ok: true, frame };
}
