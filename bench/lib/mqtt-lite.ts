// A deliberately small MQTT 3.1.1 client for load generators: one object and one parser per connection, PUBLISH
// encoded by hand (no per-message allocations beyond the packet buffer), no reconnect logic of its own (the storm
// figure drives the firmware's back-off itself). mqtt.js costs ~10× more memory and CPU per connection, which would
// make the generator, not the broker, the thing measured.
import net from 'node:net';
import type { Duplex } from 'node:stream';
import mqttPacket from 'mqtt-packet';

export interface LiteConnect {
  clientId: string;
  username?: string;
  password?: string;
  keepaliveS?: number;
  /** resolve or reject within this many ms (no CONNACK = failed) */
  timeoutMs?: number;
  will?: { topic: string; payload: string; qos: 0 | 1; retain: boolean };
}

export interface TcpTarget {
  host: string;
  port: number;
  /** loopback source address (127.0.0.2 …): each one has its own ~28k ephemeral ports */
  localAddress?: string;
}

export class ConnectRefused extends Error {
  constructor(readonly returnCode: number) {
    super(`CONNACK return code ${returnCode}`);
  }
}

type PacketLike = { cmd: string; messageId?: number; returnCode?: number; topic?: string; payload?: Buffer | string };

export class LiteClient {
  connected = false;
  closed = false;
  private nextId = 1;
  private pingTimer: NodeJS.Timeout | null = null;
  /** QoS 1 PUBACK callbacks by message id */
  onPuback: ((messageId: number) => void) | null = null;
  onMessage: ((topic: string, payload: Buffer, qos: number, messageId: number) => void) | null = null;
  /** answer QoS 1 deliveries at once; a subscriber that acknowledges only once durable sets this false and calls puback() */
  autoAck = true;
  onClose: ((hadError: boolean) => void) | null = null;

  constructor(readonly stream: Duplex) {}

  /** open a TCP connection and complete CONNECT; rejects on refusal, socket error or timeout */
  static tcp(target: TcpTarget, c: LiteConnect): Promise<LiteClient> {
    const socket = net.connect({ host: target.host, port: target.port, ...(target.localAddress ? { localAddress: target.localAddress } : {}), noDelay: true });
    socket.setNoDelay(true);
    return new LiteClient(socket).handshake(c);
  }

  /** complete CONNECT over any duplex stream (in-memory pairs for the 100k-device figure) */
  handshake(c: LiteConnect): Promise<LiteClient> {
    const stream = this.stream;
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    return new Promise((resolve, reject) => {
      let settled = false;
      const timer = setTimeout(() => fail(new Error('no CONNACK in time')), c.timeoutMs ?? 10_000);
      const fail = (err: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.destroy();
        reject(err);
      };
      parser.on('packet', (p: PacketLike) => {
        if (p.cmd === 'connack') {
          if (settled) return;
          if (p.returnCode !== 0) return fail(new ConnectRefused(p.returnCode ?? -1));
          settled = true;
          clearTimeout(timer);
          this.connected = true;
          const ka = c.keepaliveS ?? 0;
          if (ka > 0) {
            // ping at half the keepalive; one timer per connection is cheap (timers share a list per duration)
            this.pingTimer = setInterval(() => this.write(PINGREQ), (ka * 1000) / 2);
            this.pingTimer.unref();
          }
          resolve(this);
        } else if (p.cmd === 'puback') {
          this.onPuback?.(p.messageId!);
        } else if (p.cmd === 'publish') {
          const payload = typeof p.payload === 'string' ? Buffer.from(p.payload) : p.payload!;
          const qos = (p as { qos?: number }).qos ?? 0;
          this.onMessage?.(p.topic!, payload, qos, p.messageId ?? 0);
          if (qos === 1 && this.autoAck) this.write(pubackOf(p.messageId!));
        }
      });
      parser.on('error', (err: Error) => fail(err));
      stream.on('data', (chunk: Buffer) => parser.parse(chunk));
      stream.on('error', (err: Error) => fail(err));
      stream.on('close', () => {
        const was = this.connected;
        this.connected = false;
        this.closed = true;
        if (this.pingTimer) clearInterval(this.pingTimer);
        if (!settled) fail(new Error('connection closed before CONNACK'));
        else if (was) this.onClose?.(false);
      });
      const connect: Record<string, unknown> = {
        cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: c.clientId, keepalive: c.keepaliveS ?? 0,
      };
      if (c.username !== undefined) connect.username = c.username;
      if (c.password !== undefined) connect.password = Buffer.from(c.password);
      if (c.will) connect.will = { ...c.will, payload: Buffer.from(c.will.payload) };
      stream.write(mqttPacket.generate(connect as never));
    });
  }

  /** PUBLISH; returns the message id (QoS 1) or 0, and whether the stream accepted it without buffering */
  publish(topic: string, payload: string, qos: 0 | 1): { messageId: number; flushed: boolean } {
    const messageId = qos === 1 ? this.takeId() : 0;
    const flushed = this.write(encodePublish(topic, payload, qos, messageId));
    return { messageId, flushed };
  }

  puback(messageId: number): void {
    this.write(pubackOf(messageId));
  }

  subscribe(topic: string, qos: 0 | 1): void {
    this.write(mqttPacket.generate({ cmd: 'subscribe', messageId: this.takeId(), subscriptions: [{ topic, qos }] } as never));
  }

  write(buf: Buffer): boolean {
    if (this.closed || this.stream.destroyed) return false;
    return this.stream.write(buf);
  }

  /** wait until the stream's buffer drains (flow control for the flood figure) */
  drained(): Promise<void> {
    return new Promise((resolve) => {
      if (this.closed || !(this.stream as { writableNeedDrain?: boolean }).writableNeedDrain) return resolve();
      const done = () => {
        this.stream.off('drain', done);
        this.stream.off('close', done);
        resolve();
      };
      this.stream.once('drain', done);
      this.stream.once('close', done);
    });
  }

  /** drop the connection without DISCONNECT (the network went away: the broker publishes the Last Will) */
  destroy(): void {
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = null;
    this.stream.destroy();
  }

  /** polite DISCONNECT then close */
  end(): void {
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = null;
    if (!this.closed) this.stream.end(DISCONNECT);
  }

  private takeId(): number {
    const id = this.nextId;
    this.nextId = id >= 65535 ? 1 : id + 1;
    return id;
  }
}

const PINGREQ = Buffer.from([0xc0, 0x00]);
const DISCONNECT = Buffer.from([0xe0, 0x00]);

function pubackOf(id: number): Buffer {
  return Buffer.from([0x40, 0x02, id >> 8, id & 0xff]);
}

/** MQTT 3.1.1 §3.3: fixed header, remaining length (varint), topic (u16 length + UTF-8), [packet id], payload */
export function encodePublish(topic: string, payload: string, qos: 0 | 1, messageId: number): Buffer {
  const topicLen = Buffer.byteLength(topic);
  const payloadLen = Buffer.byteLength(payload);
  const remaining = 2 + topicLen + (qos > 0 ? 2 : 0) + payloadLen;
  let lenBytes = 1;
  for (let r = remaining; r >= 128; r = Math.floor(r / 128)) lenBytes++;
  const buf = Buffer.allocUnsafe(1 + lenBytes + remaining);
  let o = 0;
  buf[o++] = 0x30 | (qos << 1);
  let r = remaining;
  do {
    let b = r % 128;
    r = Math.floor(r / 128);
    if (r > 0) b |= 0x80;
    buf[o++] = b;
  } while (r > 0);
  buf.writeUInt16BE(topicLen, o);
  o += 2;
  o += buf.write(topic, o);
  if (qos > 0) {
    buf.writeUInt16BE(messageId, o);
    o += 2;
  }
  buf.write(payload, o);
  return buf;
}
