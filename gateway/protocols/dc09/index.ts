// The SIA DC-09 receiver (issue 11 §4): alarm panels and telecare hubs reporting over IP, TCP or UDP. One handler per
// listener; frames of one peer arrive in order (listener.ts). What is answered when (docs/protocols/dc09.md):
// - ACK only once every observation of the message is durable (sink.submit resolved); a failed write → NAK, and the
//   panel sends the message again. An encrypted message is answered by an encrypted ACK carrying our timestamp.
// - NAK (never encrypted, with the receiver's time so the panel can set its clock) for a bad CRC, a wrong length, a
//   malformed message, a timestamp outside the window, an account that is not provisioned (or is suspended): the
//   panel keeps the event and tries again (or its backup path) while the refusal is counted and shown.
// - DUH for a well-formed message we do not take: an unknown token, an encrypted message for an account without a
//   key, one that does not decrypt under the account's key, a plaintext message for an account that has a key.
// - NULL (supervision poll, the link test): ACK at once, then the heartbeat is stored (telemetry, in order); the panel's
//   next frame does not wait for it to be written, but its next poll does (one heartbeat on its way per connection).
// Data we cannot read from a provisioned, CRC-checked message is stored as `unknown` and ACKed: sending it again
// would bring the same bytes, and an operator must see it.
import { Type, type Static } from '@sinclair/typebox';
import { TokenBucket } from 'limiter';
import { UNKNOWN_ACCOUNT, type Observation } from '../../../core/contracts.js';
import type { ListenerSettings, Peer, ProtocolDevice, ProtocolHandler, ProtocolServices } from '../types.js';
import { createDc09Framer, type Dc09Frame } from './framer.js';
import {
  TOKENS, formatTimestamp, frameMessage, parseAdmCid, parseBody, parseHeader, printable, splitDataAccount, stripPad,
  type Dc09Body, type Dc09Header, type Token,
} from './message.js';
import { decryptRest, encryptRest } from './cipher.js';
import { emptyKeyStore, loadKeyStore, type KeyStore } from './keys.js';
import { admCidToObservation, siaDcsToObservations, type MapInput } from './map.js';
import { PollSupervisor } from './supervision.js';
import { dc09Settings } from './settings.js';
import { deliver } from '../deliver.js';

export type { Dc09Frame } from './framer.js';
export { Dc09KeyError } from './keys.js';

const SettingsSchema = Type.Object(dc09Settings);
export type Dc09Settings = Static<typeof SettingsSchema>;

export interface Dc09Stats {
  acks: number;
  naks: number;
  duhs: number;
  polls: number;
  events: number;
  observations: number;
  submitFailures: number;
  unreadableData: number;
}

export type Dc09Handler = ProtocolHandler<Dc09Frame> & {
  stats(): Dc09Stats;
  /** the reporting-path supervision (tests read its state) */
  readonly supervisor: PollSupervisor;
};

type Reply = 'ack' | 'nak' | 'duh';

export function createDc09Protocol(services: ProtocolServices, settings: Partial<Dc09Settings> & Partial<ListenerSettings>): Dc09Handler {
  const log = services.log;
  const cfg = {
    pastMs: (settings.timestampPastS ?? 20) * 1000,
    futureMs: (settings.timestampFutureS ?? 40) * 1000,
    plaintextWindow: settings.plaintextTimestampWindow ?? true,
    pollIntervalS: settings.pollIntervalS ?? 180,
    factor: settings.pollMissFactor ?? 2,
    maxFrameBytes: settings.maxFrameBytes ?? 8192,
    unknownAccountsDeviceId: settings.unknownAccountsDeviceId,
    unknownAccountsPerMinute: settings.unknownAccountsPerMinute ?? 30,
  };
  /**
   * Accounts no device holds taken lately (account → when last): these go on; a new one takes a token, so that made-up
   * accounts cannot open cards faster than unknownAccountsPerMinute. Bounded: the oldest are forgotten first.
   */
  const unknownSeen = new Map<string, number>();
  const unknownBucket = new TokenBucket({ bucketSize: cfg.unknownAccountsPerMinute, tokensPerInterval: cfg.unknownAccountsPerMinute, interval: 'minute' });
  unknownBucket.content = cfg.unknownAccountsPerMinute; // (a new TokenBucket starts empty)
  const UNKNOWN_REMEMBER_MS = 10 * 60_000;
  const UNKNOWN_REMEMBERED = 10_000;
  const unknownAccountAllowed = (account: string, now: number): boolean => {
    const last = unknownSeen.get(account);
    const lately = last !== undefined && now - last < UNKNOWN_REMEMBER_MS;
    if (!lately && !unknownBucket.tryRemoveTokens(1)) return false;
    // moved to the newest end, so the oldest is the first key
    unknownSeen.delete(account);
    unknownSeen.set(account, now);
    if (unknownSeen.size > UNKNOWN_REMEMBERED) unknownSeen.delete(unknownSeen.keys().next().value!);
    return true;
  };
  let standInWarnedAt = -Infinity;
  // throws Dc09KeyError (mode, JSON, a bad key) before any socket is opened: start-up stops with its message
  const keys: KeyStore = settings.keysFile
    ? loadKeyStore(settings.keysFile, services.now, (r) =>
        r.ok ? log.info({ accounts: r.accounts }, `DC-09 ${r.message}`) : log.error({ accounts: r.accounts }, `DC-09 ${r.message}`))
    : emptyKeyStore();
  if (settings.keysFile) log.info({ accounts: keys.size() }, 'DC-09 keys loaded');

  const st: Dc09Stats = { acks: 0, naks: 0, duhs: 0, polls: 0, events: 0, observations: 0, submitFailures: 0, unreadableData: 0 };

  const intervalMsOf = (d: ProtocolDevice): number => {
    const own = d.config.pollIntervalS;
    const s = typeof own === 'number' && Number.isFinite(own) && own > 0 ? own : cfg.pollIntervalS;
    return s * 1000;
  };

  /** per connection, its last poll's heartbeat while the writer has not answered for it */
  const pollsInFlight = new WeakMap<Peer, Promise<void>>();

  const supervisor = new PollSupervisor({
    now: services.now,
    factor: cfg.factor,
    log,
    stillSupervised: (_deviceId, account) => {
      const d = services.lookup(account);
      return d !== undefined && d.state !== 'suspended';
    },
    async report(deviceId, type, detail) {
      try {
        await services.sink.submit({ type, deviceId, receivedAt: services.now(), source: 'dc09', detail: { protocol: 'dc09', ...detail } });
      } catch (err) {
        storeFailed(); // the supervisor tries again at its next check (comm-lost) or the next poll (comm-restored)
        throw err;
      }
    },
  });
  // the gateway lists the panels heard before (services.provisioned), so one silent since before a restart is caught
  if (services.provisioned) {
    try {
      for (const { identifier, device } of services.provisioned()) {
        if (device.kind === 'dc09' && device.state !== 'suspended') supervisor.expect(device.deviceId, identifier.toUpperCase(), intervalMsOf(device));
      }
    } catch (err) {
      log.error({ err }, 'listing the provisioned DC-09 panels failed; each is supervised from its first poll');
    }
  }

  // ---- answers ----
  const send = (peer: Peer, kind: Reply, message: string) => {
    st[kind === 'ack' ? 'acks' : kind === 'nak' ? 'naks' : 'duhs']++;
    services.metrics?.replied(kind.toUpperCase());
    peer.send(frameMessage(message));
  };
  const storeFailed = () => {
    st.submitFailures++;
    services.metrics?.storeFailed();
  };
  const routing = (h: Dc09Header, account: string) => `${h.seq}${h.receiver}${h.prefix}${account ? `#${account}` : ''}`;
  const nak = (peer: Peer) => send(peer, 'nak', `"NAK"0000R0L0A0[]${formatTimestamp(services.now())}`);
  const duh = (peer: Peer, h: Dc09Header, account: string) => send(peer, 'duh', `"DUH"${routing(h, account)}[]`);
  const ack = (peer: Peer, h: Dc09Header, account: string, key: Buffer | undefined) =>
    send(peer, 'ack', key
      ? `"*ACK"${routing(h, account)}[${encryptRest(`]${formatTimestamp(services.now())}`, key)}`
      : `"ACK"${routing(h, account)}[]`);

  /** `deviceId`: the provisioned panel the message is from (its refusals raise its "unreadable messages" card) */
  const refuse = (peer: Peer, reason: string, detail: string, raw: Buffer, reply: () => void, deviceId?: string) => {
    services.refuse(peer, reason, detail, raw, deviceId);
    reply();
  };

  // ---- one message ----
  async function onFrame(peer: Peer, frame: Dc09Frame, raw: Buffer): Promise<void> {
    const receivedAt = services.now();
    const parsed = parseHeader(frame.text);
    if (!parsed.ok) return refuse(peer, parsed.reason, parsed.detail, raw, () => nak(peer));
    const h = parsed.value;
    if (!(TOKENS as readonly string[]).includes(h.id)) {
      return refuse(peer, 'unsupported-token', `message type "${h.encrypted ? '*' : ''}${h.id}" is not supported (SIA-DCS, ADM-CID, NULL): DUH`, raw, () => duh(peer, h, h.account));
    }
    const token = h.id as Token;

    // plaintext: the data may name the account when the header does not
    let body: Dc09Body | undefined;
    let account = h.account;
    if (!h.encrypted) {
      const b = parseBody(h.rest);
      if (!b.ok) return refuse(peer, b.reason, b.detail, raw, () => nak(peer));
      body = b.value;
      account ||= splitDataAccount(body.data).account ?? '';
    }
    if (!account) {
      return refuse(peer, 'no-account', `${h.encrypted ? 'an encrypted message must name its account in the header (#acct)' : 'no account (#acct) in the header nor the data'}: NAK`, raw, () => nak(peer));
    }
    // accounts are hex: the registry finds one as sent, in capitals or in small letters (one lookup)
    let device = services.lookup(account);
    /** an account no device holds, taken on the device that stands for this receiver (unknownAccountsDeviceId) */
    let unknownAccount: string | undefined;
    if (!device) {
      const standsIn = cfg.unknownAccountsDeviceId;
      const stand = standsIn && !h.encrypted ? services.device(standsIn) : undefined;
      const usable = stand !== undefined && stand.kind === 'receiver' && stand.state !== 'suspended';
      if (!usable) {
        const why = !standsIn ? '' : h.encrypted
          ? ' (an encrypted message is taken only from a provisioned account)'
          : ` (protocols.dc09.unknownAccountsDeviceId ${standsIn} is ${!stand ? 'not a device' : stand.kind !== 'receiver' ? `a ${stand.kind}, not a receiver` : 'suspended'}: provision a device of kind receiver, or resume it)`;
        // said once a minute at most, not for every message of every panel
        if (standsIn && !h.encrypted && receivedAt - standInWarnedAt > 60_000) {
          standInWarnedAt = receivedAt;
          log.error({ deviceId: standsIn, account }, `events from unregistered accounts cannot be taken${why}`);
        }
        return refuse(peer, 'unprovisioned', `account ${account} is not provisioned (POST /api/devices {kind: "dc09", serial: "${account}"})${why}: NAK, the panel keeps the event and tries again`, raw, () => nak(peer));
      }
      if (!unknownAccountAllowed(account.toUpperCase(), receivedAt)) {
        return refuse(peer, 'unknown-accounts-limit', `account ${account} is not provisioned, and more than ${cfg.unknownAccountsPerMinute} new unregistered accounts a minute are not taken (protocols.dc09.unknownAccountsPerMinute): NAK, the panel tries again`, raw, () => nak(peer));
      }
      device = stand;
      unknownAccount = account.toUpperCase();
    }
    if (device.state === 'suspended') {
      return refuse(peer, 'suspended', `account ${account} belongs to a suspended device (${device.deviceId}): NAK`, raw, () => nak(peer), device.deviceId);
    }

    let key = keys.get(account);
    if (h.encrypted) {
      if (!key) {
        return refuse(peer, 'no-key', `encrypted message for account ${account}, which has no key in protocols.dc09.keysFile: DUH`, raw, () => duh(peer, h, account), device.deviceId);
      }
      let plain = decryptRest(h.rest, key);
      if (plain === undefined) {
        return refuse(peer, 'malformed', `encrypted part of ${h.rest.length} characters is not whole AES blocks of hex: NAK`, raw, () => nak(peer), device.deviceId);
      }
      let afterPad = stripPad(plain);
      if (afterPad === undefined) {
        // the technician may just have changed the key in the file
        keys.refresh();
        const again = keys.get(account);
        if (again && !again.equals(key)) {
          key = again;
          plain = decryptRest(h.rest, key);
          afterPad = plain === undefined ? undefined : stripPad(plain);
        }
      }
      if (afterPad === undefined) {
        return refuse(peer, 'decrypt-failed', `message for account ${account} does not decrypt under its key (the panel and protocols.dc09.keysFile hold different keys): DUH`, raw, () => duh(peer, h, account), device.deviceId);
      }
      const b = parseBody(afterPad);
      // the parser's detail quotes the text: after decryption that is the panel's plaintext, which rejects never hold
      if (!b.ok) {
        return refuse(peer, b.reason, `message for account ${account} decrypts under its key but is not a DC-09 message body (${b.reason}; the decrypted text is not kept): NAK`,
          raw, () => nak(peer), device.deviceId);
      }
      body = b.value;
      if (body.timestamp === undefined) {
        return refuse(peer, 'no-timestamp', `encrypted message for account ${account} has no timestamp (required when encrypted): NAK`, raw, () => nak(peer), device.deviceId);
      }
    } else if (key) {
      return refuse(peer, 'plaintext-downgrade', `unencrypted message for account ${account}, whose line is encrypted (a key is configured): DUH`, raw, () => duh(peer, h, account), device.deviceId);
    }
    const b = body!;
    if (b.timestamp !== undefined && (h.encrypted || cfg.plaintextWindow)) {
      const skew = b.timestamp - receivedAt;
      if (skew < -cfg.pastMs || skew > cfg.futureMs) {
        return refuse(peer, 'timestamp-window', `timestamp ${b.timestampText} is ${Math.round(skew / 1000)} s from the receiver clock (window −${cfg.pastMs / 1000} s/+${cfg.futureMs / 1000} s): NAK with the receiver time`, raw, () => nak(peer), device.deviceId);
      }
    }

    // a connection is a panel's once it spoke for a provisioned account; the receiver's stand-in is every unknown panel's
    if (unknownAccount === undefined) peer.bind(device.deviceId);
    const flags = unknownAccount === undefined ? [...peer.flags] : [...peer.flags, UNKNOWN_ACCOUNT];
    const { account: dataAccount, rest: data } = splitDataAccount(b.data);
    const detail: Record<string, unknown> = {
      token, encrypted: h.encrypted, seq: h.seq, account, transport: peer.transport,
      ...(h.receiver && { receiver: h.receiver }), prefix: h.prefix,
      ...(dataAccount && dataAccount !== account && { dataAccount }),
      ...(b.xdata.length && { xdata: b.xdata }),
      ...(b.timestampText && { timestamp: b.timestampText }),
    };
    const intervalMs = intervalMsOf(device);

    if (token === 'NULL' && unknownAccount !== undefined) {
      // an unknown panel's link test: answered, not supervised (no device of its own to be lost)
      st.polls++;
      ack(peer, h, account, undefined);
      return;
    }
    if (token === 'NULL') {
      st.polls++;
      // one poll's heartbeat on its way to the writer per connection: a panel sending polls faster than they are
      // written waits here (its frames queue, then its socket is paused), as it did when every poll waited for its own
      const before = pollsInFlight.get(peer);
      if (before) await before;
      // the poll is the link test: answered at once, so a slow disk never makes the panel report its path failed;
      // what it proves (the link is up) is already in the supervisor, and the heartbeat is telemetry
      ack(peer, h, account, h.encrypted ? key : undefined);
      const hb: Observation = {
        type: 'heartbeat', deviceId: device.deviceId, receivedAt, source: 'dc09',
        ...(b.timestamp !== undefined && { deviceTs: b.timestamp }),
        ...(flags.length && { flags }),
        detail: { protocol: 'dc09', ...detail },
      };
      // handed to the writer now, in this panel's order, and not waited for: the writer keeps a device's observations in
      // order by itself (an alarm takes the device's queued telemetry into its own commit), so the panel's next frame
      // — an alarm sent right after a poll — is not held up by the poll's heartbeat becoming durable (a telemetry batch
      // and its sync: an SOS of this panel waited for two syncs, the poll's and its own)
      const written = services.sink.submit(hb).then(
        () => { st.observations++; },
        (err: unknown) => {
          storeFailed();
          log.warn({ err, deviceId: device.deviceId }, 'storing a DC-09 poll failed (already answered: telemetry)');
        },
      ).finally(() => {
        if (pollsInFlight.get(peer) === written) pollsInFlight.delete(peer);
      });
      pollsInFlight.set(peer, written);
      await supervisor.contact(device.deviceId, account, intervalMs);
      return;
    }

    st.events++;
    const m: MapInput = { deviceId: device.deviceId, receivedAt, account, model: device.model, flags, detail };
    let list: Observation[];
    if (token === 'ADM-CID') {
      const ev = parseAdmCid(data);
      list = ev.ok ? [admCidToObservation(ev.value, data, m)] : [unreadable(m, data, ev.detail)];
    } else {
      list = siaDcsToObservations(data, m);
    }
    for (const o of list) {
      if (b.timestamp !== undefined) o.deviceTs = b.timestamp;
      // (seq, deviceTs) is the dedup key: only a message with one observation may use it, or its second would drop;
      // never for unknown panels, which share the stand-in device (two of them may send the same seq and second)
      if (b.timestamp !== undefined && list.length === 1 && unknownAccount === undefined) o.seq = Number(h.seq);
      if (unknownAccount !== undefined) o.account = unknownAccount;
    }
    const stored = await deliver(services, list, {
      stored: () => { st.observations++; },
      failed(err, o) {
        st.submitFailures++;
        log.error({ err, deviceId: device.deviceId, seq: h.seq, type: o.type }, 'storing a DC-09 event failed: NAK, the panel sends it again');
      },
    });
    if (!stored) {
      nak(peer);
      return;
    }
    ack(peer, h, account, h.encrypted ? key : undefined);
    if (unknownAccount === undefined) await supervisor.contact(device.deviceId, account, intervalMs);
  }

  function unreadable(m: MapInput, data: string, why: string): Observation {
    st.unreadableData++;
    return {
      type: 'unknown', code: 'ADM-CID', deviceId: m.deviceId, receivedAt: m.receivedAt, source: 'dc09',
      flags: [...m.flags, 'unreadable-data'],
      detail: { ...m.detail, protocol: 'dc09', format: 'ADM-CID', data: printable(data), issue: why },
    };
  }

  return {
    name: 'dc09',
    supervisor,
    stats: () => ({ ...st }),
    framer: () => createDc09Framer(cfg.maxFrameBytes),
    async onFrame(peer, frame, raw) {
      try {
        await onFrame(peer, frame, raw);
      } catch (err) {
        // a bug here must not leave the panel without an answer: NAK, it sends again
        log.error({ err, peer: peer.id }, 'DC-09 message handler failed: NAK');
        try {
          nak(peer);
        } catch {
          /* the peer is gone */
        }
      }
    },
    encodeCommand: () => ({ error: 'a DC-09 panel takes no commands from the receiving centre (the protocol carries events to it only)' }),
    async close() {
      await supervisor.close();
    },
  };
}
