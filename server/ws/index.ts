// WebSocket /ws: the live alarm stream to consoles (docs/design.md §5, docs/websocket.md). Register through buildApp's
// `extra` routes: `{ name: 'ws', plugin: alarmStream({ incidents, network }) }`.
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import websocket from '@fastify/websocket';
import type { WebSocket } from 'ws';
import { EVENTS_READ_MAX, type IncidentService } from '../../response/incidents.js';
import type { Network } from '../../response/network.js';
import type { AppDeps } from '../deps.js';
import { AlarmHub, type EventLog } from './hub.js';
import { ConsoleConnection } from './connection.js';
import { authenticateWs, checkOrigin, selectProtocol } from './auth.js';
import { CLOSE, closeReason } from './protocol.js';
import type { AuthUser } from '../../core/users.js';

/** sequence numbers a scoped replay examines per read (~4 ms of this thread) */
export const REPLAY_SCAN_SEQS = 20_000;

export interface AlarmStreamOptions {
  incidents: Pick<IncidentService, 'eventsAfter' | 'head' | 'publishedSeq' | 'markPushed' | 'markDelivered'>;
  network: Network;
  /** events per replay page (tests use small pages to exercise paging) */
  replayPageSize?: number;
}


/**
 * The durable log as the hub and replays read it. `durable`: the highest seq known durable — published on the bus,
 * which both threads do only after the commit and its sync (gateway/writer). The writer thread's telemetry commits
 * become visible to this thread's connection a moment before their WAL is synced; nothing above `durable` is read
 * for a console, so a power cut in that moment cannot take back what a console was shown.
 */
export function incidentLog(incidents: AlarmStreamOptions['incidents'], durable: () => number = () => Infinity, scanSeqs = REPLAY_SCAN_SEQS): EventLog {
  // the highest seq ever given, not max(seq): the log may have gaps at its end (docs/websocket.md, "Gaps")
  const latest = () => Math.min(incidents.head(), durable());
  return {
    latest,
    between(after, upTo) {
      const out = [];
      let cursor = after;
      while (cursor < upTo) {
        const page = incidents.eventsAfter(cursor, { limit: Math.min(upTo - cursor, EVENTS_READ_MAX) });
        if (!page.length) break;
        for (const e of page) if (e.seq <= upTo) out.push(e);
        cursor = page[page.length - 1]!.seq;
      }
      return out;
    },
    after: (seq, limit, scope) => {
      const cap = latest();
      // (a page is at most what one read gives: a page of that size is full, and the stretch ends at its last event)
      const want = Math.min(limit, EVENTS_READ_MAX);
      // A scoped read filters the log as it goes: for a unit with no events in a long stretch of it (a quiet station
      // resuming from far back) one read walked all of it, ~0.2 s per million events of this thread, every socket
      // waiting. So it reads a bounded stretch per call and the replay goes on from where it ended.
      const upTo = scope ? Math.min(cap, seq + scanSeqs) : cap;
      const events = incidents.eventsAfter(seq, { limit: want, scope, upTo });
      const full = events.length >= want;
      return { events, scannedTo: full ? events[events.length - 1]!.seq : upTo, atEnd: !full && upTo >= cap };
    },
  };
}

export function alarmStream(opts: AlarmStreamOptions): FastifyPluginAsync<{ deps: AppDeps }> {
  return async (app, { deps }) => {
    const { config } = deps;
    const log = deps.log.child({ module: 'ws' });
    // nothing above the highest seq published: it and everything below it are durable
    const events = incidentLog(opts.incidents, () => opts.incidents.publishedSeq());
    const hub = new AlarmHub(events, deps.bus, opts.incidents, deps.log, (ms) => deps.metrics.stage.observe({ stage: 'push' }, ms / 1000));
    hub.start();
    const sockets = new Set<WebSocket>();
    /** open consoles per user id, bounded by http.wsMaxPerUser */
    const perUser = new Map<string, number>();
    const pingIntervalMs = config.http.wsPingIntervalMs;

    await app.register(websocket, {
      options: {
        maxPayload: config.http.wsMaxPayloadBytes,
        handleProtocols: (protocols) => selectProtocol(protocols),
        // compression costs CPU on every frame and delays the first byte of an alarm
        perMessageDeflate: false,
        // pongs are queued by ConsoleConnection within the console's byte bound (issue 14: ping flood)
        autoPong: false,
      },
      // `ws` already closes the socket with the right code (1009 too big, 1002 protocol error): log, do not kill it
      errorHandler: (err, socket, req) => {
        req.log.info({ module: 'ws', reason: err.message }, 'console socket error');
        if (socket.readyState === socket.OPEN) socket.close(CLOSE.internal, 'server error: reconnect and resume with since');
      },
      preClose: async () => {
        for (const s of sockets) s.close(CLOSE.goingAway, 'server shutting down: reconnect and resume with since');
        const until = Date.now() + 2000;
        while (sockets.size && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
        for (const s of sockets) s.terminate();
      },
    });

    app.addHook('onClose', async () => hub.stop());

    const authenticated = new WeakMap<object, { user: AuthUser; token: string }>();
    app.route({
      method: 'GET',
      url: '/ws',
      schema: { hide: true },
      // both checks run before the upgrade: a refused client gets HTTP 401/403 and never a socket
      onRequest: async (req) => {
        const auth = authenticateWs(deps.users, req);
        checkOrigin(req, config.http.allowedOrigins);
        authenticated.set(req.raw, auth);
      },
      handler: async (_req, reply) => {
        reply.status(426).header('upgrade', 'websocket').send({
          code: 'UPGRADE_REQUIRED', message: 'this is the WebSocket alarm stream: connect with a WebSocket client (docs/websocket.md)',
        });
      },
      wsHandler: (socket: WebSocket, req) => {
        const auth = authenticated.get(req.raw);
        if (!auth) return socket.close(CLOSE.unauthorized, 'not authenticated');
        const userId = auth.user.id;
        const open = perUser.get(userId) ?? 0;
        if (open >= config.http.wsMaxPerUser) {
          deps.metrics.connectionsRefused.inc({ listener: 'ws', reason: 'per-user' });
          log.warn({ user: auth.user.username, open, limit: config.http.wsMaxPerUser }, 'console refused: too many open for this user');
          // after the upgrade a browser sees only the close code and reason, never an HTTP status
          return socket.close(CLOSE.tooManyForUser,
            closeReason(`too many consoles: you have ${open} open (limit ${config.http.wsMaxPerUser}); close one and reconnect`));
        }
        perUser.set(userId, open + 1);
        socket.once('close', () => {
          const left = (perUser.get(userId) ?? 1) - 1;
          if (left <= 0) perUser.delete(userId);
          else perUser.set(userId, left);
        });
        sockets.add(socket);
        deps.metrics.wsClients.inc();
        socket.once('close', () => {
          sockets.delete(socket);
          deps.metrics.wsClients.dec();
        });
        const conn = new ConsoleConnection(socket, auth.user, {
          hub,
          events,
          network: opts.network,
          markDelivered: (incidentId, seq, at, userId, username) => opts.incidents.markDelivered(incidentId, seq, at, userId, username),
          // receipts are counted, not streamed (response/receipts.ts)
          counted: {
            pushed: () => deps.metrics.incidentPushes.inc(),
            delivered: () => deps.metrics.incidentDeliveries.inc(),
          },
          reauthenticate: () => deps.users.verify(auth.token),
          log,
          maxBufferedBytes: config.http.wsMaxBufferedBytes,
          maxPayloadBytes: config.http.wsMaxPayloadBytes,
          pingIntervalMs,
          maxMessagesPerSecond: config.http.wsMaxMessagesPerSecond,
          ...(opts.replayPageSize ? { pageSize: opts.replayPageSize } : {}),
        });
        conn.start();
      },
    });
    (app as FastifyInstance).log.debug({ pingIntervalMs }, 'alarm stream ready');
  };
}
