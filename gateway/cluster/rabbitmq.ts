// Cluster mode (docs/scale-out.md): terminals connect over MQTT to a RabbitMQ cluster instead of the embedded broker,
// and this node takes their messages over AMQP. The promises of the one-node gateway, kept across the cluster:
// - A PUBACK means "in a replicated quorum queue": RabbitMQ's MQTT plugin confirms a QoS 1 publish only once the
//   queues it was routed to have it. The topology below exists before any device's publish can be confirmed (the MQTT
//   plugin publishes into `rabbitmq.exchange`; until we declare it, a publish fails and gets no PUBACK), and an
//   alternate exchange catches whatever no binding matches, so nothing is confirmed and dropped.
// - One writer per device, in order: device messages are hashed by routing key (`devices.<id>.<channel>`) into
//   `rabbitmq.partitions` quorum queues with a single active consumer each; a partition whose node dies is taken over
//   by a surviving node, in order (its unacknowledged messages come again: dedup in the writer handles them).
// - Two lanes of partitions: events and command answers in their own (`.e<i>`), telemetry and status in theirs
//   (`.p<i>`). A message waiting for the storage holds a place of its partition's prefetch window; in one lane, a
//   chatty terminal's readings retried through a storage fault could fill the window and keep an SOS hashed to the
//   same partition from being delivered at all until they were stored.
// - Acknowledged to RabbitMQ only after our own commit, the way the embedded broker sends its PUBACK.
// - A message the writer keeps failing (not the storage: a fault of that message) is retried rabbitmq.deliveryLimit
//   times, then dead-lettered and raised as an incident — never silently parked, never blocking its partition.
import type Database from 'better-sqlite3';
import { readSecretFile } from '../../core/secret-file.js';
import amqp, { type Channel, type ChannelModel, type ConfirmChannel, type ConsumeMessage } from 'amqplib';
import type { Config } from '../../core/config.js';
import { createLogLimiter, type Logger } from '../../core/logger.js';
import type { Metrics } from '../../core/metrics.js';
import type { Bus } from '../../core/bus.js';
import { EARLIER_NOT_STORED, type AlarmAction, type AlarmSource, type IncidentEvent } from '../../core/contracts.js';
import { writeWhenFree } from '../../core/db.js';
import { isStorageError, type StorageHealth } from '../../core/storage-health.js';
import { DEVICE_ID_RE } from '../../devices/credentials.js';
import type { DeviceRegistry } from '../../devices/registry.js';
import type { IncidentApi } from '../../response/incidents.js';
import { OverloadError } from '../ingest.js';
import type { CommandTransport } from '../commands.js';
import { createDeviceMessageHandler, DeviceGoneError, isDeviceChannel, type DeviceMessage } from '../device-messages.js';
import { createUnreadableReporter, suspendedConnectReason } from '../broker/unreadable.js';
import { UNREADABLE_REPORT_WINDOW_MS } from '../broker/broker.js';
import { deviceOwnerQuery } from '../alarms.js';
import type { LiveStates, IngestPort } from '../writer/client.js';
import { closeAmqp } from './amqp-close.js';

/** the incident raised for a dead-lettered message */
export const DEAD_LETTER_INCIDENT = 'message-not-processed';

/** Names of what eldergate declares in RabbitMQ, all derived from `rabbitmq.exchange`. */
export function topologyNames(exchange: string, partitions: number) {
  return {
    /** the MQTT plugin publishes here (its `mqtt.exchange`), and commands to devices go out through it */
    exchange,
    /** consistent-hash exchange spreading telemetry and status over their partitions */
    hash: `${exchange}.partitions`,
    partitionNames: Array.from({ length: partitions }, (_, i) => `${exchange}.p${i}`),
    /** consistent-hash exchange spreading events and command answers over partitions of their own */
    eventsHash: `${exchange}.events.partitions`,
    eventPartitionNames: Array.from({ length: partitions }, (_, i) => `${exchange}.e${i}`),
    /** what no binding matched (alternate exchange), and its queue */
    unrouted: `${exchange}.unrouted`,
    /** messages the writer failed deliveryLimit times, and their queue */
    dead: `${exchange}.dead`,
  };
}

/** the routing keys of what devices send (MQTT topic levels joined by dots), by lane */
const EVENT_BINDINGS = ['devices.*.events', 'devices.*.commands.ack'];
const TELEMETRY_BINDINGS = ['devices.*.telemetry', 'devices.*.status'];

export interface RabbitIngressDeps {
  config: Config;
  registry: DeviceRegistry;
  states: LiveStates;
  ingest: IngestPort;
  incidents: Pick<IncidentApi, 'applyAlarm' | 'publishCommitted'>;
  sqlite: Database.Database;
  storage: Pick<StorageHealth, 'status'>;
  bus: Bus;
  log: Logger;
  metrics: Metrics;
  /** a device said it is online (its status message): re-send what is pending for it */
  onDeviceOnline(deviceId: string): void;
  /**
   * where a system alarm (a dead-lettered message) is written when the log is not this thread's file: the PostgreSQL
   * store's writer, the events reaching the bus through the node's replica; without it, written here and published
   */
  raise?: (action: AlarmAction, source: AlarmSource) => Promise<readonly IncidentEvent[]>;
}

export interface RabbitIngress extends CommandTransport {
  /** whether this node holds its AMQP connection now */
  connected(): boolean;
  /**
   * RabbitMQ refused a suspended device that logged in with its own secret (the auth backend's answer): its P3 card
   * says so and how to resume it, at most one report per window, as on one node (gateway/broker/broker.ts)
   */
  suspendedConnect(deviceId: string): void;
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
  return readSecretFile(file, 'rabbitmq.passwordFile', 'the RabbitMQ password of rabbitmq.username');
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
  /** the consumers' connection, and the commands' own (a publisher RabbitMQ blocks must not hold our acks back) */
  let conn: ChannelModel | null = null;
  let pubConn: ChannelModel | null = null;
  let publisher: ConfirmChannel | null = null;
  /** connections being set up, so that close() can end them too */
  const opening = new Set<ChannelModel>();
  /** one per connection: loops of a connection that is gone stop (RabbitMQ gives their messages to the next one) */
  let generation = 0;
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

  /** A device that may no longer send (suspended, decommissioned, deleted): a refusal a person sees, durable first. */
  const refuseGone = async (err: DeviceGoneError, parsed: NonNullable<ReturnType<typeof parseRoutingKey>>, msg: ConsumeMessage, at: number) => {
    d.ingest.recordReject({ deviceId: parsed.deviceId, source: 'mqtt', topic: parsed.topic, reason: err.message, raw: msg.content, at });
    d.states.markUnreadable(parsed.deviceId, err.message, at);
    limited.warn('device gone', parsed.deviceId, { deviceId: parsed.deviceId, reason: err.reason },
      'a message from a device that may no longer send: kept as a refusal and reported, not processed');
    // as a refused frame: the device's "unreadable messages" incident, written before the message leaves RabbitMQ
    if (err.reason !== 'not registered') await unreadable.refused(parsed.deviceId, err.message, parsed.topic);
  };

  /** a device message taken from a queue, with what its tries need */
  interface Taken {
    ch: Channel;
    msg: ConsumeMessage;
    queue: 'partition' | 'unrouted';
    gen: number;
    parsed: NonNullable<ReturnType<typeof parseRoutingKey>>;
    qos: number;
    at: number;
    ordered: boolean;
  }

  /** A message's routing key read; null when it was settled here already (no device channel) or its connection is gone. */
  const prepare = (ch: Channel, msg: ConsumeMessage, queue: 'partition' | 'unrouted', gen: number, ordered: boolean): Taken | null => {
    if (stopped || gen !== generation) return null;
    const parsed = parseRoutingKey(msg.fields.routingKey);
    if (!parsed) {
      // the auth backend lets devices publish only on their own channels: this did not come from a device
      metrics.rabbitMessages.inc({ queue, result: 'refused' });
      limited.warn('routing key', msg.fields.routingKey, { routingKey: msg.fields.routingKey.slice(0, 200) },
        'a message that is no device channel reached a partition: dropped (check who may publish to the MQTT exchange)');
      settle(ch, msg, 'ack');
      return null;
    }
    const qos = Number(msg.properties.headers?.['x-mqtt-publish-qos'] ?? 1);
    // when this node took it (RabbitMQ 3.10's MQTT plugin stamps no arrival time): after a backlog, later than the device sent it
    return { ch, msg, queue, gen, parsed, qos, at: Date.now(), ordered };
  };

  /**
   * One try: the message is handed to the writer synchronously (so that messages tried in one turn reach the writer
   * in one batch, in their order) and acked after the commit. 'settled': acked, refused, handed back to its queue, or
   * its connection gone (RabbitMQ gives it to the next consumer). 'retry': not stored for a transient reason (the
   * writer has no room, the storage fails), unacknowledged. 'behind': an earlier ordered message of the device was not
   * stored, so this one was not either; it goes again after it. 'requeued': a fault of this message (not of the
   * storage): handed back to its queue.
   */
  const attempt = async (t: Taken, retryInMs: number): Promise<'settled' | 'retry' | 'behind' | 'requeued'> => {
    const { ch, msg, queue, gen, parsed, at } = t;
    if (stopped || gen !== generation) return 'settled';
    try {
      const wait = handle({
        ...parsed, payload: msg.content, qos: t.qos, at, source: 'mqtt',
        stamp: (obs) => {
          if (msg.fields.redelivered) obs.redelivered = true;
          if (t.ordered) obs.ordered = true;
        },
      });
      if (wait) await wait;
    } catch (err) {
      if (err instanceof DeviceGoneError) {
        try {
          await refuseGone(err, parsed, msg, at);
        } catch (reportErr) {
          if (stopped || gen !== generation) return 'settled';
          metrics.rabbitMessages.inc({ queue, result: 'retry' });
          limited.warn('not stored', parsed.deviceId, { deviceId: parsed.deviceId, err: (reportErr as Error).message, retryInMs },
            'a refusal could not be reported yet; the message stays unacknowledged in RabbitMQ and is tried again');
          return 'retry';
        }
        metrics.rabbitMessages.inc({ queue, result: 'refused' });
        settle(ch, msg, 'ack');
        return 'settled';
      }
      // unacknowledged: RabbitMQ gives it to the next consumer
      if (stopped || gen !== generation) return 'settled';
      if ((err as { code?: unknown }).code === EARLIER_NOT_STORED) return 'behind';
      if (transient(err)) {
        metrics.rabbitMessages.inc({ queue, result: 'retry' });
        limited.warn('not stored', parsed.deviceId, { deviceId: parsed.deviceId, err: (err as Error).message, retryInMs },
          'a device message could not be stored yet; it stays unacknowledged in RabbitMQ and is tried again');
        return 'retry';
      }
      // a fault of this message: back to its queue, which dead-letters it after rabbitmq.deliveryLimit deliveries
      metrics.rabbitMessages.inc({ queue, result: 'requeued' });
      limited.warn('writer failed', parsed.deviceId, { err, deviceId: parsed.deviceId, channel: parsed.channel, deliveryCount: msg.properties.headers?.['x-delivery-count'] ?? 0 },
        `the writer failed on a device message: returned to its queue (dead-lettered and raised as an incident after ${settings.deliveryLimit} deliveries)`);
      settle(ch, msg, 'requeue');
      return 'requeued';
    }
    metrics.rabbitMessages.inc({ queue, result: 'acked' });
    settle(ch, msg, 'ack');
    try {
      afterStored(parsed.deviceId, parsed.channel, msg.content, at);
    } catch (err) {
      // committed and acknowledged: a failing listener changes nothing of that
      limited.warn('after stored', parsed.deviceId, { err, deviceId: parsed.deviceId }, 'updating a device\'s online state failed');
    }
    return 'settled';
  };

  /** Telemetry and status: handed over as they come (submission order is the writer's order), retried in place. */
  const take = async (ch: Channel, msg: ConsumeMessage, queue: 'partition' | 'unrouted', gen: number): Promise<void> => {
    const t = prepare(ch, msg, queue, gen, false);
    if (!t) return;
    for (let delay = 250; ; delay = Math.min(delay * 2, 5000)) {
      const outcome = await attempt(t, delay);
      if (outcome === 'settled' || outcome === 'requeued') return;
      await sleep(delay);
    }
  };

  /** per routing key of events and command answers: the messages waiting for the ones before them to be stored */
  const lanes = new Map<string, Taken[]>();

  /**
   * Per routing key: the messages handed back to their queue that have not come again yet, in the device's order. The
   * device's messages RabbitMQ had already delivered behind them reach us after they went back, often after
   * their lane ended: stored then, they would overtake them (seen in CI: a cancel handed back, then a fall and an SOS
   * stored before it). So a message that arrives while some of its key are out goes back too, behind them, and
   * one of those out that comes again before the ones ahead of it goes back again: they are taken in order. A message that will be dead-lettered instead of coming again
   * (its last delivery) is not waited for, and the hold ends after RETURNED_HOLD_MS whatever happens: a device is never
   * kept out of storage by a message that is gone.
   */
  const returnedAhead = new Map<string, { out: Buffer[]; until: number; gen: number }>();
  const RETURNED_HOLD_MS = 30_000;
  /** handed back now, this was its last delivery: RabbitMQ dead-letters it instead of giving it again */
  const lastDelivery = (msg: ConsumeMessage) => Number(msg.properties.headers?.['x-delivery-count'] ?? 0) + 1 >= settings.deliveryLimit;
  /**
   * `returned` were just handed back to their queue, in the device's order; `first`: they precede every message of
   * the key already out (a lane's messages were taken before any that went back after them)
   */
  const noteReturned = (key: string, gen: number, returned: ConsumeMessage[], first: boolean) => {
    const coming = returned.filter((m) => !lastDelivery(m)).map((m) => m.content);
    let held = returnedAhead.get(key);
    if (!held || held.gen !== gen) returnedAhead.set(key, held = { out: [], until: 0, gen });
    if (first) held.out.unshift(...coming);
    else held.out.push(...coming);
    held.until = Date.now() + RETURNED_HOLD_MS;
    if (held.out.length === 0) returnedAhead.delete(key);
  };
  /** true when msg went back to its queue: messages of its key that come before it are out */
  const sentBehindReturned = (key: string, ch: Channel, msg: ConsumeMessage, queue: 'partition' | 'unrouted', gen: number): boolean => {
    const held = returnedAhead.get(key);
    if (!held) return false;
    if (held.gen !== gen || Date.now() > held.until) {
      returnedAhead.delete(key);
      return false;
    }
    if (msg.content.equals(held.out[0]!)) {
      held.out.shift();
      if (held.out.length === 0) returnedAhead.delete(key);
      return false;
    }
    settle(ch, msg, 'requeue');
    const at = held.out.findIndex((c) => c.equals(msg.content));
    if (at >= 0) {
      // one of those out, given again before the ones ahead of it: it keeps its place (unless it is now dead-lettered)
      if (lastDelivery(msg)) held.out.splice(at, 1);
    } else {
      noteReturned(key, gen, [msg], false);
    }
    if (held.out.length === 0) returnedAhead.delete(key);
    metrics.rabbitMessages.inc({ queue, result: 'requeued' });
    limited.warn('held back', key, { routingKey: key.slice(0, 200) },
      'a device message returned to its queue behind an earlier one the writer failed on, to keep the device\'s order');
    return true;
  };

  /**
   * Events and command answers of a device, stored in the order RabbitMQ took them. The messages of a routing key that
   * are waiting go to the writer together, in one turn (one batch, one commit), not one commit after another: one
   * device's burst of events (a stuck button, a hostile terminal) must not hold its partition — every device hashed to
   * it — for a commit per message (measured, one commit each: 3,000 SOS of one device kept another's SOS waiting
   * 4.4 s). If one of them is not stored, the writer stores none of the device's after it in that batch
   * (EARLIER_NOT_STORED); they are tried again, in order, behind it. Messages that arrive meanwhile wait until the ones
   * before them are stored.
   * Telemetry and status go to the writer as they come, without waiting for their batched commit (up to
   * ingest.telemetryFlushMs): one chatty terminal must not fill the partition's window. A reading retried under
   * overload may so land after a later one.
   */
  const takeInOrder = (ch: Channel, msg: ConsumeMessage, queue: 'partition' | 'unrouted', gen: number) => {
    const key = msg.fields.routingKey;
    if (!key.endsWith('.events') && !key.endsWith('.commands.ack')) return track(take(ch, msg, queue, gen));
    if (sentBehindReturned(key, ch, msg, queue, gen)) return;
    const t = prepare(ch, msg, queue, gen, true);
    if (!t) return;
    const waiting = lanes.get(key);
    if (waiting) {
      waiting.push(t);
      return;
    }
    const mine = [t];
    lanes.set(key, mine);
    track(runLane(key, mine));
  };

  const runLane = async (key: string, waiting: Taken[]): Promise<void> => {
    let group: Taken[] = [];
    try {
      while (waiting.length > 0) {
        group = waiting.splice(0);
        for (let delay = 250; ; delay = Math.min(delay * 2, 5000)) {
          // all handed over in this turn: the writer takes them in one batch, in this order
          const outcomes = await Promise.all(group.map((t) => attempt(t, delay)));
          const requeued = outcomes.indexOf('requeued');
          if (requeued >= 0) {
            // a message of this device went back to its queue (a fault of its own): the ones after it must not be
            // stored before it comes again, so they go back too, in their order, and so do those waiting behind
            // them. A quorum queue gives returned messages again first, in the order they were returned. Each
            // return counts as a delivery: if the faulty one is dead-lettered, they are too, and the dead-letter
            // queue's last try stores them (an alarm among them is never dropped).
            const back = [...group.slice(requeued + 1).filter((_, i) => outcomes[requeued + 1 + i] !== 'settled'), ...waiting.splice(0)];
            for (const t of back) settle(t.ch, t.msg, 'requeue');
            noteReturned(key, group[requeued]!.gen, [group[requeued]!.msg, ...back.map((t) => t.msg)], true);
            if (back.length > 0) {
              metrics.rabbitMessages.inc({ queue: group[requeued]!.queue, result: 'requeued' }, back.length);
              limited.warn('held back', key, { routingKey: key.slice(0, 200), returned: back.length },
                'messages after one the writer failed on returned to their queue behind it, to keep the device\'s order');
            }
            break;
          }
          const failed = outcomes.includes('retry');
          group = group.filter((_, i) => outcomes[i] !== 'settled');
          if (group.length === 0 || stopped || group[0]!.gen !== generation) break;
          // held back only by another lane's message of this device (EARLIER_NOT_STORED is per device): again at once
          if (failed) await sleep(delay);
        }
      }
    } catch (err) {
      // a bug here (attempt settles everything it meets): nothing is left unacknowledged on a live channel for ever.
      // Closing the partition's channel restarts the connection, and RabbitMQ gives every unacknowledged message again
      log.error({ err, routingKey: key.slice(0, 200) }, 'a device\'s lane of messages failed: restarting the AMQP connection');
      void (group[0] ?? waiting[0])?.ch.close().catch(() => {});
    } finally {
      if (lanes.get(key) === waiting) lanes.delete(key);
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
    } else if (d.states.isOnline(deviceId)) {
      return;
    }
    if (d.states.isOnline(deviceId) === online) return;
    d.states.setOnline(deviceId, online, at);
    d.bus.emit('device-state', { deviceId, change: online ? 'connected' : 'disconnected' });
    if (online) d.onDeviceOnline(deviceId);
  };

  /**
   * A message that came back rabbitmq.deliveryLimit times (a fault of its own, or a node that died with it several
   * times): tried once more as it is — an SOS that can be processed now becomes an SOS incident — and otherwise an
   * incident a person sees. Then off the dead-letter queue.
   */
  const takeDead = async (ch: Channel, msg: ConsumeMessage, gen: number): Promise<void> => {
    const parsed = parseRoutingKey(msg.fields.routingKey);
    const deviceId = parsed?.deviceId ?? 'unknown';
    if (parsed) {
      try {
        const wait = handle({ ...parsed, payload: msg.content, qos: 1, at: Date.now(), source: 'mqtt', stamp: (obs) => { obs.redelivered = true; } });
        if (wait) await wait;
        metrics.rabbitMessages.inc({ queue: 'dead', result: 'acked' });
        log.warn({ deviceId, routingKey: msg.fields.routingKey }, 'a dead-lettered device message was processed on its last try');
        return settle(ch, msg, 'ack');
      } catch {
        // raised below as what it is: a message that could not be processed
      }
    }
    const headers = msg.properties.headers ?? {};
    const body = msg.content.subarray(0, 512).toString('utf8');
    for (let delay = 1000, tries = 0; ; delay = Math.min(delay * 2, 30_000), tries++) {
      if (stopped || gen !== generation) return;
      try {
        let owner = { residentId: null as string | null, unitId: null as string | null };
        if (parsed) owner = (ownerOf.get(deviceId) as typeof owner | undefined) ?? owner;
        const action: AlarmAction = {
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
        };
        const source: AlarmSource = { deviceId, ...owner, stamps: { received: Date.now() } };
        let events: readonly IncidentEvent[];
        if (d.raise) {
          events = await d.raise(action, source);
        } else {
          // the write lock waited for off the event loop (the writer thread may be inside a commit)
          events = await writeWhenFree(d.sqlite, () => d.incidents.applyAlarm(action, source));
          d.incidents.publishCommitted(events);
        }
        metrics.rabbitMessages.inc({ queue: 'dead', result: 'dead-lettered' });
        log.error({ deviceId, routingKey: msg.fields.routingKey, incidentId: events[0]?.incidentId },
          'a device message was dead-lettered after repeated failures: raised as an incident');
        return settle(ch, msg, 'ack');
      } catch (err) {
        metrics.rabbitMessages.inc({ queue: 'dead', result: 'retry' });
        if (tries === 0) log.error({ err, deviceId }, 'could not raise a dead-lettered message as an incident; it stays in the dead-letter queue and is tried again');
        else limited.warn('dead-letter', deviceId, { err, deviceId, retryInMs: delay }, 'could not raise a dead-lettered message as an incident yet; trying again');
        await sleep(delay);
      }
    }
  };

  const track = (p: Promise<void>) => {
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
  };

  /** quorum, with the partitions' delivery limit and dead-lettering: no queue of ours can loop on a message for ever */
  const limitedQueue = {
    'x-queue-type': 'quorum',
    'x-delivery-limit': settings.deliveryLimit,
    'x-dead-letter-exchange': names.dead,
    // dead-lettering is confirmed by the dead queue before the queue lets go of the message
    'x-dead-letter-strategy': 'at-least-once',
    'x-overflow': 'reject-publish',
  };

  /** A partition beyond rabbitmq.partitions would stay bound to the hash exchange and never be consumed. */
  const checkNoExtraPartition = async (c: ChannelModel) => {
    for (const lane of ['p', 'e']) {
      const extra = `${names.exchange}.${lane}${settings.partitions}`;
      // a failed check closes its channel: one channel per check
      const probe = await c.createChannel();
      probe.on('error', () => undefined);
      const exists = await probe.checkQueue(extra).then(() => true, () => false);
      await closeAmqp(probe);
      if (exists) {
        throw new Error(`queue ${extra} exists: rabbitmq.partitions was lowered, and messages hashed to the partitions beyond it would never be taken. Set rabbitmq.partitions back (to the number of ${names.exchange}.${lane}* queues), or unbind and drain those queues first`);
      }
    }
  };

  // Order matters: everything a device message can reach exists before the exchange the MQTT plugin publishes into
  // is bound to it (a publish routed to the hash exchange with no partition bound would be confirmed and dropped).
  const declare = async (ch: Channel) => {
    await ch.assertExchange(names.dead, 'fanout', { durable: true });
    await ch.assertQueue(names.dead, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
    await ch.bindQueue(names.dead, names.dead, '');
    await ch.assertExchange(names.unrouted, 'fanout', { durable: true });
    await ch.assertQueue(names.unrouted, { durable: true, arguments: limitedQueue });
    await ch.bindQueue(names.unrouted, names.unrouted, '');
    for (const [hash, queues] of [[names.hash, names.partitionNames], [names.eventsHash, names.eventPartitionNames]] as const) {
      await ch.assertExchange(hash, 'x-consistent-hash', { durable: true });
      for (const q of queues) {
        await ch.assertQueue(q, { durable: true, arguments: { ...limitedQueue, 'x-single-active-consumer': true } });
        // the binding key of a consistent-hash exchange is the partition's weight
        await ch.bindQueue(q, hash, '1');
      }
    }
    await ch.assertExchange(names.exchange, 'topic', { durable: true, alternateExchange: names.unrouted });
    for (const key of EVENT_BINDINGS) await ch.bindExchange(names.eventsHash, names.exchange, key);
    for (const key of TELEMETRY_BINDINGS) await ch.bindExchange(names.hash, names.exchange, key);
    // a cluster set up before the lanes routed events into the telemetry partitions too: that binding goes, once the
    // events' own exists (an event routed both ways meanwhile is stored once: dedup). What the telemetry partitions
    // still hold of it is taken from them as before.
    for (const key of EVENT_BINDINGS) await ch.unbindExchange(names.hash, names.exchange, key);
  };

  const open = async (url: string) => {
    const u = new URL(url);
    const c = await amqp.connect({
      protocol: u.protocol.replace(':', ''), hostname: u.hostname, port: u.port ? Number(u.port) : undefined,
      username: settings.username, password, vhost: settings.vhost, heartbeat: 10,
    }, { timeout: 5000 });
    c.on('error', (err: Error) => log.warn({ err: err.message, url }, 'AMQP connection error'));
    c.on('blocked', (reason: string) => log.error({ url, reason }, 'RabbitMQ blocked this connection (memory or disk alarm): its publishes wait'));
    c.on('unblocked', () => log.info({ url }, 'RabbitMQ unblocked this connection'));
    return c;
  };

  const connectOnce = async (url: string, gen: number) => {
    const c = await open(url);
    opening.add(c);
    let pc: ChannelModel | null = null;
    const closed = new Promise<void>((resolve) => c.once('close', () => resolve()));
    // any channel of ours failing, or a consumer RabbitMQ cancelled (its queue deleted): start over on a fresh
    // connection, which declares and consumes everything again — never a partition silently left unconsumed
    const restart = (why: string) => {
      log.warn({ url, why }, 'restarting the AMQP connection so that every partition is consumed again');
      void closeAmqp(c);
    };
    try {
      await checkNoExtraPartition(c);
      const setup = await c.createChannel();
      setup.on('error', () => undefined);
      try {
        await declare(setup);
      } catch (err) {
        throw new Error(`declaring the topology failed (${(err as Error).message}); a queue or exchange that exists with other settings must be deleted once drained, or the old settings kept`, { cause: err });
      }
      await closeAmqp(setup);
      // commands on a connection of their own: RabbitMQ blocks a publishing connection under a resource alarm, and
      // acks of the partitions must still flow then
      pc = await open(url);
      opening.add(pc);
      pc.once('close', () => restart('the commands connection closed'));
      const pubCh = await pc.createConfirmChannel();
      pubCh.on('error', () => undefined);
      const consume = async (queue: string, prefetch: number, onMessage: (ch: Channel, msg: ConsumeMessage) => void) => {
        const ch = await c.createChannel();
        ch.on('error', (err: Error) => restart(`channel of ${queue}: ${err.message}`));
        ch.on('close', () => { if (!stopped && gen === generation) restart(`channel of ${queue} closed`); });
        await ch.prefetch(prefetch);
        await ch.consume(queue, (msg) => {
          if (!msg) return restart(`RabbitMQ cancelled the consumer of ${queue}`);
          onMessage(ch, msg);
        }, { noAck: false });
      };
      // the events' lane first: after a restart its partitions are consumed before a backlog of readings is
      for (const q of [...names.eventPartitionNames, ...names.partitionNames]) await consume(q, settings.prefetch, (ch, msg) => takeInOrder(ch, msg, 'partition', gen));
      await consume(names.unrouted, 64, (ch, msg) => {
        if (/^devices\.[^.]+\.commands$/.test(msg.fields.routingKey)) {
          // a command to a device not subscribed now: it stays pending and is sent again when the device is back
          metrics.rabbitMessages.inc({ queue: 'unrouted', result: 'acked' });
          return settle(ch, msg, 'ack');
        }
        // a device message no partition took (a binding missing?): processed all the same, out of partition order
        limited.warn('unrouted', msg.fields.routingKey, { routingKey: msg.fields.routingKey.slice(0, 200) }, 'a device message matched no partition binding: processed from the unrouted queue');
        takeInOrder(ch, msg, 'unrouted', gen);
      });
      await consume(names.dead, 16, (ch, msg) => track(takeDead(ch, msg, gen)));
      publisher = pubCh;
    } catch (err) {
      await closeAmqp(c);
      if (pc) await closeAmqp(pc);
      throw err;
    } finally {
      opening.delete(c);
      if (pc) opening.delete(pc);
    }
    return { c, pc: pc!, closed };
  };

  const run = async () => {
    let i = 0;
    let delay = 500;
    while (!stopped) {
      const url = settings.urls[i % settings.urls.length]!;
      i++;
      const gen = ++generation;
      try {
        const { c, pc, closed } = await connectOnce(url, gen);
        if (stopped) {
          await closeAmqp(c);
          await closeAmqp(pc);
          break;
        }
        conn = c;
        pubConn = pc;
        delay = 500;
        metrics.rabbitLink.set(1);
        log.info({ url, partitions: settings.partitions, prefetch: settings.prefetch }, 'connected to RabbitMQ: topology declared, partitions consumed');
        markReady();
        await closed;
        conn = null;
        publisher = null;
        // (amqplib's own close() never settles if the socket dies while it waits for CloseOk: this loop would stop
        // here for good, and no partition of this node would be consumed again — gateway/cluster/amqp-close.ts)
        await closeAmqp(pc);
        pubConn = null;
        metrics.rabbitLink.set(0);
        if (!stopped) log.warn({ url }, 'lost the AMQP connection to RabbitMQ: unacknowledged messages go to another consumer; reconnecting');
      } catch (err) {
        limited.warn('connect', url, { url, err: (err as Error).message, retryInMs: delay }, 'cannot reach RabbitMQ, or cannot use it; trying the next node');
      }
      if (!stopped) await sleep(delay);
      delay = Math.min(delay * 2, 5000);
    }
  };
  const running = run();

  return {
    ready,
    connected: () => conn !== null,
    suspendedConnect(deviceId) {
      unreadable.refused(deviceId, suspendedConnectReason(deviceId), 'mqtt CONNECT')
        ?.catch((err: unknown) => log.warn({ err, deviceId }, 'could not record the refused connection on the device'));
    },
    isConnected: (deviceId) => d.states.isOnline(deviceId),
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
        const pc = pubConn;
        if (pc && publisher === ch) {
          publisher = null;
          void ch.close().catch(() => {});
          const fresh = await pc.createConfirmChannel().catch(() => null);
          fresh?.on('error', () => undefined);
          if (pubConn === pc) publisher = fresh;
        }
        throw err;
      }
    },
    async close() {
      stopped = true;
      // nothing new is taken; what was taken is committed (and acknowledged) before the connection goes
      await Promise.race([Promise.allSettled([...inFlight]), sleep(5000)]);
      for (const c of [...opening]) await closeAmqp(c);
      if (conn) await closeAmqp(conn);
      if (pubConn) await closeAmqp(pubConn);
      await running;
      await unreadable.close();
      limited.close();
      metrics.rabbitLink.set(0);
    },
  };
}
