// A fake connection and the services of a protocol (recording sink, registry of provisioned phones) for the JT/T 808
// handler's unit tests. The end-to-end tests (e2e.test.ts) use the real gateway instead.
import { randomBytes } from 'node:crypto';
import type { Observation, IngestResult } from '../../../core/contracts.js';
import { createLogger } from '../../../core/logger.js';
import type { ListenerSettings, Peer, ProtocolDevice, ProtocolServices } from '../../../gateway/protocols/types.js';
import { createJt808Protocol, AUTH_CODE_ISSUED_KEY, type Jt808Unit } from '../../../gateway/protocols/jt808/index.js';
import { createJt808Framer } from '../../../gateway/protocols/jt808/framer.js';
import { parsePlain, unescape, type Jt808Frame } from '../../../gateway/protocols/jt808/codec.js';

export class FakePeer implements Peer {
  readonly transport = 'tcp' as const;
  readonly address = '127.0.0.1';
  readonly port = 40000;
  deviceId: string | undefined;
  flags: string[] = [];
  sent: Buffer[] = [];
  closed: string | undefined;
  constructor(readonly id = `tcp:127.0.0.1:40000#${Math.random()}`) {}
  bind(deviceId: string) { this.deviceId = deviceId; }
  send(bytes: Buffer) { this.sent.push(bytes); }
  close(reason: string) { this.closed = reason; }
  /** what the gateway sent, decoded (the handler's own codec: fine for unit tests, the sim has its own) */
  replies(): Jt808Frame[] {
    return this.sent.map((b) => {
      const plain = unescape(b.subarray(1, b.length - 1));
      if (typeof plain === 'string') throw new Error(plain);
      const p = parsePlain(plain);
      if (!p.ok) throw new Error(p.detail);
      return p.frame;
    });
  }
}

export interface Fixture {
  services: ProtocolServices;
  stored: Observation[];
  refused: { reason: string; detail: string; raw?: Buffer; deviceId?: string }[];
  answers: { deviceId: string; commandId: string; ok: boolean; error?: string }[];
  devices: Map<string, ProtocolDevice>;
  secrets: Map<string, string>;
  /** make the next submits wait for this (resolve/reject by hand) */
  gate: { hold: boolean; waiting: { resolve: () => void; reject: (e: Error) => void }[] };
  /** what the handler counted through services.metrics */
  counted: { replies: string[]; storeFailures: number };
  provision(phone: string, over?: Partial<ProtocolDevice>): ProtocolDevice;
  /** what POST /api/devices/:id/rotate-secret does to the registry */
  rotate(deviceId: string): void;
}

export function fixture(): Fixture {
  const stored: Observation[] = [];
  const refused: Fixture['refused'] = [];
  const answers: Fixture['answers'] = [];
  const devices = new Map<string, ProtocolDevice>();
  const secrets = new Map<string, string>();
  const gate: Fixture['gate'] = { hold: false, waiting: [] };
  let n = 0;
  const counted: Fixture['counted'] = { replies: [], storeFailures: 0 };
  const services: ProtocolServices = {
    sink: {
      submit(obs: Observation): Promise<IngestResult> {
        if (!gate.hold) {
          stored.push(obs);
          return Promise.resolve({ status: 'stored', observationId: stored.length });
        }
        return new Promise((resolve, reject) => gate.waiting.push({
          resolve: () => { stored.push(obs); resolve({ status: 'stored', observationId: stored.length }); },
          reject,
        }));
      },
    },
    log: createLogger('silent'),
    now: () => 1_700_000_000_000,
    lookup: (id) => devices.get(id),
    device: (deviceId) => [...devices.values()].find((d) => d.deviceId === deviceId),
    refuse: (_peer, reason, detail, raw, deviceId) => {
      refused.push({ reason, detail, ...(raw !== undefined && { raw }), ...(deviceId !== undefined && { deviceId }) });
    },
    // as the gateway's: issuing a code does not close registration, the terminal's first 0x0102 with it does
    issueSecret(deviceId) {
      const s = randomBytes(16).toString('base64url');
      secrets.set(deviceId, s);
      return s;
    },
    confirmSecret(deviceId) {
      const d = [...devices.values()].find((x) => x.deviceId === deviceId)!;
      d.config = { ...d.config, [AUTH_CODE_ISSUED_KEY]: 1 };
    },
    checkSecret: (deviceId, secret) => secrets.get(deviceId) === secret,
    async commandAnswered(deviceId, commandId, ok, error) {
      answers.push({ deviceId, commandId, ok, ...(error !== undefined && { error }) });
    },
    metrics: {
      replied: (reply) => { counted.replies.push(reply); },
      ignored: () => undefined,
      storeFailed: () => { counted.storeFailures++; },
    },
  };
  return {
    services, stored, refused, answers, devices, secrets, gate, counted,
    provision(phone, over = {}) {
      const d: ProtocolDevice = { deviceId: `dev-jt-${++n}`, kind: 'jt808', state: 'provisioned', model: null, config: {}, ...over };
      devices.set(phone, d);
      secrets.set(d.deviceId, randomBytes(16).toString('base64url'));
      return d;
    },
    rotate(deviceId) {
      secrets.set(deviceId, randomBytes(16).toString('base64url'));
      const d = [...devices.values()].find((x) => x.deviceId === deviceId)!;
      const { [AUTH_CODE_ISSUED_KEY]: _gone, ...rest } = d.config;
      d.config = rest;
    },
  };
}

export const listenerSettings = (over: Partial<ListenerSettings> = {}): ListenerSettings => ({
  enabled: true, host: '127.0.0.1', port: 0, udp: false, maxConnections: 100, maxConnectionsPerAddress: 10,
  idleTimeoutMs: 60_000, maxFrameBytes: 8192, bindTimeoutMs: 60_000, ...over,
});

/** A handler with its framer per peer: feed bytes as a connection would, frames handled in order. */
export function harness(f: Fixture, over: Partial<ListenerSettings> = {}) {
  const settings = listenerSettings(over);
  const handler = createJt808Protocol(f.services, settings);
  const framers = new Map<string, ReturnType<typeof createJt808Framer>>();
  return {
    handler,
    async feed(peer: FakePeer, bytes: Buffer | string): Promise<void> {
      let fr = framers.get(peer.id);
      if (!fr) framers.set(peer.id, (fr = handler.framer() as ReturnType<typeof createJt808Framer>));
      for (const out of fr.push(typeof bytes === 'string' ? Buffer.from(bytes, 'hex') : bytes)) {
        if (!out.ok) throw new Error(`the jt808 framer gave the listener a refusal (${out.reason}); it hands all to the handler`);
        await handler.onFrame(peer, out.frame as Jt808Unit, out.raw);
      }
    },
  };
}
