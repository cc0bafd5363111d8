// Start-up of the terminal protocol listeners (docs/protocols.md): for each `protocols.<name>` with a port set, the
// protocol's handler behind the shared listener layer, wired to the one writer (ingest), the registry (who a
// terminal is, which terminals to expect), the metrics (the listener's refusals and connections, and the counters a
// handler increments at the event through services.metrics), and the console's commands (sent while the terminal is
// connected, resent on reconnect).
import { Counter, Gauge } from 'prom-client';
import type { Bus } from '../../core/bus.js';
import type { DeviceCommand, DeviceKind, Observation, ObservationSink } from '../../core/contracts.js';
import { SocketGate } from '../../core/limits.js';
import { createLogLimiter, type Logger } from '../../core/logger.js';
import type { Metrics } from '../../core/metrics.js';
import type { Config } from '../../core/config.js';
import type { DeviceRegistry } from '../../devices/registry.js';
import type { CommandTransport } from '../commands.js';
import { createUnreadableReporter } from '../broker/unreadable.js';
import { UNREADABLE_REPORT_WINDOW_MS } from '../broker/broker.js';
import { startProtocolListener, type ProtocolListener } from './listener.js';
import { activeListener } from './settings.js';
import {
  PROTOCOL_NAMES, type ListenerSettings, type Peer, type ProtocolDevice, type ProtocolHandler, type ProtocolMetrics, type ProtocolName,
  type ProtocolServices,
} from './types.js';
import { createWatchProtocol } from './watch/index.js';
import { createJt808Protocol } from './jt808/index.js';
import { createDc09Protocol } from './dc09/index.js';
import type { IngestPort } from '../writer/client.js';

export type { ProtocolListener } from './listener.js';

// each factory takes its own settings type (the common ones plus its own, validated by the config schema)
type Factory = (services: ProtocolServices, settings: ListenerSettings) => ProtocolHandler<unknown>;
const FACTORIES: Record<ProtocolName, Factory> = {
  watch: createWatchProtocol as unknown as Factory,
  jt808: createJt808Protocol as unknown as Factory,
  dc09: createDc09Protocol as unknown as Factory,
};

export interface Protocols {
  /** the running listeners, by protocol */
  readonly listeners: ReadonlyMap<ProtocolName, ProtocolListener>;
  /** the bound port of a running listener (tests, the start-up banner) */
  port(name: ProtocolName): number | undefined;
  /** commands to protocol terminals go to their connection; every other device's to `mqtt` */
  commandTransport(mqtt: CommandTransport): CommandTransport;
  close(): Promise<void>;
}

export interface ProtocolDeps {
  config: Config;
  ingest: IngestPort;
  registry: DeviceRegistry;
  bus: Bus;
  log: Logger;
  metrics: Metrics;
  /** a pending command for a device that just (re)connected */
  resendCommands(deviceId: string): void;
  /** sockets this process may still hold (the MQTT share of the descriptor budget, core/limits.ts) */
  connectionCap: number;
  /** devices' live state: a terminal never heard from is not expected to poll after a restart (provisioned()) */
  states?: { peek(deviceId: string): { lastSeen: number | null } | undefined };
}

const RAW_KEPT = 512;
/** what goes to the writer as telemetry (batched); everything else a terminal says is committed at once */
const TELEMETRY_TYPES = new Set<string>(['heartbeat', 'position', 'battery', 'signal', 'status']);
/** distinct `keyword` label values per protocol in eldergate_protocol_ignored_total; later ones count as `other` */
const IGNORED_KEYWORDS_KEPT = 32;
const LABEL = /^[A-Za-z0-9_-]{1,24}$/;

export async function startProtocols(d: ProtocolDeps): Promise<Protocols> {
  const log = d.log.child({ module: 'protocols' });
  const reg = d.metrics.registry;
  // the gateway's own registry (one per gateway: tests run several in one process)
  const refused = new Counter({
    name: 'eldergate_protocol_refused_total',
    help: 'Frames or connections a terminal protocol listener refused, by protocol and reason (unprovisioned, bad-checksum, not-authenticated, oversized, …)',
    labelNames: ['protocol', 'reason'] as const, registers: [reg],
  });
  const conflicts = new Counter({
    name: 'eldergate_protocol_identity_conflicts_total',
    help: 'A terminal identity seen on two live connections from different addresses (a cloned id or a spoofer)',
    labelNames: ['protocol'] as const, registers: [reg],
  });
  const replies = new Counter({
    name: 'eldergate_protocol_replies_total',
    help: 'Answers sent to terminals, by protocol and the protocol\'s own name for the answer (DC-09 ACK/NAK/DUH, watch LK/AL/INIT/TKQ, JT/T 808 0x8001-ok/0x8001-failure/…, 0x8100-ok/…)',
    labelNames: ['protocol', 'reply'] as const, registers: [reg],
  });
  const ignored = new Counter({
    name: 'eldergate_protocol_ignored_total',
    help: `Frames a terminal sent that this gateway does not use (watch health readings, voice, CONFIG, an echo nobody waits for), by protocol and keyword (at most ${IGNORED_KEYWORDS_KEPT} keywords per protocol, then "other")`,
    labelNames: ['protocol', 'keyword'] as const, registers: [reg],
  });
  const storeFailures = new Counter({
    name: 'eldergate_protocol_store_failures_total',
    help: 'What a terminal said could not be stored (the terminal was not answered, or NAKed, and sends again)',
    labelNames: ['protocol'] as const, registers: [reg],
  });
  const listeners = new Map<ProtocolName, ProtocolListener>();
  const handlers = new Map<ProtocolName, ProtocolHandler<unknown>>();
  new Gauge({
    name: 'eldergate_protocol_connections',
    help: 'Terminal protocol connections (TCP) and remembered senders (UDP), by protocol and state (bound: the terminal proved which device it is)',
    labelNames: ['protocol', 'state'] as const, registers: [reg],
    collect() {
      for (const [name, l] of listeners) {
        const s = l.stats();
        this.set({ protocol: name, state: 'all' }, s.connections + s.udpPeers);
        this.set({ protocol: name, state: 'bound' }, s.bound);
      }
    },
  });
  const limited = createLogLimiter(log, {
    burst: d.config.limits.logBurst, windowMs: d.config.limits.logWindowMs,
    onSuppressed: (kind) => d.metrics.logSuppressed.inc({ kind }),
  });

  const ignoredSeen = new Map<ProtocolName, Set<string>>();
  const metricsFor = (name: ProtocolName): ProtocolMetrics => ({
    replied: (reply) => replies.inc({ protocol: name, reply: LABEL.test(reply) ? reply : 'other' }),
    ignored(keyword) {
      // a terminal chooses its keywords: the label set is bounded so that no terminal can grow the metric
      let seen = ignoredSeen.get(name);
      if (!seen) ignoredSeen.set(name, (seen = new Set()));
      let label = LABEL.test(keyword) ? keyword : 'other';
      if (!seen.has(label)) {
        if (seen.size < IGNORED_KEYWORDS_KEPT) seen.add(label);
        else label = 'other';
      }
      ignored.inc({ protocol: name, keyword: label });
    },
    storeFailed: () => storeFailures.inc({ protocol: name }),
  });

  /** the devices of a protocol's kind a restart must not forget: provisioned, not decommissioned, heard before */
  const provisionedOf = (name: ProtocolName) => function* provisioned(): Iterable<{ identifier: string; device: ProtocolDevice }> {
    const PAGE = 1000;
    for (let offset = 0; ; offset += PAGE) {
      const { items } = d.registry.list({ kind: name, limit: PAGE, offset });
      for (const row of items) {
        if (row.state === 'decommissioned') continue;
        // never heard from (provisioned ahead of its installation, a bulk import): nothing to expect yet
        if (d.states && (d.states.peek(row.id)?.lastSeen ?? null) === null) continue;
        const identifier = row.accountScheme === name && row.account ? row.account : row.serial;
        yield { identifier, device: { deviceId: row.id, kind: row.kind as DeviceKind, state: row.state, model: row.model, config: row.config } };
      }
      if (items.length < PAGE) return;
    }
  };

  // a refused frame from a known device raises its "terminal sends unreadable messages" card, as on MQTT
  const unreadable = createUnreadableReporter({
    sink: d.ingest, log, metrics: d.metrics, windowMs: UNREADABLE_REPORT_WINDOW_MS, maxDevices: d.connectionCap,
  });
  /**
   * What a terminal says goes to the one writer by the same road as on MQTT: alarms and events are committed at once
   * (urgent, synchronous=FULL), heartbeats and positions are batched as telemetry. Either way the promise resolves only
   * once the observation is durable, so a protocol answers its terminal after that, as before.
   */
  const sink: ObservationSink = {
    submit(obs) {
      if (TELEMETRY_TYPES.has(obs.type)) return d.ingest.submitTelemetry(obs, true)!;
      return d.ingest.submit(obs);
    },
  };

  const buildServices = (name: ProtocolName): ProtocolServices => ({
    sink,
    log: log.child({ protocol: name }),
    now: Date.now,
    lookup(identifier) {
      const row = d.registry.protocolDevice(name, identifier);
      if (!row) return undefined;
      return { deviceId: row.id, kind: row.kind as DeviceKind, state: row.state, model: row.model, config: row.config };
    },
    device(deviceId) {
      const e = d.registry.entry(deviceId);
      if (!e || e.state === 'decommissioned') return undefined;
      return { deviceId: e.id, kind: e.kind, state: e.state, model: null, config: e.config };
    },
    refuse(peer: Peer, reason: string, detail: string, raw?: Buffer, deviceId?: string) {
      refused.inc({ protocol: name, reason });
      const device = deviceId ?? peer.deviceId;
      limited.warn(`${name} refused: ${reason}`, peer.address, { protocol: name, reason, peer: peer.id, deviceId: device, detail }, `${name}: refused (${reason}): ${detail}`);
      if (device) {
        unreadable.refused(device, reason, `${name} ${peer.transport}:${peer.address}`)?.catch((err: unknown) =>
          log.warn({ err, deviceId: device }, 'could not record the refusal on the device'));
      }
      // kept raw for diagnosis when it belongs to a device; bytes from strangers are counted and logged (rate-bound),
      // never stored: a flood of garbage must not become a flood of rows
      if (raw && device) {
        // printable and bounded: binary frames as hex, text frames as text (secrets never reach here: a protocol hands
        // the bytes as received, and an encrypted DC-09 frame stays encrypted)
        const printable = raw.every((b) => b === 9 || b === 10 || b === 13 || (b >= 32 && b < 127));
        const shown = printable ? raw.subarray(0, RAW_KEPT).toString('latin1') : `hex:${raw.subarray(0, RAW_KEPT / 2).toString('hex')}`;
        d.ingest.recordReject({ deviceId: device, source: name, topic: `${peer.transport}:${peer.address}`, reason: `${reason}: ${detail}`, raw: shown, at: Date.now() });
      }
    },
    issueSecret(deviceId) {
      return d.registry.rotateSecret(deviceId).secret;
    },
    confirmSecret(deviceId) {
      // the terminal proved it holds the issued code: registration closes until a person rotates the secret
      d.registry.markTerminalRegistered(deviceId);
    },
    checkSecret(deviceId, secret) {
      return d.registry.authenticate(deviceId, secret) === 'ok';
    },
    async commandAnswered(deviceId, commandId, ok, error) {
      const obs: Observation = {
        type: 'command-ack', deviceId, commandId, ok, ...(error ? { error } : {}), receivedAt: Date.now(), source: name,
      };
      await d.ingest.submit(obs);
    },
    metrics: metricsFor(name),
    provisioned: provisionedOf(name),
  });

  // one services object per protocol (a refusal must not build a logger)
  const services = new Map(PROTOCOL_NAMES.map((name) => [name, buildServices(name)] as const));
  const servicesFor = (name: ProtocolName) => services.get(name)!;

  const status = (name: ProtocolName, peer: Peer, deviceId: string, online: boolean) => {
    if (peer.transport !== 'tcp') return;
    const obs: Observation = { type: 'status', online, deviceId, receivedAt: Date.now(), source: name, flags: [...peer.flags], detail: { peer: peer.id } };
    d.ingest.submitTelemetry(obs, false);
  };
  // the terminal connections share one socket budget, apart from MQTT's (core/limits.ts)
  const gate = new SocketGate(d.connectionCap, (reason) => d.metrics.connectionsRefused.inc({ listener: 'protocols', reason }));

  try {
    for (const name of PROTOCOL_NAMES) {
      const settings = activeListener(d.config.protocols[name] as Partial<ListenerSettings>);
      if (!settings) continue;
      storeFailures.inc({ protocol: name }, 0); // shown at 0 from the start: an alert can rely on it
      const handler = FACTORIES[name](servicesFor(name), settings);
      handlers.set(name, handler);
      const listener = await startProtocolListener(handler, settings, {
        log: d.log,
        gate,
        refuse: (peer, reason, detail, raw) => servicesFor(name).refuse(peer, reason, detail, raw),
        events: {
          bound(peer, deviceId) {
            d.registry.markInService(deviceId);
            status(name, peer, deviceId, true);
            // after the frame that bound it has been answered (JT/T 808: the 0x8001 to 0x0102 first, then commands)
            setImmediate(() => {
              try {
                d.resendCommands(deviceId);
              } catch (err) {
                log.error({ err, deviceId }, 'resending pending commands failed');
              }
            });
          },
          unbound(peer, deviceId) {
            status(name, peer, deviceId, false);
          },
          conflict(deviceId, older, newer) {
            conflicts.inc({ protocol: name });
            log.warn({ protocol: name, deviceId, older: older.id, newer: newer.id },
              `${name}: device ${deviceId} is connected from two addresses at once (${older.address} and ${newer.address}): a cloned or spoofed identity; both are flagged identity-conflict`);
          },
          limited(reason) {
            d.metrics.connectionsRefused.inc({ listener: name, reason });
          },
          failed() {
            d.metrics.internalErrors.inc({ where: `protocol-${name}` });
          },
        },
      });
      listeners.set(name, listener);
    }
  } catch (err) {
    await Promise.all([...listeners.values()].map((l) => l.close()));
    throw err;
  }

  // a rotated secret, a suspended or decommissioned device: its connection ends at once, as on MQTT
  const onRevoked = (e: { deviceId: string; reason: string }) => {
    for (const l of listeners.values()) l.disconnect(e.deviceId, `device ${e.reason}`);
  };
  d.bus.on('device-revoked', onRevoked);

  const listenerOf = (deviceId: string): ProtocolListener | undefined => {
    const kind = d.registry.entry(deviceId)?.kind;
    return kind && (PROTOCOL_NAMES as readonly string[]).includes(kind) ? listeners.get(kind as ProtocolName) : undefined;
  };

  return {
    listeners,
    port: (name) => listeners.get(name)?.port,
    commandTransport(mqtt) {
      return {
        isConnected(deviceId) {
          const kind = d.registry.entry(deviceId)?.kind;
          if (kind && (PROTOCOL_NAMES as readonly string[]).includes(kind)) return listenerOf(deviceId)?.peerOf(deviceId) !== undefined;
          return mqtt.isConnected(deviceId);
        },
        async publishToDevice(deviceId, topic, payload) {
          const kind = d.registry.entry(deviceId)?.kind;
          if (!kind || !(PROTOCOL_NAMES as readonly string[]).includes(kind)) return mqtt.publishToDevice(deviceId, topic, payload);
          const name = kind as ProtocolName;
          const l = listeners.get(name);
          const peer = l?.peerOf(deviceId);
          if (!l || !peer) throw new Error(`${deviceId} is not connected to the ${name} listener`);
          const cmd = payload as DeviceCommand;
          const handler = handlers.get(name);
          const encoded = handler?.encodeCommand?.(peer, cmd) ?? { error: `the ${name} protocol cannot carry a ${cmd.type} command` };
          if ('error' in encoded) {
            // a command the terminal cannot take fails at once, with the reason, on the command's record
            await servicesFor(name).commandAnswered(deviceId, cmd.id, false, encoded.error);
            return;
          }
          peer.send(encoded.bytes);
        },
      };
    },
    async close() {
      d.bus.off('device-revoked', onRevoked);
      await Promise.all([...listeners.values()].map((l) => l.close()));
      await unreadable.close();
      limited.close();
    },
  };
}
