// A simulated Sur-Gard / DSC central-station receiver on a serial line (one end of a pseudo-terminal pair).
// It behaves like the receiver's automation output (MLR2E manual §9.2): one frame at a time, each ended by DC4,
// waiting up to 4 s for ACK (0x06) or NAK (0x15); without an ACK it sends the frame 3 more times, then buffers it
// and sends no more events until a heartbeat is ACKed. Heartbeats go out at an interval.
//
// It is eldergate's peer, so it uses eldergate only from outside: nothing here imports from gateway/ (the tiny
// encoder is duplicated on purpose — a shared encoder would let a bug agree with itself).
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import { SerialPort } from 'serialport';

const DC4 = 0x14;
const ACK = 0x06;
const NAK = 0x15;

export type SimFormat = 'mlr2' | 'system3';

export interface ReceiverSimOptions {
  path: string;
  baudRate?: number;
  dataBits?: 5 | 6 | 7 | 8;
  parity?: 'none' | 'even' | 'odd' | 'mark' | 'space';
  stopBits?: 1 | 1.5 | 2;
  /** receiver number RR, two hex digits */
  receiver?: string;
  /** line number: one digit (MLR2) or three (System II/III) */
  line?: string;
  format?: SimFormat;
  /** how long to wait for ACK/NAK; the receivers use 4 s */
  ackTimeoutMs?: number;
  /** re-sends after the first attempt; the receivers use 3 */
  retries?: number;
  /**
   * What ends each frame: DC4 (Sur-Gard/DSC automation output, the default) or a line end, as the Hikvision-style
   * variant sends (CR, or CR LF).
   */
  terminator?: SimTerminator;
}

export type SimTerminator = 'DC4' | 'CR' | 'CRLF';
const ENDS: Record<SimTerminator, number[]> = { DC4: [DC4], CR: [0x0d], CRLF: [0x0d, 0x0a] };

export interface SimEvent {
  /** 4 hex digits, or 10 for type 58 */
  account: string;
  qualifier?: 'E' | 'R' | 'P' | '1' | '3' | '6';
  code: string | number;
  group?: string | number;
  zone?: string | number;
  line?: string;
  /** 18 (default), 98, or 58 for a 10-digit account (chosen automatically when the account has 10 digits) */
  messageType?: '18' | '98' | '58';
}

export type Answer = 'ACK' | 'NAK' | 'timeout';

export interface AnswerRecord {
  /** the frame as sent, control bytes shown as <xx> */
  frame: string;
  kind: 'event' | 'heartbeat' | 'raw';
  /** 1 = first transmission */
  attempt: number;
  answer: Answer;
  /** from the write to the answer (or to the timeout) */
  delayMs: number;
  /** wall clock when the answer came */
  at: number;
}

export interface SendOutcome {
  /** ACKed */
  delivered: boolean;
  /** given up after the retries and kept until a heartbeat is ACKed */
  buffered: boolean;
  answers: AnswerRecord[];
}

const pad = (v: string | number, n: number) => String(v).toUpperCase().padStart(n, '0');

/** `5RRL 18AAAAQXYZGGCCC<DC4>` (MLR2) or `5RRLLL 18AAAAQXYZGGCCC<DC4>` (System II/III); 58 for 10-digit accounts. */
export function encodeContactId(
  ev: SimEvent,
  where: { receiver: string; line: string },
  terminator: SimTerminator = 'DC4',
): Buffer {
  const account = ev.account.toUpperCase();
  const type = ev.messageType ?? (account.length === 10 ? '58' : '18');
  const text =
    `5${pad(where.receiver, 2)}${ev.line ?? where.line} ${type}${account}${ev.qualifier ?? 'E'}` +
    `${pad(ev.code, 3)}${pad(ev.group ?? 1, 2)}${pad(ev.zone ?? 1, 3)}`;
  return Buffer.concat([Buffer.from(text, 'latin1'), Buffer.from(ENDS[terminator])]);
}

/** MLR2: `1011` + 11 spaces + `@` + 4 spaces; System II/III: `1RR000` + 11 spaces + `@` + 4 spaces. */
export function encodeHeartbeat(format: SimFormat, where: { receiver: string; line: string }, terminator: SimTerminator = 'DC4'): Buffer {
  const head = format === 'system3' ? `1${pad(where.receiver, 2)}000` : `1${pad(where.receiver, 2)}${where.line}`;
  return Buffer.concat([Buffer.from(`${head}${' '.repeat(11)}@${' '.repeat(4)}`, 'latin1'), Buffer.from(ENDS[terminator])]);
}

const show = (b: Buffer) =>
  // eslint-disable-next-line no-control-regex
  b.toString('latin1').replace(/[\x00-\x1f\x7f-\xff]/g, (c) => `<${c.charCodeAt(0).toString(16).padStart(2, '0')}>`);

export interface ReceiverSimEvents {
  answer: [AnswerRecord];
  /** an ACK/NAK byte that came when no frame was waiting for one */
  unsolicited: [Answer];
  error: [Error];
}

export class ReceiverSim extends EventEmitter<ReceiverSimEvents> {
  readonly answers: AnswerRecord[] = [];
  /** frames given up on, waiting for a heartbeat ACK */
  readonly buffered: Buffer[] = [];
  private waiter: ((a: 'ACK' | 'NAK') => void) | undefined;
  private chain: Promise<unknown> = Promise.resolve();
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private readonly where: { receiver: string; line: string };
  private readonly format: SimFormat;
  private readonly ackTimeoutMs: number;
  private readonly retries: number;
  private readonly terminator: SimTerminator;

  private constructor(
    private readonly port: SerialPort,
    opts: ReceiverSimOptions,
  ) {
    super();
    this.format = opts.format ?? 'mlr2';
    this.where = { receiver: opts.receiver ?? '01', line: opts.line ?? (this.format === 'system3' ? '001' : '1') };
    this.ackTimeoutMs = opts.ackTimeoutMs ?? 4000;
    this.retries = opts.retries ?? 3;
    this.terminator = opts.terminator ?? 'DC4';
    port.on('data', (chunk: Buffer) => {
      for (const byte of chunk) {
        if (byte !== ACK && byte !== NAK) continue;
        const a = byte === ACK ? 'ACK' : 'NAK';
        const w = this.waiter;
        this.waiter = undefined;
        if (w) w(a);
        else this.emit('unsolicited', a);
      }
    });
    port.on('error', (err) => {
      if (this.listenerCount('error')) this.emit('error', err);
    });
  }

  /** Open the given end of the pseudo-terminal (or a real port). */
  static open(opts: ReceiverSimOptions): Promise<ReceiverSim> {
    return new Promise((resolve, reject) => {
      const port = new SerialPort(
        {
          path: opts.path,
          baudRate: opts.baudRate ?? 19200,
          dataBits: opts.dataBits ?? 7,
          parity: opts.parity ?? 'even',
          stopBits: opts.stopBits ?? 1,
        },
        (err) => (err ? reject(err) : resolve(new ReceiverSim(port, opts))),
      );
    });
  }

  /** A Contact ID event; resolves once ACKed, or once given up and buffered. */
  sendEvent(ev: SimEvent): Promise<SendOutcome> {
    return this.serial(async () => {
      const frame = encodeContactId(ev, this.where, this.terminator);
      if (this.buffered.length) {
        // the real receiver sends nothing but heartbeats until one is ACKed
        this.buffered.push(frame);
        return { delivered: false, buffered: true, answers: [] };
      }
      return this.deliver(frame, 'event', this.retries);
    });
  }

  /**
   * Bytes exactly as given (no DC4 added): corrupt or truncated frames, SIA frames, several frames at once.
   * Waits for one answer per attempt unless `awaitAnswer` is false; re-sends `retries` times (default 0).
   */
  sendRaw(
    bytes: Buffer | string,
    opts: { retries?: number; awaitAnswer?: boolean; timeoutMs?: number } = {},
  ): Promise<SendOutcome> {
    const frame = typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes;
    return this.serial(async () => {
      if (opts.awaitAnswer === false) {
        await this.write(frame);
        return { delivered: false, buffered: false, answers: [] };
      }
      const out = await this.deliver(frame, 'raw', opts.retries ?? 0, opts.timeoutMs, false);
      return out;
    });
  }

  /** A bare DC4: the receiver testing the link to the automation software, which answers ACK. */
  sendLinkTest(): Promise<SendOutcome> {
    return this.serial(() => this.deliver(Buffer.from([DC4]), 'raw', 0, undefined, false));
  }

  /** One heartbeat now; an ACK releases the buffered frames. */
  sendHeartbeat(): Promise<SendOutcome> {
    return this.serial(async () => {
      const out = await this.deliver(encodeHeartbeat(this.format, this.where, this.terminator), 'heartbeat', 0, undefined, false);
      if (out.delivered) await this.flush();
      return out;
    });
  }

  startHeartbeat(ms: number): void {
    this.stopHeartbeat();
    const tick = () => {
      this.sendHeartbeat().catch((err: Error) => this.listenerCount('error') && this.emit('error', err));
    };
    tick();
    this.heartbeatTimer = setInterval(tick, ms);
  }

  stopHeartbeat(): void {
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = undefined;
  }

  /** Resolves when every queued transmission is done. */
  idle(): Promise<void> {
    return this.chain.then(() => undefined);
  }

  async close(): Promise<void> {
    this.stopHeartbeat();
    this.waiter?.('NAK');
    this.waiter = undefined;
    if (this.port.isOpen) await new Promise<void>((r) => this.port.close(() => r()));
  }

  get isOpen(): boolean {
    return this.port.isOpen;
  }

  private serial<T>(job: () => Promise<T>): Promise<T> {
    const run = this.chain.then(job, job);
    this.chain = run.catch(() => undefined);
    return run;
  }

  private async flush() {
    while (this.buffered.length) {
      const frame = this.buffered[0]!;
      const out = await this.deliver(frame, 'event', this.retries, undefined, false);
      if (!out.delivered) return; // still failing: keep it first in line and wait for the next heartbeat ACK
      this.buffered.shift();
    }
  }

  private write(frame: Buffer) {
    return new Promise<void>((resolve, reject) => {
      this.port.write(frame, (err) => (err ? reject(err) : resolve()));
    });
  }

  private async deliver(
    frame: Buffer,
    kind: AnswerRecord['kind'],
    retries: number,
    timeoutMs = this.ackTimeoutMs,
    bufferOnFailure = true,
  ): Promise<SendOutcome> {
    const answers: AnswerRecord[] = [];
    for (let attempt = 1; attempt <= retries + 1; attempt++) {
      const answer = new Promise<Answer>((resolve) => {
        const timer = setTimeout(() => {
          if (this.waiter === settle) this.waiter = undefined;
          resolve('timeout');
        }, timeoutMs);
        const settle = (a: 'ACK' | 'NAK') => {
          clearTimeout(timer);
          resolve(a);
        };
        this.waiter = settle;
      });
      const t0 = performance.now();
      await this.write(frame);
      const a = await answer;
      const rec: AnswerRecord = {
        frame: show(frame),
        kind,
        attempt,
        answer: a,
        delayMs: performance.now() - t0,
        at: Date.now(),
      };
      answers.push(rec);
      this.answers.push(rec);
      this.emit('answer', rec);
      if (a === 'ACK') return { delivered: true, buffered: false, answers };
    }
    if (bufferOnFailure) this.buffered.push(frame);
    return { delivered: false, buffered: bufferOnFailure, answers };
  }
}
