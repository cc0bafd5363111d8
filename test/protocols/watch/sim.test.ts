// The simulated watch (firmware-sim/protocols/watch.ts) against a bare TCP server playing the gateway: AL is resent
// until answered, UD resolves at send, commands are decoded and echoed.
import { createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WatchSimTerminal, decodeWatchCommand, watchFrame } from '../../../firmware-sim/protocols/watch.js';
import { waitFor } from '../../helpers/gateway.js';
import { createWatchFramer } from '../../../gateway/protocols/watch/framer.js';

let server: Server | undefined;
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await new Promise((r) => (server ? server.close(r) : r(undefined)));
  server = undefined;
});

/** a server that hands every frame's content to `on`, which may answer */
async function fakeGateway(on: (content: string, sock: Socket) => void): Promise<number> {
  server = createServer((sock) => {
    sockets.push(sock);
    const framer = createWatchFramer(8192);
    sock.on('data', (d) => {
      for (const f of framer.push(d)) if (f.ok) on(f.frame.content.toString(), sock);
    });
    sock.on('error', () => {});
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  return (server!.address() as { port: number }).port;
}

describe('simulated watch', () => {
  it('connect waits for LK; sos resends AL until the AL reply; position resolves at send', { timeout: 20_000 }, async () => {
    const got: string[] = [];
    let alSeen = 0;
    const port = await fakeGateway((content, sock) => {
      got.push(content.split(',')[0]!);
      if (content.startsWith('LK')) sock.write(watchFrame('3G', '1234567890', 'LK'));
      if (content.startsWith('AL') && ++alSeen === 2) sock.write(watchFrame('3G', '1234567890', 'AL'));
    });
    const w = new WatchSimTerminal({ host: '127.0.0.1', port, identifier: '1234567890', ackTimeoutMs: 200 });
    await w.connect();
    const at = await w.sos({ lat: -33.48, lon: -70.76 });
    expect(at).toBeGreaterThan(0);
    // answered only the second time: sent at least twice (more if this machine is slow; no tight timing here)
    expect(alSeen).toBeGreaterThanOrEqual(2);
    await w.position(1, 2);
    await waitFor(() => (got.at(-1) === 'UD' ? true : undefined), 'the UD at the server');
    expect(new Set(got)).toEqual(new Set(['LK', 'AL', 'UD']));
    await w.close();
  });

  it('decodes and echoes commands', { timeout: 20_000 }, async () => {
    const echoes: string[] = [];
    let sock: Socket | undefined;
    const port = await fakeGateway((content, s) => {
      sock = s;
      if (content.startsWith('LK')) s.write(watchFrame('SG', '1234567890', 'LK'));
      else echoes.push(content);
    });
    const w = new WatchSimTerminal({ host: '127.0.0.1', port, identifier: '1234567890', manufacturer: 'SG' });
    await w.connect();
    sock!.write('[SG*1234567890*0013*CALL,+8613800138000][SG*1234567890*0002*CR]');
    await waitFor(() => (echoes.length >= 3 ? true : undefined), 'two echoes and a UD at the server');
    expect(w.received.map((c) => [c.type, c.params])).toEqual([['call-back', { number: '+8613800138000' }], ['locate-now', {}]]);
    expect(echoes[0]).toBe('CALL');
    expect(echoes[1]).toBe('CR');
    expect(echoes[2]).toMatch(/^UD,/);
    w.drop();
  });

  it('reads MESSAGE, SOS and PHB', () => {
    expect(decodeWatchCommand('MESSAGE,00480065006c007000200069007300200063006f006d0069006e0067', 'Help is coming')).toEqual({ type: 'acknowledge-alarm', params: { text: 'Help is coming' } });
    expect(decodeWatchCommand('MESSAGE,0074006500780074', 'Help is coming')).toEqual({ type: 'send-text', params: { text: 'text' } });
    expect(decodeWatchCommand('SOS,120,,', 'x')).toEqual({ type: 'set-contacts', params: { sos: ['120', '', ''] } });
    expect(decodeWatchCommand('PHB,13800138001,004c0069', 'x')).toEqual({ type: 'set-contacts', params: { family: [{ number: '13800138001', name: 'Li' }], part: 'PHB' } });
    expect(decodeWatchCommand('AL', 'x')).toBeUndefined();
  });
});
