// A simulated GPS watch speaking the "3G/SG watch" protocol (Beesure / SeTracker family) to the gateway over TCP,
// from its own encoder and reader (an outside client: a bug in the gateway's codec is not mirrored here).
//
// What it does, as a watch does:
// - connect(): opens the socket, sends `LK,steps,rolls,battery` and resolves once the `LK` reply arrives.
// - sos() / fall(): `AL` with the SOS bit (16) / the fall bit (21) of the status word; sent again every ackTimeoutMs
//   until the gateway's `AL` reply arrives; resolves with the time that reply arrived.
// - position(): `UD`. The protocol never answers UD, so it resolves when the frame is written (the send time).
// - heartbeat(): `LK`, resolved by the `LK` reply.
// - commands from the gateway are decoded into `received` and echoed (`[MF*ID*LEN*CR]`), as watches confirm them:
//   CR → locate-now (then a UD, as a watch reports where it is), CALL → call-back, SOS/SOS1-3/PHB → set-contacts,
//   MESSAGE → send-text, or acknowledge-alarm when its text is the configured acknowledgement text (the protocol has
//   no acknowledge keyword; the gateway sends its "help is coming" text as a MESSAGE).
import { createConnection, type Socket } from 'node:net';
import type { ProtocolSimOptions, ProtocolSimTerminal, ReceivedCommand } from './types.js';

// ---- the watch's own codec ---------------------------------------------------------------------------------------

const ESCAPES: Record<number, number> = { 0x7d: 1, 0x5b: 2, 0x5d: 3, 0x2c: 4, 0x2a: 5 };
const UNESCAPES: Record<number, number> = { 1: 0x7d, 2: 0x5b, 3: 0x5d, 4: 0x2c, 5: 0x2a };

/** `[MF*ID*LEN*CONTENT]`, LEN = four lower-case hex digits of CONTENT's length before escaping */
export function watchFrame(manufacturer: string, id: string, content: string | Buffer): Buffer {
  const raw = typeof content === 'string' ? Buffer.from(content, 'utf8') : content;
  const escaped: number[] = [];
  // keyword and separators stay as they are; only the bytes of binary payloads need escaping, and our text has none
  for (const b of raw) {
    if (typeof content !== 'string' && ESCAPES[b] !== undefined) escaped.push(0x7d, ESCAPES[b]!);
    else escaped.push(b);
  }
  return Buffer.concat([
    Buffer.from(`[${manufacturer}*${id}*${raw.length.toString(16).padStart(4, '0')}*`, 'latin1'),
    Buffer.from(escaped),
    Buffer.from(']'),
  ]);
}

const two = (n: number) => String(n).padStart(2, '0');
/** DDMMYY,HHMMSS in UTC */
export function watchDateTime(ms: number): string {
  const d = new Date(ms);
  return `${two(d.getUTCDate())}${two(d.getUTCMonth() + 1)}${two(d.getUTCFullYear() % 100)},${two(d.getUTCHours())}${two(d.getUTCMinutes())}${two(d.getUTCSeconds())}`;
}

export const WATCH_STATUS_BITS = { sos: 16, lowBattery: 17, fenceOut: 18, fenceIn: 19, removed: 20, fall: 21 } as const;

/** The UD / AL body: date, time, A, lat, N/S, lon, E/W, speed, course, altitude, satellites, GSM, battery, steps, rolls, status, cells, wifi. */
export function watchReport(keyword: string, at: number, p: { lat: number; lon: number } | undefined, battery: number, status: number): string {
  const fix = p ? 'A' : 'V';
  const lat = p ? Math.abs(p.lat).toFixed(6) : '00.000000';
  const lon = p ? Math.abs(p.lon).toFixed(6) : '000.000000';
  const ns = p && p.lat < 0 ? 'S' : 'N';
  const ew = p && p.lon < 0 ? 'W' : 'E';
  const st = (status >>> 0).toString(16).toUpperCase().padStart(8, '0');
  // one cell (MCC 460 / MNC 0), no Wi-Fi, accuracy 0.0
  return `${keyword},${watchDateTime(at)},${fix},${lat},${ns},${lon},${ew},0.00,0.0,0.0,${p ? 7 : 0},80,${battery},0,0,${st},1,255,460,0,9360,4082,131,0,0.0`;
}

/** Reads gateway frames out of a byte stream: header, LEN, unescaped content; skips what is not a frame. */
export class WatchReader {
  private buf = Buffer.alloc(0);
  push(chunk: Buffer): { manufacturer: string; id: string; content: Buffer; raw: string }[] {
    this.buf = Buffer.concat([this.buf, chunk]);
    const out: { manufacturer: string; id: string; content: Buffer; raw: string }[] = [];
    for (;;) {
      const start = this.buf.indexOf(0x5b);
      if (start < 0) {
        this.buf = Buffer.alloc(0);
        break;
      }
      this.buf = this.buf.subarray(start);
      const head = /^\[([A-Za-z0-9]{2,4})\*([A-Za-z0-9]+)\*(?:[0-9A-Fa-f]{4}\*)?([0-9A-Fa-f]{4})\*/.exec(this.buf.toString('latin1', 0, Math.min(this.buf.length, 64)));
      if (!head) {
        if (this.buf.length < 64 && !this.buf.includes(0x5d)) break; // header still arriving
        this.buf = this.buf.subarray(1);
        continue;
      }
      const len = parseInt(head[3]!, 16);
      const content: number[] = [];
      let i = head[0].length;
      while (content.length < len && i < this.buf.length) {
        const b = this.buf[i]!;
        if (b === 0x7d && i + 1 < this.buf.length && UNESCAPES[this.buf[i + 1]!] !== undefined) {
          content.push(UNESCAPES[this.buf[i + 1]!]!);
          i += 2;
        } else {
          content.push(b);
          i++;
        }
      }
      if (i >= this.buf.length) break; // the rest is on its way
      if (this.buf[i] !== 0x5d) {
        this.buf = this.buf.subarray(1);
        continue;
      }
      out.push({ manufacturer: head[1]!, id: head[2]!, content: Buffer.from(content), raw: this.buf.toString('latin1', 0, i + 1) });
      this.buf = this.buf.subarray(i + 1);
    }
    return out;
  }
}

function fromUtf16beHex(hex: string): string {
  if (!/^([0-9a-fA-F]{4})*$/.test(hex)) return hex;
  let s = '';
  for (let i = 0; i < hex.length; i += 4) s += String.fromCharCode(parseInt(hex.slice(i, i + 4), 16));
  return s;
}

/** A gateway frame's CONTENT → the command it carries (undefined: a reply, e.g. LK or AL). */
export function decodeWatchCommand(content: string, ackText: string): Omit<ReceivedCommand, 'raw' | 'at'> | undefined {
  const [keyword = '', ...f] = content.split(',');
  switch (keyword) {
    case 'LK': case 'AL': case 'TKQ': case 'TKQ2': case 'INIT':
      return undefined;
    case 'CR':
      return { type: 'locate-now', params: {} };
    case 'CALL':
      return { type: 'call-back', params: { number: f[0] ?? '' } };
    case 'MESSAGE': {
      const text = fromUtf16beHex(f[0] ?? '');
      return { type: text === ackText ? 'acknowledge-alarm' : 'send-text', params: { text } };
    }
    case 'SOS':
      return { type: 'set-contacts', params: { sos: f } };
    case 'SOS1': case 'SOS2': case 'SOS3':
      return { type: 'set-contacts', params: { slot: Number(keyword.slice(3)), number: f[0] ?? '' } };
    case 'PHB': case 'PHB2': {
      const family: { number: string; name: string }[] = [];
      for (let i = 0; i < f.length; i += 2) if (f[i]) family.push({ number: f[i]!, name: fromUtf16beHex(f[i + 1] ?? '') });
      return { type: 'set-contacts', params: { family, part: keyword } };
    }
    default:
      return { type: 'other', params: { keyword, fields: f } };
  }
}

// ---- the terminal ------------------------------------------------------------------------------------------------

export interface WatchSimOptions extends ProtocolSimOptions {
  /** 3G (default), SG, CS, ZJ */
  manufacturer?: string;
  battery?: number;
  /** where the watch is (its GPS fix) */
  lat?: number;
  lon?: number;
  /** the MESSAGE text the gateway sends on an acknowledged alarm (protocols.watch.ackText) */
  ackText?: string;
}

export class WatchSimTerminal implements ProtocolSimTerminal {
  readonly kind = 'watch' as const;
  readonly identifier: string;
  readonly received: ReceivedCommand[] = [];
  private socket: Socket | undefined;
  private readonly reader = new WatchReader();
  private readonly listeners: ((cmd: ReceivedCommand) => void)[] = [];
  /** replies awaited, by keyword */
  private readonly waiting = new Map<string, ((at: number) => void)[]>();
  private readonly failers = new Set<(err: Error) => void>();
  private readonly mf: string;
  private readonly ackTimeoutMs: number;
  private readonly ackText: string;
  battery: number;
  lat: number;
  lon: number;
  steps = 0;

  constructor(private readonly opts: WatchSimOptions) {
    this.identifier = opts.identifier;
    this.mf = opts.manufacturer ?? '3G';
    this.ackTimeoutMs = opts.ackTimeoutMs ?? 5000;
    this.ackText = opts.ackText ?? 'Help is coming';
    this.battery = opts.battery ?? 80;
    this.lat = opts.lat ?? 22.543096;
    this.lon = opts.lon ?? 114.057865;
  }

  async connect(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const s = createConnection({ host: this.opts.host, port: this.opts.port }, () => {
        s.off('error', reject);
        resolve();
      });
      s.once('error', reject);
      s.on('data', (chunk) => this.onData(chunk));
      s.on('error', () => { /* reported through close */ });
      s.on('close', () => this.onClosed());
      this.socket = s;
    });
    await this.heartbeat();
  }

  sos(position?: { lat: number; lon: number }): Promise<number> {
    return this.alarm(WATCH_STATUS_BITS.sos, position);
  }

  fall(position?: { lat: number; lon: number }): Promise<number> {
    return this.alarm(WATCH_STATUS_BITS.fall, position);
  }

  /** a UD report: the protocol has no reply to it, so this resolves at the send (epoch ms) */
  async position(lat: number, lon: number): Promise<number> {
    this.lat = lat;
    this.lon = lon;
    this.write(watchReport('UD', Date.now(), { lat, lon }, this.battery, 0));
    return Date.now();
  }

  heartbeat(): Promise<number> {
    return this.exchange('LK', `LK,${this.steps},0,${this.battery}`);
  }

  /** send any CONTENT (tests of odd frames) */
  sendRaw(bytes: Buffer | string): void {
    this.socket?.write(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes);
  }

  onCommand(listener: (cmd: ReceivedCommand) => void): void {
    this.listeners.push(listener);
  }

  drop(): void {
    this.socket?.destroy();
  }

  async close(): Promise<void> {
    const s = this.socket;
    if (!s || s.destroyed) return;
    await new Promise<void>((resolve) => {
      s.once('close', () => resolve());
      s.end();
      setTimeout(() => s.destroy(), 2000).unref();
    });
  }

  private alarm(bit: number, position?: { lat: number; lon: number }): Promise<number> {
    const p = position ?? { lat: this.lat, lon: this.lon };
    return this.exchange('AL', watchReport('AL', Date.now(), p, this.battery, 2 ** bit));
  }

  /** send CONTENT and again every ackTimeoutMs until the reply keyword arrives; resolves with its arrival time */
  private exchange(reply: string, content: string): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const done = (at: number) => {
        clearInterval(timer);
        this.failers.delete(fail);
        resolve(at);
      };
      const fail = (err: Error) => {
        clearInterval(timer);
        const list = this.waiting.get(reply) ?? [];
        if (list.includes(done)) list.splice(list.indexOf(done), 1);
        reject(err);
      };
      if (!this.socket || this.socket.destroyed) {
        reject(new Error(`watch ${this.identifier} is not connected`));
        return;
      }
      this.failers.add(fail);
      const list = this.waiting.get(reply) ?? [];
      list.push(done);
      this.waiting.set(reply, list);
      this.write(content);
      timer = setInterval(() => this.write(content), this.ackTimeoutMs);
    });
  }

  private write(content: string): void {
    if (this.socket && !this.socket.destroyed) this.socket.write(watchFrame(this.mf, this.identifier, content));
  }

  private onData(chunk: Buffer): void {
    for (const f of this.reader.push(chunk)) {
      const content = f.content.toString('utf8');
      const keyword = content.split(',')[0]!;
      const cmd = decodeWatchCommand(content, this.ackText);
      if (!cmd) {
        const list = this.waiting.get(keyword);
        const next = list?.shift();
        next?.(Date.now());
        continue;
      }
      const received: ReceivedCommand = { ...cmd, raw: f.raw, at: Date.now() };
      this.received.push(received);
      // a watch confirms a command by echoing its keyword
      this.write(keyword);
      if (cmd.type === 'locate-now') this.write(watchReport('UD', Date.now(), { lat: this.lat, lon: this.lon }, this.battery, 0));
      for (const l of this.listeners) l(received);
    }
  }

  private onClosed(): void {
    const err = new Error(`watch ${this.identifier}: connection closed`);
    for (const f of [...this.failers]) f(err);
    this.failers.clear();
    this.waiting.clear();
  }
}

export function createWatchSim(opts: WatchSimOptions): WatchSimTerminal {
  return new WatchSimTerminal(opts);
}
