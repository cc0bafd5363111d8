// Cluster mode, on a real RabbitMQ node: when RabbitMQ's node dies, the eldergate node loses its consuming connection
// first and its commands connection a few milliseconds later. If it asks the second one to close in between, the
// Close meets a dead socket and amqplib's close() never settles; the node used to wait on it for good, never
// reconnecting, and no partition of it was consumed again (seen in test/cluster/cluster-faults.test.ts: 60 s of
// confirmed alarms sitting in the queues, nobody taking them). A TCP proxy of this file's own, between eldergate and
// RabbitMQ, makes that sequence happen every time: it stops passing what the node sends (so the Close is lost), resets
// the consuming connection, and a moment later the commands connection.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, connect as tcpConnect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import amqp from 'amqplib';
import { waitFor } from '../helpers/gateway.js';
import { startRabbitTestGateway, type RabbitTestGateway } from '../helpers/rabbit-gateway.js';
import { closeAmqp } from '../../gateway/cluster/amqp-close.js';

// (not test/console/proxy.ts: that one cuts the whole link; this needs each connection held and reset on its own, in
// the order the node opened them)
/** A connection through the proxy: the client's socket and RabbitMQ's, in the order the proxy accepted them. */
interface Pair {
  client: Socket;
  server: Socket;
  /** while true, what the client sends is dropped (RabbitMQ never sees it) */
  held: boolean;
  closed: boolean;
}

async function startProxy(targetPort: number): Promise<{ port: number; pairs: Pair[]; close(): Promise<void> }> {
  const pairs: Pair[] = [];
  const server: Server = createServer((client) => {
    const upstream = tcpConnect(targetPort, '127.0.0.1');
    const pair: Pair = { client, server: upstream, held: false, closed: false };
    pairs.push(pair);
    client.on('data', (d) => { if (!pair.held) upstream.write(d); });
    upstream.on('data', (d) => client.write(d));
    const end = () => {
      pair.closed = true;
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as { port: number }).port,
    pairs,
    async close() {
      for (const p of pairs) {
        p.client.destroy();
        p.server.destroy();
      }
      await new Promise((r) => server.close(r));
    },
  };
}

/** what RabbitMQ's node dying does to a connection through HAProxy: the client's socket is reset */
const reset = (p: Pair) => {
  p.client.resetAndDestroy();
  p.server.destroy();
};
const open = (pairs: Pair[]) => pairs.filter((p) => !p.closed);

describe('cluster mode: a close that meets a dead socket', () => {
  const dir = mkdtempSync(join(tmpdir(), 'eldergate-amqp-close-'));
  let g: RabbitTestGateway;
  let proxy: Awaited<ReturnType<typeof startProxy>> | undefined;
  /** a connection of the test's own, through the proxy, as eldergate's service user */
  const connectViaProxy = async () => {
    const c = await amqp.connect({
      protocol: 'amqp', hostname: '127.0.0.1', port: proxy!.port, heartbeat: 0,
      username: g.rabbit.serviceUser, password: readFileSync(g.rabbit.passwordFile, 'utf8').trim(),
    });
    c.on('error', () => undefined);
    return { c, pair: proxy!.pairs.at(-1)! };
  };

  beforeAll(async () => {
    // band 25: no other test file's (grep `band:` and freeBasePort under test/); the node reaches RabbitMQ only
    // through the proxy
    g = await startRabbitTestGateway({
      dir, band: 25, rabbitmq: { partitions: 2 },
      amqpVia: async (url) => {
        proxy = await startProxy(Number(new URL(url).port));
        return `amqp://127.0.0.1:${proxy.port}`;
      },
    });
  }, 120_000);

  afterAll(async () => {
    await g?.stop();
    await proxy?.close();
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('amqplib: close() never settles when the socket dies while it waits for CloseOk; closeAmqp() is done at the close', { timeout: 30_000 }, async () => {
    // the library's behaviour this module exists for (if a later amqplib settles it, this first check fails and
    // gateway/cluster/amqp-close.ts can say so)
    const a = await connectViaProxy();
    a.pair.held = true;
    let settled = false;
    a.c.close().then(() => { settled = true; }, () => { settled = true; });
    const closed = new Promise<void>((r) => a.c.once('close', () => r()));
    await sleep(200);
    reset(a.pair);
    await closed;
    await sleep(1000);
    expect(settled, 'amqplib settled a close whose socket died before CloseOk').toBe(false);

    // the same sequence through closeAmqp, with a fallback far beyond the test's time: only the close can end it
    const b = await connectViaProxy();
    b.pair.held = true;
    const done = closeAmqp(b.c, 600_000);
    await sleep(200);
    reset(b.pair);
    await done;

    // and a server that never answers on a live socket: given up after its time, the socket destroyed
    const c = await connectViaProxy();
    c.pair.held = true;
    await closeAmqp(c.c, 300);
    await waitFor(() => c.pair.closed || undefined, 'the connection given up, its socket destroyed', 5_000);
  });

  it('the node reconnects and consumes its partitions again when its commands connection dies in the middle of its close', { timeout: 90_000 }, async () => {
    const { t } = g;
    const ours = () => open(proxy!.pairs);
    // the node's two: the consuming connection, opened first, then the commands connection
    await waitFor(() => ours().length === 2 || undefined, "the node's two connections through the proxy", 30_000);
    const [consuming, commands] = ours() as [Pair, Pair];
    const before = proxy!.pairs.length;
    // RabbitMQ's node dies: nothing more the node sends reaches it; the consuming connection is reset first ...
    consuming.held = true;
    commands.held = true;
    reset(consuming);
    // ... the node closes its commands connection (the Close is lost), and then that socket is reset too
    await sleep(300);
    reset(commands);
    await waitFor(() => (t.gw.cluster!.connected() && proxy!.pairs.length >= before + 2) || undefined,
      'the node connected to RabbitMQ again (it waited on a close that never settles)', 30_000);

    // and it takes what devices send: an SOS is stored and opens its incident
    const dev = await t.provision('call-phone');
    const phone = await g.connect(dev.id, dev.secret);
    await phone.publishAsync(`devices/${dev.id}/events`, JSON.stringify({ ts: Date.now(), seq: 1, type: 'sos' }), { qos: 1 });
    const incidents = await waitFor(async () => {
      const items = (await t.api('GET', `/api/incidents?deviceId=${dev.id}`)).body.items as { type: string }[];
      return items.length ? items : undefined;
    }, 'the SOS incident from a device after the reconnect', 30_000);
    expect(incidents.map((i) => i.type)).toEqual(['sos']);
  });
});
