// The serial alarm-receiver adapter: reads Sur-Gard / DSC automation output over RS-232 with `serialport`,
// turns each frame into observations, and answers the receiver.
//
// Contract with the receiver (Sur-Gard MLR2E manual §9.2, PROTOCOLS.md): every frame ends with DC4 and is answered
// ACK or NAK within 4 s; without an ACK it is sent 3 more times, then buffered until a heartbeat is ACKed.
// So: ACK an event only once the sink says it is durable (like PUBACK); NAK what we cannot read or could not store,
// and the receiver keeps the event for us. Heartbeats are ACKed at once: they are how the receiver tests the link.
import { SerialPort } from 'serialport';
import { UNKNOWN_ACCOUNT, type Observation, type ObservationSink } from '../../../core/contracts.js';
import type { Logger } from '../../../core/logger.js';
import { decodeFrame, printable, ACK, NAK, type Frame } from './frames.js';
import { contactIdToObservation, siaToObservations, type CodeTableConfig } from './contact-id.js';
import { Framer, type FramerOutput, type Terminator } from './framer.js';

export interface SerialReceiverOptions {
  path: string;
  receiverDeviceId: string;
  baudRate?: number;
  dataBits?: 5 | 6 | 7 | 8;
  parity?: 'none' | 'even' | 'odd' | 'mark' | 'space' | string;
  stopBits?: 1 | 1.5 | 2;
  heartbeatTimeoutMs?: number;
  acceptUnreadableAfter?: number;
  maxFrameBytes?: number;
  /** what ends a frame on this receiver (default DC4 only); a gap of interByteTimeoutMs ends one too */
  terminators?: readonly Terminator[];
  interByteTimeoutMs?: number;
  reopenMinMs?: number;
  reopenMaxMs?: number;
  reportHeartbeats?: boolean;
  codeTable?: CodeTableConfig | undefined;
  /** the panels' clock as an offset from UTC in minutes, for SIA `ti` times; absent: the host's time zone */
  panelUtcOffsetMinutes?: number | undefined;
  /** account → deviceId; undefined for an account no device is registered under */
  resolveAccount(account: string, where: { receiver: string; line: string; protocol: 'contact-id' | 'sia' }): string | undefined;
  /** deviceId → model, so the code table can be overridden per model */
  resolveModel?(deviceId: string): string | undefined;
  /**
   * Whether the previous run left this device's link lost (its last comm-lost not followed by comm-restored, or its
   * comm-lost card still open): then the first frame after a restart stores comm-restored and clears the card.
   */
  commLostAtStart?(deviceId: string): boolean;
  sink: ObservationSink;
  log: Logger;
  now?: () => number;
  /** told of every unreadable frame (to keep it raw for diagnosis, e.g. in `rejects`); must not throw */
  onUnreadable?(info: { raw: string; reason: string; at: number; receiverDeviceId: string }): void;
}

export interface SerialReceiverStats {
  open: boolean;
  framesReceived: number;
  events: number;
  heartbeats: number;
  /** bare DC4s (the receiver testing the link), ACKed */
  linkTests: number;
  /** frames longer than maxFrameBytes, answered once each */
  oversized: number;
  /** frames ended by silence instead of a terminator */
  timedOutFrames: number;
  observations: number;
  acks: number;
  naks: number;
  unreadable: number;
  /** unreadable frames stored as `unknown` after repeated NAKs */
  unreadableAccepted: number;
  submitFailures: number;
  unknownAccounts: number;
  unknownCodes: number;
  /** comm-lost has been submitted and not yet followed by comm-restored */
  commLost: boolean;
  lastFrameAt: number | null;
  queueDepth: number;
  opens: number;
  openFailures: number;
}

export interface SerialReceiver {
  close(): Promise<void>;
  stats(): SerialReceiverStats;
}

const DEFAULTS = {
  baudRate: 19200,
  dataBits: 7 as const,
  parity: 'even',
  stopBits: 1 as const,
  heartbeatTimeoutMs: 90_000,
  acceptUnreadableAfter: 3,
  maxFrameBytes: 1024,
  terminators: ['DC4'] as readonly Terminator[],
  interByteTimeoutMs: 500,
  reopenMinMs: 1000,
  reopenMaxMs: 30_000,
};

/** How long close() waits for the frame in hand; an unanswered frame is resent by the receiver anyway. */
const CLOSE_DRAIN_MS = 5000;

/**
 * Open the port (retrying with back-off until it opens, without blocking the caller beyond the first attempt)
 * and serve the receiver until close().
 */
export async function startSerialReceiver(opts: SerialReceiverOptions): Promise<SerialReceiver> {
  const cfg = { ...DEFAULTS, ...stripUndefined(opts) };
  const now = opts.now ?? Date.now;
  const log = opts.log.child({ module: 'serial', receiverDeviceId: opts.receiverDeviceId, path: opts.path });
  const baseDetail = { receiverDeviceId: opts.receiverDeviceId, port: opts.path };

  const st: SerialReceiverStats = {
    open: false, framesReceived: 0, events: 0, heartbeats: 0, linkTests: 0, oversized: 0, timedOutFrames: 0,
    observations: 0, acks: 0, naks: 0, unreadable: 0,
    unreadableAccepted: 0, submitFailures: 0, unknownAccounts: 0, unknownCodes: 0, commLost: false,
    lastFrameAt: null, queueDepth: 0, opens: 0, openFailures: 0,
  };

  let port: SerialPort | undefined;
  let closing = false;
  let reopenTimer: NodeJS.Timeout | undefined;
  let reopenAttempt = 0;
  const framers = new Set<Framer>();
  // supervision: from start, a receiver that never speaks is as lost as one that stopped
  let lastLife = now();
  // heard since start: only a frame proves the link is back (a lost state carried over a restart must not be
  // "restored" by the clock alone)
  let heard = false;
  let reported: 'ok' | 'lost' = 'ok';
  try {
    if (opts.commLostAtStart?.(opts.receiverDeviceId)) reported = 'lost';
  } catch (err) {
    log.error({ err }, 'could not read the link state left by the previous run; assuming the link was up');
  }
  st.commLost = reported === 'lost';
  if (st.commLost) log.warn('the receiver link was lost when the gateway stopped: its first frame will restore it');
  let reporting = false;
  // the same unreadable bytes again and again: a format we do not read (see acceptUnreadableAfter)
  let lastBad: { raw: string; count: number } | undefined;

  // Frames are handled strictly one at a time, in arrival order: one promise chain.
  let chain: Promise<void> = Promise.resolve();
  const enqueue = (what: string, job: () => Promise<void>) => {
    st.queueDepth++;
    chain = chain
      .then(job)
      .catch((err: unknown) => log.error({ err, what }, 'serial job failed'))
      .finally(() => {
        st.queueDepth--;
      });
  };

  const answer = (byte: number, why: string) => {
    const p = port;
    if (!p || !p.isOpen) {
      log.warn({ why }, `cannot send ${byte === ACK ? 'ACK' : 'NAK'}: port not open (the receiver will resend)`);
      return;
    }
    if (byte === ACK) st.acks++;
    else st.naks++;
    p.write(Buffer.from([byte]), (err) => {
      if (err) log.warn({ err, why }, 'writing the answer to the receiver failed');
    });
  };

  const submit = async (obs: Observation) => {
    await opts.sink.submit(obs);
    st.observations++;
    if (obs.type === 'unknown') st.unknownCodes++;
  };

  const commObservation = (type: 'comm-lost' | 'comm-restored'): Observation => ({
    type,
    deviceId: opts.receiverDeviceId,
    receivedAt: now(),
    source: 'serial',
    detail: { ...baseDetail, lastFrameAt: st.lastFrameAt, silentMs: now() - lastLife },
  });

  const report = (type: 'comm-lost' | 'comm-restored') => {
    if (reporting) return;
    reporting = true;
    enqueue(type, async () => {
      try {
        await submit(commObservation(type));
        reported = type === 'comm-lost' ? 'lost' : 'ok';
        st.commLost = reported === 'lost';
        log[type === 'comm-lost' ? 'warn' : 'info']({ silentMs: now() - lastLife }, `receiver ${type}`);
      } catch (err) {
        // the supervision tick tries again
        st.submitFailures++;
        log.error({ err }, `could not store ${type}; retrying`);
      } finally {
        reporting = false;
      }
    });
  };

  const supervise = () => {
    const silent = now() - lastLife > cfg.heartbeatTimeoutMs;
    if (silent && reported === 'ok') report('comm-lost');
    else if (!silent && heard && reported === 'lost') report('comm-restored');
  };
  const superviseTimer = setInterval(supervise, Math.max(20, Math.min(1000, cfg.heartbeatTimeoutMs / 4)));
  superviseTimer.unref();

  const resolve = (account: string | undefined, where: { receiver: string; line: string; protocol: 'contact-id' | 'sia' }) => {
    let deviceId: string | undefined;
    let model: string | undefined;
    if (account !== undefined) {
      try {
        for (const candidate of accountCandidates(account, where)) {
          deviceId = opts.resolveAccount(candidate, where);
          if (deviceId !== undefined) break;
        }
      } catch (err) {
        log.error({ err, account }, 'resolveAccount failed; treating the account as unknown');
      }
    }
    if (deviceId !== undefined && opts.resolveModel) {
      try {
        model = opts.resolveModel(deviceId);
      } catch (err) {
        log.error({ err, deviceId }, 'resolveModel failed; using the receiver-wide code table');
      }
    }
    // an event from an unknown account is never dropped: it lands on the receiver itself, flagged, with the account
    // as it would be registered, so that each unknown panel has cards of its own
    if (deviceId === undefined) {
      st.unknownAccounts++;
      const unknown = account === undefined ? undefined : accountCandidates(account, where)[0];
      return { deviceId: opts.receiverDeviceId, model: undefined, flags: [UNKNOWN_ACCOUNT], account: unknown };
    }
    return { deviceId, model, flags: [] as string[], account: undefined };
  };

  const withAccount = (list: Observation[], account: string | undefined): Observation[] => {
    if (account !== undefined) for (const o of list) o.account = account;
    return list;
  };

  const toObservations = (frame: Exclude<Frame, { kind: 'heartbeat' }>, receivedAt: number): Observation[] => {
    if (frame.kind === 'contact-id') {
      const { account, ...who } = resolve(frame.account, { receiver: frame.receiver, line: frame.line, protocol: 'contact-id' });
      return withAccount([contactIdToObservation(frame, { ...who, receivedAt, codeTable: opts.codeTable, detail: baseDetail })], account);
    }
    const { account, ...who } = resolve(frame.account, { receiver: frame.receiver, line: frame.line, protocol: 'sia' });
    return withAccount(siaToObservations(frame, { ...who, receivedAt, codeTable: opts.codeTable, detail: baseDetail, utcOffsetMinutes: opts.panelUtcOffsetMinutes }), account);
  };

  const handleEvent = (frame: Exclude<Frame, { kind: 'heartbeat' }>, receivedAt: number) =>
    enqueue('event', async () => {
      let list: Observation[];
      try {
        list = toObservations(frame, receivedAt);
      } catch (err) {
        log.error({ err, raw: printable(frame.raw) }, 'mapping the frame failed; NAK');
        answer(NAK, 'mapping failed');
        return;
      }
      try {
        // ACK only after every observation of the frame is durable (at-least-once on the wire)
        for (const obs of list) await submit(obs);
      } catch (err) {
        st.submitFailures++;
        log.error({ err, raw: printable(frame.raw) }, 'storing the event failed; NAK so the receiver resends it');
        answer(NAK, 'submit failed');
        return;
      }
      log.debug({ observations: list.map((o) => [o.deviceId, o.type]) }, 'event stored; ACK');
      answer(ACK, 'stored');
    });

  const handleUnreadable = (raw: string, reason: string, receivedAt: number) =>
    enqueue('unreadable', async () => {
      st.unreadable++;
      try {
        opts.onUnreadable?.({ raw, reason, at: receivedAt, receiverDeviceId: opts.receiverDeviceId });
      } catch (err) {
        log.error({ err }, 'onUnreadable failed');
      }
      lastBad = lastBad && lastBad.raw === raw ? { raw, count: lastBad.count + 1 } : { raw, count: 1 };
      if (lastBad.count <= cfg.acceptUnreadableAfter) {
        log.warn({ reason, raw: printable(raw), attempt: lastBad.count }, 'unreadable frame; NAK');
        answer(NAK, reason);
        return;
      }
      // the receiver keeps sending the same bytes: store them so an operator sees them, and let the line move on
      const obs: Observation = {
        type: 'unknown',
        code: 'unreadable',
        deviceId: opts.receiverDeviceId,
        receivedAt,
        source: 'serial',
        flags: ['unreadable-frame'],
        detail: { ...baseDetail, protocol: 'unreadable', raw, reason, naks: lastBad.count - 1 },
      };
      try {
        await submit(obs);
      } catch (err) {
        st.submitFailures++;
        log.error({ err }, 'storing an unreadable frame failed; NAK');
        answer(NAK, 'submit failed');
        return;
      }
      st.unreadableAccepted++;
      lastBad = undefined;
      log.error({ reason, raw: printable(raw) }, 'frame unreadable after repeated NAKs: stored as unknown and ACKed');
      answer(ACK, 'unreadable stored');
    });

  /** Something came from the receiver: the link is alive (a lost one is restored). Returns when it came. */
  const heardFrame = (): number => {
    const receivedAt = now();
    st.framesReceived++;
    st.lastFrameAt = receivedAt;
    lastLife = receivedAt;
    heard = true;
    if (reported === 'lost') report('comm-restored');
    return receivedAt;
  };

  const onFrame = (buf: Buffer) => {
    try {
      const receivedAt = heardFrame();
      const res = decodeFrame(buf);
      if (!res.ok) {
        handleUnreadable(res.raw, res.reason, receivedAt);
        return;
      }
      if (res.frame.kind === 'heartbeat') {
        st.heartbeats++;
        answer(ACK, 'heartbeat');
        if (cfg.reportHeartbeats !== false) {
          const hb: Observation = {
            type: 'heartbeat',
            deviceId: opts.receiverDeviceId,
            receivedAt,
            source: 'serial',
            detail: { ...baseDetail, protocol: 'heartbeat', receiver: res.frame.receiver, line: res.frame.line, raw: res.frame.raw },
          };
          // telemetry: never holds up the answer or the events behind it
          Promise.resolve()
            .then(() => opts.sink.submit(hb))
            .catch((err: unknown) => log.warn({ err }, 'storing the receiver heartbeat failed'));
        }
        return;
      }
      lastBad = undefined;
      st.events++;
      handleEvent(res.frame, receivedAt);
    } catch (err) {
      log.error({ err, raw: printable(buf.toString('latin1')) }, 'frame handler failed; NAK');
      answer(NAK, 'handler failed');
    }
  };

  /** One output of the framer: exactly one answer goes back for it (or none for what no one waits on). */
  const onFramed = (out: FramerOutput) => {
    if (out.kind === 'frame') {
      if (out.end === 'timeout') st.timedOutFrames++;
      onFrame(out.bytes);
      return;
    }
    const receivedAt = heardFrame();
    if (out.kind === 'empty') {
      // a DC4 alone: the receiver testing the link to the automation software; answered like a heartbeat
      st.linkTests++;
      answer(ACK, 'link test (bare DC4)');
      return;
    }
    st.oversized++;
    const raw = `${out.head.toString('latin1')}… (${out.length} bytes)`;
    handleUnreadable(raw, `frame of ${out.length} bytes is longer than maxFrameBytes (${cfg.maxFrameBytes}); ended by ${out.end === 'timeout' ? 'silence' : out.end}`, receivedAt);
  };

  const scheduleReopen = () => {
    if (closing || reopenTimer) return;
    const base = Math.min(cfg.reopenMaxMs, cfg.reopenMinMs * 2 ** Math.min(reopenAttempt, 20));
    const delay = Math.round(base * (0.75 + Math.random() * 0.5));
    reopenAttempt++;
    reopenTimer = setTimeout(() => {
      reopenTimer = undefined;
      void openPort();
    }, delay);
  };

  const openPort = () =>
    new Promise<void>((done) => {
      if (closing) return done();
      const p = new SerialPort({
        path: opts.path,
        baudRate: cfg.baudRate,
        dataBits: cfg.dataBits,
        parity: cfg.parity as 'none',
        stopBits: cfg.stopBits,
        autoOpen: false,
      });
      const framer = new Framer({
        terminators: cfg.terminators,
        maxFrameBytes: cfg.maxFrameBytes,
        interByteTimeoutMs: cfg.interByteTimeoutMs,
        emit: (out) => {
          try {
            onFramed(out);
          } catch (err) {
            log.error({ err }, 'frame handler failed');
          }
        },
      });
      framers.add(framer);
      p.on('data', (chunk: Buffer) => {
        if (port !== p) return;
        try {
          framer.push(chunk);
        } catch (err) {
          log.error({ err }, 'serial data handler failed');
        }
      });
      p.on('error', (err) => log.warn({ err }, 'serial port error'));
      p.on('close', (err?: Error & { disconnected?: boolean }) => {
        if (port !== p) return;
        port = undefined;
        st.open = false;
        framer.reset();
        framers.delete(framer);
        if (closing) return;
        log.warn({ err }, 'serial port closed; reopening with back-off');
        scheduleReopen();
      });
      p.open((err) => {
        if (err) {
          st.openFailures++;
          log.warn({ err, attempt: reopenAttempt }, 'cannot open the serial port; retrying with back-off');
          scheduleReopen();
          return done();
        }
        if (closing) {
          p.close(() => undefined);
          return done();
        }
        port = p;
        st.open = true;
        st.opens++;
        reopenAttempt = 0;
        log.info({ baudRate: cfg.baudRate, dataBits: cfg.dataBits, parity: cfg.parity, stopBits: cfg.stopBits }, 'serial port open');
        done();
      });
    });

  await openPort();

  return {
    stats: () => ({ ...st }),
    async close() {
      if (closing) return;
      closing = true;
      clearInterval(superviseTimer);
      for (const f of framers) f.reset();
      if (reopenTimer) clearTimeout(reopenTimer);
      reopenTimer = undefined;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([chain, new Promise<void>((r) => (timer = setTimeout(r, CLOSE_DRAIN_MS)))]);
      clearTimeout(timer);
      const p = port;
      port = undefined;
      st.open = false;
      if (p?.isOpen) await new Promise<void>((r) => p.close(() => r()));
    },
  };
}

/**
 * The identifiers an account may be registered under, most specific first: qualified by receiver and line
 * (`01:1:1234`, for accounts that repeat across lines), by receiver (`01:1234`), then the account alone; each as
 * received, in capitals and in small letters (a technician may type `a1b2` for the `A1B2` a receiver prints).
 */
export function accountCandidates(account: string, where: { receiver?: string; line?: string }): string[] {
  const bases: string[] = [];
  if (where.receiver && where.line) bases.push(`${where.receiver}:${where.line}:${account}`);
  if (where.receiver) bases.push(`${where.receiver}:${account}`);
  bases.push(account);
  const out: string[] = [];
  for (const b of bases) for (const v of [b, b.toUpperCase(), b.toLowerCase()]) if (!out.includes(v)) out.push(v);
  return out;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
