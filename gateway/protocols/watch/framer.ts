// Bytes → watch frames `[MF*ID*LEN*CONTENT]` or, on some firmware, `[MF*ID*INDEX*LEN*CONTENT]`.
//
// LEN (four hex digits) is the byte length of CONTENT; inside CONTENT the five bytes } [ ] , * are escaped as `}`
// followed by 0x01..0x05, so an unescaped `[` always starts a frame and an unescaped `]` ends one. CONTENT may be
// binary (voice `TK`, images): the end of a frame is found by LEN, never by looking for the first `]`.
//
// What the field does differently, and how it is taken (docs/protocols/watch.md § Framing):
// - LEN counted over the unescaped bytes (captured voice frame) or over the bytes as sent (a server-side encoder):
//   both are accepted.
// - LEN that does not match at all: about a third of the frames captured from real watches in public decoder tests
//   carry a LEN off by a few bytes, AL alarms among them. A text frame whose LEN is wrong is still framed, by its
//   balanced closing `]` (SSIDs such as `[LG_Wall-Mount A/C]` are sent unescaped), and marked `lengthMismatch`: an
//   alarm is never refused for a miscounted length. A binary frame whose LEN is wrong cannot be trusted: refused.
// - `}` not followed by 0x01..0x05 (a watch that did not escape an SSID): kept as a literal `}`, marked `looseEscape`.
// - a new frame header inside a frame: the first frame was cut short (refused `truncated`), framing restarts there.
// Everything is bounded by maxFrameBytes; after a refusal, bytes up to the next `[` belong to the refused frame and
// are dropped without a second refusal.
import type { Framed, Framer } from '../types.js';

export interface WatchFrame {
  /** 3G, SG, CS, ZJ, …: echoed in replies */
  manufacturer: string;
  /** the watch id (its serial in the registry) */
  id: string;
  /** the optional index field of `[MF*ID*INDEX*LEN*…]` firmware (echoed in replies) */
  index?: string;
  /** LEN as sent */
  declaredLength: number;
  /** CONTENT, unescaped */
  content: Buffer;
  /** CONTENT up to the first `,` (the whole CONTENT when it has no fields) */
  keyword: string;
  /** LEN did not match; framed by the closing bracket */
  lengthMismatch: boolean;
  /** an unescaped `}` was kept as it was */
  looseEscape: boolean;
}

const OPEN = 0x5b; // [
const CLOSE = 0x5d; // ]
const STAR = 0x2a; // *
const ESC = 0x7d; // }
const COMMA = 0x2c;
const UNESCAPE: Record<number, number> = { 1: 0x7d, 2: 0x5b, 3: 0x5d, 4: 0x2c, 5: 0x2a };

/** Longest header `[MMMM*<24>*IIII*LLLL*` */
const MAX_HEADER = 1 + 4 + 1 + 24 + 1 + 5 + 5;

type Header =
  | { ok: true; manufacturer: string; id: string; index?: string; length: number; contentStart: number }
  | { ok: 'partial' }
  | { ok: false; reason: 'bad-header' | 'bad-length'; detail: string };

const isAlnum = (b: number) => (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a);
const isHex = (b: number) => (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66);

/** Read a `[MF*ID*(INDEX*)LEN*` header at `at` (which holds `[`). */
export function parseHeader(buf: Buffer, at: number): Header {
  let i = at + 1;
  const field = (min: number, max: number, ok: (b: number) => boolean): string | 'partial' | null => {
    const start = i;
    while (i < buf.length && buf[i] !== STAR) {
      if (!ok(buf[i]!) || i - start >= max) return null;
      i++;
    }
    if (i >= buf.length) return 'partial';
    if (i - start < min) return null;
    const s = buf.toString('latin1', start, i);
    i++; // '*'
    return s;
  };
  const manufacturer = field(2, 4, isAlnum);
  if (manufacturer === 'partial') return { ok: 'partial' };
  if (manufacturer === null) return { ok: false, reason: 'bad-header', detail: 'a frame starts [MF* with a 2-4 letter manufacturer (3G, SG, CS, ZJ)' };
  const id = field(1, 24, isAlnum);
  if (id === 'partial') return { ok: 'partial' };
  if (id === null) return { ok: false, reason: 'bad-header', detail: 'the watch id after the manufacturer must be 1-24 letters or digits followed by *' };
  const first = field(4, 4, () => true);
  if (first === 'partial') return { ok: 'partial' };
  if (first === null || ![...first].every((c) => isHex(c.charCodeAt(0)))) {
    return { ok: false, reason: 'bad-length', detail: `LEN must be four hex digits followed by * (got ${JSON.stringify(buf.toString('latin1', i - 4 - (first === null ? 0 : 1), Math.min(buf.length, i + 1)))})` };
  }
  // `[ZJ*ID*INDEX*LEN*`: a second four-hex field ended by `*` (a raw `*` cannot be content, it is escaped there)
  for (let k = 0; k < 5; k++) {
    if (i + k >= buf.length) return { ok: 'partial' };
    const b = buf[i + k]!;
    if (k < 4 ? !isHex(b) : b !== STAR) return { ok: true, manufacturer, id, length: parseInt(first, 16), contentStart: i };
  }
  return { ok: true, manufacturer, id, index: first, length: parseInt(buf.toString('latin1', i, i + 4), 16), contentStart: i + 5 };
}

/** The content walk of the frame being read, kept across pushes so a slow sender is not re-read from the start. */
interface Walk {
  header: Extract<Header, { ok: true }>;
  i: number;
  count: number;
  depth: number;
  out: number[];
  binary: boolean;
  loose: boolean;
}

export function createWatchFramer(maxFrameBytes: number): Framer<WatchFrame> {
  let buf = Buffer.alloc(0);
  /** after a refusal: bytes up to the next `[` are the rest of the refused frame */
  let skipping = false;
  let walk: Walk | undefined;

  const keep = (b: Buffer, from: number, to: number) => b.subarray(from, Math.min(to, from + maxFrameBytes));

  return {
    buffered: () => buf.length,
    push(chunk: Buffer): Framed<WatchFrame>[] {
      const results: Framed<WatchFrame>[] = [];
      buf = buf.length === 0 ? Buffer.from(chunk) : Buffer.concat([buf, chunk]);

      // drop buf[0..n) and start over at a frame start
      const consume = (n: number) => {
        buf = buf.subarray(n);
        walk = undefined;
      };
      const refuse = (reason: string, to: number, skipAfter: boolean) => {
        results.push({ ok: false, reason, raw: Buffer.from(keep(buf, 0, to)) });
        consume(to);
        skipping = skipAfter;
      };

      for (;;) {
        if (buf.length === 0) break;
        if (buf[0] !== OPEN) {
          const next = buf.indexOf(OPEN);
          const end = next < 0 ? buf.length : next;
          if (skipping) consume(end);
          else refuse('garbage', end, false);
          if (next < 0) break;
          continue;
        }
        skipping = false;

        if (!walk) {
          const h = parseHeader(buf, 0);
          if (h.ok === 'partial') {
            if (buf.length > MAX_HEADER) refuse('bad-header', nextOpen(buf), true);
            else break;
            continue;
          }
          if (h.ok === false) {
            refuse(h.reason, nextOpen(buf), true);
            continue;
          }
          if (h.contentStart + h.length + 1 > maxFrameBytes) {
            refuse('oversized', nextOpen(buf), true);
            continue;
          }
          walk = { header: h, i: h.contentStart, count: 0, depth: 1, out: [], binary: false, loose: false };
        }

        const w = walk;
        const n = w.header.length;
        let verdict: 'wait' | 'ok' | 'mismatch' | { refuse: string; at: number } = 'wait';
        while (w.i < buf.length) {
          if (w.i + 1 > maxFrameBytes) {
            verdict = { refuse: 'oversized', at: w.i };
            break;
          }
          const b = buf[w.i]!;
          if (b === CLOSE && (w.count === n || w.i - w.header.contentStart === n)) {
            verdict = 'ok';
            break;
          }
          if (b === OPEN) {
            const h = parseHeader(buf, w.i);
            if (h.ok === 'partial' && buf.length - w.i <= MAX_HEADER) break; // wait: it may be the next frame
            if (h.ok === true) {
              verdict = { refuse: w.count > n ? 'bad-length' : 'truncated', at: w.i };
              break;
            }
            w.depth++;
          } else if (b === CLOSE) {
            w.depth--;
            if (w.depth === 0) {
              verdict = 'mismatch';
              break;
            }
          } else if (b === ESC) {
            if (w.i + 1 >= buf.length) break; // wait for the escaped byte
            const un = UNESCAPE[buf[w.i + 1]!];
            if (un !== undefined) {
              w.out.push(un);
              w.count++;
              w.i += 2;
              continue;
            }
            w.loose = true;
          } else if (b < 0x20 || b === 0x7f) {
            w.binary = true;
          }
          w.out.push(b);
          w.count++;
          w.i++;
        }

        if (verdict === 'wait') break;
        if (typeof verdict === 'object') {
          // a truncated frame is refused up to the next header, which is read next; an oversized one up to where we are
          if (verdict.refuse === 'oversized') refuse('oversized', verdict.at, true);
          else refuse(verdict.refuse, verdict.at, false);
          continue;
        }
        if (verdict === 'mismatch' && w.binary) {
          refuse('bad-length', w.i + 1, true);
          continue;
        }
        const content = Buffer.from(w.out);
        const comma = content.indexOf(COMMA);
        const frame: WatchFrame = {
          manufacturer: w.header.manufacturer,
          id: w.header.id,
          ...(w.header.index !== undefined ? { index: w.header.index } : {}),
          declaredLength: n,
          content,
          keyword: content.toString('latin1', 0, comma < 0 ? content.length : comma),
          lengthMismatch: verdict === 'mismatch',
          looseEscape: w.loose,
        };
        const raw = Buffer.from(buf.subarray(0, w.i + 1));
        consume(w.i + 1);
        results.push({ ok: true, frame, raw });
      }
      return results;
    },
  };
}

/** where the next frame may start after a bad one at 0 */
function nextOpen(buf: Buffer): number {
  const next = buf.indexOf(OPEN, 1);
  return next < 0 ? buf.length : next;
}

/** Escape CONTENT for the wire (} [ ] , * → } 0x01..0x05); used for binary payloads and free text fields. */
export function escapeContent(content: Buffer): Buffer {
  const out: number[] = [];
  for (const b of content) {
    const code = b === 0x7d ? 1 : b === 0x5b ? 2 : b === 0x5d ? 3 : b === 0x2c ? 4 : b === 0x2a ? 5 : 0;
    if (code) out.push(ESC, code);
    else out.push(b);
  }
  return Buffer.from(out);
}
