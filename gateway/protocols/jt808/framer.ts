// Bytes of one connection → JT/T 808 frames. A frame is what lies between two 0x7E; the framer never holds more than
// `maxFrameBytes` waiting for the closing one.
//
// Resynchronising: the closing 0x7E of a frame that turns out to be bad (garbage, truncated, wrong check code) is kept
// as the possible opening of the next frame, because a truncated frame followed by a good one looks exactly like that
// on the wire (7E <cut> 7E <good> 7E). An empty pair (7E 7E: the end of one frame and the start of the next, or a
// stray delimiter) is skipped. So a bad frame costs only itself, never the next good one.
//
// What is not a frame is handed on in order too (as `{ kind: 'refused' }`), not as the listener's generic refusal, so
// the handler refuses it with its own reason slug (bad-checksum, truncated, oversized, …) and a detail for a person.
import type { Framed, Framer } from '../types.js';
import { DELIMITER, parsePlain, unescape, type Jt808Frame } from './codec.js';

export type Jt808Unit = { kind: 'frame'; frame: Jt808Frame } | { kind: 'refused'; reason: string; detail: string };

export function createJt808Framer(maxFrameBytes: number): Framer<Jt808Unit> {
  let buf: Buffer = Buffer.alloc(0);
  // dropping the rest of an oversized frame until the next delimiter (refused once, when it began)
  let discarding = false;

  const push = (chunk: Buffer): Framed<Jt808Unit>[] => {
    const out: Framed<Jt808Unit>[] = [];
    const refuse = (reason: string, detail: string, raw: Buffer) => out.push({ ok: true, frame: { kind: 'refused', reason, detail }, raw });
    let data = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    buf = Buffer.alloc(0);
    for (;;) {
      if (discarding) {
        const d = data.indexOf(DELIMITER);
        if (d < 0) return out; // all of it belongs to the oversized frame
        discarding = false;
        data = data.subarray(d); // this delimiter may open the next frame
        continue;
      }
      const start = data.indexOf(DELIMITER);
      if (start < 0) {
        if (data.length) refuse('garbage', `${data.length} byte(s) outside any 0x7E…0x7E frame: not JT/T 808, dropped`, Buffer.from(data.subarray(0, 256)));
        return out;
      }
      if (start > 0) refuse('garbage', `${start} byte(s) before a 0x7E frame start: not JT/T 808, dropped`, Buffer.from(data.subarray(0, Math.min(start, 256))));
      data = data.subarray(start);
      const end = data.indexOf(DELIMITER, 1);
      if (end < 0) {
        if (data.length > maxFrameBytes) {
          refuse('oversized', `no closing 0x7E within ${maxFrameBytes} bytes (protocols.jt808.maxFrameBytes): the frame was dropped`, Buffer.from(data.subarray(0, 256)));
          discarding = true;
          data = data.subarray(data.length); // nothing kept
          continue;
        }
        buf = Buffer.from(data); // wait for the rest (copied: the caller's chunk is not ours to keep)
        return out;
      }
      if (end === 1) {
        data = data.subarray(1); // 7E 7E: the second one opens the frame
        continue;
      }
      const raw = Buffer.from(data.subarray(0, end + 1));
      if (raw.length > maxFrameBytes) {
        refuse('oversized', `a ${raw.length}-byte frame is longer than ${maxFrameBytes} bytes (protocols.jt808.maxFrameBytes): dropped`, raw.subarray(0, 256));
        data = data.subarray(end);
        continue;
      }
      const plain = unescape(raw.subarray(1, raw.length - 1));
      const parsed = typeof plain === 'string' ? { ok: false as const, reason: 'bad-escape', detail: plain } : parsePlain(plain);
      if (parsed.ok) {
        out.push({ ok: true, frame: { kind: 'frame', frame: parsed.frame }, raw });
        data = data.subarray(end + 1);
      } else {
        refuse(parsed.reason, parsed.detail, raw);
        data = data.subarray(end); // keep the delimiter: it may open the next frame
      }
    }
  };

  return { push, buffered: () => buf.length };
}
