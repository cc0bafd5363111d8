// JT/T 808 (2013 and 2019 headers) over TCP: location terminals, personal trackers and pendants (docs/protocols/jt808.md).
//
// A connection must register (0x0100, once per terminal: it gets its authentication code) and authenticate (0x0102)
// before anything else is heard; only then is it bound to its device. Reports become observations and are answered
// (0x8001) only once every observation of the frame is durable; a frame that could not be stored is not answered,
// so the terminal sends it again. Console commands become 0x8201 / 0x8300 / 0x8400 / 0x8401, and the terminal's
// answer (0x0001, 0x0201) closes them.
import type { DeviceCommand, Observation } from '../../../core/contracts.js';
import { ConfigError } from '../../../core/errors.js';
import type { ListenerSettings, Peer, ProtocolDevice, ProtocolHandler, ProtocolServices } from '../types.js';
import { buildFrame, hex4, unescape, type Jt808Frame } from './codec.js';
import { createJt808Framer, type Jt808Unit } from './framer.js';
import { decodeLocation } from './location.js';
import { HELD_MASK, MASK, locationObservations } from './alarms.js';
import {
  MSG, RESULT, REGISTER_RESULT, TEXT_FLAG, callBackBody, decodeAuthenticate, decodeRegister, decodeTerminalResponse,
  gbk, phoneBookBody, platformResponse, registerResponse, textBody, type PhoneBookEntry,
} from './messages.js';
import type { Jt808Settings } from './settings.js';
import { deliver as deliverAll } from '../deliver.js';

export type { Jt808Unit } from './framer.js';

/**
 * Where the registry records that a terminal proved it holds the device's current secret as its authentication code
 * (epoch ms of its first 0x0102 with it: services.confirmSecret), in the device's config; cleared when an admin
 * rotates the secret. While it is set, the phone number cannot be registered again (docs/protocols/jt808.md
 * § Registration).
 */
export const AUTH_CODE_ISSUED_KEY = 'authCodeIssuedAt';

/** the `reply` label of eldergate_protocol_replies_total for each 0x8001 / 0x8100 result */
const RESULT_LABEL: Record<number, string> = { [RESULT.ok]: 'ok', [RESULT.failure]: 'failure', [RESULT.messageError]: 'message-error', [RESULT.unsupported]: 'unsupported' };
const REGISTER_LABEL: Record<number, string> = {
  [REGISTER_RESULT.ok]: 'ok', [REGISTER_RESULT.vehicleRegistered]: 'vehicle-registered', [REGISTER_RESULT.noVehicle]: 'no-vehicle',
  [REGISTER_RESULT.terminalRegistered]: 'terminal-registered', [REGISTER_RESULT.noTerminal]: 'no-terminal',
};

/** Observations of one frame share its flow serial: seq = serial × SEQ_SPAN + their index in the frame. */
const SEQ_SPAN = 1024;

const DEFAULTS: Jt808Settings = { terminalUtcOffsetMinutes: 480, ackText: 'Help is coming', authFailuresBeforeClose: 3, maxPendingCommands: 64 };

interface PeerState {
  /** set once the terminal authenticated on this connection */
  deviceId?: string;
  /** the phone number digits as the authenticated terminal sends them */
  phone?: string;
  edition: 2013 | 2019;
  protocolVersion?: number;
  authFailures: number;
  /** the platform's own flow serial on this connection */
  nextSerial: number;
  /** platform serial → the console command it carries */
  pending: Map<number, { commandId: string; msgId: number }>;
}

/**
 * The message header of a parsed frame as it was received (opening 0x7E and the unescaped header: id, properties,
 * phone, serial), without its body and check code: what is kept of a frame whose body is a secret.
 */
function headerOf(wire: Buffer, frame: Jt808Frame): Buffer {
  const plain = unescape(wire.subarray(1, wire.length - 1));
  if (typeof plain === 'string') return wire.subarray(0, 1);
  return Buffer.concat([wire.subarray(0, 1), plain.subarray(0, Math.max(0, plain.length - frame.body.length - 1))]);
}

export function createJt808Protocol(services: ProtocolServices, settings: Partial<Jt808Settings> & ListenerSettings): ProtocolHandler<Jt808Unit> {
  const cfg: Jt808Settings = {
    terminalUtcOffsetMinutes: settings.terminalUtcOffsetMinutes ?? DEFAULTS.terminalUtcOffsetMinutes,
    ackText: settings.ackText ?? DEFAULTS.ackText,
    authFailuresBeforeClose: settings.authFailuresBeforeClose ?? DEFAULTS.authFailuresBeforeClose,
    maxPendingCommands: settings.maxPendingCommands ?? DEFAULTS.maxPendingCommands,
  };
  // an acknowledgement text the terminals cannot be sent would fail every "help is coming": stop at start-up instead
  const ackBytes = gbk(cfg.ackText, 'text');
  if (typeof ackBytes === 'string') throw new ConfigError([`protocols.jt808.ackText: ${ackBytes}`]);
  const log = services.log.child({ module: 'jt808' });
  const peers = new Map<string, PeerState>();
  /** deviceId → held technical alarm bits as last stored (edges: alarms.ts) */
  const heldBits = new Map<string, number>();
  /**
   * deviceId → the authentication code a terminal authenticated with on this process: while the registry still takes
   * it, that terminal holds it and the phone number may not register again. A code merely issued does not count (its
   * 0x8100 may have been lost, or the terminal reset before it authenticated: it must be able to register again).
   * Kept in memory only (never logged); the registry's AUTH_CODE_ISSUED_KEY, set through services.confirmSecret, is
   * what survives a restart.
   */
  const proven = new Map<string, string>();

  const stateOf = (peer: Peer, frame?: Jt808Frame): PeerState => {
    let st = peers.get(peer.id);
    if (!st) {
      st = { edition: frame?.edition ?? 2013, authFailures: 0, nextSerial: 0, pending: new Map() };
      peers.set(peer.id, st);
    }
    if (frame && !st.deviceId) {
      // the edition of the replies follows the terminal's (it may only change before it authenticated)
      st.edition = frame.edition;
      if (frame.protocolVersion !== undefined) st.protocolVersion = frame.protocolVersion;
    }
    return st;
  };

  const send = (peer: Peer, st: PeerState, phone: string, msgId: number, body: Buffer): number => {
    const serial = st.nextSerial;
    st.nextSerial = (st.nextSerial + 1) & 0xffff;
    peer.send(buildFrame({ msgId, edition: st.edition, ...(st.protocolVersion !== undefined && { protocolVersion: st.protocolVersion }), phone, serial }, body));
    return serial;
  };
  const answer = (peer: Peer, st: PeerState, frame: Jt808Frame, result: number) => {
    services.metrics?.replied(`0x8001-${RESULT_LABEL[result] ?? result}`);
    return send(peer, st, frame.phone, MSG.platformResponse, platformResponse(frame.serial, frame.msgId, result));
  };

  /** `deviceId`: the provisioned terminal the frame is from, on a connection not bound to it (its card is raised) */
  const refuse = (peer: Peer, reason: string, detail: string, raw: Buffer, deviceId?: string) => services.refuse(peer, reason, detail, raw, deviceId);

  /** The provisioned jt808 device of a phone number: as sent, or without the BCD field's leading zeros. */
  const findDevice = (phone: string): ProtocolDevice | undefined => {
    const stripped = phone.replace(/^0+/, '');
    for (const id of stripped !== phone && stripped.length > 0 ? [stripped, phone] : [phone]) {
      const d = services.lookup(id);
      if (d && d.kind === 'jt808') return d;
    }
    return undefined;
  };

  const marked = (d: ProtocolDevice) => d.config[AUTH_CODE_ISSUED_KEY] !== undefined && d.config[AUTH_CODE_ISSUED_KEY] !== null;
  /**
   * Registration is open until a terminal has authenticated with the current secret; an admin's rotate-secret opens
   * it again.
   */
  const registrationOpen = (d: ProtocolDevice): boolean => {
    if (marked(d)) return false;
    const code = proven.get(d.deviceId);
    if (code !== undefined && services.checkSecret(d.deviceId, code)) return false;
    return true;
  };

  /** Store every observation in order; false (and nothing answered) when one could not be. */
  const deliver = (observations: Observation[], what: string, deviceId: string): Promise<boolean> => deliverAll(services, observations, {
    failed: (err, o) => log.error({ err, deviceId, what, type: o.type }, 'could not store an observation: the frame is not answered, so the terminal sends it again'),
  });

  // ---- registration and authentication ---------------------------------------------------------------------
  const onRegister = (peer: Peer, st: PeerState, frame: Jt808Frame, raw: Buffer) => {
    const reply = (result: number, code?: string) => {
      services.metrics?.replied(`0x8100-${REGISTER_LABEL[result] ?? result}`);
      send(peer, st, frame.phone, MSG.registerResponse, registerResponse(frame.serial, result, code));
    };
    const info = decodeRegister(frame.body, frame.edition);
    const d = findDevice(frame.phone);
    if (!d) {
      refuse(peer, 'unprovisioned', `terminal ${frame.phone} registered but no jt808 device is provisioned with that phone number as its serial (POST /api/devices {kind: 'jt808', serial: '<phone number>'})`, raw);
      reply(REGISTER_RESULT.noTerminal);
      return;
    }
    if (d.state === 'suspended') {
      refuse(peer, 'suspended', `terminal ${frame.phone} (device ${d.deviceId}) is suspended: registration refused`, raw, d.deviceId);
      reply(REGISTER_RESULT.noTerminal);
      return;
    }
    if (!registrationOpen(d)) {
      refuse(peer, 'already-registered',
        `terminal ${frame.phone} (device ${d.deviceId}) already registered: a terminal holds its authentication code. If the terminal was replaced or reset, rotate the device's secret (POST /api/devices/${d.deviceId}/rotate-secret) and it may register again`, raw, d.deviceId);
      reply(REGISTER_RESULT.terminalRegistered);
      return;
    }
    let code: string;
    try {
      code = services.issueSecret(d.deviceId);
    } catch (err) {
      log.error({ err, deviceId: d.deviceId }, 'could not issue an authentication code: the registration is not answered (the terminal tries again)');
      return;
    }
    log.info({ deviceId: d.deviceId, phone: frame.phone, peer: peer.id, edition: frame.edition, ...info }, 'jt808 terminal registered: authentication code issued');
    reply(REGISTER_RESULT.ok, code);
  };

  const onAuthenticate = (peer: Peer, st: PeerState, frame: Jt808Frame, raw: Buffer) => {
    const auth = decodeAuthenticate(frame.body, frame.edition);
    const fail = (reason: string, detail: string, deviceId?: string) => {
      refuse(peer, reason, detail, raw, deviceId);
      answer(peer, st, frame, RESULT.failure);
      st.authFailures++;
      if (st.authFailures >= cfg.authFailuresBeforeClose) peer.close(`${st.authFailures} failed authentications`);
    };
    if (typeof auth === 'string') return fail('bad-body', `authentication 0x0102 from ${frame.phone}: ${auth}`);
    const d = findDevice(frame.phone);
    if (!d) return fail('unprovisioned', `terminal ${frame.phone} authenticated but no jt808 device is provisioned with that phone number as its serial`);
    if (d.state === 'suspended') return fail('suspended', `terminal ${frame.phone} (device ${d.deviceId}) is suspended`, d.deviceId);
    if (st.deviceId && st.deviceId !== d.deviceId) {
      return fail('identity-mismatch', `connection authenticated as ${st.deviceId} now claims ${frame.phone} (device ${d.deviceId})`);
    }
    if (!services.checkSecret(d.deviceId, auth.code)) {
      return fail('bad-auth-code', `terminal ${frame.phone} (device ${d.deviceId}) sent an authentication code that is not the one issued to it (it may register again only after its secret is rotated)`, d.deviceId);
    }
    st.deviceId = d.deviceId;
    st.phone = frame.phone;
    st.authFailures = 0;
    // the terminal holds its code: from now on its number is closed to registration (until a person rotates it)
    proven.set(d.deviceId, auth.code);
    if (!marked(d)) {
      try {
        services.confirmSecret?.(d.deviceId);
      } catch (err) {
        // the terminal is in; only the record that survives a restart is missing (in memory it is closed)
        log.error({ err, deviceId: d.deviceId }, 'could not record that the terminal holds its authentication code: registration stays closed until the gateway restarts');
      }
    }
    peer.bind(d.deviceId);
    log.info({ deviceId: d.deviceId, peer: peer.id, edition: frame.edition, ...(auth.imei && { imei: auth.imei }), ...(auth.software && { software: auth.software }) }, 'jt808 terminal authenticated');
    answer(peer, st, frame, RESULT.ok);
  };

  // ---- reports ---------------------------------------------------------------------------------------------
  const baseFlags = (peer: Peer) => [...peer.flags];

  /** 0x0200 / 0x0201 tail / 0x0704 items → observations, held bits updated only once stored. */
  const reportObservations = (peer: Peer, deviceId: string, frame: Jt808Frame, bodies: Buffer[], extra: { buffered?: boolean; detail: Record<string, unknown> }) => {
    const out: Observation[] = [];
    let held = heldBits.get(deviceId);
    let bad = 0;
    for (const [i, body] of bodies.entries()) {
      const loc = decodeLocation(body, cfg.terminalUtcOffsetMinutes);
      if (!loc) {
        bad++;
        continue;
      }
      const obs = locationObservations(loc, {
        deviceId, receivedAt: services.now(),
        flags: [...baseFlags(peer), ...(extra.buffered ? ['buffered'] : [])],
        ...(out.length < SEQ_SPAN - 16 && { seq: frame.serial * SEQ_SPAN + out.length }),
        detail: { msgId: `0x${hex4(frame.msgId)}`, serial: frame.serial, ...extra.detail, ...(bodies.length > 1 && { item: i }) },
        previousHeld: held,
      });
      held = (loc.alarm & HELD_MASK) >>> 0;
      out.push(...obs);
    }
    return { out, held, bad };
  };

  const onReport = async (peer: Peer, st: PeerState, frame: Jt808Frame, raw: Buffer, deviceId: string) => {
    let bodies: Buffer[];
    let buffered = false;
    const detail: Record<string, unknown> = {};
    let replySerial: number | undefined;
    if (frame.msgId === MSG.batch) {
      // count WORD, type BYTE (0 normal, 1 blind-area supplementary), items of length WORD + location body
      if (frame.body.length < 3) {
        refuse(peer, 'bad-body', `batch 0x0704 of ${frame.body.length} bytes: needs a count and a type`, raw);
        answer(peer, st, frame, RESULT.messageError);
        return;
      }
      const count = frame.body.readUInt16BE(0);
      buffered = frame.body[2] === 1;
      bodies = [];
      let at = 3;
      while (at + 2 <= frame.body.length) {
        const len = frame.body.readUInt16BE(at);
        if (at + 2 + len > frame.body.length) break;
        bodies.push(frame.body.subarray(at + 2, at + 2 + len));
        at += 2 + len;
      }
      detail.batch = { count, type: frame.body[2], items: bodies.length };
      if (bodies.length !== count || at !== frame.body.length) detail.batchProblem = `count ${count}, ${bodies.length} whole item(s), ${frame.body.length - at} byte(s) left over`;
    } else if (frame.msgId === MSG.locationQueryResponse) {
      if (frame.body.length < 2) {
        refuse(peer, 'bad-body', `location query response 0x0201 of ${frame.body.length} bytes`, raw);
        return;
      }
      replySerial = frame.body.readUInt16BE(0);
      detail.replySerial = replySerial;
      bodies = [frame.body.subarray(2)];
    } else {
      bodies = [frame.body];
    }
    const { out, held, bad } = reportObservations(peer, deviceId, frame, bodies, { buffered, detail });
    if (out.length === 0) {
      refuse(peer, 'bad-body', `0x${hex4(frame.msgId)} from ${frame.phone}: no location body could be read (${bad} item(s) shorter than an alarm word)`, raw);
      if (frame.msgId !== MSG.locationQueryResponse) answer(peer, st, frame, RESULT.messageError);
      return;
    }
    if (!(await deliver(out, `0x${hex4(frame.msgId)}`, deviceId))) return;
    if (held !== undefined) heldBits.set(deviceId, held);
    if (replySerial !== undefined) {
      const p = st.pending.get(replySerial);
      if (p && p.msgId === MSG.locationQuery) {
        st.pending.delete(replySerial);
        await answered(deviceId, p.commandId, true);
      }
      return; // a response is not answered
    }
    answer(peer, st, frame, RESULT.ok);
  };

  const answered = async (deviceId: string, commandId: string, ok: boolean, error?: string) => {
    try {
      await services.commandAnswered(deviceId, commandId, ok, error);
    } catch (err) {
      services.metrics?.storeFailed();
      log.error({ err, deviceId, commandId }, 'could not record the terminal\'s answer to a command');
    }
  };

  const onTerminalResponse = async (peer: Peer, st: PeerState, frame: Jt808Frame, raw: Buffer, deviceId: string) => {
    const r = decodeTerminalResponse(frame.body);
    if (!r) {
      refuse(peer, 'bad-body', `terminal general response 0x0001 of ${frame.body.length} bytes (needs 5)`, raw);
      return;
    }
    const p = st.pending.get(r.replySerial);
    if (!p || p.msgId !== r.replyId) {
      log.debug({ deviceId, ...r }, 'terminal answered a message we are not waiting for');
      return;
    }
    st.pending.delete(r.replySerial);
    const why = ['', 'failure', 'message error', 'not supported'][r.result] ?? `result ${r.result}`;
    await answered(deviceId, p.commandId, r.result === 0, r.result === 0 ? undefined : `the terminal answered 0x${hex4(r.replyId)}: ${why}`);
  };

  /** Does a refused (unauthenticated) report carry a life-safety alarm? Then it is not answered at all (see below). */
  const carriesEmergency = (frame: Jt808Frame): boolean => {
    if (frame.msgId === MSG.location) return frame.body.length >= 4 && (frame.body.readUInt32BE(0) & (MASK.sos | MASK.fall | MASK.wander)) !== 0;
    if (frame.msgId !== MSG.batch) return false;
    for (let at = 3; at + 6 <= frame.body.length;) {
      const len = frame.body.readUInt16BE(at);
      if (len >= 4 && (frame.body.readUInt32BE(at + 2) & (MASK.sos | MASK.fall | MASK.wander)) !== 0) return true;
      at += 2 + len;
    }
    return false;
  };

  const onFrame = async (peer: Peer, unit: Jt808Unit, wire: Buffer): Promise<void> => {
    if (unit.kind === 'refused') {
      refuse(peer, unit.reason, unit.detail, wire);
      return;
    }
    const frame = unit.frame;
    // an authentication's body is the code (a device secret): its refusals keep only the header
    const raw = frame.msgId === MSG.authenticate ? headerOf(wire, frame) : wire;
    const st = stateOf(peer, frame);
    if (frame.encryption !== 0) {
      refuse(peer, 'encrypted', `0x${hex4(frame.msgId)} from ${frame.phone} is encrypted (properties bits 10-12 = ${frame.encryption}): RSA is not supported, configure the terminal for plain messages`, raw);
      answer(peer, st, frame, RESULT.unsupported);
      return;
    }
    if (frame.subpackage) {
      // long messages (multimedia, very long batches) come in packages; nothing a person's alarm needs does
      refuse(peer, 'subpackage', `0x${hex4(frame.msgId)} from ${frame.phone} is package ${frame.subpackage.index} of ${frame.subpackage.total}: subpackaged messages are not reassembled`, raw);
      answer(peer, st, frame, RESULT.unsupported);
      return;
    }
    if (frame.msgId === MSG.register) return onRegister(peer, st, frame, raw);
    if (frame.msgId === MSG.authenticate) return onAuthenticate(peer, st, frame, raw);

    const deviceId = st.deviceId;
    if (!deviceId) {
      // Before 0x0102 nothing is heard. A report carrying an emergency is not answered at all, rather than answered
      // "failure": the terminal keeps it and sends it again, and after it authenticated it is heard.
      const emergency = carriesEmergency(frame);
      refuse(peer, 'not-authenticated',
        `0x${hex4(frame.msgId)} from ${frame.phone} before the terminal authenticated (0x0102)${emergency ? ': it carries an emergency alarm, left unanswered so the terminal sends it again once authenticated' : ''}`, raw);
      if (emergency) log.warn({ phone: frame.phone, peer: peer.id }, 'an emergency alarm from a terminal that has not authenticated: not heard until it does');
      else if (frame.msgId !== MSG.terminalResponse) answer(peer, st, frame, RESULT.failure);
      return;
    }
    if (frame.phone !== st.phone) {
      refuse(peer, 'identity-mismatch', `connection authenticated as ${st.phone} (device ${deviceId}) sent 0x${hex4(frame.msgId)} as ${frame.phone}`, raw);
      answer(peer, st, frame, RESULT.failure);
      return;
    }
    switch (frame.msgId) {
      case MSG.heartbeat: {
        const obs: Observation = {
          type: 'heartbeat', deviceId, receivedAt: services.now(), source: 'jt808',
          ...(peer.flags.length > 0 && { flags: baseFlags(peer) }), detail: { msgId: '0x0002', serial: frame.serial },
        };
        if (await deliver([obs], 'heartbeat', deviceId)) answer(peer, st, frame, RESULT.ok);
        return;
      }
      case MSG.location:
      case MSG.batch:
      case MSG.locationQueryResponse:
        return onReport(peer, st, frame, raw, deviceId);
      case MSG.terminalResponse:
        return onTerminalResponse(peer, st, frame, raw, deviceId);
      case MSG.logout:
        log.info({ deviceId, peer: peer.id }, 'jt808 terminal logged out (its authentication code stays valid)');
        answer(peer, st, frame, RESULT.ok);
        return;
      default:
        refuse(peer, 'unsupported', `message 0x${hex4(frame.msgId)} from ${frame.phone} is not supported: answered "not supported"`, raw);
        answer(peer, st, frame, RESULT.unsupported);
    }
  };

  // ---- commands ---------------------------------------------------------------------------------------------
  const encodeCommand = (peer: Peer, cmd: DeviceCommand): { bytes: Buffer } | { error: string } => {
    const st = peers.get(peer.id);
    if (!st?.deviceId || !st.phone) return { error: 'the terminal has not authenticated on this connection' };
    const params = cmd.params ?? {};
    let msgId: number;
    let body: Buffer | string;
    switch (cmd.type) {
      case 'locate-now':
        msgId = MSG.locationQuery;
        body = Buffer.alloc(0);
        break;
      case 'acknowledge-alarm':
        msgId = MSG.text;
        body = textBody(TEXT_FLAG.emergency | TEXT_FLAG.display | TEXT_FLAG.tts, cfg.ackText, st.edition);
        break;
      case 'send-text': {
        const text = params.text;
        if (typeof text !== 'string' || text.length === 0) return { error: 'send-text needs params.text (the text the terminal shows and reads aloud)' };
        msgId = MSG.text;
        body = textBody(TEXT_FLAG.display | TEXT_FLAG.tts, text, st.edition);
        break;
      }
      case 'call-back': {
        const n = params.number;
        if (typeof n !== 'string') return { error: 'call-back needs params.number (the number the terminal dials)' };
        msgId = MSG.callBack;
        body = callBackBody(n);
        break;
      }
      case 'set-contacts': {
        const list = (v: unknown) => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
        const entries: PhoneBookEntry[] = [
          ...list(params.sos).slice(0, 3).map((number, i) => ({ number, name: `SOS ${i + 1}` })),
          ...list(params.family).map((number, i) => ({ number, name: `Family ${i + 1}` })),
        ];
        msgId = MSG.phoneBook;
        body = phoneBookBody(entries);
        break;
      }
      default:
        return { error: `JT/T 808 has no ${cmd.type} command` };
    }
    if (typeof body === 'string') return { error: body };
    if (body.length > 1023) return { error: `the ${cmd.type} message is ${body.length} bytes: JT/T 808 carries at most 1023` };
    const serial = st.nextSerial;
    const bytes = buildFrame({ msgId, edition: st.edition, ...(st.protocolVersion !== undefined && { protocolVersion: st.protocolVersion }), phone: st.phone, serial }, body);
    st.nextSerial = (serial + 1) & 0xffff;
    st.pending.set(serial, { commandId: cmd.id, msgId });
    while (st.pending.size > cfg.maxPendingCommands) st.pending.delete(st.pending.keys().next().value!);
    return { bytes };
  };

  return {
    name: 'jt808',
    framer: () => createJt808Framer(settings.maxFrameBytes),
    onFrame,
    onClose(peer) {
      peers.delete(peer.id);
    },
    encodeCommand,
  };
}
