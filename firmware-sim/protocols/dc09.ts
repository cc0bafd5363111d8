// A simulated alarm panel / telecare hub speaking SIA DC-09 to the gateway over TCP or UDP, from its own encoder
// (its own CRC, its own AES via node:crypto): an outside client, so a bug in the gateway's codec is not mirrored here.
// sos() sends ADM-CID 1101 (Contact ID 101 "personal emergency"), fall() ADM-CID 1102 (the fall code of Climax/Vesta
// telecare units: a fall only for a device whose model uses the telecare vendor table; standard Contact ID has no
// fall), heartbeat() a NULL poll. Each is sent again until the receiver ACKs it; a NAK's timestamp sets the panel's
// clock (as DC-09 intends), then the message goes again.
import { createCipheriv, createDecipheriv, randomInt } from 'node:crypto';
import { createConnection, type Socket } from 'node:net';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import type { ProtocolSimOptions, ProtocolSimTerminal, ReceivedCommand } from './types.js';

// ---- the panel's own codec ---------------------------------------------------------------------------------------

/** CRC-16 (poly 0x8005 reflected, init 0), bit by bit. */
export function dc09Crc(s: string): string {
  let crc = 0;
  for (const byte of Buffer.from(s, 'latin1')) {
    let b = byte;
    for (let i = 0; i < 8; i++) {
      const mix = (crc ^ b) & 1;
      crc >>= 1;
      if (mix) crc ^= 0xa001;
      b >>= 1;
    }
  }
  return crc.toString(16).toUpperCase().padStart(4, '0');
}

export function dc09Timestamp(ms: number): string {
  const d = new Date(ms);
  const two = (n: number) => (n < 10 ? `0${n}` : String(n));
  return `_${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())},${two(d.getUTCMonth() + 1)}-${two(d.getUTCDate())}-${d.getUTCFullYear()}`;
}

export interface Dc09Message {
  token: 'SIA-DCS' | 'ADM-CID' | 'NULL' | string;
  /** 0-9999 */
  seq: number;
  account: string;
  receiver?: string;
  prefix?: string;
  /** data inside the first brackets, e.g. `#1234|1101 00 001`; '' for a NULL poll */
  data: string;
  xdata?: string[];
  /** epoch ms; undefined: no timestamp (only allowed unencrypted) */
  ts?: number;
  /** hex AES key: the message is encrypted */
  key?: string;
}

/** The bytes of one message: LF crc 0LLL "id"seq R L #acct [ … CR. */
export function encodeDc09(m: Dc09Message): Buffer {
  const head = `"${m.key ? '*' : ''}${m.token}"${String(m.seq).padStart(4, '0')}R${m.receiver ?? '0'}L${m.prefix ?? '0'}#${m.account}[`;
  const after = `${m.data}]${(m.xdata ?? []).map((x) => `[${x}]`).join('')}${m.ts !== undefined ? dc09Timestamp(m.ts) : ''}`;
  const body = head + (m.key ? encrypt(after, m.key) : after);
  const len = body.length.toString(16).toUpperCase().padStart(4, '0');
  return Buffer.from(`\n${dc09Crc(body)}${len}${body}\r`, 'latin1');
}

const PAD = 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ.,;:!';

function encrypt(after: string, keyHex: string): string {
  const key = Buffer.from(keyHex, 'hex');
  const withBar = `|${after}`;
  const padLen = (16 - (withBar.length % 16)) % 16 || 16;
  let pad = '';
  for (let i = 0; i < padLen; i++) pad += PAD[randomInt(PAD.length)];
  const c = createCipheriv(`aes-${key.length * 8}-cbc`, key, Buffer.alloc(16));
  c.setAutoPadding(false);
  return Buffer.concat([c.update(pad + withBar, 'latin1'), c.final()]).toString('hex').toUpperCase();
}

export interface Dc09Answer {
  kind: 'ACK' | 'NAK' | 'DUH' | string;
  encrypted: boolean;
  seq: string;
  account: string;
  /** receiver time of a NAK or an encrypted ACK, epoch ms */
  ts?: number;
  crcOk: boolean;
  lengthOk: boolean;
  raw: string;
}

/** Read one answer (without LF/CR); an encrypted ACK is decrypted with the key. */
export function decodeDc09Answer(text: string, keyHex?: string): Dc09Answer | undefined {
  const body = text.slice(8);
  const m = /^"(\*?)([A-Z]+)"(\d{4})(?:R[0-9A-F]*)?(?:L[0-9A-F]*)?(?:#([0-9A-F]+)|A0)?\[(.*)$/.exec(body);
  if (!m) return undefined;
  const ans: Dc09Answer = {
    kind: m[2]!, encrypted: m[1] === '*', seq: m[3]!, account: m[4] ?? '', raw: text,
    crcOk: dc09Crc(body) === text.slice(0, 4).toUpperCase(),
    lengthOk: parseInt(text.slice(4, 8), 16) === body.length,
  };
  let rest = m[5]!;
  if (ans.encrypted && keyHex) {
    const key = Buffer.from(keyHex, 'hex');
    const d = createDecipheriv(`aes-${key.length * 8}-cbc`, key, Buffer.alloc(16));
    d.setAutoPadding(false);
    const plain = Buffer.concat([d.update(Buffer.from(rest, 'hex')), d.final()]).toString('latin1');
    rest = plain.slice(plain.search(/[|\]]/)).replace(/^\|/, '');
  }
  const t = /_(\d\d):(\d\d):(\d\d),(\d\d)-(\d\d)-(\d{4})$/.exec(rest);
  if (t) ans.ts = Date.UTC(+t[6]!, +t[4]! - 1, +t[5]!, +t[1]!, +t[2]!, +t[3]!);
  return ans;
}

// ---- the panel ---------------------------------------------------------------------------------------------------

type Waiter = { seq: string; resolve(ans: Dc09Answer): void };

export class Dc09SimTerminal implements ProtocolSimTerminal {
  readonly kind = 'dc09' as const;
  readonly identifier: string;
  readonly received: ReceivedCommand[] = [];
  /** every answer the receiver sent, in order (ACK, NAK, DUH) */
  readonly answers: Dc09Answer[] = [];
  private readonly listeners: ((c: ReceivedCommand) => void)[] = [];
  private readonly transport: 'tcp' | 'udp';
  private readonly ackTimeoutMs: number;
  private tcp: Socket | undefined;
  private udp: UdpSocket | undefined;
  private buf = '';
  private seq = 0;
  /** panel clock = local clock + offset (set from a NAK's receiver time) */
  private clockOffsetMs = 0;
  private waiters: Waiter[] = [];
  private lock: Promise<unknown> = Promise.resolve();
  private poller: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly o: ProtocolSimOptions) {
    this.identifier = o.identifier.toUpperCase();
    this.transport = o.transport ?? 'tcp';
    this.ackTimeoutMs = o.ackTimeoutMs ?? 5000;
  }

  onCommand(listener: (cmd: ReceivedCommand) => void): void {
    this.listeners.push(listener);
  }

  /** Open the path and have one NULL poll acknowledged. */
  async connect(): Promise<void> {
    this.closed = false;
    await this.open();
    await this.heartbeat();
  }

  sos(): Promise<number> {
    return this.event('ADM-CID', `#${this.identifier}|1101 00 001`);
  }

  fall(): Promise<number> {
    return this.event('ADM-CID', `#${this.identifier}|1102 00 001`);
  }

  heartbeat(): Promise<number> {
    return this.send('NULL', '');
  }

  /** Send any event (ADM-CID `#acct|Qeee gg zzz` or SIA-DCS `#acct|Nri1/PA001`) until acknowledged. */
  event(token: 'ADM-CID' | 'SIA-DCS', data: string): Promise<number> {
    return this.send(token, data);
  }

  /** Poll every intervalMs (what a panel does all day); stopPolling() is a panel whose path failed. */
  startPolling(intervalMs: number): void {
    this.stopPolling();
    this.poller = setInterval(() => void this.heartbeat().catch(() => undefined), intervalMs);
  }

  stopPolling(): void {
    if (this.poller) clearInterval(this.poller);
    this.poller = undefined;
  }

  drop(): void {
    this.stopPolling();
    this.tcp?.destroy();
    this.tcp = undefined;
    this.udp?.close();
    this.udp = undefined;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.stopPolling();
    const t = this.tcp;
    this.tcp = undefined;
    if (t) await new Promise<void>((r) => t.end(() => r()));
    this.udp?.close();
    this.udp = undefined;
    for (const w of this.waiters) w.resolve({ kind: 'closed', encrypted: false, seq: w.seq, account: '', crcOk: false, lengthOk: false, raw: '' });
    this.waiters = [];
  }

  /** Raw bytes to the receiver (tests of bad input). */
  async sendRaw(bytes: Buffer): Promise<void> {
    await this.open();
    this.write(bytes);
  }

  /** The next answer whatever it is (after sendRaw). */
  nextAnswer(timeoutMs = this.ackTimeoutMs): Promise<Dc09Answer | undefined> {
    return new Promise((resolve) => {
      const w: Waiter = { seq: '*', resolve };
      this.waiters.push(w);
      setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        resolve(undefined);
      }, timeoutMs).unref();
    });
  }

  private send(token: string, data: string): Promise<number> {
    const run = async (): Promise<number> => {
      this.seq = (this.seq % 9999) + 1;
      const seq = String(this.seq).padStart(4, '0');
      for (;;) {
        if (this.closed) throw new Error('the simulated panel is closed');
        await this.open();
        const msg: Dc09Message = { token, seq: this.seq, account: this.identifier, data, ts: Date.now() + this.clockOffsetMs };
        if (this.o.key) msg.key = this.o.key;
        const answer = this.waitFor(seq);
        this.write(encodeDc09(msg));
        const ans = await answer;
        if (ans?.kind === 'ACK') return Date.now();
        if (ans?.kind === 'NAK' && ans.ts !== undefined) this.clockOffsetMs = ans.ts - Date.now();
        if (ans?.kind === 'DUH') throw new Error(`the receiver answered DUH to ${token} (not taken: key or format)`);
        if (ans?.kind === 'closed') throw new Error('the simulated panel was closed');
        // no answer or NAK: try again shortly (a real panel waits its retry interval)
        await new Promise((r) => setTimeout(r, ans ? 200 : 50));
      }
    };
    const p = this.lock.then(run, run);
    this.lock = p.catch(() => undefined);
    return p;
  }

  private waitFor(seq: string): Promise<Dc09Answer | undefined> {
    return new Promise((resolve) => {
      const w: Waiter = { seq, resolve };
      this.waiters.push(w);
      setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        resolve(undefined);
      }, this.ackTimeoutMs).unref();
    });
  }

  private onAnswer(text: string): void {
    const ans = decodeDc09Answer(text, this.o.key);
    if (!ans) return;
    this.answers.push(ans);
    // an ACK/DUH answers its seq; a NAK (seq 0000) answers whatever is outstanding
    const i = this.waiters.findIndex((w) => w.seq === '*' || ans.kind === 'NAK' || w.seq === ans.seq);
    if (i >= 0) this.waiters.splice(i, 1)[0]!.resolve(ans);
  }

  private onData(chunk: Buffer): void {
    this.buf += chunk.toString('latin1');
    if (this.buf.length > 65536) this.buf = '';
    for (;;) {
      const lf = this.buf.indexOf('\n');
      const cr = this.buf.indexOf('\r', lf + 1);
      if (lf < 0 || cr < 0) break;
      const text = this.buf.slice(lf + 1, cr);
      this.buf = this.buf.slice(cr + 1);
      this.onAnswer(text);
    }
  }

  private write(bytes: Buffer): void {
    if (this.transport === 'udp') this.udp?.send(bytes);
    else this.tcp?.write(bytes);
  }

  private async open(): Promise<void> {
    if (this.transport === 'udp') {
      if (this.udp) return;
      const s = createSocket('udp4');
      s.on('message', (msg) => {
        this.buf = '';
        this.onData(msg);
      });
      s.on('error', () => undefined);
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.connect(this.o.port, this.o.host, () => {
          s.off('error', reject);
          resolve();
        });
      });
      this.udp = s;
      return;
    }
    if (this.tcp && !this.tcp.destroyed) return;
    const s = createConnection({ host: this.o.host, port: this.o.port });
    s.on('data', (c: Buffer) => this.onData(c));
    s.on('error', () => undefined);
    s.on('close', () => {
      if (this.tcp === s) this.tcp = undefined;
    });
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.once('connect', () => {
        s.off('error', reject);
        resolve();
      });
    });
    this.buf = '';
    this.tcp = s;
  }
}

export function createDc09SimTerminal(o: ProtocolSimOptions): Dc09SimTerminal {
  return new Dc09SimTerminal(o);
}
