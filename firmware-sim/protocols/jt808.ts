// A simulated JT/T 808 location terminal (a pendant / personal tracker) speaking to the gateway over TCP, from its own
// encoder and reader (an outside client: a bug in the gateway's codec is not mirrored here).
//
// What it does, as a terminal does:
// - connect(): opens the socket; without an authentication code it registers (0x0100) and keeps the code of the 0x8100
//   in `authCode`; then authenticates (0x0102) and resolves on the 0x8001 result 0 for it.
// - sos() / fall(): 0x0200 with alarm bit 0 (emergency) / bit 30 (rollover warning, the gateway's fall); sent again with
//   the same flow serial every ackTimeoutMs until the 0x8001 for that serial arrives; resolves with its arrival time.
// - position(): 0x0200 without alarm; heartbeat(): 0x0002; both resolved by their 0x8001.
// - platform messages are decoded into `received` and answered with 0x0001 (and 0x0201 with the last position for a
//   0x8201 location query): 0x8201 → locate-now, 0x8300 → acknowledge-alarm when its emergency flag is set, else
//   send-text, 0x8400 → call-back, 0x8401 → set-contacts.
import { createConnection, type Socket } from 'node:net';
import type { ProtocolSimOptions, ProtocolSimTerminal, ReceivedCommand } from './types.js';

// ---- the terminal's own codec --------------------------------------------------------------------------------------

function bcd(digits: string, bytes: number): Buffer {
  const d = digits.padStart(bytes * 2, '0').slice(-bytes * 2);
  return Buffer.from(d, 'hex'); // decimal digits written as hex nibbles are BCD
}

function checkCode(b: Buffer): number {
  return b.reduce((x, y) => x ^ y, 0);
}

/** one message on the wire: 7E, header + body + check code with 7E/7D escaped, 7E */
export function jt808SimFrame(msgId: number, phone: string, serial: number, body: Buffer, edition: 2013 | 2019 = 2013): Buffer {
  const head: number[] = [msgId >> 8, msgId & 0xff, ((body.length | (edition === 2019 ? 0x4000 : 0)) >> 8) & 0xff, body.length & 0xff];
  if (edition === 2019) head.push(1);
  const plain = Buffer.concat([Buffer.from(head), bcd(phone, edition === 2019 ? 10 : 6), Buffer.from([serial >> 8, serial & 0xff]), body]);
  const content = Buffer.concat([plain, Buffer.from([checkCode(plain)])]);
  const out: number[] = [0x7e];
  for (const b of content) {
    if (b === 0x7e) out.push(0x7d, 0x02);
    else if (b === 0x7d) out.push(0x7d, 0x01);
    else out.push(b);
  }
  out.push(0x7e);
  return Buffer.from(out);
}

export interface SimMessage { msgId: number; serial: number; body: Buffer; raw: string }

/** Reads the gateway's messages out of a byte stream; what does not check out is skipped. */
export class Jt808SimReader {
  private buf = Buffer.alloc(0);
  push(chunk: Buffer): SimMessage[] {
    this.buf = Buffer.concat([this.buf, chunk]);
    const out: SimMessage[] = [];
    for (;;) {
      const start = this.buf.indexOf(0x7e);
      if (start < 0) {
        this.buf = Buffer.alloc(0);
        return out;
      }
      const end = this.buf.indexOf(0x7e, start + 1);
      if (end < 0) {
        this.buf = this.buf.subarray(start);
        return out;
      }
      const inner = this.buf.subarray(start + 1, end);
      this.buf = this.buf.subarray(end);
      if (inner.length === 0) continue;
      const plain: number[] = [];
      for (let i = 0; i < inner.length; i++) {
        if (inner[i] === 0x7d) {
          plain.push(inner[i + 1] === 0x02 ? 0x7e : 0x7d);
          i++;
        } else plain.push(inner[i]!);
      }
      const p = Buffer.from(plain);
      if (p.length < 13 || checkCode(p.subarray(0, -1)) !== p[p.length - 1]) continue;
      const props = p.readUInt16BE(2);
      const headLen = props & 0x4000 ? 17 : 12;
      this.buf = this.buf.subarray(1); // a good frame's closing 7E is its own
      out.push({ msgId: p.readUInt16BE(0), serial: p.readUInt16BE(headLen - 2), body: p.subarray(headLen, p.length - 1), raw: `7e${inner.toString('hex')}7e` });
    }
  }
}

/** The location body: alarm, status (located, S, W), lat/lon 1e-6°, altitude, speed, course, GMT+8 BCD time, battery. */
export function jt808SimLocation(alarm: number, p: { lat: number; lon: number } | undefined, at: number, battery: number): Buffer {
  const b = Buffer.alloc(28);
  b.writeUInt32BE(alarm >>> 0, 0);
  const status = (p ? 0x02 : 0) | (p && p.lat < 0 ? 0x04 : 0) | (p && p.lon < 0 ? 0x08 : 0);
  b.writeUInt32BE(status, 4);
  b.writeUInt32BE(p ? Math.round(Math.abs(p.lat) * 1e6) : 0, 8);
  b.writeUInt32BE(p ? Math.round(Math.abs(p.lon) * 1e6) : 0, 12);
  const d = new Date(at + 8 * 3600_000);
  const f = [d.getUTCFullYear() % 100, d.getUTCMonth() + 1, d.getUTCDate(), d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds()];
  Buffer.from(f.map((n) => Math.floor(n / 10) * 16 + (n % 10))).copy(b, 22);
  // extras: 0x30 signal (CSQ 24), 0x31 satellites, 0xE1 battery %
  return Buffer.concat([b, Buffer.from([0x30, 1, 24, 0x31, 1, p ? 8 : 0, 0xe1, 1, battery])]);
}

export const JT808_ALARM = { sos: 1 << 0, rollover: 1 << 30 } as const;

// ---- the terminal -----------------------------------------------------------------------------------------------

export class Jt808SimTerminal implements ProtocolSimTerminal {
  readonly kind = 'jt808' as const;
  readonly identifier: string;
  readonly received: ReceivedCommand[] = [];
  /** the authentication code the gateway issued (kept as a terminal keeps it in flash) */
  authCode: string | undefined;
  battery = 80;
  private readonly edition: 2013 | 2019;
  private readonly ackTimeoutMs: number;
  private socket: Socket | undefined;
  private readonly reader = new Jt808SimReader();
  private serial = 0;
  private last: { lat: number; lon: number } | undefined;
  private readonly listeners: ((c: ReceivedCommand) => void)[] = [];
  /** our serial → who waits for the gateway's answer to it (0x8001 / 0x8100) */
  private readonly waiting = new Map<number, (m: SimMessage, result: number) => void>();
  /** requests still resending: close() stops them (a terminal that is switched off resends nothing) */
  private readonly resending = new Set<() => void>();
  private closed = false;

  constructor(private readonly opts: ProtocolSimOptions & { edition?: 2013 | 2019 }) {
    this.identifier = opts.identifier;
    this.authCode = opts.authCode;
    this.edition = opts.edition ?? 2013;
    this.ackTimeoutMs = opts.ackTimeoutMs ?? 5000;
  }

  async connect(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const s = createConnection({ host: this.opts.host, port: this.opts.port }, () => resolve());
      s.once('error', reject);
      s.on('data', (chunk: Buffer) => {
        for (const m of this.reader.push(chunk)) this.onMessage(m);
      });
      this.socket = s;
    });
    this.socket!.on('error', () => undefined);
    if (this.authCode === undefined) {
      // province, city, manufacturer[5], model[20], terminal id[7], plate colour 0, no plate (2013 layout)
      const body = Buffer.concat([Buffer.alloc(4), pad('ELDSM', 5), pad('ELDERGATE-SIM', 20), pad('SIM0001', 7), Buffer.from([0])]);
      const { m, result } = await this.request(0x0100, body, 1);
      if (result !== 0) throw new Error(`registration refused: 0x8100 result ${result}`);
      this.authCode = m.body.subarray(3).toString('latin1');
    }
    const code = Buffer.from(this.authCode, 'latin1');
    const body = this.edition === 2019
      ? Buffer.concat([Buffer.from([code.length]), code, pad('860000000000001', 15), pad('sim-1.0', 20)])
      : code;
    const { result } = await this.request(0x0102, body, 1);
    if (result !== 0) throw new Error(`authentication refused: 0x8001 result ${result}`);
  }

  sos(position?: { lat: number; lon: number }): Promise<number> {
    if (position) this.last = position;
    return this.acked(0x0200, jt808SimLocation(JT808_ALARM.sos, position ?? this.last, Date.now(), this.battery));
  }

  fall(position?: { lat: number; lon: number }): Promise<number> {
    if (position) this.last = position;
    return this.acked(0x0200, jt808SimLocation(JT808_ALARM.rollover, position ?? this.last, Date.now(), this.battery));
  }

  position(lat: number, lon: number): Promise<number> {
    this.last = { lat, lon };
    return this.acked(0x0200, jt808SimLocation(0, this.last, Date.now(), this.battery));
  }

  heartbeat(): Promise<number> {
    return this.acked(0x0002, Buffer.alloc(0));
  }

  onCommand(listener: (cmd: ReceivedCommand) => void): void {
    this.listeners.push(listener);
  }

  drop(): void {
    this.socket?.destroy();
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const stop of [...this.resending]) stop();
    const s = this.socket;
    if (!s || s.destroyed) return;
    await new Promise<void>((resolve) => {
      s.once('close', () => resolve());
      s.end();
      setTimeout(() => s.destroy(), 2000).unref();
    });
  }

  /** resolves with the arrival time of a 0x8001 result 0 for it, resending until then */
  private async acked(msgId: number, body: Buffer): Promise<number> {
    for (;;) {
      const { result } = await this.request(msgId, body, Infinity);
      if (result === 0) return Date.now();
      if (this.closed) throw new Error('the terminal was closed');
      await new Promise((r) => setTimeout(r, this.ackTimeoutMs));
    }
  }

  /** send with a new serial, again (same serial) every ackTimeoutMs, up to `tries` times; the gateway's answer to it */
  private request(msgId: number, body: Buffer, tries: number): Promise<{ m: SimMessage; result: number }> {
    const serial = this.serial;
    this.serial = (this.serial + 1) & 0xffff;
    const bytes = jt808SimFrame(msgId, this.identifier, serial, body, this.edition);
    return new Promise((resolve, reject) => {
      let sent = 0;
      let timer: NodeJS.Timeout | undefined;
      const stop = () => {
        clearTimeout(timer);
        this.waiting.delete(serial);
        this.resending.delete(stop);
        reject(new Error(`0x${msgId.toString(16).padStart(4, '0')} not answered: the terminal was closed`));
      };
      if (this.closed) return stop();
      this.resending.add(stop);
      const send = () => {
        if (sent >= tries) {
          this.waiting.delete(serial);
          this.resending.delete(stop);
          reject(new Error(`no answer to 0x${msgId.toString(16).padStart(4, '0')} after ${tries} tries`));
          return;
        }
        sent++;
        if (this.socket && !this.socket.destroyed) this.socket.write(bytes);
        timer = setTimeout(send, this.ackTimeoutMs);
      };
      this.waiting.set(serial, (m, result) => {
        clearTimeout(timer);
        this.waiting.delete(serial);
        this.resending.delete(stop);
        resolve({ m, result });
      });
      send();
    });
  }

  private reply(msgId: number, body: Buffer): void {
    const serial = this.serial;
    this.serial = (this.serial + 1) & 0xffff;
    if (this.socket && !this.socket.destroyed) this.socket.write(jt808SimFrame(msgId, this.identifier, serial, body, this.edition));
  }

  private onMessage(m: SimMessage): void {
    if ((m.msgId === 0x8001 || m.msgId === 0x8100) && m.body.length >= 3) {
      const replySerial = m.body.readUInt16BE(0);
      const result = m.msgId === 0x8001 ? m.body[4] ?? 1 : m.body[2]!;
      this.waiting.get(replySerial)?.(m, result);
      return;
    }
    const answer = (result: number) => this.reply(0x0001, Buffer.from([m.serial >> 8, m.serial & 0xff, m.msgId >> 8, m.msgId & 0xff, result]));
    let cmd: Omit<ReceivedCommand, 'raw' | 'at'>;
    const text = (b: Buffer) => b.toString('latin1');
    switch (m.msgId) {
      case 0x8201:
        cmd = { type: 'locate-now', params: {} };
        break;
      case 0x8300: {
        const flag = m.body[0] ?? 0;
        const t = text(m.body.subarray(this.edition === 2019 ? 2 : 1));
        cmd = { type: flag & 0x01 ? 'acknowledge-alarm' : 'send-text', params: { text: t, flag } };
        break;
      }
      case 0x8400:
        cmd = { type: 'call-back', params: { number: text(m.body.subarray(1)), monitor: m.body[0] === 1 } };
        break;
      case 0x8401: {
        const contacts: { number: string; name: string; flag: number }[] = [];
        let at = 2;
        for (let i = 0; i < (m.body[1] ?? 0) && at < m.body.length; i++) {
          const flag = m.body[at]!;
          const nl = m.body[at + 1]!;
          const number = text(m.body.subarray(at + 2, at + 2 + nl));
          const ml = m.body[at + 2 + nl]!;
          const name = text(m.body.subarray(at + 3 + nl, at + 3 + nl + ml));
          contacts.push({ number, name, flag });
          at += 3 + nl + ml;
        }
        cmd = { type: 'set-contacts', params: { mode: m.body[0], contacts } };
        break;
      }
      default:
        cmd = { type: 'other', params: { msgId: m.msgId } };
    }
    const full: ReceivedCommand = { ...cmd, raw: m.raw, at: Date.now() };
    this.received.push(full);
    for (const l of this.listeners) l(full);
    if (m.msgId === 0x8201) {
      // the answer to a location query is 0x0201 (reply serial + location), not a general response
      const loc = jt808SimLocation(0, this.last, Date.now(), this.battery);
      this.reply(0x0201, Buffer.concat([Buffer.from([m.serial >> 8, m.serial & 0xff]), loc]));
    } else {
      answer(cmd.type === 'other' ? 3 : 0);
    }
  }
}

function pad(s: string, n: number): Buffer {
  const b = Buffer.alloc(n);
  b.write(s.slice(0, n), 'latin1');
  return b;
}
