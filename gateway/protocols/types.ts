// The shape every terminal protocol has (gateway/protocols/<name>/): a framer (bytes → frames, bounded), a handler
// (frame → observations in the shared vocabulary, replies only once durable) and an encoder for console commands.
// The listener layer (listener.ts) owns the sockets, the limits and the device's identity on its connection; a
// protocol never opens a socket itself.
import type { DeviceCommand, DeviceKind, DeviceLifecycle, Observation, ObservationSink } from '../../core/contracts.js';
import type { Logger } from '../../core/logger.js';

export const PROTOCOL_NAMES = ['watch', 'jt808', 'dc09'] as const;
export type ProtocolName = (typeof PROTOCOL_NAMES)[number];

/**
 * What a framer found in the bytes: a frame, or bytes that are not one, refused with a reason: a short slug
 * (`garbage`, `truncated`, `oversized`, `bad-length`, …: the metric's label) and optionally what was wrong for a person.
 * A reason that is not a slug is counted as `unreadable`, with the reason as its detail.
 */
export type Framed<F> = { ok: true; frame: F; raw: Buffer } | { ok: false; reason: string; detail?: string; raw: Buffer };

/**
 * One per connection (TCP) or per datagram (UDP). Holds at most `maxFrameBytes` while waiting for the end of a frame;
 * bytes beyond that are given back as a refusal (`ok: false`) and dropped, and framing resynchronises on the next
 * frame start, so garbage never blocks the next good frame. Never throws.
 */
export interface Framer<F> {
  push(chunk: Buffer): Framed<F>[];
  /** bytes held waiting for the end of a frame */
  buffered(): number;
}

/** A terminal's connection (TCP) or its latest datagram's sender (UDP), as the listener shows it to a protocol. */
export interface Peer {
  /** unique per connection: `tcp:127.0.0.1:53412#17` */
  readonly id: string;
  readonly transport: 'tcp' | 'udp';
  readonly address: string;
  readonly port: number;
  /** the device this connection has proved to be (set by bind) */
  readonly deviceId: string | undefined;
  /**
   * Say which device this connection is, once it has proved it (a provisioned id; JT/T 808: after 0x0102). From then
   * on commands for the device go here. If the device is bound to another live connection from another address, the
   * listener logs and counts it (`eldergate_protocol_identity_conflicts_total`) and flags the observations of both
   * (`identity-conflict`); the newer connection wins for commands.
   */
  bind(deviceId: string): void;
  /** write bytes to the terminal (UDP: a datagram to the sender); a closed peer drops them */
  send(bytes: Buffer): void;
  /** end the connection (TCP); the reason is logged. UDP: forget the peer. */
  close(reason: string): void;
  /** flags to put on every observation of this peer (identity-conflict) */
  readonly flags: readonly string[];
}

/** A provisioned device as a protocol needs it. */
export interface ProtocolDevice {
  deviceId: string;
  kind: DeviceKind;
  state: DeviceLifecycle;
  model: string | null;
  /** the device's `config` column (per-device settings, e.g. a DC-09 poll interval) */
  config: Record<string, unknown>;
}

/**
 * Counters of what a protocol did, exported to Prometheus by the gateway (index.ts), each incremented at the event.
 * Labels stay bounded: `reply` is one of the protocol's own few answers, `keyword` is capped by the gateway.
 */
export interface ProtocolMetrics {
  /** an answer sent to a terminal, by the protocol's own name for it: `ACK` `NAK` `DUH`, `LK` `AL`, `0x8001-ok` … */
  replied(reply: string): void;
  /** a frame understood but not used by this gateway (a watch's health reading, an echo nobody waits for) */
  ignored(keyword: string): void;
  /** what a terminal said could not be stored (it is not answered, or NAKed, and the terminal sends again) */
  storeFailed(): void;
}

export interface ProtocolServices {
  /** the one ordered writer: resolves once durable (only then may a protocol answer ACK / general response) */
  sink: ObservationSink;
  log: Logger;
  /** gateway clock, epoch ms */
  now(): number;
  /**
   * The device provisioned for this protocol under the terminal's own identifier (watch id, JT/T 808 phone number,
   * DC-09 account): its serial, or an account of this protocol's scheme set on it. Undefined: not provisioned (refuse).
   * Decommissioned devices are not found; suspended ones are, with their state (refuse them too).
   */
  lookup(identifier: string): ProtocolDevice | undefined;
  /** a device by its id (not decommissioned), e.g. the one configured to stand for a receiver */
  device(deviceId: string): ProtocolDevice | undefined;
  /**
   * Refuse bytes: counted in `eldergate_protocol_refused_total{protocol,reason}`, logged (rate-bound per address) with
   * the reason, and kept raw (bounded) in the rejects table for diagnosis. `reason` is a short stable slug
   * (`bad-checksum`, `unprovisioned`, `oversized`, `not-authenticated`, …); `detail` says what was wrong for a person.
   * `deviceId`: the provisioned device the refused bytes came from, when the protocol knows it although the connection
   * is not bound to it (a DC-09 panel's message that does not decrypt, a JT/T 808 terminal with a wrong code): its
   * refusals then raise the device's "terminal sends unreadable messages" card, as MQTT refusals do, so that a
   * terminal refused again and again is seen on the board. Never put secrets in `detail` or `raw`.
   */
  refuse(peer: Peer, reason: string, detail: string, raw?: Buffer, deviceId?: string): void;
  /**
   * Device secrets kept by the registry (keyed hash only): a JT/T 808 authentication code is issued with `issueSecret`
   * (returns the new code, once; the old one stops working; issuing does not close registration) and checked with
   * `checkSecret`.
   */
  issueSecret(deviceId: string): string;
  checkSecret(deviceId: string, secret: string): boolean;
  /**
   * The terminal proved it holds the issued secret (a JT/T 808 0x0102 with the code of its 0x8100): registration
   * closes until a person rotates it. Not at issue: an answer lost on the way, or a terminal reset before it
   * authenticated, would otherwise lock the terminal out for good.
   */
  confirmSecret?(deviceId: string): void;
  /** the terminal answered a command (watch echo, JT/T 808 0x0001): recorded like an MQTT command ack */
  commandAnswered(deviceId: string, commandId: string, ok: boolean, error?: string): Promise<void>;
  /** counters for Prometheus (absent in unit tests: nothing is counted) */
  metrics?: ProtocolMetrics;
  /**
   * The devices of this protocol's kind that are provisioned and not decommissioned, each under the identifier the
   * terminal uses (its account of this protocol's scheme if it has one, else its serial), read once at start: a
   * protocol that supervises its terminals (DC-09 polls) expects each from then on, so one silent since before a
   * restart is caught.
   */
  provisioned?(): Iterable<{ identifier: string; device: ProtocolDevice }>;
}

export interface ProtocolHandler<F = unknown> {
  readonly name: ProtocolName;
  /** a new framer for a connection (TCP) or a datagram (UDP) */
  framer(): Framer<F>;
  /**
   * One frame. Frames of one peer are handled strictly in order: the next waits for this promise. Must not throw for
   * bad input (refuse it through services.refuse); a rejection is logged and the connection closed.
   */
  onFrame(peer: Peer, frame: F, raw: Buffer): Promise<void>;
  /** the connection ended (TCP) or the UDP peer was forgotten */
  onClose?(peer: Peer): void;
  /**
   * Bytes that carry a console command to the connected terminal, or null when this protocol cannot carry it (then
   * the command fails at once with that reason). The handler remembers what the terminal's answer will carry (the JT/T
   * 808 serial number, the watch's echoed keyword) and calls services.commandAnswered with `cmd.id` when it comes.
   */
  encodeCommand?(peer: Peer, cmd: DeviceCommand): { bytes: Buffer } | { error: string };
  /** the listener is closing: stop timers */
  close?(): Promise<void> | void;
}

/** How one listener is set up (`protocols.<name>` in the configuration, see settings.ts). */
export interface ListenerSettings {
  enabled: boolean;
  host: string;
  /** TCP port; 0 = any free port (tests) */
  port: number;
  /** also listen on UDP at the same port (DC-09) */
  udp: boolean;
  maxConnections: number;
  maxConnectionsPerAddress: number;
  /** a connection silent this long is closed */
  idleTimeoutMs: number;
  /** bytes held before a frame's end is found */
  maxFrameBytes: number;
  /** a connection that has not bound a device within this long is closed */
  bindTimeoutMs: number;
}

/** An observation made by a protocol always names its source protocol. */
export type ProtocolObservation = Observation & { source: ProtocolName };
