// Cuts the receiver's byte stream into frames, by the receiver's real terminators and by silence.
//
// Sur-Gard/DSC automation output ends every frame with DC4; some receivers and panels (a Hikvision-style variant)
// end lines with CR or CR LF instead. Bytes that no terminator ends were glued to the next frame and corrupted it,
// and a long run of them was cut into pieces each answered on its own. Here every frame ends at a configured
// terminator or at a gap of `interByteTimeoutMs` in the stream (the sender is then waiting for its answer), and
// exactly one output comes per frame, so exactly one answer goes back per frame the receiver sent.
// Memory is bounded: past `maxFrameBytes` the bytes are counted and dropped until the frame ends.

export const DC4_BYTE = 0x14;
export const CR_BYTE = 0x0d;
export const LF_BYTE = 0x0a;

export type Terminator = 'DC4' | 'CR' | 'LF';
export type FrameEnd = Terminator | 'timeout';

export type FramerOutput =
  /** the bytes of one frame, terminator excluded */
  | { kind: 'frame'; bytes: Buffer; end: FrameEnd }
  /** a DC4 with nothing before it: the receiver's link test (answered ACK) */
  | { kind: 'empty'; end: 'DC4' }
  /** a frame longer than maxFrameBytes: its first bytes and its length; answered once, as one frame */
  | { kind: 'oversized'; head: Buffer; length: number; end: FrameEnd };

export interface FramerOptions {
  terminators: readonly Terminator[];
  maxFrameBytes: number;
  interByteTimeoutMs: number;
  /** how many bytes of an oversized frame are kept for the log and the operator */
  headBytes?: number;
  emit(out: FramerOutput): void;
}

const CODE: Record<Terminator, number> = { DC4: DC4_BYTE, CR: CR_BYTE, LF: LF_BYTE };

/** Only line-end and NUL bytes: the tail of a CR LF pair or padding, not a frame anyone waits an answer for. */
function isBlank(b: Buffer): boolean {
  for (const c of b) if (c !== CR_BYTE && c !== LF_BYTE && c !== 0) return false;
  return true;
}

export class Framer {
  private readonly ends: Map<number, Terminator>;
  private readonly headBytes: number;
  private chunks: Buffer[] = [];
  private size = 0;
  /** bytes of an oversized frame (kept: its head only) */
  private skipped = 0;
  private head: Buffer | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** how the previous frame ended: a DC4 right after a CR-ended line is that line's DC4, not a link test */
  private lastEnd: FrameEnd | undefined;

  constructor(private readonly o: FramerOptions) {
    this.ends = new Map(o.terminators.map((t) => [CODE[t], t]));
    this.headBytes = o.headBytes ?? 256;
  }

  /** bytes held for a frame not yet ended */
  get pending(): number {
    return this.size + this.skipped;
  }

  push(chunk: Buffer): void {
    let start = 0;
    for (let i = 0; i < chunk.length; i++) {
      const end = this.ends.get(chunk[i]!);
      if (end === undefined) continue;
      this.take(chunk.subarray(start, i));
      this.finish(end);
      start = i + 1;
    }
    this.take(chunk.subarray(start));
    this.arm();
  }

  /** Drop what is held (the port closed: a half frame will be sent again whole). */
  reset(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.chunks = [];
    this.size = 0;
    this.skipped = 0;
    this.head = undefined;
    this.lastEnd = undefined;
  }

  private take(part: Buffer): void {
    if (part.length === 0) return;
    if (this.skipped > 0) {
      this.skipped += part.length;
      return;
    }
    if (this.size + part.length <= this.o.maxFrameBytes) {
      this.chunks.push(Buffer.from(part));
      this.size += part.length;
      return;
    }
    // too long for a frame: keep its head for diagnosis and count the rest until the frame ends
    const all = Buffer.concat([...this.chunks, part]);
    this.head = Buffer.from(all.subarray(0, this.headBytes));
    this.skipped = all.length;
    this.chunks = [];
    this.size = 0;
  }

  private finish(end: FrameEnd): void {
    if (this.skipped > 0) {
      const out: FramerOutput = { kind: 'oversized', head: this.head ?? Buffer.alloc(0), length: this.skipped, end };
      this.skipped = 0;
      this.head = undefined;
      this.lastEnd = end;
      this.o.emit(out);
      return;
    }
    const bytes = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    this.chunks = [];
    this.size = 0;
    const previous = this.lastEnd;
    if (isBlank(bytes)) {
      // a bare DC4 is the receiver testing the link; a blank line, or a DC4 closing a line the CR already ended, is not
      if (end === 'DC4' && !(bytes.length === 0 && (previous === 'CR' || previous === 'LF'))) {
        this.lastEnd = end;
        this.o.emit({ kind: 'empty', end });
      } else if (bytes.length > 0 || end !== 'timeout') {
        this.lastEnd = end;
      }
      return;
    }
    this.lastEnd = end;
    this.o.emit({ kind: 'frame', bytes, end });
  }

  private arm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.pending === 0) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.pending > 0) this.finish('timeout');
    }, this.o.interByteTimeoutMs);
    this.timer.unref?.();
  }
}
