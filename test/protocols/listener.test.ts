// The listener layer every terminal protocol shares (gateway/protocols/listener.ts), on real TCP and UDP sockets, with
// a line protocol made for the test: "ID <device>" binds, "SLOW <n>" is answered after n ms, anything else is echoed.
import { afterEach, describe, expect, it } from 'vitest';
import { connect, type Socket } from 'node:net';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { createLogger } from '../../core/logger.js';
import { startProtocolListener, type ListenerEvents, type ProtocolListener } from '../../gateway/protocols/listener.js';
import type { Framed, ListenerSettings, Peer, ProtocolHandler } from '../../gateway/protocols/types.js';
import { tcpTimerOf } from '../helpers/tcp.js';

const log = createLogger('silent');

function lineFramer(max: number) {
  let buf = Buffer.alloc(0);
  return {
    buffered: () => buf.length,
    push(chunk: Buffer): Framed<string>[] {
      buf = Buffer.concat([buf, chunk]);
      const out: Framed<string>[] = [];
      for (let i = buf.indexOf(10); i >= 0; i = buf.indexOf(10)) {
        const raw = buf.subarray(0, i);
        buf = buf.subarray(i + 1);
        if (raw.length > max) out.push({ ok: false, reason: 'line too long', raw });
        else out.push({ ok: true, frame: raw.toString(), raw });
      }
      if (buf.length > max) {
        out.push({ ok: false, reason: `more than ${max} bytes without a newline`, raw: buf.subarray(0, 64) });
        buf = Buffer.alloc(0);
      }
      return out;
    },
  };
}

const settings = (over: Partial<ListenerSettings> = {}): ListenerSettings => ({
  enabled: true, host: '127.0.0.1', port: 0, udp: false, maxConnections: 100, maxConnectionsPerAddress: 10,
  idleTimeoutMs: 60_000, maxFrameBytes: 64, bindTimeoutMs: 60_000, ...over,
});

interface Seen { refusals: string[]; limited: string[]; conflicts: string[]; bound: string[]; unbound: string[]; order: string[] }

async function start(over: Partial<ListenerSettings> = {}) {
  const seen: Seen = { refusals: [], limited: [], conflicts: [], bound: [], unbound: [], order: [] };
  const handler: ProtocolHandler<string> = {
    name: 'watch',
    framer: () => lineFramer(over.maxFrameBytes ?? 64),
    async onFrame(peer: Peer, line: string) {
      seen.order.push(line);
      const [cmd, arg] = line.split(' ');
      if (cmd === 'ID') {
        peer.bind(arg!);
        peer.send(Buffer.from(`OK ${arg} ${peer.flags.join(',')}\n`));
      } else if (cmd === 'SLOW') {
        await new Promise((r) => setTimeout(r, Number(arg)));
        peer.send(Buffer.from(`DONE ${arg}\n`));
      } else if (cmd === 'BOOM') {
        throw new Error('a bug in the protocol');
      } else peer.send(Buffer.from(`ECHO ${line}\n`));
    },
  };
  const events: ListenerEvents = {
    bound: (p) => seen.bound.push(p.deviceId!),
    unbound: (p) => seen.unbound.push(p.deviceId!),
    conflict: (id) => seen.conflicts.push(id),
    limited: (r) => seen.limited.push(r),
    failed: () => undefined,
  };
  const l = await startProtocolListener(handler as ProtocolHandler<unknown>, settings(over), {
    log, events, refuse: (_p, reason, detail) => seen.refusals.push(`${reason}: ${detail}`),
  });
  listeners.push(l);
  return { l, seen };
}

const listeners: ProtocolListener[] = [];
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await Promise.all(listeners.splice(0).map((l) => l.close()));
});

/** A client that collects the lines it receives. */
async function client(port: number, localAddress = '127.0.0.1') {
  const s = connect({ port, host: '127.0.0.1', localAddress });
  sockets.push(s);
  await once(s, 'connect');
  const lines: string[] = [];
  let rest = '';
  s.on('data', (d) => {
    rest += d.toString();
    const parts = rest.split('\n');
    rest = parts.pop()!;
    lines.push(...parts);
  });
  s.on('error', () => undefined);
  const closed = once(s, 'close');
  return {
    s, lines, closed,
    send: (t: string) => s.write(t),
    async waitFor(n: number, ms = 5000) {
      const until = Date.now() + ms;
      while (lines.length < n) {
        if (Date.now() > until) throw new Error(`got ${JSON.stringify(lines)}, wanted ${n} lines`);
        await new Promise((r) => setTimeout(r, 10));
      }
      return lines;
    },
  };
}

describe('protocol listener', () => {
  it('hands frames of one connection to the protocol strictly in order, even when an earlier one is slow', async () => {
    const { l } = await start();
    const c = await client(l.port);
    c.send('SLOW 200\nA\nSLOW 10\nB\n');
    expect(await c.waitFor(4)).toEqual(['DONE 200', 'ECHO A', 'DONE 10', 'ECHO B']);
  });

  it('refuses bytes beyond maxFrameBytes and still handles the next good frame on the same connection', async () => {
    const { l, seen } = await start({ maxFrameBytes: 32 });
    const c = await client(l.port);
    c.send('x'.repeat(5000));
    c.send('\nHELLO\n');
    expect(await c.waitFor(1)).toEqual(['ECHO HELLO']);
    expect(seen.refusals.length).toBeGreaterThan(0);
    expect(seen.refusals[0]).toMatch(/^unreadable: (line too long|more than 32 bytes without a newline)/);
  });

  it('a connection it accepts has TCP keepalive (a terminal whose network died is found by the kernel)', async () => {
    const { l } = await start();
    const c = await client(l.port);
    c.send('ID dev-ka\n');
    await c.waitFor(1);
    await waitUntil(() => tcpTimerOf(l.port, c.s.localPort!) !== 'retransmit');
    expect(tcpTimerOf(l.port, c.s.localPort!)).toBe('keepalive');
  });

  it('binds the identity to the connection; a command goes to it; closing it unbinds', async () => {
    const { l, seen } = await start();
    const c = await client(l.port);
    c.send('ID dev1\n');
    await c.waitFor(1);
    expect(seen.bound).toEqual(['dev1']);
    l.peerOf('dev1')!.send(Buffer.from('CMD locate\n'));
    expect((await c.waitFor(2))[1]).toBe('CMD locate');
    c.s.destroy();
    await waitUntil(() => seen.unbound.length === 1);
    expect(l.peerOf('dev1')).toBeUndefined();
  });

  it('flags an identity that appears from two addresses at once, and the newer connection gets the commands', async () => {
    const { l, seen } = await start();
    const a = await client(l.port, '127.0.0.1');
    a.send('ID dev2\n');
    await a.waitFor(1);
    const b = await client(l.port, '127.0.0.2');
    b.send('ID dev2\n');
    expect((await b.waitFor(1))[0]).toBe('OK dev2 identity-conflict');
    expect(seen.conflicts).toEqual(['dev2']);
    l.peerOf('dev2')!.send(Buffer.from('CMD x\n'));
    expect((await b.waitFor(2))[1]).toBe('CMD x');
    // both still heard: an alarm from either is still an alarm
    a.send('STILL HERE\n');
    expect((await a.waitFor(2))[1]).toBe('ECHO STILL HERE');
  });

  it('a reconnect from the same address replaces the old connection', async () => {
    const { l, seen } = await start();
    const a = await client(l.port);
    a.send('ID dev3\n');
    await a.waitFor(1);
    const b = await client(l.port);
    b.send('ID dev3\n');
    await b.waitFor(1);
    await a.closed;
    expect(seen.conflicts).toEqual([]);
    expect(l.stats().bound).toBe(1);
  });

  it('caps connections per address and closes connections that never identify themselves', async () => {
    const { l, seen } = await start({ maxConnectionsPerAddress: 2, bindTimeoutMs: 300 });
    const a = await client(l.port);
    await client(l.port);
    const c = await client(l.port);
    await c.closed;
    expect(seen.limited).toContain('per-address');
    await a.closed; // not identified within 300 ms
    expect(seen.limited).toContain('not-identified');
  });

  it('closes a silent connection after idleTimeoutMs', async () => {
    const { l, seen } = await start({ idleTimeoutMs: 1000 });
    const c = await client(l.port);
    c.send('ID dev4\n');
    await c.waitFor(1);
    await c.closed;
    expect(seen.limited).toContain('idle');
    await waitUntil(() => seen.unbound.includes('dev4'));
  });

  it('a protocol bug closes that connection only; the listener keeps serving', async () => {
    const { l } = await start();
    const a = await client(l.port);
    a.send('BOOM\n');
    await a.closed;
    const b = await client(l.port);
    b.send('OK?\n');
    expect(await b.waitFor(1)).toEqual(['ECHO OK?']);
  });

  it('garbage costs the sender: consecutive refusals are reported once with their number, and 16 in a row close the connection', async () => {
    const { l, seen } = await start({ maxFrameBytes: 32 });
    const a = await client(l.port);
    // 5 refused lines then a good one: one report for the five, the connection stays
    a.send(`${'x'.repeat(40)}\n`.repeat(5) + 'OK\n');
    expect(await a.waitFor(1)).toEqual(['ECHO OK']);
    expect(seen.refusals).toEqual(['unreadable: line too long (and 4 more refusals like it in a row)']);
    // 16 in a row: closed
    a.send(`${'x'.repeat(40)}\n`.repeat(20));
    await a.closed;
    expect(seen.limited).toContain('refusals');
  });

  it('the per-address cap counts only connections that have not identified themselves (terminals behind one NAT)', async () => {
    const { l, seen } = await start({ maxConnectionsPerAddress: 2 });
    for (let i = 0; i < 4; i++) {
      const c = await client(l.port);
      c.send(`ID nat${i}\n`);
      await c.waitFor(1);
    }
    expect(l.stats().bound).toBe(4);
    expect(seen.limited).not.toContain('per-address');
  });

  it('a stale connection of a device whose address changed is replaced, not flagged; revoking closes every connection of it', async () => {
    const { l, seen } = await start();
    const a = await client(l.port, '127.0.0.1');
    a.send('ID dev6\n');
    await a.waitFor(1);
    const b = await client(l.port, '127.0.0.3');
    b.send('ID dev6\n');
    await b.waitFor(1);
    // heard within the minute: a conflict; both are kept and flagged
    expect(seen.conflicts).toEqual(['dev6']);
    l.disconnect('dev6', 'secret rotated');
    await a.closed;
    await b.closed;
  });

  it('UDP: one message per datagram, answered to its sender; an oversized or unfinished datagram is refused', async () => {
    const { l, seen } = await start({ udp: true, maxFrameBytes: 64 });
    const u = createSocket('udp4');
    const got: string[] = [];
    u.on('message', (m) => got.push(m.toString()));
    await new Promise<void>((r) => u.bind(0, '127.0.0.1', () => r()));
    u.send(Buffer.from('x'.repeat(200)), l.port, '127.0.0.1');
    u.send(Buffer.from('ID dev5\n'), l.port, '127.0.0.1');
    u.send(Buffer.from('PING\n'), l.port, '127.0.0.1');
    u.send(Buffer.from('NO END'), l.port, '127.0.0.1');
    await waitUntil(() => got.length >= 2 && seen.refusals.some((r) => r.startsWith('truncated')));
    expect(got).toEqual(['OK dev5 \n', 'ECHO PING\n']);
    expect(seen.refusals.some((r) => r.startsWith('oversized'))).toBe(true);
    expect(l.peerOf('dev5')?.transport).toBe('udp');
    u.close();
  });
});

async function waitUntil(f: () => boolean, ms = 5000) {
  const until = Date.now() + ms;
  while (!f()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}
