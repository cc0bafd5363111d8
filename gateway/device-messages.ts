// One path from "a device sent this on one of its own channels" to "stored: acknowledge it", shared by the embedded
// broker (the PUBACK) and cluster mode (the AMQP ack to RabbitMQ after our commit, gateway/cluster/rabbitmq.ts).
// The transport has already checked who the device is and that the topic is its own; this decodes, refuses what is
// unreadable (kept raw, counted, reported to a person) and hands observations to the writer.
import type { Observation } from '../core/contracts.js';
import type { Config } from '../core/config.js';
import type { Metrics } from '../core/metrics.js';
import type { DeviceRegistry } from '../devices/registry.js';
import { decodeCommandAck, decodeFrame, decodeStatus, type FrameResult } from '../devices/frames.js';
import type { UnreadableReporter } from './broker/unreadable.js';
import type { LiveStates, IngestPort } from './writer/client.js';

/** what a device may send on, below `devices/{id}/` */
export const DEVICE_CHANNELS = ['events', 'telemetry', 'status', 'commands/ack'] as const;
export type DeviceChannel = (typeof DEVICE_CHANNELS)[number];
const CHANNEL_SET: ReadonlySet<string> = new Set(DEVICE_CHANNELS);
export const isDeviceChannel = (s: string): s is DeviceChannel => CHANNEL_SET.has(s);

export interface DeviceMessage {
  deviceId: string;
  channel: DeviceChannel;
  /** the topic as the device wrote it (kept with a refusal) */
  topic: string;
  payload: Buffer;
  /** 0: the device does not wait for an acknowledgement (telemetry may be shed under overload) */
  qos: number;
  /** when it arrived, epoch ms (a Last Will: when its connection closed) */
  at: number;
  source: 'mqtt';
  /**
   * just read from the device's connection (not a Last Will): an alarm may then wait for the end of the I/O being read
   * and go to the writer with the others read meanwhile (WriterThread.post)
   */
  read?: boolean;
  /** transport facts dedup uses (session, packet id, redelivery) */
  stamp?(obs: Observation): void;
}

/** the device may no longer send: deleted, suspended or decommissioned since its connection was let in */
export class DeviceGoneError extends Error {
  constructor(deviceId: string, readonly reason: 'not registered' | 'suspended' | 'decommissioned') {
    super(reason === 'not registered' ? `device ${deviceId} is no longer registered` : `device ${deviceId} is ${reason}`);
    this.name = 'DeviceGoneError';
  }
}

export interface DeviceMessageDeps {
  config: Config;
  registry: DeviceRegistry;
  states: LiveStates;
  ingest: IngestPort;
  metrics: Metrics;
  unreadable: UnreadableReporter;
  /** a refused frame, rate-limited by the caller's logger */
  onUnreadable(m: DeviceMessage, reason: string): void;
}

/**
 * Returns undefined when the message may be acknowledged now (QoS 0 telemetry, a refusal already reported), or a
 * promise that resolves once what it carried is durable and rejects when it was not stored (OverloadError: the writer
 * has no room; DeviceGoneError; a storage failure) — then it must not be acknowledged.
 */
export function createDeviceMessageHandler(d: DeviceMessageDeps): (m: DeviceMessage) => Promise<unknown> | undefined {
  const { config, registry, states, ingest, metrics, unreadable } = d;
  return (m) => {
    const entry = registry.entry(m.deviceId);
    if (!entry) return Promise.reject(new DeviceGoneError(m.deviceId, 'not registered'));
    // a connection outlives its device's suspension until the transport closes it (RabbitMQ keeps a connection's
    // permissions for its lifetime): what comes meanwhile is refused, not processed
    if (entry.state === 'suspended' || entry.state === 'decommissioned') return Promise.reject(new DeviceGoneError(m.deviceId, entry.state));
    let result: FrameResult;
    if (m.channel === 'events' || m.channel === 'telemetry') {
      result = decodeFrame(entry.kind, m.deviceId, m.channel, m.payload, m.at, config.ingest.maxPayloadBytes);
    } else if (m.channel === 'status') {
      result = decodeStatus(m.deviceId, m.payload, m.at);
    } else {
      result = decodeCommandAck(m.deviceId, m.payload, m.at);
    }
    if (!result.ok) {
      // Authenticated but unreadable: never an observation. Kept raw, counted, flagged on the device, and reported
      // as a P3 "terminal sends unreadable messages" incident so a person looks at the terminal. Acknowledged, so
      // the device does not resend it forever — but only once such a report is durable.
      metrics.refused.inc({ stage: 'payload', reason: result.code });
      d.onUnreadable(m, result.reason);
      ingest.recordReject({ deviceId: m.deviceId, source: m.source, topic: m.topic, reason: result.reason, raw: m.payload, at: m.at });
      states.markUnreadable(m.deviceId, result.reason, m.at);
      return unreadable.refused(m.deviceId, result.reason, m.topic);
    }
    registry.markInService(m.deviceId);
    const obs = result.obs;
    m.stamp?.(obs);
    // telemetry and status, QoS 1: resolves only once stored; under overload it waits for room, then rejects
    if (m.channel === 'telemetry' || m.channel === 'status') return ingest.submitTelemetry(obs, m.qos > 0, m.read);
    // events and command acks: durable (synchronous=FULL group commit) before anything acknowledges them
    return ingest.submit(obs, m.read);
  };
}
