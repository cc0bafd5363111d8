// The embedded MQTT broker (aedes 1.x) with the hooks that make it safe on a public port (docs/design.md §2): devices
// authenticate against the registry, publish and subscribe only under their own devices/{id}/, events are durable
// before PUBACK, bytes are bounded before aedes parses them, and revoked devices are cut off at once.
import { createServer as createTcpServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { readFileSync } from 'node:fs';
import { Aedes, type AedesOptions, type Client, type PublishPacket, type Subscription } from 'aedes';
import type { Config } from '../../core/config.js';
import { createLogLimiter, type Logger } from '../../core/logger.js';
import { SocketGate } from '../../core/limits.js';
import { keepAliveEach, keepAliveOnListener } from '../../core/tcp-keepalive.js';
import type { Metrics } from '../../core/metrics.js';
import type { Bus } from '../../core/bus.js';
import { isLifeSafety, topics } from '../../core/contracts.js';
import type { DeviceRegistry } from '../../devices/registry.js';
import { DEVICE_ID_RE } from '../../devices/credentials.js';
import { MQTT_KINDS } from '../../devices/kinds/index.js';
import { createDeviceMessageHandler, DeviceGoneError, isDeviceChannel } from '../device-messages.js';
import { guardConnection } from './guard.js';
import { createUnreadableReporter, suspendedConnectReason } from './unreadable.js';
import { stampSession } from './session.js';
import { ConnectThrottle } from './throttle.js';
import { ConnectAdmission } from './admission.js';
import { handleClosingLater } from './close-later.js';
import { KeyOrderedSlices } from './slices.js';
import { PublishPacer } from './pacing.js';
import { skipClientFanOut } from './no-fanout.js';
import type { LiveStates, IngestPort } from '../writer/client.js';

export interface BrokerDeps {
  config: Config;
  registry: DeviceRegistry;
  states: LiveStates;
  ingest: IngestPort;
  bus: Bus;
  log: Logger;
  metrics: Metrics;
  /** sockets the MQTT listeners (TCP + TLS) admit together: mqtt.maxConnections lowered to the descriptor budget */
  connectionCap?: number;
}

export interface EmbeddedBroker {
  aedes: Aedes;
  port: number;
  tlsPort: number | null;
  /** publish a command to a device (QoS 1); resolves when handed to the device's connection (or no one listens) */
  publishToDevice(deviceId: string, topic: string, payload: object): Promise<void>;
  isConnected(deviceId: string): boolean;
  /** Last Wills and disconnects waiting for their slice; `settledEarly`: run ahead because the device came back */
  closing(): { pending: number; settledEarly: number };
  close(): Promise<void>;
}

class RefusedError extends Error {
  constructor(message: string, readonly returnCode?: number) {
    super(message);
  }
}

/** refused frames of one device are reported (raise, then join the open incident) at most once per this window */
export const UNREADABLE_REPORT_WINDOW_MS = 3000;

/**
 * Connections the devices ended, their Last Wills and disconnects run in slices of this long, a setImmediate
 * between: long enough that a slice is mostly work (one close costs ~0.1–0.3 ms), short enough that an alarm read
 * meanwhile waits no more than this.
 */
export const CLOSE_SLICE_MS = 4;

/**
 * The listen backlog: a reconnect storm opens thousands of TCP connections at once. With Node's default of 511 the
 * kernel drops the SYNs beyond it and each of those devices waits 1 s, then 3 s, then 7 s to retransmit (capped by
 * net.core.somaxconn). Accepted connections are bounded by the connection cap and admission control, not by this.
 */
export const LISTEN_BACKLOG = 4096;

export async function startBroker(deps: BrokerDeps): Promise<EmbeddedBroker> {
  const { config, registry, states, ingest, bus, metrics } = deps;
  const log = deps.log.child({ module: 'broker' });
  const perAddress = new Map<string, number>();
  const cap = Math.min(deps.connectionCap ?? config.mqtt.maxConnections, config.mqtt.maxConnections);
  metrics.connectionCap.set({ listener: 'mqtt' }, cap);
  // at the cap, the oldest connection that has not completed CONNECT makes room (core/limits.ts)
  const gate = new SocketGate(cap, (reason) => metrics.connectionsRefused.inc({ listener: 'mqtt', reason }));
  const throttle = new ConnectThrottle({
    limit: config.mqtt.connectFailureLimit, windowMs: config.mqtt.connectFailureWindowMs, backoffMs: config.mqtt.connectBackoffMs,
  });
  // repeated refusals of one device or address are written a few times per window, then only counted
  const limited = createLogLimiter(log, {
    burst: config.limits.logBurst, windowMs: config.limits.logWindowMs,
    onSuppressed: (kind) => metrics.logSuppressed.inc({ kind }),
  });
  const keepaliveLimitS = config.mqtt.keepaliveLimitS;
  const admission = new ConnectAdmission(config.mqtt.maxConnectsInProgress);
  // a close, Will or disconnect waits at most for its slice, or until its device comes back (settle); a few per
  // connection, so the connection cap bounds them; beyond that bound one runs at once
  let settledEarly = 0;
  /** when the device ended a connection whose close waits in the slices: its Will and disconnect are dated then */
  const endedAt = new WeakMap<Client, number>();
  const closing = new KeyOrderedSlices({
    sliceMs: CLOSE_SLICE_MS,
    // per connection: its close (on its end or reset), then its Will and its disconnect
    limit: 3 * config.mqtt.maxConnections,
    onError: (err, deviceId) => {
      metrics.internalErrors.inc({ where: 'mqtt-close' });
      limited.warn('close handling failed', deviceId, { err, deviceId }, 'handling a closed MQTT connection failed');
    },
  });
  /** before anything new from a device is handled: its earlier connection's Will and disconnect first */
  const settle = (deviceId: string) => {
    if (closing.has(deviceId)) {
      settledEarly++;
      closing.settle(deviceId);
    }
  };

  const unreadable = createUnreadableReporter({
    sink: ingest, log, metrics, windowMs: UNREADABLE_REPORT_WINDOW_MS,
    // only a connected device can send a frame: no more than the connections allowed need tracking at once
    maxDevices: config.mqtt.maxConnections,
  });

  const refuse = (stage: string, reason: string, fields: Record<string, unknown>) => {
    metrics.refused.inc({ stage, reason });
    const subject = (fields.deviceId ?? fields.address ?? fields.clientId) as string | undefined;
    limited.warn(`${stage}: ${reason}`, subject, { ...fields, stage, reason }, `refused: ${reason}`);
  };
  const connectFailed = (address: string | undefined) => {
    if (address && throttle.failed(address)) {
      log.warn({ address, failures: config.mqtt.connectFailureLimit, windowMs: config.mqtt.connectFailureWindowMs, backoffMs: config.mqtt.connectBackoffMs },
        'too many failed CONNECTs from this address: refusing its connections for the back-off period');
    }
  };

  const options: AedesOptions = {
    connectTimeout: config.mqtt.connectTimeoutMs,
    // aedes answers a keepalive of 0 or above its limit with return code 6, which MQTT 3.1.1 does not define
    // [MQTT-3.2.2-6]. Keepalive 0 is legal [MQTT-3.1.2-10]: such connections (and longer ones) are accepted and
    // closed by our own idle timeout, keepaliveLimitS × 1.5 without traffic (preConnect below).
    keepaliveLimit: 0,
    // device ids are ≤ 23 characters [MQTT-3.1.3-5]
    maxClientsIdLength: 23,
    maxTopicLevels: 8,
    // packets a device may send between CONNECT and CONNACK (MQTT 3.1.1 lets it pipeline: a terminal flushing its
    // offline buffer does); the bytes are bounded by mqtt.maxPreConnectBytes
    queueLimit: 200,
    maxInflightInbound: 100,
    heartbeatInterval: 60_000,

    preConnect(client, packet, done) {
      // counted from the moment its CONNECT is parsed: refused (return code 3) in authenticate below if not admitted
      admission.arrive(client);
      const keepalive = packet.keepalive ?? 0;
      if (keepalive === 0 || keepalive > keepaliveLimitS) {
        const conn = (client as unknown as { conn?: Socket }).conn;
        conn?.setTimeout?.(keepaliveLimitS * 1500, () => {
          limited.info('idle timeout', addressOf(client), { clientId: packet.clientId, keepalive, address: addressOf(client) },
            'closing an MQTT connection idle beyond the server limit');
          conn.destroy();
        });
      }
      done(null, true);
    },

    authenticate(client, username, password, done) {
      const id = client.id;
      // admission first: a refusal here costs no hash and no session work
      if (!admission.admitted(client)) {
        metrics.connectionsRefused.inc({ listener: 'mqtt', reason: 'admission' });
        limited.warn('admission', undefined, { inProgress: admission.size, limit: config.mqtt.maxConnectsInProgress },
          `refused: ${config.mqtt.maxConnectsInProgress} CONNECTs already in progress (mqtt.maxConnectsInProgress); CONNACK "server unavailable", the device backs off and retries`);
        // not the device's fault: not a failed CONNECT for the address's back-off
        const err = new RefusedError('server busy: too many connections being set up, retry later', 3) as Error & { returnCode: number };
        err.returnCode = 3;
        return done(err as never, false);
      }
      const fail = (reason: string, code: 2 | 4 | 5) => {
        const address = addressOf(client);
        refuse('connect', reason, { clientId: id, username, address });
        connectFailed(address);
        const err = new RefusedError(reason, code) as Error & { returnCode: number };
        err.returnCode = code;
        done(err as never, false);
      };
      // clientId = username = deviceId (docs/design.md §2); this also keeps `#` and `+` out of client ids
      if (!DEVICE_ID_RE.test(id)) return fail('client id is not a device id', 2);
      if (username !== id) return fail('client id differs from username', 2);
      const verdict = registry.authenticate(id, password);
      if (verdict === 'suspended') {
        // its own secret, so its own terminal: someone may be pressing its button (a resident home from hospital with
        // the device suspended meanwhile). A person is told (the device's P3 card, at most one report per window, as
        // the protocol listeners do for their terminals); the connection is still refused
        unreadable.refused(id, suspendedConnectReason(id), 'mqtt CONNECT')
          ?.catch((err: unknown) => log.warn({ err, deviceId: id }, 'could not record the refused connection on the device'));
      }
      if (verdict !== 'ok') return fail(verdict, verdict === 'unknown-device' || verdict === 'bad-secret' ? 4 : 5);
      const entry = registry.entry(id)!;
      if (!MQTT_KINDS.includes(entry.kind)) return fail(`a ${entry.kind} does not connect over MQTT`, 5);
      done(null, true);
    },

    authorizePublish(client, packet, done) {
      if (!client) return done(null); // the broker's own publishes (commands)
      // A Last Will (aedes passes the connection's will packet itself as it closes): in its slice, in the device's order
      if (packet === (client as unknown as { will?: unknown }).will) {
        const closedAt = endedAt.get(client) ?? Date.now();
        closing.push(client.id, () => authorize(client, packet, done, true, closedAt));
        return;
      }
      // nothing from a device before its earlier connection's Will
      settle(client.id);
      authorize(client, packet, done, false);
    },

    authorizeSubscribe(client, sub: Subscription, done) {
      if (sub.topic === topics.commands(client.id)) return done(null, sub);
      refuse('subscribe', 'topic outside the device contract', { deviceId: client.id, topic: sub.topic.slice(0, 200) });
      // a negative SUBACK (0x80) [MQTT-3.9.3-2]; the connection stays up
      done(null, null);
    },

    // the only subscriptions are a device's own commands: nothing else is forwarded
    authorizeForward(client, packet) {
      return packet.topic === topics.commands(client.id) ? packet : null;
    },
  };

  /** Not stored: no PUBACK. Under overload the connection is closed, so the device resends after it reconnects. */
  const notStored = (id: string, err: Error, will: boolean, what: string) => {
    if (err.name === 'OverloadError') {
      if (will) metrics.refused.inc({ stage: 'will', reason: 'overload' });
      limited.warn('overload', id, { deviceId: id, will },
        will
          ? 'the writer is overloaded: a Last Will was not stored (the disconnect still marks the device offline)'
          : 'the writer is overloaded: no PUBACK, closing the connection so the device resends after reconnecting');
    } else {
      log.error({ err, deviceId: id }, `could not store ${what}: no PUBACK, the device will resend`);
    }
  };

  const handleMessage = createDeviceMessageHandler({
    config, registry, states, ingest, metrics, unreadable,
    onUnreadable: (m, reason) => limited.warn('unreadable message', m.deviceId,
      { deviceId: m.deviceId, topic: m.topic, reason, bytes: m.payload.length }, 'unreadable message'),
  });

  // a device over its publish rate is read more slowly (gateway/broker/pacing.ts; docs/security.md)
  const pacer = new PublishPacer({
    ratePerS: config.mqtt.publishRatePerS,
    burst: config.mqtt.publishBurst,
    overRateCloseMs: config.mqtt.publishOverRateCloseMs,
    onPaced: (client) => {
      metrics.publishesPaced.inc();
      limited.warn('paced', client.id, { deviceId: client.id, ratePerS: config.mqtt.publishRatePerS, burst: config.mqtt.publishBurst },
        'a device publishes faster than mqtt.publishRatePerS: its connection is read more slowly (nothing is dropped); check the terminal');
    },
    onClosed: (client, overMs) => {
      metrics.connectionsRefused.inc({ listener: 'mqtt', reason: 'over-rate' });
      limited.warn('over rate', client.id, { deviceId: client.id, overMs: Math.round(overMs) },
        'closing a device that stayed over mqtt.publishRatePerS for mqtt.publishOverRateCloseMs: it reconnects and resends what was not acknowledged; check the terminal');
    },
  });

  // aedes writes the PUBACK after `done(null)` and only then; `done(err)` closes the connection without one. While
  // `done` waits, aedes reads nothing more from this connection: the PUBACK withheld is the back-pressure (the
  // device's in-flight window fills, then its TCP window).
  function authorize(client: Client, packet: PublishPacket, done: (err?: Error | null) => void, will: boolean, receivedAt?: number): void {
    const id = client.id;
    const prefix = topics.prefix(id);
    const channel = packet.topic.startsWith(prefix) ? packet.topic.slice(prefix.length) : '';
    if (!isDeviceChannel(channel)) {
      refuse('publish', 'topic outside the device contract', { deviceId: id, topic: packet.topic.slice(0, 200) });
      return done(new RefusedError(`topic ${packet.topic.slice(0, 100)} is not allowed for ${id}`));
    }
    if (packet.retain && channel !== 'status') {
      // never refuse a message for its retain flag (it may be an SOS): clear it, so nothing piles up retained
      packet.retain = false;
      metrics.refused.inc({ stage: 'publish', reason: 'retain flag cleared' });
    }
    let alarm = false;
    const wait = handleMessage({
      deviceId: id, channel, topic: packet.topic, payload: packet.payload as Buffer,
      // A Last Will is acknowledged to no one (its connection is gone): whatever QoS the device gave it, nobody waits
      // for it to be durable, so its batch pays no fsync for it (a reconnect storm's thousands of Wills would). If it
      // raises an incident, the batch is synced before the incident goes out all the same; if a power cut takes a
      // Will back, the restart finds every device offline anyway. Like QoS 0 it may be shed (counted) when the writer
      // has no room or is being replaced; the disconnect still marks the device offline.
      qos: will ? 0 : packet.qos, source: 'mqtt', read: !will,
      // a Will is dated when its connection closed, not when its slice came
      at: receivedAt ?? Date.now(),
      stamp: (obs) => {
        alarm = isLifeSafety(obs.type);
        stampSession(obs, client, packet);
      },
    });
    // an alarm's PUBACK never waits for the rate, and a Will is the connection's last word
    const ok = alarm || will || !pacer.enabled ? () => done(null) : () => pacer.pace(client, () => done(null));
    if (!wait) return ok();
    wait.then(ok, (err: Error) => {
      if (err instanceof DeviceGoneError) {
        // suspended or removed while this publish was on its way (the revocation closes the connection): kept raw,
        // counted, no PUBACK
        refuse('publish', `device ${err.reason}`, { deviceId: id, topic: packet.topic.slice(0, 200) });
        ingest.recordReject({ deviceId: id, source: 'mqtt', topic: packet.topic, reason: err.message, raw: packet.payload as Buffer, at: Date.now() });
        return done(new RefusedError(err.message));
      }
      notStored(id, err, will, channel === 'events' || channel === 'commands/ack' ? 'an event' : 'telemetry');
      done(err);
    });
  }

  const aedes = (await Aedes.createBroker(options)) as Aedes & { clients: Record<string, Client> };
  skipClientFanOut(aedes);

  aedes.on('clientReady', (client: Client) => {
    admission.release(client);
    // its previous connection's Will and disconnect go first, or the device would show offline while connected
    settle(client.id);
    states.setOnline(client.id, true, Date.now());
    metrics.connected.set(aedes.connectedClients);
    bus.emit('device-state', { deviceId: client.id, change: 'connected' });
  });
  aedes.on('clientDisconnect', (client: Client) => {
    metrics.connected.set(aedes.connectedClients);
    pacer.closed(client);
    const at = endedAt.get(client) ?? Date.now();
    closing.push(client.id, () => {
      // a newer connection with the same id may already have replaced this one
      if (aedes.clients[client.id] && aedes.clients[client.id] !== client) return;
      states.setOnline(client.id, false, at);
      bus.emit('device-state', { deviceId: client.id, change: 'disconnected' });
    });
  });
  aedes.on('clientError', (client: Client, err: Error) => {
    log.debug({ deviceId: client?.id, err: err.message }, 'client error');
  });
  aedes.on('connectionError', (client: Client, err: Error) => {
    log.debug({ err: err.message, address: addressOf(client) }, 'connection error');
  });

  const onRevoked = ({ deviceId, reason }: { deviceId: string; reason: string }) => {
    const c = aedes.clients[deviceId];
    if (c) {
      log.info({ deviceId, reason }, 'disconnecting a revoked device');
      c.close();
    }
  };
  bus.on('device-revoked', onRevoked);

  // A socket handler never throws out (it would end the process): a failure drops that connection only.
  const guarded = (what: string, fn: (socket: Socket) => unknown) => (socket: Socket) => {
    try {
      fn(socket);
    } catch (err) {
      metrics.internalErrors.inc({ where: `mqtt-${what}` });
      limited.warn(`${what} failed`, undefined, { err }, 'could not set up an MQTT connection; dropped');
      socket.destroy();
    }
  };
  /**
   * Admission, on the TCP socket as accepted (for TLS before the handshake, which holds a descriptor too): an
   * address backing off after failed CONNECTs, the per-address cap, then the listeners' shared cap.
   */
  const admit = (socket: Socket, listener: 'mqtt' | 'mqtt-tls'): boolean => {
    const address = socket.remoteAddress ?? 'unknown';
    if (throttle.blocked(address)) {
      // cheap and silent: no parse, no log line per attempt, only the count
      metrics.connectionsRefused.inc({ listener, reason: 'backoff' });
      socket.destroy();
      return false;
    }
    const n = perAddress.get(address) ?? 0;
    if (n >= config.mqtt.maxConnectionsPerAddress) {
      metrics.connectionsRefused.inc({ listener, reason: 'per-address' });
      refuse('connect', 'too many connections', { address, limit: 'per-address' });
      socket.destroy();
      return false;
    }
    if (!gate.admit(socket)) {
      limited.warn('connection limit', undefined, { address, cap }, `refused: the broker holds its limit of ${cap} connections`);
      return false;
    }
    // half-open connections (a phone that lost its network) are found by the kernel, not held for ever (set on the
    // listener once where the socket inherits it: core/tcp-keepalive.ts)
    keepAlive[listener](socket);
    perAddress.set(address, n + 1);
    socket.once('close', () => {
      const left = (perAddress.get(address) ?? 1) - 1;
      if (left <= 0) perAddress.delete(address);
      else perAddress.set(address, left);
    });
    return true;
  };
  const handle = (socket: Socket) => {
    const address = socket.remoteAddress ?? 'unknown';
    // Nagle's algorithm alone adds ~40 ms to p99 (docs/design.md §7)
    socket.setNoDelay(true);
    // a connection its device ended or reset is closed in the close slices, in the device's order (close-later.ts)
    const client = handleClosingLater(aedes, socket, {
      later: (c, run) => closing.push(c.id ?? `#${address}:${socket.remotePort ?? ''}`, run),
      ended: (c) => endedAt.set(c, Date.now()),
    });
    // a device that completed CONNECT is no longer a candidate to make room for newcomers
    client.once('connected', () => gate.busy(socket));
    // a CONNECT admitted and never completed (refused, timed out, dropped) gives its place back
    socket.once('close', () => admission.release(client));
    guardConnection(client, socket, {
      maxPacketBytes: config.mqtt.maxPacketBytes,
      maxPreConnectBytes: config.mqtt.maxPreConnectBytes,
      onRefuse: (reason) => {
        refuse('connect', reason, { address });
        if (!client.connected) connectFailed(address);
      },
    });
  };
  // accept() failing (EMFILE, ENFILE) is an 'error' on the listening server: without a listener it would end the
  // process. The server keeps listening; the connection is lost and counted.
  const onListenerError = (listener: string) => (err: NodeJS.ErrnoException) => {
    metrics.connectionsRefused.inc({ listener, reason: 'accept-error' });
    limited.warn('accept error', listener, { err: err.message, code: err.code, listener }, 'the listener could not accept a connection');
  };

  const servers: Server[] = [];
  /** per listener, what an accepted socket needs for TCP keepalive (nothing once it inherits it from the listener) */
  const keepAlive: Record<'mqtt' | 'mqtt-tls', (socket: Socket) => void> = { mqtt: keepAliveEach, 'mqtt-tls': keepAliveEach };
  const tcp = createTcpServer({ noDelay: true, allowHalfOpen: true }, guarded('accept', (socket) => {
    if (admit(socket, 'mqtt')) handle(socket);
  }));
  await listen(tcp, config.mqtt.port, config.mqtt.host);
  keepAlive.mqtt = keepAliveOnListener(tcp);
  tcp.on('error', onListenerError('mqtt'));
  servers.push(tcp);
  let tlsPort: number | null = null;
  if (config.tls.certFile && config.tls.keyFile) {
    const tls = createTlsServer(
      {
        cert: readFileSync(config.tls.certFile), key: readFileSync(config.tls.keyFile), noDelay: true,
        // a connection the device ended is closed in the close slices (handle, below)
        allowHalfOpen: true,
        // a handshake that never completes holds a descriptor: no longer than a CONNECT may take
        handshakeTimeout: config.mqtt.connectTimeoutMs,
      } as never,
      guarded('accept', handle),
    );
    tls.on('connection', guarded('accept', (raw) => admit(raw, 'mqtt-tls')));
    await listen(tls, config.mqtt.tlsPort, config.mqtt.host);
    keepAlive['mqtt-tls'] = keepAliveOnListener(tls);
    tls.on('error', onListenerError('mqtt-tls'));
    // a failed TLS handshake is the client's problem, not the server's
    tls.on('tlsClientError', (err: Error, socket: Socket) => {
      metrics.refused.inc({ stage: 'tls', reason: 'handshake failed' });
      limited.info('tls handshake failed', socket?.remoteAddress, { err: err.message, address: socket?.remoteAddress }, 'TLS handshake failed');
    });
    servers.push(tls);
    tlsPort = (tls.address() as { port: number }).port;
  }
  const port = (tcp.address() as { port: number }).port;
  log.info({ port, tlsPort, maxConnections: cap }, 'MQTT broker listening');

  return {
    aedes,
    port,
    tlsPort,
    isConnected: (deviceId) => Boolean(aedes.clients[deviceId]?.connected),
    closing: () => ({ pending: closing.pending, settledEarly }),
    publishToDevice(deviceId, topic, payload) {
      const packet = {
        cmd: 'publish', topic, payload: Buffer.from(JSON.stringify(payload)), qos: 1, retain: false, dup: false,
      } as PublishPacket;
      return new Promise<void>((resolve, reject) => aedes.publish(packet, (err) => (err ? reject(err) : resolve())));
    },
    async close() {
      bus.off('device-revoked', onRevoked);
      await unreadable.close();
      limited.close();
      // a listener's close completes only once its connections have ended: stop taking new ones, close every
      // device's connection (aedes), then what never completed CONNECT, and only then wait for the listeners
      // (awaited first, they waited for ever on a terminal still connected, until main.ts's 10 s forced exit)
      const listenersClosed = Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
      await new Promise<void>((r) => aedes.close(() => r()));
      gate.destroyAll();
      await listenersClosed;
      // the Wills and disconnects of the connections just closed: handed to the writer before it closes
      closing.drain();
    },
  };
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host, backlog: LISTEN_BACKLOG }, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function addressOf(client: Client | undefined): string | undefined {
  const conn = (client as unknown as { conn?: Socket })?.conn;
  return conn?.remoteAddress;
}
