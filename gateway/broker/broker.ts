// The embedded MQTT broker (aedes 1.x) with the hooks that make it safe on a public port (DESIGN §2): devices
// authenticate against the registry, publish and subscribe only under their own devices/{id}/, events are durable
// before PUBACK, bytes are bounded before aedes parses them, and revoked devices are cut off at once.
import { createServer as createTcpServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { readFileSync } from 'node:fs';
import { Aedes, type AedesOptions, type Client, type PublishPacket, type Subscription } from 'aedes';
import type { Config } from '../../core/config.js';
import type { Logger } from '../../core/logger.js';
import type { Metrics } from '../../core/metrics.js';
import type { Bus } from '../../core/bus.js';
import { topics } from '../../core/contracts.js';
import type { DeviceRegistry } from '../../devices/registry.js';
import { DEVICE_ID_RE } from '../../devices/credentials.js';
import { MQTT_KINDS } from '../../devices/kinds/index.js';
import { decodeCommandAck, decodeFrame, decodeStatus, type FrameResult } from '../../devices/frames.js';
import type { DeviceStates } from '../device-state.js';
import type { Ingest } from '../ingest.js';
import { guardConnection } from './guard.js';
import { createUnreadableReporter } from './unreadable.js';
import { stampSession } from './session.js';

export interface BrokerDeps {
  config: Config;
  registry: DeviceRegistry;
  states: DeviceStates;
  ingest: Ingest;
  bus: Bus;
  log: Logger;
  metrics: Metrics;
}

export interface EmbeddedBroker {
  aedes: Aedes;
  port: number;
  tlsPort: number | null;
  /** publish a command to a device (QoS 1); resolves when handed to the device's connection (or no one listens) */
  publishToDevice(deviceId: string, topic: string, payload: object): Promise<void>;
  isConnected(deviceId: string): boolean;
  close(): Promise<void>;
}

class RefusedError extends Error {
  constructor(message: string, readonly returnCode?: number) {
    super(message);
  }
}

const CHANNELS = new Set(['events', 'telemetry', 'status', 'commands/ack']);

/** refused frames of one device are reported (raise, then join the open incident) at most once per this window */
export const UNREADABLE_REPORT_WINDOW_MS = 3000;

export async function startBroker(deps: BrokerDeps): Promise<EmbeddedBroker> {
  const { config, registry, states, ingest, bus, metrics } = deps;
  const log = deps.log.child({ module: 'broker' });
  const perAddress = new Map<string, number>();
  let connections = 0;

  const unreadable = createUnreadableReporter({
    sink: ingest, log, metrics, windowMs: UNREADABLE_REPORT_WINDOW_MS,
    // only a connected device can send a frame: no more than the connections allowed need tracking at once
    maxDevices: config.mqtt.maxConnections,
  });

  const refuse = (stage: string, reason: string, fields: Record<string, unknown>) => {
    metrics.refused.inc({ stage, reason });
    log.warn({ ...fields, stage, reason }, `refused: ${reason}`);
  };

  const options: AedesOptions = {
    connectTimeout: config.mqtt.connectTimeoutMs,
    keepaliveLimit: config.mqtt.keepaliveLimitS,
    // device ids are ≤ 23 characters [MQTT-3.1.3-5]
    maxClientsIdLength: 23,
    maxTopicLevels: 8,
    // packets a device may send between CONNECT and CONNACK (MQTT 3.1.1 lets it pipeline: a terminal flushing its
    // offline buffer does); the bytes are bounded by mqtt.maxPreConnectBytes
    queueLimit: 200,
    maxInflightInbound: 100,
    heartbeatInterval: 60_000,

    authenticate(client, username, password, done) {
      const id = client.id;
      const fail = (reason: string, code: 2 | 4 | 5) => {
        refuse('connect', reason, { clientId: id, username, address: addressOf(client) });
        const err = new RefusedError(reason, code) as Error & { returnCode: number };
        err.returnCode = code;
        done(err as never, false);
      };
      // clientId = username = deviceId (DESIGN §2); this also keeps `#` and `+` out of client ids
      if (!DEVICE_ID_RE.test(id)) return fail('client id is not a device id', 2);
      if (username !== id) return fail('client id differs from username', 2);
      const verdict = registry.authenticate(id, password);
      if (verdict !== 'ok') return fail(verdict, verdict === 'unknown-device' || verdict === 'bad-secret' ? 4 : 5);
      const entry = registry.entry(id)!;
      if (!MQTT_KINDS.includes(entry.kind)) return fail(`a ${entry.kind} does not connect over MQTT`, 5);
      done(null, true);
    },

    authorizePublish(client, packet, done) {
      if (!client) return done(null); // the broker's own publishes (commands)
      const id = client.id;
      const prefix = topics.prefix(id);
      if (!packet.topic.startsWith(prefix) || !CHANNELS.has(packet.topic.slice(prefix.length))) {
        refuse('publish', 'topic outside the device contract', { deviceId: id, topic: packet.topic.slice(0, 200) });
        return done(new RefusedError(`topic ${packet.topic.slice(0, 100)} is not allowed for ${id}`));
      }
      const channel = packet.topic.slice(prefix.length);
      if (packet.retain && channel !== 'status') {
        // never refuse a message for its retain flag (it may be an SOS): clear it, so nothing piles up retained
        packet.retain = false;
        metrics.refused.inc({ stage: 'publish', reason: 'retain flag cleared' });
      }
      const payload = packet.payload as Buffer;
      const at = Date.now();
      const entry = registry.entry(id);
      if (!entry) return done(new RefusedError('device no longer registered'));
      let result: FrameResult;
      if (channel === 'events' || channel === 'telemetry') {
        result = decodeFrame(entry.kind, id, channel, payload, at, config.ingest.maxPayloadBytes);
      } else if (channel === 'status') {
        result = decodeStatus(id, payload, at);
      } else {
        result = decodeCommandAck(id, payload, at);
      }
      if (!result.ok) {
        // Authenticated but unreadable: never an observation. Kept raw, counted, flagged on the device, and reported
        // as a P3 "terminal sends unreadable messages" incident so a person looks at the terminal. Acknowledged, so
        // the device does not resend it forever — but only once such a report is durable.
        metrics.refused.inc({ stage: 'payload', reason: result.code });
        log.warn({ deviceId: id, topic: packet.topic, reason: result.reason, bytes: payload.length }, 'unreadable message');
        ingest.recordReject({ deviceId: id, source: 'mqtt', topic: packet.topic, reason: result.reason, raw: payload, at });
        states.markUnreadable(id, result.reason, at);
        const reported = unreadable.refused(id, result.reason, packet.topic);
        if (!reported) return done(null);
        reported.then(() => done(null), (err: Error) => {
          log.error({ err, deviceId: id }, 'could not report an unreadable message: no PUBACK, the device will resend');
          done(err);
        });
        return;
      }
      registry.markInService(id);
      const obs = result.obs;
      stampSession(obs, client, packet);
      if (channel === 'telemetry' || channel === 'status') {
        const wait = ingest.submitTelemetry(obs, packet.qos > 0);
        if (!wait) return done(null);
        wait.then(() => done(null), (err: Error) => done(err));
        return;
      }
      // events and command acks: durable before PUBACK (aedes writes PUBACK after this callback)
      ingest.submit(obs).then(
        () => done(null),
        (err: Error) => {
          log.error({ err, deviceId: id }, 'could not store an event: no PUBACK, the device will resend');
          done(err);
        },
      );
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

  const aedes = (await Aedes.createBroker(options)) as Aedes & { clients: Record<string, Client> };

  aedes.on('clientReady', (client: Client) => {
    states.setOnline(client.id, true, Date.now());
    metrics.connected.set(aedes.connectedClients);
    bus.emit('device-state', { deviceId: client.id, change: 'connected' });
  });
  aedes.on('clientDisconnect', (client: Client) => {
    // a newer connection with the same id may already have replaced this one
    if (aedes.clients[client.id] && aedes.clients[client.id] !== client) return;
    states.setOnline(client.id, false, Date.now());
    metrics.connected.set(aedes.connectedClients);
    bus.emit('device-state', { deviceId: client.id, change: 'disconnected' });
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

  const handle = (socket: Socket) => {
    // Nagle's algorithm alone adds ~40 ms to p99 (DESIGN §7)
    socket.setNoDelay(true);
    const address = socket.remoteAddress ?? 'unknown';
    const n = perAddress.get(address) ?? 0;
    if (connections >= config.mqtt.maxConnections || n >= config.mqtt.maxConnectionsPerAddress) {
      refuse('connect', 'too many connections', { address });
      socket.destroy();
      return;
    }
    connections++;
    perAddress.set(address, n + 1);
    socket.once('close', () => {
      connections--;
      const left = (perAddress.get(address) ?? 1) - 1;
      if (left <= 0) perAddress.delete(address);
      else perAddress.set(address, left);
    });
    const client = aedes.handle(socket);
    guardConnection(client, socket, {
      maxPacketBytes: config.mqtt.maxPacketBytes,
      maxPreConnectBytes: config.mqtt.maxPreConnectBytes,
      onRefuse: (reason) => refuse('connect', reason, { address }),
    });
  };

  const servers: Server[] = [];
  const tcp = createTcpServer({ noDelay: true }, handle);
  await listen(tcp, config.mqtt.port, config.mqtt.host);
  servers.push(tcp);
  let tlsPort: number | null = null;
  if (config.tls.certFile && config.tls.keyFile) {
    const tls = createTlsServer(
      { cert: readFileSync(config.tls.certFile), key: readFileSync(config.tls.keyFile), noDelay: true } as never,
      handle,
    );
    await listen(tls, config.mqtt.tlsPort, config.mqtt.host);
    servers.push(tls);
    tlsPort = (tls.address() as { port: number }).port;
  }
  const port = (tcp.address() as { port: number }).port;
  log.info({ port, tlsPort }, 'MQTT broker listening');

  return {
    aedes,
    port,
    tlsPort,
    isConnected: (deviceId) => Boolean(aedes.clients[deviceId]?.connected),
    publishToDevice(deviceId, topic, payload) {
      const packet = {
        cmd: 'publish', topic, payload: Buffer.from(JSON.stringify(payload)), qos: 1, retain: false, dup: false,
      } as PublishPacket;
      return new Promise<void>((resolve, reject) => aedes.publish(packet, (err) => (err ? reject(err) : resolve())));
    },
    async close() {
      bus.off('device-revoked', onRevoked);
      await unreadable.close();
      await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
      await new Promise<void>((r) => aedes.close(() => r()));
    },
  };
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function addressOf(client: Client | undefined): string | undefined {
  const conn = (client as unknown as { conn?: Socket })?.conn;
  return conn?.remoteAddress;
}
