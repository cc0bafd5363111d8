// Start-up of the terminal protocol listeners (docs/protocols.md): for each `protocols.<name>` with a port set, the
// protocol's handler behind the shared listener layer, wired to the one writer (ingest), the registry (who a
// terminal is), the metrics, and the console's commands (sent while the terminal is connected, resent on reconnect).
import { Counter, Gauge } from 'prom-client';
import type { Bus } from '../../core/bus.js';
import type { DeviceCommand, DeviceKind, Observation } from '../../core/contracts.js';
import { createLogLimiter, type Logger } from '../../core/logger.js';
import type { Metrics } from '../../core/metrics.js';
import type { Config } from '../../core/config.js';
import type { DeviceRegistry } from '../../devices/registry.js';
import type { CommandTransport } from '../commands.js';
import type { Ingest } from '../ingest.js';
import { startProtocolListener, type ProtocolListener } from './listener.js';
import { activeListener } from './settings.js';
import { PROTOCOL_NAMES, type ListenerSettings, type Peer, type ProtocolHandler, type ProtocolName, type ProtocolServices } from './types.js';
import { createWatchProtocol } from './watch/index.js';
import { createJt808Protocol } from './jt808/index.js';
import { createDc09Protocol } from './dc09/index.js';

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
  ingest: Ingest;
  registry: DeviceRegistry;
  bus: Bus;
  log: Logger;
  metrics: Metrics;
  /** a pending command for a device that just (re)connected */
  resendCommands(deviceId: string): void;
  /** sockets this process may still hold (the MQTT share of the descriptor budget, core/limits.ts) */
  connectionCap: number;
}

const RAW_KEPT = 512;

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

  const servicesFor = (name: ProtocolName): ProtocolServices => ({
    sink: d.ingest,
    log: log.child({ protocol: name }),
    now: Date.now,
    lookup(identifier) {
      const row = d.registry.protocolDevice(name, identifier);
      if (!row) return undefined;
      return { deviceId: row.id, kind: row.kind as DeviceKind, state: row.state, model: row.model, config: row.config };
    },
    refuse(peer: Peer, reason: string, detail: string, raw?: Buffer) {
      refused.inc({ protocol: name, reason });
      limited.warn(`${name} refused: ${reason}`, peer.address, { protocol: name, reason, peer: peer.id, deviceId: peer.deviceId, detail }, `${name}: refused (${reason}): ${detail}`);
      if (raw) {
        // printable and bounded: binary frames as hex, text frames as text (secrets never reach here: a protocol hands
        // the bytes as received, and an encrypted DC-09 frame stays encrypted)
        const printable = raw.every((b) => b === 9 || b === 10 || b === 13 || (b >= 32 && b < 127));
        const shown = printable ? raw.subarray(0, RAW_KEPT).toString('latin1') : `hex:${raw.subarray(0, RAW_KEPT / 2).toString('hex')}`;
        d.ingest.recordReject({ deviceId: peer.deviceId ?? null, source: name, topic: `${peer.transport}:${peer.address}`, reason: `${reason}: ${detail}`, raw: shown, at: Date.now() });
      }
    },
    issueSecret(deviceId) {
      return d.registry.rotateSecret(deviceId, { issuedToTerminal: true }).secret;
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
  });

  const status = (name: ProtocolName, peer: Peer, online: boolean) => {
    if (!peer.deviceId || peer.transport !== 'tcp') return;
    const obs: Observation = { type: 'status', online, deviceId: peer.deviceId, receivedAt: Date.now(), source: name, flags: [...peer.flags], detail: { peer: peer.id } };
    d.ingest.submit(obs).catch((err: unknown) => log.warn({ err, deviceId: peer.deviceId }, 'could not record the connection state'));
  };

  try {
    for (const name of PROTOCOL_NAMES) {
      const settings = activeListener(d.config.protocols[name] as Partial<ListenerSettings>);
      if (!settings) continue;
      const handler = FACTORIES[name](servicesFor(name), settings);
      handlers.set(name, handler);
      const listener = await startProtocolListener(handler, settings, {
        log: d.log,
        cap: d.connectionCap,
        refuse: (peer, reason, detail, raw) => servicesFor(name).refuse(peer, reason, detail, raw),
        events: {
          bound(peer) {
            d.registry.markInService(peer.deviceId!);
            status(name, peer, true);
            d.resendCommands(peer.deviceId!);
          },
          unbound(peer) {
            status(name, peer, false);
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
      limited.close();
    },
  };
}
