// Half-open connections are found by the kernel: every connection the MQTT broker and the terminal-protocol
// listeners accept has TCP keepalive, set once on the listening socket and inherited (core/tcp-keepalive.ts). The
// listeners' own checks: test/protocols/listener.test.ts, test/gateway/tls.test.ts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import { keepAliveEach, keepAliveOnListener } from '../../core/tcp-keepalive.js';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { tcpTimerOf } from '../helpers/tcp.js';

async function listening(server: Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as { port: number }).port;
}

async function dial(port: number): Promise<Socket> {
  const s = connect(port, '127.0.0.1');
  await once(s, 'connect');
  return s;
}

describe('TCP keepalive on accepted connections', () => {
  it('a socket accepted from a listener with keepalive set inherits it; without, it has none', async () => {
    const accepted: Socket[] = [];
    const plain = createServer((s) => accepted.push(s));
    const kept = createServer((s) => accepted.push(s));
    const plainPort = await listening(plain);
    const keptPort = await listening(kept);
    // nothing left to do per socket: it inherits keepalive
    expect(keepAliveOnListener(kept)).not.toBe(keepAliveEach);
    const a = await dial(plainPort);
    const b = await dial(keptPort);
    try {
      await waitFor(() => accepted.length === 2, 'both accepted');
      expect(tcpTimerOf(plainPort, a.localPort!)).toBe('none');
      expect(tcpTimerOf(keptPort, b.localPort!)).toBe('keepalive');
    } finally {
      a.destroy();
      b.destroy();
      for (const s of accepted) s.destroy();
      plain.close();
      kept.close();
    }
  });

  describe('on the gateway', () => {
    let t: TestGateway;
    beforeAll(async () => {
      t = await startTestGateway();
    });
    afterAll(async () => t?.stop());

    it('an MQTT device\'s connection has keepalive', async () => {
      const dev = t.gw.registry.provision({ kind: 'call-phone', serial: 'KA-1' });
      const c = await t.connectDevice(dev.device.id, dev.secret);
      try {
        const local = (c.stream as Socket).localPort!;
        await waitFor(() => tcpTimerOf(t.gw.mqttPort, local) !== 'retransmit', 'the CONNACK acknowledged');
        expect(tcpTimerOf(t.gw.mqttPort, local)).toBe('keepalive');
      } finally {
        c.end(true);
      }
    });
  });
});
