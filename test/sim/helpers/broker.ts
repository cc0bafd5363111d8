// A plain aedes broker on an ephemeral port, for testing the simulated firmware without the gateway: it records
// every PUBLISH attempt (resends included) and can hold back a PUBACK to prove the device resends.
import net from 'node:net';
import { Aedes, type AedesPublishPacket, type Client } from 'aedes';

export interface Seen {
  clientId: string;
  topic: string;
  payload: string;
  qos: number;
  retain: boolean;
  at: number;
}

export interface TestBroker {
  port: number;
  url: string;
  /** every publish attempt from a client, in arrival order */
  seen: Seen[];
  /** decide per publish: 'ack' (default), 'hold' (never PUBACK) */
  gate: (p: AedesPublishPacket, c: Client) => 'ack' | 'hold';
  publish(topic: string, payload: unknown): Promise<void>;
  /** kill the listener and every connection abruptly (a gateway that died) */
  kill(): Promise<void>;
  /** listen again on the same port */
  revive(): Promise<void>;
  close(): Promise<void>;
}

export async function startBroker(port = 0): Promise<TestBroker> {
  const seen: Seen[] = [];
  const sockets = new Set<net.Socket>();
  let broker: Aedes;
  let server: net.Server;
  const tb: TestBroker = {
    port: 0,
    url: '',
    seen,
    gate: () => 'ack',
    async publish(topic, payload) {
      await new Promise<void>((resolve, reject) =>
        broker.publish(
          { cmd: 'publish', topic, payload: Buffer.from(JSON.stringify(payload)), qos: 1, retain: false, dup: false } as never,
          (err?: Error) => (err ? reject(err) : resolve()),
        ),
      );
    },
    async kill() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      await new Promise<void>((r) => broker.close(() => r()));
    },
    async revive() {
      await listen(tb.port);
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      if (!broker.closed) await new Promise<void>((r) => broker.close(() => r()));
    },
  };
  async function listen(p: number): Promise<void> {
    broker = await Aedes.createBroker({
      authorizePublish(client, packet, done) {
        if (client) {
          seen.push({
            clientId: client.id,
            topic: packet.topic,
            payload: packet.payload.toString(),
            qos: packet.qos,
            retain: packet.retain,
            at: Date.now(),
          });
          if (tb.gate(packet as AedesPublishPacket, client) === 'hold') return; // no callback: no PUBACK
        }
        done(null);
      },
    });
    server = net.createServer((s) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      broker.handle(s);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(p, '127.0.0.1', () => resolve());
    });
    tb.port = (server.address() as net.AddressInfo).port;
    tb.url = `mqtt://127.0.0.1:${tb.port}`;
  }
  await listen(port);
  return tb;
}

/** poll until `cond` holds (no fixed sleeps: robust on a loaded machine) */
export async function until(cond: () => boolean | Promise<boolean>, timeoutMs = 15_000, what = 'condition'): Promise<void> {
  const start = Date.now();
  for (;;) {
    if (await cond()) return;
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
