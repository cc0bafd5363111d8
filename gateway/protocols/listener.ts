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
import { keepAliveEach, keepAliveOnListener } from '../../core/tcp-keepalive.js';
import type { ListenerSettings, Peer, ProtocolHandler, ProtocolName } from './types.js';

/** Frames of one connection waiting for the writer before its socket is paused. */
const MAX_QUEUED_FRAMES = 32;
/** Bytes queued to a terminal that is not reading before it is cut off. */
const MAX_WRITE_BUFFER = 256 * 1024;
/** Refused frames in a row (no good frame between) before a TCP connection is closed: garbage costs the sender. */
const MAX_REFUSALS_IN_ROW = 16;
/** Another live connection of the same device heard within this long is a conflict; older, it is stale. */
const CONFLICT_WINDOW_MS = 60_000;
/** Devices one connection may speak for (a DC-09 receiver forwarding many accounts); beyond, not tracked per device. */
const DEVICES_PER_PEER = 4096;
/** a framer's refusal reason that can label a metric */
const SLUG = /^[a-z][a-z0-9-]{0,39}$/;
/** UDP senders remembered (for commands and the in-order chain), oldest forgotten first. */
const UDP_PEERS_KEPT = 10_000;
/** A UDP sender silent this long is forgotten. */
const UDP_PEER_TTL_MS = 10 * 60_000;

export interface ListenerEvents {
  /** a connection proved, for the first time on it, that it speaks for this device (resend what is pending for it) */
  bound(peer: Peer, deviceId: string): void;
  /** a connection that spoke for this device ended */
  unbound(peer: Peer, deviceId: string): void;
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
  /** the live connection of a device (the newest, when it has two), if it is connected */
  peerOf(deviceId: string): Peer | undefined;
  /** close every connection that speaks for the device (its secret was rotated, it was suspended) */
  disconnect(deviceId: string, reason: string): void;
  stats(): { connections: number; bound: number; udpPeers: number };
  close(): Promise<void>;
}

class PeerImpl implements Peer {
  deviceId: string | undefined;
  /** every device this connection has spoken for (one, except a DC-09 receiver forwarding several accounts) */
  readonly devices = new Set<string>();
  flags: string[] = [];
  closed = false;
  queued = 0;
  /** refused frames since the last good one */
  refusalsInRow = 0;
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
  deps: {
    log: Logger;
    events: ListenerEvents;
    refuse(peer: Peer, reason: string, detail: string, raw?: Buffer): void;
    /** the socket budget shared by every protocol listener (core/limits.ts); its own otherwise */
    gate?: SocketGate;
  },
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

  const gate = deps.gate ?? new SocketGate(settings.maxConnections, (reason) => ev.limited(reason));

  /** the gateway's own reactions (a database write among them) must never break the frame that triggered them */
  const safely = (what: string, fn: () => void) => {
    try {
      fn();
    } catch (err) {
      log.error({ err, what }, 'a listener event handler failed');
    }
  };

  const bindPeer = (p: PeerImpl, deviceId: string, onFirstBind: () => void) => {
    const other = byDevice.get(deviceId);
    const first = !p.devices.has(deviceId);
    if (first && p.devices.size === 0) onFirstBind();
    p.deviceId = deviceId;
    if (first && p.devices.size < DEVICES_PER_PEER) p.devices.add(deviceId);
    byDevice.set(deviceId, p);
    if (other && other !== p && !other.closed) {
      const heardLately = Date.now() - other.lastSeen < CONFLICT_WINDOW_MS;
      if (other.address === p.address || !heardLately) {
        // the same terminal again (a new source port, a reconnect before the old connection timed out), or an old
        // connection silent for a minute after the terminal's address changed: the old one is dead, not a rival
        if (other.transport === 'tcp') other.close('replaced by a newer connection of the same device');
      } else {
        // two places claim one identity at once: a cloned id, or a spoofer. Both are flagged, both keep being heard
        // (an alarm from either is still an alarm); the newer gets the commands.
        if (!other.flags.includes('identity-conflict')) other.flags.push('identity-conflict');
        if (!p.flags.includes('identity-conflict')) p.flags.push('identity-conflict');
        safely('conflict', () => ev.conflict(deviceId, other, p));
      }
    }
    if (first) safely('bound', () => ev.bound(p, deviceId));
  };

  const forget = (p: PeerImpl, reason: string) => {
    if (p.closed) return;
    p.closed = true;
    for (const deviceId of p.devices) {
      if (byDevice.get(deviceId) !== p) continue;
      byDevice.delete(deviceId);
      safely('unbound', () => ev.unbound(p, deviceId));
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
    // consecutive refusals of one reason are reported once, with their number: garbage costs one line, not one per byte
    let run: { slug: string; detail: string; raw: Buffer; n: number } | undefined;
    const report = () => {
      if (!run) return;
      deps.refuse(p, run.slug, run.n > 1 ? `${run.detail} (and ${run.n - 1} more refusals like it in a row)` : run.detail, run.raw);
      run = undefined;
    };
    for (const f of out) {
      if (p.closed) break;
      if (!f.ok) {
        const slug = SLUG.test(f.reason) ? f.reason : 'unreadable';
        if (run && run.slug === slug) run.n++;
        else {
          report();
          run = { slug, detail: f.detail ?? (slug === f.reason ? `the ${handler.name} framer refused ${f.raw.length} bytes: ${f.reason}` : f.reason), raw: f.raw, n: 1 };
        }
        p.refusalsInRow++;
        if (p.transport === 'tcp' && p.refusalsInRow >= MAX_REFUSALS_IN_ROW) {
          report();
          ev.limited('refusals');
          p.close(`${p.refusalsInRow} refused frames in a row`);
          return;
        }
        continue;
      }
      report();
      p.refusalsInRow = 0;
      if (p.transport === 'udp' && p.queued >= MAX_QUEUED_FRAMES) {
        // a UDP sender cannot be paused: beyond its backlog its messages are dropped unanswered (it sends them again)
        ev.limited('udp-backlog');
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
    report();
  };

  // ---- TCP --------------------------------------------------------------------------------------------------
  /** what an accepted socket needs for TCP keepalive: nothing once it inherits it from the listening socket */
  let keepAlive = keepAliveEach;
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
    // the per-address cap counts connections that have not yet said which terminal they are: terminals behind one
    // carrier NAT share an address, and once identified they are bounded by the connection cap like any other
    perAddress.set(address, n + 1);
    let unidentified = true;
    const identified = () => {
      if (!unidentified) return;
      unidentified = false;
      const left = (perAddress.get(address) ?? 1) - 1;
      if (left <= 0) perAddress.delete(address);
      else perAddress.set(address, left);
    };
    socket.once('close', identified);
    socket.setNoDelay(true);
    keepAlive(socket);
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
        bindPeer(peer, deviceId, () => {
          if (bindTimer) clearTimeout(bindTimer);
          bindTimer = undefined;
          gate.busy(socket);
          identified();
        });
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
  // accepted sockets inherit TCP keepalive from the listening socket where the kernel allows (core/tcp-keepalive.ts)
  keepAlive = keepAliveOnListener(server);
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
        const p = udpPeer(rinfo.address, rinfo.port);
        if (!p) {
          ev.limited('udp-peers');
          return;
        }
        p.lastSeen = Date.now();
        if (msg.length > settings.maxFrameBytes) {
          deps.refuse(p, 'oversized', `a datagram of ${msg.length} bytes is longer than maxFrameBytes (${settings.maxFrameBytes})`, msg.subarray(0, 256));
          return;
        }
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

  /** The sender's peer; undefined when every remembered sender still has messages in flight (the datagram is dropped). */
  function udpPeer(address: string, rport: number): PeerImpl | undefined {
    const key = `${address}:${rport}`;
    let p = udpPeers.get(key);
    if (p) {
      udpPeers.delete(key);
      udpPeers.set(key, p); // most recent last
      return p;
    }
    if (udpPeers.size >= UDP_PEERS_KEPT) {
      // forget the oldest sender with nothing in flight (one still being answered keeps its place and its order)
      let evicted = false;
      let looked = 0;
      for (const [oldKey, oldest] of udpPeers) {
        if (++looked > 256) break;
        if (oldest.queued > 0) continue;
        udpPeers.delete(oldKey);
        forget(oldest, 'too many UDP senders: forgetting the oldest');
        evicted = true;
        break;
      }
      if (!evicted) return undefined;
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
        bindPeer(pp, deviceId, () => undefined);
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
      // every connection that spoke for it, not only the newest (an older one in an identity conflict stays trusted otherwise)
      for (const p of [...tcpPeers, ...udpPeers.values()]) if (p.devices.has(deviceId)) p.close(reason);
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
