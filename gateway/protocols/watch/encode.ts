// Replies and console commands as watch frames. Keywords as Traccar's WatchProtocolEncoder sends them (CR, SOS<n>,
// PHB, MESSAGE with UTF-16BE hex) plus CALL and SOS with all three numbers from the same protocol family's document.
// A watch answers a command by echoing its keyword (`[SG*ID*0002*CR]`): that echo is how a command is acknowledged.
import type { DeviceCommand } from '../../../core/contracts.js';

/** `[MF*ID*LEN*CONTENT]` (`[MF*ID*INDEX*LEN*CONTENT]` when the watch uses the index form) */
export function encodeFrame(manufacturer: string, id: string, content: string | Buffer, index?: string): Buffer {
  const body = typeof content === 'string' ? Buffer.from(content, 'utf8') : content;
  // fields we build are digits, hex and keywords: nothing to escape, so LEN is the same counted either way
  const head = `[${manufacturer}*${id}*${index !== undefined ? `${index}*` : ''}${body.length.toString(16).padStart(4, '0')}*`;
  return Buffer.concat([Buffer.from(head, 'latin1'), body, Buffer.from(']')]);
}

/** text as the watch shows it: UTF-16BE, hex (Traccar's MESSAGE) */
export function utf16beHex(text: string): string {
  const b = Buffer.alloc(text.length * 2);
  for (let i = 0; i < text.length; i++) b.writeUInt16BE(text.charCodeAt(i), i * 2);
  return b.toString('hex');
}

export const MAX_TEXT_CHARS = 100;
export const MAX_NAME_CHARS = 20;
const PHONE = /^\+?[0-9]{3,20}$/;

/** What to send for a command, and the keyword each frame's echo will carry. */
export type CommandPlan = { frames: { content: string; echo: string }[] } | { error: string };

const phoneError = (what: string, got: unknown) =>
  `${what} must be a phone number: 3 to 20 digits, optionally starting with + (got ${JSON.stringify(got)})`;

function text(value: unknown, what: string): string | { error: string } {
  if (typeof value !== 'string' || value.trim() === '') return { error: `${what} must be a non-empty string` };
  if (value.length > MAX_TEXT_CHARS) return { error: `${what} is ${value.length} characters; a watch shows at most ${MAX_TEXT_CHARS}` };
  return value;
}

export function planCommand(cmd: DeviceCommand, opts: { ackText: string }): CommandPlan {
  const p = cmd.params ?? {};
  switch (cmd.type) {
    case 'locate-now':
      return { frames: [{ content: 'CR', echo: 'CR' }] };
    case 'call-back': {
      const n = p.number;
      if (typeof n !== 'string' || !PHONE.test(n)) return { error: `call-back: params.number ${phoneError('', n).trimStart()}` };
      return { frames: [{ content: `CALL,${n}`, echo: 'CALL' }] };
    }
    case 'send-text': {
      const t = text(p.text, 'send-text: params.text');
      if (typeof t !== 'string') return t;
      return { frames: [{ content: `MESSAGE,${utf16beHex(t)}`, echo: 'MESSAGE' }] };
    }
    case 'acknowledge-alarm': {
      // the protocol has no "alarm acknowledged" keyword: the watch shows (or reads out) a message instead
      const t = text(p.text ?? opts.ackText, 'acknowledge-alarm: params.text');
      if (typeof t !== 'string') return t;
      return { frames: [{ content: `MESSAGE,${utf16beHex(t)}`, echo: 'MESSAGE' }] };
    }
    case 'set-contacts':
      return planContacts(p);
    default:
      return { error: `the watch protocol has no command for ${cmd.type} (it carries locate-now, call-back, set-contacts, send-text, acknowledge-alarm)` };
  }
}

/**
 * `sos`: up to three numbers the SOS key dials → `SOS,n1,n2,n3` (an empty slot clears it);
 * `family`: up to ten speed-dial entries, a number or {number, name} → `PHB,n,name,…` (first five), `PHB2,…` (next
 * five), the name as UTF-16BE hex like MESSAGE.
 */
function planContacts(p: Record<string, unknown>): CommandPlan {
  const frames: { content: string; echo: string }[] = [];
  if (p.sos === undefined && p.family === undefined) return { error: 'set-contacts needs params.sos (up to 3 numbers) and/or params.family (up to 10 numbers or {number, name})' };
  if (p.sos !== undefined) {
    if (!Array.isArray(p.sos) || p.sos.length > 3) return { error: 'set-contacts: params.sos must be a list of up to 3 phone numbers' };
    const nums: string[] = [];
    for (const [i, n] of p.sos.entries()) {
      if (n === '' || n === null) nums.push('');
      else if (typeof n === 'string' && PHONE.test(n)) nums.push(n);
      else return { error: `set-contacts: params.sos[${i}] ${phoneError('', n).trimStart()}` };
    }
    while (nums.length < 3) nums.push('');
    frames.push({ content: `SOS,${nums.join(',')}`, echo: 'SOS' });
  }
  if (p.family !== undefined) {
    if (!Array.isArray(p.family) || p.family.length > 10) return { error: 'set-contacts: params.family must be a list of up to 10 numbers or {number, name}' };
    const entries: string[] = [];
    for (const [i, e] of p.family.entries()) {
      const number = typeof e === 'string' ? e : typeof e === 'object' && e !== null ? (e as Record<string, unknown>).number : undefined;
      const name = typeof e === 'object' && e !== null ? (e as Record<string, unknown>).name : undefined;
      if (typeof number !== 'string' || !PHONE.test(number)) return { error: `set-contacts: params.family[${i}] number ${phoneError('', number).trimStart()}` };
      if (name !== undefined && (typeof name !== 'string' || name.length > MAX_NAME_CHARS)) return { error: `set-contacts: params.family[${i}].name must be text of at most ${MAX_NAME_CHARS} characters` };
      entries.push(`${number},${utf16beHex(typeof name === 'string' ? name : '')}`);
    }
    if (entries.length > 0) frames.push({ content: `PHB,${entries.slice(0, 5).join(',')}`, echo: 'PHB' });
    if (entries.length > 5) frames.push({ content: `PHB2,${entries.slice(5).join(',')}`, echo: 'PHB2' });
  }
  if (frames.length === 0) return { error: 'set-contacts: nothing to set (params.family is empty)' };
  return { frames };
}

/** keywords a watch sends only to answer our commands */
export const ECHO_KEYWORDS = new Set(['CR', 'CALL', 'MESSAGE', 'SOS', 'PHB', 'PHB2']);
