// A fake Peer and a recording sink for the watch handler's unit tests (the listener and Ingest are exercised end to
// end in e2e.test.ts).
import type { Observation, IngestResult } from '../../../core/contracts.js';
import { createLogger } from '../../../core/logger.js';
import type { Peer, ProtocolDevice, ProtocolServices } from '../../../gateway/protocols/types.js';
import { createWatchProtocol } from '../../../gateway/protocols/watch/index.js';

export interface FakePeer extends Peer {
  sent: Buffer[];
  sentText(): string[];
  closed: string[];
  bound: string[];
  flags: string[];
}

let peerSeq = 0;
export function fakePeer(flags: string[] = []): FakePeer {
  const p: FakePeer = {
    id: `tcp:127.0.0.1:4000#${++peerSeq}`,
    transport: 'tcp',
    address: '127.0.0.1',
    port: 4000,
    deviceId: undefined,
    sent: [],
    closed: [],
    bound: [],
    flags,
    sentText() { return this.sent.map((b) => b.toString('latin1')); },
    bind(deviceId: string) {
      this.bound.push(deviceId);
      (this as { deviceId: string | undefined }).deviceId = deviceId;
    },
    send(bytes: Buffer) { this.sent.push(bytes); },
    close(reason: string) { this.closed.push(reason); },
  };
  return p;
}

export interface Rig {
  services: ProtocolServices;
  handler: ReturnType<typeof createWatchProtocol>;
  submitted: Observation[];
  refused: { reason: string; detail: string; raw?: Buffer; deviceId?: string }[];
  answered: { deviceId: string; commandId: string; ok: boolean; error?: string }[];
  devices: Map<string, ProtocolDevice>;
  /** hold every submit until release() (to show a reply waits for durability) */
  hold(): void;
  release(): void;
  /** make submits reject */
  failing: boolean;
  /** feed raw bytes through a framer and the handler, in order, as the listener does */
  feed(peer: FakePeer, bytes: Buffer | string): Promise<void>;
}

export const NOW = Date.UTC(2025, 4, 17, 22, 0, 0);

export function rig(devices: Record<string, Partial<ProtocolDevice>> = {}): Rig {
  const submitted: Observation[] = [];
  const refused: Rig['refused'] = [];
  const answered: Rig['answered'] = [];
  const map = new Map<string, ProtocolDevice>();
  for (const [serial, d] of Object.entries(devices)) {
    map.set(serial, { deviceId: `dev-${serial}`, kind: 'watch', state: 'in-service', model: null, config: {}, ...d });
  }
  let gate: Promise<void> | undefined;
  let open: (() => void) | undefined;
  let id = 0;
  const r: Rig = {
    submitted, refused, answered, devices: map, failing: false,
    hold() { gate = new Promise((res) => { open = res; }); },
    release() { open?.(); gate = undefined; },
    services: {
      sink: {
        async submit(obs: Observation): Promise<IngestResult> {
          if (gate) await gate;
          if (r.failing) throw new Error('disk full');
          submitted.push(obs);
          return { status: 'stored', observationId: ++id };
        },
      },
      log: createLogger('silent'),
      now: () => NOW,
      lookup: (identifier: string) => map.get(identifier),
      device: (deviceId: string) => [...map.values()].find((d) => d.deviceId === deviceId),
      refuse(_peer, reason, detail, raw, deviceId) { refused.push({ reason, detail, ...(raw ? { raw } : {}), ...(deviceId !== undefined ? { deviceId } : {}) }); },
      issueSecret: () => { throw new Error('not used by the watch protocol'); },
      checkSecret: () => false,
      async commandAnswered(deviceId, commandId, ok, error) { answered.push({ deviceId, commandId, ok, ...(error ? { error } : {}) }); },
    },
    handler: undefined as never,
    async feed(peer, bytes) {
      const framer = framers.get(peer.id) ?? r.handler.framer();
      framers.set(peer.id, framer);
      for (const f of framer.push(Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes, 'latin1'))) {
        if (f.ok) await r.handler.onFrame(peer, f.frame, f.raw);
        else r.services.refuse(peer, f.reason, 'framer', f.raw);
      }
    },
  };
  const framers = new Map<string, ReturnType<Rig['handler']['framer']>>();
  r.handler = createWatchProtocol(r.services, { maxFrameBytes: 4096, refusalsBeforeClose: 3, ackText: 'Help is coming' });
  return r;
}
