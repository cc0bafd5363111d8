// Bytes → DC-09 frames. A message is LF, the message, CR (SIA DC-09 §5). The framer holds at most maxFrameBytes
// while waiting for CR; beyond that the bytes are refused (`oversized`) and dropped until the next LF, so a flood of
// garbage never blocks the next good message. Bytes outside LF…CR are refused (`garbage`), except the NUL / CR / LF /
// space some panels send between messages (seen in the field: a NUL after the CR), which are skipped silently.
// A second LF before CR means the first message was cut short: it is refused (`truncated`) and framing restarts at
// the new LF. Never throws.
import type { Framed, Framer } from '../types.js';

export const LF = 0x0a;
export const CR = 0x0d;

/** What a frame carries: the message between LF and CR, as latin1 text (DC-09 is ASCII; other bytes are refused later). */
export interface Dc09Frame {
  text: string;
}

/** Raw bytes kept with a refusal: bounded, so a 1 MB flood is not copied into the rejects table. */
const RAW_KEEP = 512;

const isNoise = (b: number) => b === 0x00 || b === CR || b === LF || b === 0x20;

export function createDc09Framer(maxFrameBytes: number): Framer<Dc09Frame> {
  /** bytes of the message being assembled, LF excluded; undefined while outside a message */
  let parts: Buffer[] | undefined;
  let held = 0;
  /** after an oversized message: drop until the next LF */
  let skipping = false;
  /** garbage seen outside a message, reported once per run */
  let garbage: Buffer[] = [];
  let garbageLen = 0;

  const flushGarbage = (out: Framed<Dc09Frame>[]) => {
    if (garbageLen === 0) return;
    const raw = Buffer.concat(garbage).subarray(0, RAW_KEEP);
    out.push({ ok: false, reason: 'garbage', raw });
    garbage = [];
    garbageLen = 0;
  };
  const addGarbage = (b: Buffer) => {
    if (garbageLen < RAW_KEEP) garbage.push(b.subarray(0, RAW_KEEP - garbageLen));
    garbageLen += b.length;
  };

  return {
    buffered: () => held + garbageLen,
    push(chunk: Buffer): Framed<Dc09Frame>[] {
      const out: Framed<Dc09Frame>[] = [];
      let i = 0;
      while (i < chunk.length) {
        if (parts === undefined) {
          // outside a message: look for LF
          const lf = chunk.indexOf(LF, i);
          const end = lf < 0 ? chunk.length : lf;
          if (skipping) {
            if (lf >= 0) skipping = false;
          } else {
            let j = i;
            while (j < end) {
              // runs of noise are skipped; anything else is garbage, reported when the next message starts
              if (isNoise(chunk[j]!)) {
                j++;
                continue;
              }
              let k = j;
              while (k < end && !isNoise(chunk[k]!)) k++;
              addGarbage(chunk.subarray(j, k));
              j = k;
            }
          }
          if (lf < 0) {
            // bounded: garbage without any LF is reported once it reaches the frame bound
            if (garbageLen >= maxFrameBytes) flushGarbage(out);
            break;
          }
          flushGarbage(out);
          parts = [];
          held = 0;
          i = lf + 1;
          continue;
        }
        // inside a message: look for CR (or a new LF, which means this one was cut short)
        let j = i;
        while (j < chunk.length && chunk[j] !== CR && chunk[j] !== LF) j++;
        const piece = chunk.subarray(i, j);
        if (held + piece.length > maxFrameBytes) {
          const raw = Buffer.concat([...parts, piece]).subarray(0, RAW_KEEP);
          out.push({ ok: false, reason: 'oversized', raw });
          parts = undefined;
          held = 0;
          if (j >= chunk.length) {
            // no end in sight: the rest of this message, up to the next LF, is dropped
            skipping = true;
            break;
          }
          // ended by CR: done with it; by LF: that LF starts the next message
          i = chunk[j] === CR ? j + 1 : j;
          continue;
        }
        parts.push(Buffer.from(piece));
        held += piece.length;
        if (j >= chunk.length) break;
        const body = Buffer.concat(parts);
        parts = undefined;
        held = 0;
        if (chunk[j] === LF) {
          // LF LF (noise before a message) is nothing; a started message cut short is refused
          if (body.length > 0) out.push({ ok: false, reason: 'truncated', raw: Buffer.concat([Buffer.from([LF]), body]).subarray(0, RAW_KEEP) });
          i = j; // the new LF starts the next message
          continue;
        }
        const raw = Buffer.concat([Buffer.from([LF]), body, Buffer.from([CR])]);
        // LF CR with nothing between carries nothing: skipped like the other noise
        if (body.length > 0) out.push({ ok: true, frame: { text: body.toString('latin1') }, raw });
        i = j + 1;
      }
      return out;
    },
  };
}
