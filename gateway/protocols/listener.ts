// The listener layer shared by every terminal protocol: TCP (and UDP where the protocol has it) sockets, their
// limits, the device's identity bound to its connection, and in-order handing of frames to the protocol.
//
// Limits, so that nothing a terminal (or anyone on the network) does can stall the alarm path or exhaust the process:
// - connections: a cap (at the cap the oldest connection that has not identified itself makes room) and a cap per
//   address (terminals behind one carrier NAT share an address: generous, but bounded);
// - bytes: a framer holds at most maxFrameBytes before a frame's end is found; frames waiting for the writer are
//   bounded per connection (the socket is paused beyond, TCP back-pressure); bytes queued to a terminal are bounded
//   (a terminal that does not read is cut off);
// - time: a silent connection is closed after idleTimeoutMs, one that has not said which device it is after
//   bindTimeoutMs.
import { createServer, type Server, type Socket } from 'node:net';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import type { Logger } from '../../core/logger.js';
import { SocketGate } from '../../core/limits.js';
import type { ListenerSettings, Peer, ProtocolHandler, ProtocolName } from './types.js';

/** Frames of one connection waiting for the writer before its socket is paused. */
const MAX_QUEUED_FRAMES = 32;
/** Bytes queued to a terminal that is not reading before it is cut off. */
const MAX_WRITE_BUFFER = 256 * 1024;
/** a framer's refusal reason that can label a metric */
const SLUG = /^[a-z][a-z0-9-]{0,39}$/;
/** UDP senders remembered (for commands and the in-order chain), oldest forgotten first. */
const UDP_PEERS_KEPT = 10_000;
/** A UDP sender silent this long is forgotten. */
const UDP_PEER_TTL_MS = 10 * 60_000;

export interface ListenerEvents {
  /** a connection proved which device it is (resend what is pending for it) */
  bound(peer: Peer): void;
  /** a connection of a bound device ended */
  unbound(peer: Peer): void;
  /** a device appeared on two live connections from different addresses */
  conflict(deviceId: string, older: Peer, newer: Peer): void;
  /** a connection was refused or closed by a limit (counted by reason) */
  limited(reason: string): void;
  /** a frame handler failed (a bug: the connection is closed) */
  failed(peer: Peer, err: unknown): void;
}

export interface ProtocolListener {
  readonly name: ProtocolName;
  /** the bound TCP port (and the UDP port: the same number) */
  readonly port: number;
  /** the live connection of a device, if it is connected */
  peerOf(deviceId: string): Peer | undefined;
  /** close the device's connection (its secret was rotated, it was suspended) */
  disconnect(deviceId: string, reason: string): void;
  stats(): { connections: number; bound: number; udpPeers: number };
  close(): Promise<void>;
}

class PeerImpl implements Peer {
  deviceId: string | undefined;
  flags: string[] = [];
  closed = false;
  queued = 0;
  chain: Promise<void> = Promise.resolve();
  lastSeen = Date.now();
  constructor(
    readonly id: string,
    readonly transport: 'tcp' | 'udp',
    readonly address: string,
    readonly port: number,
    private readonly io: { write(b: Buffer): void; end(reason: string): void; bind(p: PeerImpl, deviceId: string): void },
  ) {}
  bind(deviceId: string): void {
    if (this.closed || this.deviceId === deviceId) return;
    this.io.bind(this, deviceId);
  }
  send(bytes: Buffer): void {
    if (this.closed) return;
    this.io.write(bytes);
  }
  close(reason: string): void {
    if (this.closed) return;
    this.io.end(reason);
  }
}

export async function startProtocolListener(
  handler: ProtocolHandler<unknown>,
  settings: ListenerSettings,
  deps: { log: Logger; events: ListenerEvents; refuse(peer: Peer, reason: string, detail: string, raw?: Buffer): void; cap?: number },
): Promise<ProtocolListener> {
  const log = deps.log.child({ module: 'protocol', protocol: handler.name });
  const ev = deps.events;
  let seq = 0;
  /** deviceId → its live connection (the newest, when it has two) */
  const byDevice = new Map<string, PeerImpl>();
  const tcpPeers = new Set<PeerImpl>();
  const perAddress = new Map<string, number>();
  const udpPeers = new Map<string, PeerImpl>();
  let closing = false;

  const gate = new SocketGate(Math.min(settings.maxConnections, deps.cap ?? Infinity), (reason) => ev.limited(reason));

  const bindPeer = (p: PeerImpl, deviceId: string) => {
    const other = byDevice.get(deviceId);
    if (p.deviceId && byDevice.get(p.deviceId) === p) byDevice.delete(p.deviceId);
    p.deviceId = deviceId;
    byDevice.set(deviceId, p);
    if (other && other !== p && !other.closed) {
      if (other.address === p.address && p.transport === 'tcp') {
        // the same terminal reconnected before its old connection timed out (a NAT or radio drop): the old one is dead
        other.close('replaced by a new connection of the same device from the same address');
      } else {
        // two places claim one identity: a cloned id, or a spoofer. Both are flagged, both keep being heard (an
        // alarm from either is still an alarm); the newer gets the commands.
        if (!other.flags.includes('identity-conflict')) other.flags.push('identity-conflict');
        if (!p.flags.includes('identity-conflict')) p.flags.push('identity-conflict');
        ev.conflict(deviceId, other, p);
      }
    }
    ev.bound(p);
  };

  const forget = (p: PeerImpl, reason: string) => {
    if (p.closed) return;
    p.closed = true;
    if (p.deviceId && byDevice.get(p.deviceId) === p) {
      byDevice.delete(p.deviceId);
      ev.unbound(p);
    }
    try {
      handler.onClose?.(p);
    } catch (err) {
      log.error({ err, peer: p.id }, 'protocol onClose failed');
    }
    log.debug({ peer: p.id, deviceId: p.deviceId, reason }, 'connection ended');
  };

  /** Hand a chunk's frames to the protocol, strictly in order per peer. */
  const feed = (p: PeerImpl, framer: ReturnType<ProtocolHandler<unknown>['framer']>, chunk: Buffer, pause: () => void, resume: () => void) => {
    p.lastSeen = Date.now();
    let out;
    try {
      out = framer.push(chunk);
    } catch (err) {
      // a framer must never throw; if one does, the bytes are refused and the connection starts over
      deps.refuse(p, 'framer-error', `the ${handler.name} framer failed: ${(err as Error).message}`, chunk);
      p.close('framer error');
      return;
    }
    for (const f of out) {
      if (!f.ok) {
        const slug = SLUG.test(f.reason) ? f.reason : 'unreadable';
        deps.refuse(p, slug, f.detail ?? (slug === f.reason ? `the ${handler.name} framer refused ${f.raw.length} bytes: ${f.reason}` : f.reason), f.raw);
        continue;
      }
      p.queued++;
      if (p.queued >= MAX_QUEUED_FRAMES) pause();
      p.chain = p.chain
        .then(() => (p.closed && p.transport === 'tcp' ? undefined : handler.onFrame(p, f.frame, f.raw)))
        .catch((err: unknown) => {
          ev.failed(p, err);
          log.error({ err, peer: p.id, deviceId: p.deviceId }, 'frame handler failed; closing the connection (the terminal resends what was not answered)');
          p.close('handler failed');
        })
        .finally(() => {
          p.queued--;
          if (p.queued < MAX_QUEUED_FRAMES / 2) resume();
        });
    }
  };

  // ---- TCP --------------------------------------------------------------------------------------------------
  const onConnection = (socket: Socket) => {
    const address = socket.remoteAddress ?? '?';
    if (closing) {
      socket.destroy();
      return;
    }
    const n = perAddress.get(address) ?? 0;
    if (n >= settings.maxConnectionsPerAddress) {
      ev.limited('per-address');
      socket.destroy();
      return;
    }
    if (!gate.admit(socket)) return;
    perAddress.set(address, n + 1);
    socket.once('close', () => {
      const left = (perAddress.get(address) ?? 1) - 1;
      if (left <= 0) perAddress.delete(address);
      else perAddress.set(address, left);
    });
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 60_000);
    const framer = handler.framer();
    let bindTimer: NodeJS.Timeout | undefined;
    const p: PeerImpl = new PeerImpl(`tcp:${address}:${socket.remotePort ?? 0}#${++seq}`, 'tcp', address, socket.remotePort ?? 0, {
      write(b) {
        if (socket.destroyed) return;
        if (socket.writableLength > MAX_WRITE_BUFFER) {
          ev.limited('write-buffer');
          p.close('the terminal is not reading what is sent to it');
          return;
        }
        socket.write(b);
      },
      end(reason) {
        forget(p, reason);
        socket.destroy();
      },
      bind(peer, deviceId) {
        if (bindTimer) clearTimeout(bindTimer);
        bindTimer = undefined;
        gate.busy(socket);
        bindPeer(peer, deviceId);
      },
    });
    tcpPeers.add(p);
    bindTimer = setTimeout(() => {
      ev.limited('not-identified');
      log.info({ peer: p.id }, `closing a connection that did not identify a provisioned device within ${settings.bindTimeoutMs} ms`);
      p.close('not identified');
    }, settings.bindTimeoutMs);
    bindTimer.unref();
    socket.setTimeout(settings.idleTimeoutMs, () => {
      ev.limited('idle');
      p.close(`silent for ${settings.idleTimeoutMs} ms`);
    });
    socket.on('data', (chunk: Buffer) => {
      try {
        feed(p, framer, chunk, () => socket.pause(), () => { if (!socket.destroyed) socket.resume(); });
      } catch (err) {
        log.error({ err, peer: p.id }, 'data handler failed');
        p.close('data handler failed');
      }
    });
    socket.on('error', (err) => log.debug({ err, peer: p.id }, 'socket error'));
    socket.on('close', () => {
      if (bindTimer) clearTimeout(bindTimer);
      tcpPeers.delete(p);
      forget(p, 'closed by the terminal');
    });
  };

  const server: Server = createServer({ noDelay: true }, onConnection);
  server.on('error', (err) => log.error({ err }, 'listener error'));
  await new Promise<void>((resolve, reject) => {
    const fail = (err: Error) => reject(err);
    server.once('error', fail);
    server.listen(settings.port, settings.host, () => {
      server.off('error', fail);
      resolve();
    });
  });
  const port = (server.address() as { port: number }).port;

  // ---- UDP --------------------------------------------------------------------------------------------------
  let udp: UdpSocket | undefined;
  let sweep: NodeJS.Timeout | undefined;
  if (settings.udp) {
    const sock = createSocket({ type: settings.host.includes(':') ? 'udp6' : 'udp4' });
    udp = sock;
    sock.on('error', (err) => log.error({ err }, 'UDP listener error'));
    sock.on('message', (msg, rinfo) => {
      try {
        if (closing) return;
        if (msg.length > settings.maxFrameBytes) {
          const p = udpPeer(rinfo.address, rinfo.port);
          deps.refuse(p, 'oversized', `a datagram of ${msg.length} bytes is longer than maxFrameBytes (${settings.maxFrameBytes})`, msg.subarray(0, 256));
          return;
        }
        const p = udpPeer(rinfo.address, rinfo.port);
        // one message per datagram: a fresh framer each time, so a bad datagram cannot poison the next
        const framer = handler.framer();
        feed(p, framer, msg, () => undefined, () => undefined);
        // what is left in the framer was the start of a message that never ended: it never will
        if (framer.buffered() > 0) {
          deps.refuse(p, 'truncated', `a datagram ended inside a message (${framer.buffered()} bytes without its end)`, msg.subarray(Math.max(0, msg.length - framer.buffered())));
        }
      } catch (err) {
        log.error({ err }, 'UDP message handler failed');
      }
    });
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      sock.bind(port, settings.host, () => {
        sock.off('error', reject);
        resolve();
      });
    });
    sweep = setInterval(() => {
      const old = Date.now() - UDP_PEER_TTL_MS;
      for (const [key, p] of udpPeers) {
        if (p.lastSeen >= old) break; // re-inserted on use: oldest first
        udpPeers.delete(key);
        forget(p, 'UDP sender silent');
      }
    }, 60_000);
    sweep.unref();
  }

  function udpPeer(address: string, rport: number): PeerImpl {
    const key = `${address}:${rport}`;
    let p = udpPeers.get(key);
    if (p) {
      udpPeers.delete(key);
      udpPeers.set(key, p); // most recent last
      return p;
    }
    if (udpPeers.size >= UDP_PEERS_KEPT) {
      const [oldKey, oldest] = udpPeers.entries().next().value as [string, PeerImpl];
      udpPeers.delete(oldKey);
      forget(oldest, 'too many UDP senders: forgetting the oldest');
    }
    const peer: PeerImpl = new PeerImpl(`udp:${key}#${++seq}`, 'udp', address, rport, {
      write(b) {
        udp?.send(b, rport, address, (err) => { if (err) log.debug({ err, peer: peer.id }, 'UDP send failed'); });
      },
      end(reason) {
        udpPeers.delete(key);
        forget(peer, reason);
      },
      bind(pp, deviceId) {
        bindPeer(pp, deviceId);
      },
    });
    udpPeers.set(key, peer);
    return peer;
  }

  log.info({ host: settings.host, port, udp: settings.udp }, `${handler.name} listener started`);

  return {
    name: handler.name,
    port,
    peerOf: (deviceId) => {
      const p = byDevice.get(deviceId);
      return p && !p.closed ? p : undefined;
    },
    disconnect(deviceId, reason) {
      byDevice.get(deviceId)?.close(reason);
    },
    stats: () => ({ connections: tcpPeers.size, bound: byDevice.size, udpPeers: udpPeers.size }),
    async close() {
      if (closing) return;
      closing = true;
      if (sweep) clearInterval(sweep);
      // stop accepting now; the callback comes once every connection has ended (below)
      const stopped = new Promise<void>((r) => server.close(() => r()));
      // frames in hand finish storing (and are answered) before the writer closes; then every connection ends
      const chains = [...tcpPeers, ...udpPeers.values()].map((p) => p.chain);
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.all(chains), new Promise<void>((r) => (timer = setTimeout(r, 5000)))]);
      clearTimeout(timer);
      for (const p of [...tcpPeers]) p.close('gateway closing');
      for (const p of [...udpPeers.values()]) p.close('gateway closing');
      udpPeers.clear();
      await stopped;
      if (udp) await new Promise<void>((r) => udp!.close(() => r()));
      await handler.close?.();
    },
  };
}
