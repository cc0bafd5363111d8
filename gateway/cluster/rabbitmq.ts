// Cluster mode (docs/scale-out.md): terminals connect over MQTT to a RabbitMQ cluster instead of the embedded broker,
// and this node takes their messages over AMQP. The promises of the one-node gateway, kept across the cluster:
// - A PUBACK means "in a replicated quorum queue": RabbitMQ's MQTT plugin confirms a QoS 1 publish only once the
//   queues it was routed to have it. The topology below exists before any device's publish can be confirmed (the MQTT
//   plugin publishes into `rabbitmq.exchange`; until we declare it, a publish fails and gets no PUBACK), and an
//   alternate exchange catches whatever no binding matches, so nothing is confirmed and dropped.
// - One writer per device, in order: device messages are hashed by routing key (`devices.<id>.<channel>`) into
//   `rabbitmq.partitions` quorum queues with a single active consumer each; a partition whose node dies is taken over
//   by a surviving node, in order (its unacknowledged messages come again: dedup in the writer handles them).
// - Acknowledged to RabbitMQ only after our own commit, the way the embedded broker sends its PUBACK.
// - A message the writer keeps failing (not the storage: a fault of that message) is retried rabbitmq.deliveryLimit
//   times, then dead-lettered and raised as an incident — never silently parked, never blocking its partition.
import { readFileSync, statSync } from 'node:fs';
import type Database from 'better-sqlite3';
import amqp, { type Channel, type ChannelModel, type ConfirmChannel, type ConsumeMessage } from 'amqplib';
import type { Config } from '../../core/config.js';
import { createLogLimiter, type Logger } from '../../core/logger.js';
import type { Metrics } from '../../core/metrics.js';
import type { Bus } from '../../core/bus.js';
import { ConfigError } from '../../core/errors.js';
import { isStorageError, type StorageHealth } from '../../core/storage-health.js';
import { DEVICE_ID_RE } from '../../devices/credentials.js';
import type { DeviceRegistry } from '../../devices/registry.js';
import type { IncidentService } from '../../response/incidents.js';
import type { DeviceStates } from '../device-state.js';
import { OverloadError, type Ingest } from '../ingest.js';
import type { CommandTransport } from '../commands.js';
import { createDeviceMessageHandler, DeviceGoneError, isDeviceChannel, type DeviceMessage } from '../device-messages.js';
import { createUnreadableReporter } from '../broker/unreadable.js';
import { UNREADABLE_REPORT_WINDOW_MS } from '../broker/broker.js';
import { deviceOwnerQuery } from '../alarms.js';

/** the incident raised for a dead-lettered message */
export const DEAD_LETTER_INCIDENT = 'message-not-processed';

/** Names of what eldergate declares in RabbitMQ, all derived from `rabbitmq.exchange`. */
export function topologyNames(exchange: string, partitions: number) {
  return {
    /** the MQTT plugin publishes here (its `mqtt.exchange`), and commands to devices go out through it */
    exchange,
    /** consistent-hash exchange spreading device messages over the partitions */
    hash: `${exchange}.partitions`,
    partition: (i: number) => `${exchange}.p${i}`,
    partitionNames: Array.from({ length: partitions }, (_, i) => `${exchange}.p${i}`),
    /** what no binding matched (alternate exchange), and its queue */
    unrouted: `${exchange}.unrouted`,
    /** messages the writer failed deliveryLimit times, and their queue */
    dead: `${exchange}.dead`,
  };
}

/** the routing keys of what devices send (MQTT topic levels joined by dots) */
const DEVICE_BINDINGS = ['devices.*.events', 'devices.*.telemetry', 'devices.*.status', 'devices.*.commands.ack'];

export interface RabbitIngressDeps {
  config: Config;
  registry: DeviceRegistry;
  states: DeviceStates;
  ingest: Ingest;
  incidents: IncidentService;
  sqlite: Database.Database;
  storage: Pick<StorageHealth, 'status'>;
  bus: Bus;
  log: Logger;
  metrics: Metrics;
  /** a device said it is online (its status message): re-send what is pending for it */
  onDeviceOnline(deviceId: string): void;
}

export interface RabbitIngress extends CommandTransport {
  /** whether this node holds its AMQP connection now */
  connected(): boolean;
  /** resolves once the topology is declared and the partitions consumed (the first time) */
  ready: Promise<void>;
  close(): Promise<void>;
}

/** Parse `devices.<id>.<channel>` into the device and its MQTT channel; undefined if it is not one. */
export function parseRoutingKey(key: string): { deviceId: string; channel: DeviceMessage['channel']; topic: string } | undefined {
  if (!key.startsWith('devices.')) return undefined;
  const rest = key.slice('devices.'.length);
  const dot = rest.indexOf('.');
  if (dot <= 0) return undefined;
  const deviceId = rest.slice(0, dot);
  const channel = rest.slice(dot + 1).replace(/\./g, '/');
  if (!DEVICE_ID_RE.test(deviceId) || !isDeviceChannel(channel)) return undefined;
  return { deviceId, channel, topic: `devices/${deviceId}/${channel}` };
}

/** the service user's password: from a file only readable by its owner (it opens every queue of the cluster) */
export function readPasswordFile(file: string): string {
  let mode: number;
  try {
    mode = statSync(file).mode;
  } catch (err) {
    throw new ConfigError([`rabbitmq.passwordFile: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); create it holding the RabbitMQ password of rabbitmq.username, mode 0600`]);
  }
  if (mode & 0o077) {
    throw new ConfigError([`rabbitmq.passwordFile: ${file} is readable by others (mode ${(mode & 0o777).toString(8)}); chmod 600 ${file}`]);
  }
  const password = readFileSync(file, 'utf8').trim();
  if (!password) throw new ConfigError([`rabbitmq.passwordFile: ${file} is empty; write the RabbitMQ password of rabbitmq.username into it`]);
  return password;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

export function startRabbitIngress(d: RabbitIngressDeps): RabbitIngress {
  const { config, metrics } = d;
  const settings = config.rabbitmq;
  const log = d.log.child({ module: 'rabbitmq' });
  const password = readPasswordFile(settings.passwordFile!);
  const names = topologyNames(settings.exchange, settings.partitions);
  const limited = createLogLimiter(log, {
    burst: config.limits.logBurst, windowMs: config.limits.logWindowMs,
    onSuppressed: (kind) => metrics.logSuppressed.inc({ kind }),
  });
  const unreadable = createUnreadableReporter({
    sink: d.ingest, log, metrics, windowMs: UNREADABLE_REPORT_WINDOW_MS, maxDevices: 100_000,
  });
  const handle = createDeviceMessageHandler({
    config, registry: d.registry, states: d.states, ingest: d.ingest, metrics, unreadable,
    onUnreadable: (m, reason) => limited.warn('unreadable message', m.deviceId,
      { deviceId: m.deviceId, topic: m.topic, reason, bytes: m.payload.length }, 'unreadable message'),
  });
  const ownerOf = deviceOwnerQuery(d.sqlite);

  let stopped = false;
  let conn: ChannelModel | null = null;
  let publisher: ConfirmChannel | null = null;
  let markReady: () => void = () => {};
  const ready = new Promise<void>((r) => (markReady = r));
  /** messages taken and not yet settled: close() waits for their commits */
  const inFlight = new Set<Promise<void>>();

  /** transient: the writer has no room, or the storage is failing — the message waits here, unacknowledged */
  const transient = (err: unknown) => err instanceof OverloadError || isStorageError(err) || d.storage.status() !== null;

  const settle = (ch: Channel, msg: ConsumeMessage, how: 'ack' | 'requeue') => {
    try {
      if (how === 'ack') ch.ack(msg);
      else ch.nack(msg, false, true);
    } catch {
      // the channel closed meanwhile: RabbitMQ gives the message to the partition's next consumer (dedup handles it)
    }
  };

  /** Hand one device message to the writer; ack after the commit. Retries transient failures in place. */
  const take = async (ch: Channel, msg: ConsumeMessage, queue: 'partition' | 'unrouted'): Promise<void> => {
    const parsed = parseRoutingKey(msg.fields.routingKey);
    if (!parsed) {
      // the auth backend lets devices publish only on their own channels: this did not come from a device
      metrics.rabbitMessages.inc({ queue, result: 'refused' });
      limited.warn('routing key', msg.fields.routingKey, { routingKey: msg.fields.routingKey.slice(0, 200) },
        'a message that is no device channel reached a partition: dropped (check who may publish to the MQTT exchange)');
      return settle(ch, msg, 'ack');
    }
    const qos = Number(msg.properties.headers?.['x-mqtt-publish-qos'] ?? 1);
    const at = Date.now();
    for (let delay = 250; ; delay = Math.min(delay * 2, 5000)) {
      try {
        const wait = handle({
          ...parsed, payload: msg.content, qos, at, source: 'mqtt',
          stamp: (obs) => {
            if (msg.fields.redelivered) obs.redelivered = true;
          },
        });
        if (wait) await wait;
        afterStored(parsed.deviceId, parsed.channel, msg.content, at);
        metrics.rabbitMessages.inc({ queue, result: 'acked' });
        return settle(ch, msg, 'ack');
      } catch (err) {
        if (err instanceof DeviceGoneError) {
          // suspended, decommissioned or deleted after its CONNECT (RabbitMQ keeps a connection's permissions until the
          // revoker closes it): kept raw as a refusal, so it is not silently gone, and taken off the queue
          metrics.rabbitMessages.inc({ queue, result: 'refused' });
          d.ingest.recordReject({ deviceId: parsed.deviceId, source: 'mqtt', topic: parsed.topic, reason: err.message, raw: msg.content, at });
          limited.warn('device gone', parsed.deviceId, { deviceId: parsed.deviceId, reason: err.reason }, 'a message from a device that may no longer send: kept as a refusal, not processed');
          return settle(ch, msg, 'ack');
        }
        if (stopped) return; // unacknowledged: RabbitMQ gives it to the next consumer
        if (transient(err)) {
          limited.warn('not stored', parsed.deviceId, { deviceId: parsed.deviceId, err: (err as Error).message, retryInMs: delay },
            'a device message could not be stored yet; it stays unacknowledged in RabbitMQ and is tried again');
          await sleep(delay);
          continue;
        }
        // a fault of this message: back to its queue, which dead-letters it after rabbitmq.deliveryLimit deliveries
        metrics.rabbitMessages.inc({ queue, result: 'requeued' });
        log.error({ err, deviceId: parsed.deviceId, channel: parsed.channel, deliveryCount: msg.properties.headers?.['x-delivery-count'] ?? 0 },
          `the writer failed on a device message: returned to its queue (dead-lettered and raised as an incident after ${settings.deliveryLimit} deliveries)`);
        return settle(ch, msg, 'requeue');
      }
    }
  };

  /** Online state from the device's own status messages (the broker's connections are RabbitMQ's, not ours). */
  const afterStored = (deviceId: string, channel: string, payload: Buffer, at: number) => {
    let online = true;
    if (channel === 'status') {
      try {
        online = (JSON.parse(payload.toString('utf8')) as { online?: unknown }).online !== false;
      } catch {
        return;
      }
    } else if (d.states.peek(deviceId)?.online) {
      return;
    }
    if (d.states.peek(deviceId)?.online === online) return;
    d.states.setOnline(deviceId, online, at);
    d.bus.emit('device-state', { deviceId, change: online ? 'connected' : 'disconnected' });
    if (online) d.onDeviceOnline(deviceId);
  };

  /** A message the writer failed deliveryLimit times: an incident a person sees, then off the dead-letter queue. */
  const takeDead = async (ch: Channel, msg: ConsumeMessage): Promise<void> => {
    const parsed = parseRoutingKey(msg.fields.routingKey);
    const deviceId = parsed?.deviceId ?? 'unknown';
    const headers = msg.properties.headers ?? {};
    const body = msg.content.subarray(0, 512).toString('utf8');
    for (let delay = 1000; ; delay = Math.min(delay * 2, 30_000)) {
      try {
        let owner = { residentId: null as string | null, unitId: null as string | null };
        if (parsed) owner = (ownerOf.get(deviceId) as typeof owner | undefined) ?? owner;
        const events = d.sqlite.transaction(() => d.incidents.applyAlarm({
          action: 'raise', type: DEAD_LETTER_INCIDENT,
          // an event may be an alarm nobody has seen: treated as one until a person has looked
          priority: parsed?.channel === 'events' ? 'P1' : 'P3',
          rule: 'dead-letter',
          data: {
            detail: `a message from ${deviceId} could not be processed after ${settings.deliveryLimit} attempts; call the resident if it may have been an alarm, and look at the gateway's log`,
            routingKey: msg.fields.routingKey.slice(0, 200),
            reason: String(headers['x-first-death-reason'] ?? 'delivery_limit'),
            payload: body,
          },
        }, { deviceId, ...owner, stamps: { received: Date.now() } }))();
        d.incidents.publishCommitted(events);
        metrics.rabbitMessages.inc({ queue: 'dead', result: 'dead-lettered' });
        log.error({ deviceId, routingKey: msg.fields.routingKey, incidentId: events[0]?.incidentId },
          'a device message was dead-lettered after repeated failures: raised as an incident');
        return settle(ch, msg, 'ack');
      } catch (err) {
        if (stopped) return;
        limited.warn('dead-letter', deviceId, { err, deviceId, retryInMs: delay }, 'could not raise a dead-lettered message as an incident yet; trying again');
        await sleep(delay);
      }
    }
  };

  const track = (p: Promise<void>) => {
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
  };

  const declare = async (ch: Channel) => {
    const quorum = { durable: true, arguments: { 'x-queue-type': 'quorum' } };
    await ch.assertExchange(names.unrouted, 'fanout', { durable: true });
    await ch.assertQueue(names.unrouted, quorum);
    await ch.bindQueue(names.unrouted, names.unrouted, '');
    await ch.assertExchange(names.dead, 'fanout', { durable: true });
    await ch.assertQueue(names.dead, quorum);
    await ch.bindQueue(names.dead, names.dead, '');
    await ch.assertExchange(names.exchange, 'topic', { durable: true, alternateExchange: names.unrouted });
    await ch.assertExchange(names.hash, 'x-consistent-hash', { durable: true });
    for (const key of DEVICE_BINDINGS) await ch.bindExchange(names.hash, names.exchange, key);
    for (const q of names.partitionNames) {
      await ch.assertQueue(q, {
        durable: true,
        arguments: {
          'x-queue-type': 'quorum',
          'x-single-active-consumer': true,
          'x-delivery-limit': settings.deliveryLimit,
          'x-dead-letter-exchange': names.dead,
          // dead-lettering is confirmed by the dead queue before the partition lets go of the message
          'x-dead-letter-strategy': 'at-least-once',
          'x-overflow': 'reject-publish',
        },
      });
      // the binding key of a consistent-hash exchange is the partition's weight
      await ch.bindQueue(q, names.hash, '1');
    }
  };

  const connectOnce = async (url: string) => {
    const u = new URL(url);
    const c = await amqp.connect({
      protocol: u.protocol.replace(':', ''), hostname: u.hostname, port: u.port ? Number(u.port) : undefined,
      username: settings.username, password, vhost: settings.vhost, heartbeat: 10,
    }, { timeout: 5000 });
    const closed = new Promise<void>((resolve) => c.once('close', () => resolve()));
    c.on('error', (err: Error) => log.warn({ err: err.message, url }, 'AMQP connection error'));
    try {
      const setup = await c.createChannel();
      try {
        await declare(setup);
      } catch (err) {
        throw new Error(`declaring the topology failed (${(err as Error).message}); a queue or exchange that exists with other settings must be deleted once drained, or the old settings kept`, { cause: err });
      }
      await setup.close();
      publisher = await c.createConfirmChannel();
      // one channel per partition: a channel error stops one partition, not all
      for (const q of names.partitionNames) {
        const ch = await c.createChannel();
        await ch.prefetch(settings.prefetch);
        await ch.consume(q, (msg) => {
          if (msg) track(take(ch, msg, 'partition'));
        }, { noAck: false });
      }
      const unroutedCh = await c.createChannel();
      await unroutedCh.prefetch(64);
      await unroutedCh.consume(names.unrouted, (msg) => {
        if (!msg) return;
        if (/^devices\.[^.]+\.commands$/.test(msg.fields.routingKey)) {
          // a command to a device not subscribed now: it stays pending and is sent again when the device is back
          metrics.rabbitMessages.inc({ queue: 'unrouted', result: 'acked' });
          return settle(unroutedCh, msg, 'ack');
        }
        // a device message no partition took (a binding missing?): processed all the same, out of partition order
        limited.warn('unrouted', msg.fields.routingKey, { routingKey: msg.fields.routingKey.slice(0, 200) }, 'a device message matched no partition binding: processed from the unrouted queue');
        track(take(unroutedCh, msg, 'unrouted'));
      }, { noAck: false });
      const deadCh = await c.createChannel();
      await deadCh.prefetch(16);
      await deadCh.consume(names.dead, (msg) => {
        if (msg) track(takeDead(deadCh, msg));
      }, { noAck: false });
    } catch (err) {
      await c.close().catch(() => {});
      throw err;
    }
    return { c, closed };
  };

  const run = async () => {
    let i = 0;
    let delay = 500;
    while (!stopped) {
      const url = settings.urls[i % settings.urls.length]!;
      i++;
      try {
        const { c, closed } = await connectOnce(url);
        if (stopped) {
          await c.close().catch(() => {});
          break;
        }
        conn = c;
        delay = 500;
        metrics.rabbitLink.set(1);
        log.info({ url, partitions: settings.partitions, prefetch: settings.prefetch }, 'connected to RabbitMQ: topology declared, partitions consumed');
        markReady();
        await closed;
        conn = null;
        publisher = null;
        metrics.rabbitLink.set(0);
        if (!stopped) log.warn({ url }, 'lost the AMQP connection to RabbitMQ: unacknowledged messages go to another consumer; reconnecting');
      } catch (err) {
        limited.warn('connect', url, { url, err: (err as Error).message, retryInMs: delay }, 'cannot reach RabbitMQ; trying the next node');
      }
      if (!stopped) await sleep(delay);
      delay = Math.min(delay * 2, 5000);
    }
  };
  const running = run();

  return {
    ready,
    connected: () => conn !== null,
    isConnected: (deviceId) => d.states.peek(deviceId)?.online === true,
    async publishToDevice(deviceId, topic, payload) {
      const ch = publisher;
      if (!ch) throw new Error('not connected to RabbitMQ');
      const key = topic.replace(/\//g, '.');
      try {
        await new Promise<void>((resolve, reject) => {
          ch.publish(names.exchange, key, Buffer.from(JSON.stringify(payload)), {
            persistent: true, contentType: 'application/json', headers: { 'x-mqtt-publish-qos': 1 },
          }, (err) => (err ? reject(err) : resolve()));
        });
      } catch (err) {
        // RabbitMQ 3.10 keeps nacking a confirm channel whose publish met a dead queue leader (measured: > 40 s); a
        // fresh channel is confirmed at once. The command stays pending and is sent again (commands.ts).
        const c = conn;
        if (c && publisher === ch) {
          publisher = null;
          void ch.close().catch(() => {});
          publisher = await c.createConfirmChannel().catch(() => null);
        }
        throw err;
      }
    },
    async close() {
      stopped = true;
      // what was taken is committed (and acknowledged) before the connection goes
      await Promise.race([Promise.allSettled([...inFlight]), sleep(5000)]);
      await conn?.close().catch(() => {});
      await running;
      await unreadable.close();
      limited.close();
      metrics.rabbitLink.set(0);
    },
  };
}
