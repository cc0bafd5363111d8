// A fake Peer and recording services for the DC-09 handler's unit tests (the listener and the ingest are tested
// end to end in e2e.test.ts). The sink can be held, to see that nothing is answered before it resolves.
import pino from 'pino';
import type { Observation, IngestResult } from '../../../core/contracts.js';
import type { Peer, ProtocolDevice, ProtocolServices } from '../../../gateway/protocols/types.js';

export interface FakePeer extends Peer {
  sent: string[];
  bound: string[];
}

export function fakePeer(transport: 'tcp' | 'udp' = 'tcp'): FakePeer {
  const p = {
    id: `${transport}:127.0.0.1:50000#1`, transport, address: '127.0.0.1', port: 50000, deviceId: undefined as string | undefined,
    flags: [] as string[], sent: [] as string[], bound: [] as string[],
    bind(id: string) { p.deviceId = id; p.bound.push(id); },
    send(b: Buffer) { p.sent.push(b.toString('latin1')); },
    close() {},
  };
  return p;
}

export interface Recorded {
  services: ProtocolServices;
  observations: Observation[];
  refusals: { reason: string; detail: string; raw?: string; deviceId?: string }[];
  logs: string[];
  devices: Map<string, ProtocolDevice>;
  /** while set, submit waits for it */
  hold: { promise?: Promise<void> };
  failSubmit: { on: boolean };
  clock: { now: number };
  /** what the handler counted through services.metrics */
  counted: { replies: string[]; ignored: string[]; storeFailures: number };
}

export function recordingServices(devices: Record<string, Partial<ProtocolDevice>> = {}): Recorded {
  const observations: Observation[] = [];
  const refusals: Recorded['refusals'] = [];
  const logs: string[] = [];
  const map = new Map<string, ProtocolDevice>();
  for (const [acct, d] of Object.entries(devices)) {
    map.set(acct, { deviceId: `dev-${acct}`, kind: 'dc09', state: 'in-service', model: null, config: {}, ...d });
  }
  const hold: Recorded['hold'] = {};
  const failSubmit = { on: false };
  const clock = { now: Date.now() };
  const log = pino({ level: 'debug' }, { write: (s: string) => { logs.push(s); } });
  let id = 0;
  const counted: Recorded['counted'] = { replies: [], ignored: [], storeFailures: 0 };
  const services: ProtocolServices = {
    sink: {
      async submit(obs: Observation): Promise<IngestResult> {
        if (hold.promise) await hold.promise;
        if (failSubmit.on) throw new Error('disk full (test)');
        observations.push(obs);
        return { status: 'stored', observationId: ++id };
      },
    },
    log,
    now: () => clock.now,
    // as the registry's protocolDevice: a DC-09 account as sent, in capitals, in small letters
    lookup: (identifier) => map.get(identifier) ?? map.get(identifier.toUpperCase()) ?? map.get(identifier.toLowerCase()),
    device: (deviceId) => [...map.values()].find((d) => d.deviceId === deviceId),
    refuse: (_peer, reason, detail, raw, deviceId) => {
      refusals.push({ reason, detail, ...(raw && { raw: raw.toString('latin1') }), ...(deviceId !== undefined && { deviceId }) });
    },
    issueSecret: () => { throw new Error('not used by dc09'); },
    checkSecret: () => false,
    commandAnswered: async () => undefined,
    metrics: {
      replied: (reply) => { counted.replies.push(reply); },
      ignored: (keyword) => { counted.ignored.push(keyword); },
      storeFailed: () => { counted.storeFailures++; },
    },
  };
  return { services, observations, refusals, logs, devices: map, hold, failSubmit, clock, counted };
}

/** The text of an answer between LF and CR. */
export const answerText = (s: string) => s.replace(/^\n/, '').replace(/\r$/, '');
