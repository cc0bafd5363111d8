// The HTTP listener's socket cap (issue 14): HTTP and WebSocket sockets together stay below `cap`, derived from the
// descriptor limit (core/limits.ts). At the cap, the connection idle the longest (no request in flight, never
// upgraded) is closed to make room, so idle sockets held by an attacker cannot lock out /healthz or a console's
// login; a socket carrying a request or an open WebSocket is never taken. An accept() failure (EMFILE) is counted
// and logged, never thrown.
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from '../core/logger.js';
import type { Metrics } from '../core/metrics.js';
import { SocketGate } from '../core/limits.js';

export function capConnections(server: Server, cap: number, metrics: Metrics, log: Logger): SocketGate {
  const gate = new SocketGate(cap, (reason) => metrics.connectionsRefused.inc({ listener: 'http', reason }));
  metrics.connectionCap.set({ listener: 'http' }, cap);
  let lastWarn = 0;
  const warn = (obj: Record<string, unknown>, msg: string) => {
    // at most one line a second however hard the listener is pushed; the counter has the totals
    const now = Date.now();
    if (now - lastWarn < 1000) return;
    lastWarn = now;
    log.warn(obj, msg);
  };
  const inFlight = new WeakMap<object, number>();
  // 'connection' is the TCP socket for HTTP and HTTPS alike, before any handshake: that is when a descriptor is held
  server.on('connection', (socket: Socket) => {
    try {
      if (!gate.admit(socket)) warn({ cap, address: socket.remoteAddress }, `HTTP connection refused: the server holds its limit of ${cap} sockets`);
    } catch (err) {
      metrics.internalErrors.inc({ where: 'http-accept' });
      socket.destroy();
      warn({ err }, 'could not admit an HTTP connection; dropped');
    }
  });
  server.on('request', (req, res) => {
    const s = req.socket;
    inFlight.set(s, (inFlight.get(s) ?? 0) + 1);
    gate.busy(s);
    res.once('close', () => {
      const n = (inFlight.get(s) ?? 1) - 1;
      inFlight.set(s, n);
      if (n <= 0 && !s.destroyed) gate.markIdle(s);
    });
  });
  // an upgraded socket is a console's WebSocket (bounded per user in server/ws): never idle
  server.on('upgrade', (req) => gate.busy(req.socket));
  server.on('error', (err: NodeJS.ErrnoException) => {
    metrics.connectionsRefused.inc({ listener: 'http', reason: 'accept-error' });
    warn({ err: err.message, code: err.code }, 'the HTTP listener could not accept a connection');
  });
  return gate;
}
