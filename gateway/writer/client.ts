// The main thread's side of the writer thread (gateway/writer/worker.ts): what the transports hand to "the writer"
// goes through here. Every promise resolves only when the writer thread reports the commit (a PUBACK or a protocol
// ACK is sent after it), and rejects with the writer's own error class — OverloadError, AlarmNotRecordedError, a
// SQLite error with its code — so that transports treat it exactly as before.
//
// If the writer thread dies (a bug: nothing a device sends should do it), everything it had not reported is rejected
// — not acknowledged, devices resend — and a new one is started on the same database at once.
import { executionAsyncResource } from 'node:async_hooks';
import { Worker } from 'node:worker_threads';
import pino from 'pino';
import { AggregatorRegistry, type Registry } from 'prom-client';

type MetricsJson = Awaited<ReturnType<Registry['getMetricsAsJSON']>>;
import type { Config } from '../../core/config.js';
import { ConfigError, ConflictError, EldergateError, ValidationError } from '../../core/errors.js';
import { isLifeSafety, type IncidentEvent, type IngestResult, type Observation } from '../../core/contracts.js';
import type { Logger } from '../../core/logger.js';
import type { Metrics } from '../../core/metrics.js';
import type { StorageHealth } from '../../core/storage-health.js';
import type { DeviceRegistry } from '../../devices/registry.js';
import type { CommandRow, CommandWrites } from '../commands.js';
import type { LiveState, Supervision } from '../device-state.js';
import { AlarmNotRecordedError, OverloadError, type RejectRow } from '../ingest.js';
import { linuxThreadId } from '../../core/thread-id.js';
import { withTimeout } from '../../core/timeout.js';
import { ALARMS_ON_THE_WAY, HANDLED, TAKEN, TAKEN_SLOTS, TELEMETRY_FULL } from './protocol.js';
import type { CommandCall, FromWriter, IncidentCall, StatesReply, ToWriter, WireError, WriterInit, WriterStats } from './protocol.js';
import type { CommittedEvent, CommittedOf, IncidentRow, IncidentWrites } from '../../response/incidents.js';
import type { IncidentReceipt } from '../../response/events.js';
import type { CheckpointerInit } from './checkpointer.js';
import { walRestartBuffer, type WindowOutcome } from './wal-restart.js';
import { dbFile } from '../../core/db.js';
import { writeTurnBuffer } from '../../core/write-turn.js';
import { startThread } from '../../core/threads.js';

/** What a transport hands observations to: the writer thread here, or an in-process Ingest in unit tests. */
export interface IngestPort {
  /** `read`: just read from a device's connection by the transport (not a Last Will, nor a replay): see WriterThread.post */
  submit(obs: Observation, read?: boolean): Promise<IngestResult>;
  submitTelemetry(obs: Observation, wait: boolean, read?: boolean): Promise<IngestResult> | undefined;
  recordReject(row: Omit<RejectRow, 'raw'> & { raw: Buffer | string }): void;
}

/** Live device state as the main thread sees it: changes go to the writer in order; reads are asked for. */
export interface LiveStates {
  setOnline(deviceId: string, online: boolean, at: number): void;
  markUnreadable(deviceId: string, reason: string, at: number): void;
  clearFlags(deviceId: string): void;
  /** connected to this node (known at once: the transports are on this thread) */
  isOnline(deviceId: string): boolean;
  /** the states of these devices as the writer holds them (a device with none yet is left out) */
  read(deviceIds: readonly string[]): Promise<Map<string, LiveState>>;
  /** the device ids the writer holds a state for, with their state */
  readAll(): Promise<Map<string, LiveState>>;
  /** which of these devices are in this supervision state (none yet: "never-seen"), in the order given */
  withSupervision(deviceIds: readonly string[], supervision: Supervision): Promise<string[]>;
}

export interface WriterThreadOptions {
  config: Config;
  log: Logger;
  metrics: Metrics;
  storage: Pick<StorageHealth, 'failed' | 'succeeded'>;
  registry: DeviceRegistry;
  /** incident events the writer committed, durable: for the consoles */
  onCommitted(events: IncidentEvent[]): void;
  /** a device answered a command that belongs to an incident */
  onCommandAcked(cmd: CommandRow, at: number): void;
  /**
   * A new writer thread took over from one that died: what the dead one committed but never reported must reach the
   * bus now (consoles, escalation, notifications) — read from the log.
   */
  onRestarted?(): void;
}

interface Waiter {
  resolve(v: unknown): void;
  reject(e: Error): void;
  /** run as the answer is read, before any later message of the writer is handled (keeps published events in order) */
  first?(v: unknown): void;
  /**
   * A device's observation: if the writer thread dies before answering, it is held and handed to the next one (the
   * writer answers a resend of what it already committed as a duplicate) instead of refused.
   */
  again?: Resubmit;
  /** writer threads that died while this was handed to them */
  deaths?: number;
  /** when it was first held (a second death does not start its ingest.writerRestartHoldMs again) */
  heldSince?: number;
  /** the order in which devices' observations came (a refusal refuses only what its device sent after it) */
  order?: number;
  /** the device whose observation it is */
  deviceId?: string;
  /** an event (alarms among them), held within the larger bound; otherwise telemetry */
  event?: boolean;
}

/** the message for the writer; `resent`: handed to a writer thread before, which may have committed it */
type Resubmit = (id: number, resent: boolean) => ToWriter;

/** a device's observation waiting, unanswered, for a writer thread to run again (ordered as it came) */
interface Held extends Waiter {
  again: Resubmit;
  deviceId: string;
  since: number;
}

/** how long close() waits for the writer to write what it holds before it is stopped (within main.ts' 10 s) */
const CLOSE_TIMEOUT_MS = 7_000;
/** device states asked for in one message (readStates): ~2-3 ms of the writer's time at most */
export const READ_SLICE = 2_000;
/** a writer that dies right after starting is not restarted in a tight loop; it is tried again for as long as it takes */
const RESTART_BACKOFF_MS = [0, 500, 2000, 5000];
/**
 * An observation handed to this many writer threads that each died before answering is refused, not handed on: it
 * may be what kills them (the device resends it, and the respawn back-off paces that).
 */
const HOLD_DEATHS = 2;
/**
 * Held QoS 1 telemetry beyond this is refused (the device resends it later); events (alarms among them) are held up to
 * IN_FLIGHT_LIMIT, apart from telemetry, so a fleet's telemetry never takes an alarm's place.
 */
const HOLD_TELEMETRY_LIMIT = 2_000;
/** what an observation behind its device's refused event is refused with (refusedWhileDown) */
const behindRefusedError = () => new Error('an earlier message of this device was refused while the writer thread restarted: not stored, send both again');
/** a writer thread that ran this long without dying starts the back-off again from 0 */
const RESTART_BACKOFF_RESET_MS = 60_000;
/**
 * Messages handed to the writer and not answered yet. Beyond it QoS 0 telemetry is shed (counted) and what waits for
 * an answer is refused with OverloadError (no PUBACK: the device resends); alarms are never refused for it.
 */
const IN_FLIGHT_LIMIT = 20_000;
/**
 * Messages posted to the writer's port and not yet taken off it by the writer. The port is a queue no one else
 * bounds: telemetry posted faster than the writer takes it (a stalled disk or lock, a flood) piles up there in
 * memory, and an alarm posted behind it waits for all of it. Beyond this, QoS 0 telemetry is shed here, counted (QoS 1
 * telemetry is bounded by IN_FLIGHT_LIMIT: each one waits for its answer); an alarm is always posted. The writer
 * counts what it takes in shared memory: a count sent back as a message reached a flooded main thread late, and the
 * bound then shed what the writer had room for (figure 2 fell from ~50k to 4–9k msg/s taken in).
 */
const PORT_LIMIT = 2_000;
/** the thread that runs the gateway's event loop (the process's first, unless it runs inside a test's worker) */
const MAIN_TID = linuxThreadId();
const NO_ANSWER = 'no answer from the writer thread';
/** a turn's hand-over to the writer goes at once when it reaches this many messages */
const OUTBOX_CHUNK = 256;
/**
 * What waits for the end of a turn goes at most this often (ms) — the turns of a busy loop are short: in a reconnect
 * storm a turn set up one or two connections, and its hand-over (a structured clone, a wake-up of the writer and a
 * message event there, each) cost more than the messages (7,100 hand-overs of 1.9 messages for 3,000 devices dropped
 * and back; postMessage was 15 % of the main thread's CPU). An alarm or a person's action still goes at once and takes
 * everything posted before it along.
 */
const OUTBOX_EVERY_MS = 2;
/**
 * A device's alarm read from its connection waits for the end of the I/O being read (setImmediate), so that the alarms
 * read from many sockets in one go are one hand-over, not one each. While that read goes on, the next message posted
 * or the next answer of the writer takes it along once it has waited this long (ms): a bound checked there, not a timer.
 */
const READ_HOLD_MS = 0.5;
/** the class of setImmediate's handles: code running in one runs in the loop's check phase (see post) */
const Immediate = (() => {
  const probe = setImmediate(() => undefined);
  clearImmediate(probe);
  return probe.constructor;
})();
/** what goes to the writer at the end of the event loop's turn, batched (post): nobody waits on them */
const AT_END_OF_TURN: ReadonlySet<ToWriter['op']> = new Set(['telemetry', 'reject', 'online', 'unreadable', 'clear-flags', 'registry']);

export class WriterThread implements IngestPort {
  private worker!: Worker;
  private nextId = 1;
  private readonly waiters = new Map<number, Waiter>();
  private stats: WriterStats = { urgent: 0, telemetry: 0, waiting: 0 };
  private closing = false;
  /** shutdown began (stopHolding): devices' observations are no longer held while no writer runs */
  private stopping = false;
  private restarts = 0;
  /** a writer thread is running and has said it is ready; false while one is being (re)started */
  private live = false;
  /** when the running writer thread was last heard from (performance.now(); it reports its queues every 250 ms) */
  private lastHeard = 0;
  /** the running writer thread said nothing for ingest.writerStallMs: when it last did (epoch ms), and how long since */
  private stalledSince: number | null = null;
  private stallWatch: NodeJS.Timeout | null = null;
  /** the thread taken as stalled, and whether it said something again since (said once in the log) */
  private stalledWorker: Worker | null = null;
  private stallSpoke = false;
  /** the writer's count of messages handled (protocol.ts HANDLED) at the stall watch's last look */
  private handledSeen = 0;
  private readonly online = new Map<string, number>();
  private readonly log: Logger;
  private readonly writeLine: (line: string) => void;
  readonly states: LiveStates;

  private constructor(private readonly o: WriterThreadOptions) {
    this.log = o.log.child({ module: 'writer' });
    // the writer's log lines, already formatted by its own pino, go into this logger's stream as they are
    const stream = (o.log as unknown as Record<symbol, { write(s: string): void } | undefined>)[pino.symbols.streamSym];
    this.writeLine = stream ? (line) => stream.write(line) : (line) => process.stdout.write(line);
    o.registry.replicateTo((change) => this.post({ op: 'registry', change }), () => this.caughtUp());
    const self = this;
    this.states = {
      setOnline(deviceId, online, at) {
        if (online) self.online.set(deviceId, at);
        else self.online.delete(deviceId);
        self.post({ op: 'online', deviceId, online, at, restore: false });
      },
      markUnreadable: (deviceId, reason, at) => this.post({ op: 'unreadable', deviceId, reason, at }),
      clearFlags: (deviceId) => this.post({ op: 'clear-flags', deviceId }),
      isOnline: (deviceId) => this.online.has(deviceId),
      read: async (deviceIds) => this.readStates(deviceIds),
      readAll: async () => this.readStates(await this.call<string[]>((id) => ({ op: 'state-ids', id }))),
      withSupervision: async (deviceIds, supervision) => {
        // the writer answers with ids, not states: nothing of 100,000 devices but the matching ids crosses over
        const out: string[] = [];
        await this.askInSlices<string[]>(deviceIds, (id, slice) => ({ op: 'match-supervision', id, deviceIds: slice, supervision }), (ids) => {
          for (const id of ids) out.push(id);
        });
        return out;
      },
    };
  }

  /** Start the writer thread; resolves once it has opened the database and restored its rule timers. */
  static async start(o: WriterThreadOptions): Promise<WriterThread> {
    const w = new WriterThread(o);
    const restored = await w.spawn();
    w.everStarted = true;
    w.watchForStalls();
    w.checkpointer = startCheckpointer({
      file: dbFile(o.config.dataDir), metrics: o.metrics, log: w.log, walRestart: w.walRestart,
      walSoftLimitBytes: o.config.ingest.walSoftLimitMB * 1024 * 1024,
    });
    w.log.info({ restored }, 'writer thread started');
    return w;
  }

  private checkpointer: { close(): Promise<void> } | null = null;
  /** the checkpointer's and the writer's flags for starting the WAL again (wal-restart.ts): one for every writer started */
  private readonly walRestart = walRestartBuffer();

  private spawn(): Promise<{ devices: number; timers: number }> {
    // a new thread, a new count: what the dead one was posted and never took is gone with it
    this.taken = new Int32Array(new SharedArrayBuffer(4 * TAKEN_SLOTS));
    this.posted = 0;
    this.handledSeen = 0;
    this.spawned++;
    const init: WriterInit = { config: this.o.config, logLevel: this.o.log.level, turn: writeTurnBuffer(), taken: this.taken.buffer as SharedArrayBuffer,
      walRestart: this.walRestart,
    };
    const worker = startThread(import.meta.url, 'worker', init);
    this.worker = worker;
    return new Promise((resolve, reject) => {
      let started = false;
      /** the start was told to whoever started it (resolved) */
      let told = false;
      worker.on('message', (batch: FromWriter[]) => {
        if (worker === this.worker) this.heard(worker);
        // one message that cannot be handled must not take the rest of its batch with it: the answers to alarms after
        // it would never arrive (a device waiting on its PUBACK, a console never shown the incident)
        for (const m of batch) {
          try {
            handle(m);
          } catch (err) {
            if (m.op === 'ready' && !told) {
              // the start itself could not be finished here: a failed start (ended, and retried by whoever started
              // it); what was already handed to it is held for the next one by the exit handler
              started = false;
              this.live = false;
              this.log.fatal({ err }, 'finishing the writer thread\'s start failed');
              void worker.terminate();
              reject(err);
              continue;
            }
            this.log.error({ err, op: (m as { op?: unknown } | null)?.op }, 'a message of the writer thread could not be handled; the rest of its batch still is');
          }
        }
        // the writer's answers come in the poll phase too (see post)
        this.flushIfHeldLong();
      });
      const handle = (m: FromWriter) => {
        if (m.op === 'ready') {
          started = true;
          this.upSince = Date.now();
          this.stalledSince = null;
          this.stalledWorker = null;
          // a new writer (one that replaced a dead one too) is a new thread
          this.o.metrics.threads.reset();
          if (MAIN_TID !== null) this.o.metrics.threads.set({ thread: 'main', tid: String(MAIN_TID) }, 1);
          if (m.tid !== null) this.o.metrics.threads.set({ thread: 'writer', tid: String(m.tid) }, 1);
          // the writer starts with every device offline: tell it who is connected to this node (not heard from now)
          const first: ToWriter[] = [...this.replicationWhileDown,
            ...[...this.online].map(([deviceId, at]): ToWriter => ({ op: 'online', deviceId, online: true, at, restore: true }))];
          worker.postMessage(first);
          this.posted = (this.posted + first.length) | 0; // the writer counts them as taken, like any batch
          this.replicationWhileDown = [];
          this.live = true;
          this.handOnHeld();
          told = true;
          resolve(m.restored);
          return;
        }
        if (m.op === 'fatal' && !started) {
          // a thread whose domain could not be built is ended here: it would otherwise stay alive on its port with
          // what it opened (its SQLite connection; a PostgreSQL pool), one more for each failed restart while the
          // cause lasts (a write lock held past busy_timeout, PostgreSQL down). Its exit finds it no longer started.
          void worker.terminate();
          reject(fromWire(m.error));
          return;
        }
        this.onMessage(m);
      };
      worker.on('error', (err) => {
        this.log.fatal({ err }, 'the writer thread failed');
        if (!started) reject(err);
      });
      worker.on('exit', (code) => {
        if (worker !== this.worker) return;
        // the back-off starts again only after a thread that ran a while: decided from this thread's own life (a
        // thread that never started leaves it as it is, so failed starts keep backing off)
        if (started && Date.now() - this.upSince >= RESTART_BACKOFF_RESET_MS) this.restarts = 0;
        this.stopTaking(new Error(`the writer thread stopped (exit code ${code}): not stored, send it again`));
        // a failed restart is counted where it is restarted (respawn), whichever way it failed
        if (started && !this.closing && this.everStarted) this.o.metrics.internalErrors.inc({ where: 'writer-thread' });
        // whoever started it decides what a failed start means: start-up fails, a restart is tried again (once — a
        // second respawn here started two writer threads on one database)
        if (!started) return reject(new Error(`the writer thread stopped while starting (exit code ${code})`));
        if (this.closing || !this.everStarted) return;
        this.respawn(code);
      });
    });
  }

  /** set once the first writer thread started: a later death is restarted, a failed first start is start-up's error */
  private everStarted = false;
  /** writer threads started (tests: a failed start is restarted once) */
  private spawned = 0;
  /** when the running writer thread said it was ready */
  private upSince = 0;
  /**
   * Devices with an observation refused while no writer ran: what they sent after it is refused too, so that nothing
   * of theirs is stored ahead of what they will resend (a cancel before its SOS). Forgotten once a writer runs.
   */
  private refusedWhileDown = new Map<string, number>();
  private nextOrder = 0;

  /**
   * The writer thread stalled: when it last said anything (epoch ms), while it has said nothing for
   * ingest.writerStallMs; null otherwise. /readyz reports it.
   */
  stall(): { since: number } | null {
    return this.stalledSince === null ? null : { since: this.stalledSince };
  }

  private heard(worker: Worker): void {
    this.lastHeard = performance.now();
    if (worker !== this.stalledWorker || this.stallSpoke) return;
    this.stallSpoke = true;
    this.log.warn({ quietMs: Date.now() - (this.stalledSince ?? Date.now()) }, 'the writer thread that had stalled said something again (it is being ended and replaced)');
  }

  /**
   * A writer that stops answering (a hung disk under its fsync, a loop that never returns) leaves every alarm
   * unanswered with nothing to say so: the devices wait for a PUBACK, the consoles see nothing. Watched here from what
   * it says: when it has said nothing for ingest.writerStallMs it is reported and ended, and the exit handler starts
   * a new one, which takes what it had not answered (held, as after any death).
   */
  private watchForStalls(): void {
    const stallMs = this.o.config.ingest.writerStallMs;
    if (stallMs <= 0) return;
    const every = Math.min(1000, Math.max(50, Math.floor(stallMs / 4)));
    let lastCheck = performance.now();
    this.stallWatch = setInterval(() => {
      const now = performance.now();
      // this thread's own loop was held up (a long turn, a paused process): what the writer said meanwhile is still
      // waiting on the port, behind this timer; judge it at the next check, not now
      const late = now - lastCheck > 2 * every;
      lastCheck = now;
      if (late || !this.live || this.closing || this.stalledSince !== null) return;
      // each message it handles counts as a word too: one message can carry several writes that each wait for the lock
      const handled = Atomics.load(this.taken, HANDLED);
      if (handled !== this.handledSeen) {
        this.handledSeen = handled;
        this.lastHeard = now;
        return;
      }
      const quietMs = now - this.lastHeard;
      if (quietMs < stallMs) return;
      this.stalledSince = Date.now() - Math.round(quietMs);
      this.stalledWorker = this.worker;
      this.stallSpoke = false;
      this.o.metrics.internalErrors.inc({ where: 'writer-stalled' });
      this.log.fatal({ quietMs: Math.round(quietMs), unanswered: this.waiters.size, stallMs },
        'the writer thread has said nothing for ingest.writerStallMs: alarms are not being stored (devices get no PUBACK and resend). Ending it and starting a new one; a thread stuck in a system call (an fsync on a hung disk) ends only when the call returns: check the data directory\'s disk');
      // from now on as if it had died: what it has not answered, and what comes next, is held for the next thread (and
      // refused after ingest.writerRestartHoldMs, as the terminals expect, if the disk never answers); a late answer of
      // this thread finds no one waiting, and its resend is answered by the next thread as a duplicate
      this.stopTaking(new Error('the writer thread stalled: not stored, send it again'));
      void this.worker.terminate();
    }, every);
    this.stallWatch.unref();
  }

  /**
   * The writer is gone (or taken for gone): nothing more is handed to it; what it has not answered, and what comes
   * next, is held for the next thread or refused (`reason`). What waited in the outbox was committed before, and the
   * next thread reads the registry after: it is not handed on.
   */
  private stopTaking(reason: Error): void {
    this.live = false;
    this.outbox = [];
    this.holdOrFail(reason);
  }

  /** a new writer thread after one died (or failed to start again): with back-off, for as long as it takes */
  private respawn(code: number | string): void {
    // a message that kills every thread it is handed to is resent by its device: each death after a short life, and
    // each failed start, waits longer (see the exit handler)
    const delay = RESTART_BACKOFF_MS[Math.min(this.restarts, RESTART_BACKOFF_MS.length - 1)]!;
    this.restarts++;
    this.log.fatal({ code, restartInMs: delay, attempt: this.restarts },
      'the writer thread stopped: whatever it had not committed was not acknowledged (devices resend), alarms are refused until a new one runs; starting a new one');
    setTimeout(() => {
      if (this.closing) return;
      this.spawn().then(
        (r) => {
          this.log.warn({ restored: r }, 'writer thread restarted');
          try {
            this.o.onRestarted?.();
          } catch (err) {
            this.log.error({ err }, 'catching up after the writer thread restarted failed');
          }
        },
        (err: unknown) => {
          if (!this.closing) this.o.metrics.internalErrors.inc({ where: 'writer-thread' });
          this.log.fatal({ err }, 'the writer thread could not be restarted; trying again');
          if (!this.closing && !this.live) this.respawn('start failed');
        },
      );
    }, delay).unref();
  }

  /** false while no writer thread runs (it died and a new one is starting): /readyz says not ready */
  get running(): boolean {
    return this.live && !this.closing;
  }

  private onMessage(m: FromWriter): void {
    switch (m.op) {
      case 'result': {
        const w = this.waiters.get(m.id);
        if (!w) return;
        this.waiters.delete(m.id);
        if (m.ok) {
          try {
            w.first?.(m.value);
          } catch (err) {
            this.log.error({ err }, 'handling an answer of the writer thread failed');
          }
          w.resolve(m.value);
        } else {
          w.reject(fromWire(m.error));
        }
        return;
      }
      case 'committed':
        try {
          this.o.onCommitted(m.events);
        } catch (err) {
          this.log.error({ err }, 'publishing committed incident events failed');
        }
        return;
      case 'command-acked':
        return this.o.onCommandAcked(m.cmd, m.at);
      case 'storage':
        if (m.ok) this.o.storage.succeeded();
        else this.o.storage.failed(m.writer, fromWire(m.error), m.at);
        return;
      case 'stats':
        this.stats = m.stats;
        return;
      case 'log':
        return this.writeLine(m.line);
      case 'fatal':
        this.log.fatal({ err: fromWire(m.error) }, 'the writer thread reported a fatal error');
        return;
      case 'ready':
        return;
    }
  }

  /**
   * Messages of one turn of the event loop go as one. Telemetry and the like wait for the end of the turn (setImmediate):
   * at 10k msg/s over a thousand sockets each read is one packet, and a hand-over per packet (a postMessage here, a
   * message event and a wake-up there) cost both threads more than the messages themselves. Anything someone waits
   * on (an alarm, a person's action) goes at once (a microtask), and takes everything posted before it along: the
   * order is one.
   *
   * One exception, `read`: a device's alarm the transport has just read from its connection. Sockets are read in the
   * loop's poll phase, a callback each, and a microtask runs after each: 500 terminals' alarms were 500 hand-overs. Such
   * an alarm waits instead for the check phase that follows the poll (setImmediate), where the alarms read meanwhile
   * go with it as one. While the poll goes on, whatever is posted next and the writer's next answers look at the
   * clock and take it along once it has waited READ_HOLD_MS; work that posts nothing (a TLS handshake, an API page)
   * holds it to the poll's end. Read inside a setImmediate callback (aedes reads a connection's next packet in one,
   * after writing the PUBACK of the one before) it is already the check phase: a setImmediate from there would run
   * only in the loop's next turn, after its timers and its poll, so it goes in a microtask as before, and takes along
   * an alarm held meanwhile. What this cannot see: an alarm read in a tick or a promise between two setImmediate
   * callbacks (executionAsyncResource() is then no longer the Immediate), which waits for the loop's next check phase
   * unless something is posted or answered meanwhile. Asking executionAsyncResource() makes node keep the current
   * resource for every callback from then on (a small cost on each; figures 1 and 5 were measured with it).
   * Measured: bench/analysis.md, "the alarm hand-over done again".
   */
  private outbox: ToWriter[] = [];
  private outboxFlush: 'now' | 'read' | 'turn' | null = null;
  private lastFlushAt = 0;
  /** when the first alarm held for the check phase ('read') was put in the outbox (performance.now()) */
  private readSince = 0;
  /** READ_HOLD_MS (a field: a test lengthens it, so that a slow machine's reads do not cut the batch it looks at) */
  private readHoldMs = READ_HOLD_MS;
  private post(m: ToWriter, read = false): void {
    this.outbox.push(m);
    // a turn that reads a flood goes in chunks: the writer takes them while this turn goes on, and the bound on what
    // waits on the port (PORT_LIMIT) counts what was posted, not a turn's whole intake (one hand-over per turn let in
    // 2,000 messages a turn and shed the rest: figure 2 fell from ~45k to 6.6k msg/s, the writer two thirds idle)
    if (this.outbox.length >= OUTBOX_CHUNK) {
      this.flushOutbox();
      return;
    }
    if (this.flushIfHeldLong()) return; // this message went with it
    if (!AT_END_OF_TURN.has(m.op)) {
      if (this.outboxFlush === 'now') return;
      if (read && !(executionAsyncResource() instanceof Immediate)) {
        if (this.outboxFlush === 'read') return;
        this.outboxFlush = 'read';
        this.readSince = performance.now();
        setImmediate(() => { if (this.outboxFlush === 'read') this.flushOutbox(); });
      } else {
        // inside a setImmediate callback this is the check phase: a hold waiting for a setImmediate of its own (one
        // read in a tick between two callbacks of this phase) would wait for the loop's next turn, so it goes now too
        this.outboxFlush = 'now';
        queueMicrotask(() => this.flushOutbox());
      }
    } else if (this.outboxFlush === null) {
      this.outboxFlush = 'turn';
      const wait = this.lastFlushAt + OUTBOX_EVERY_MS - performance.now();
      // a flush that finds this outbox already gone (an alarm took it) finds it empty, or takes what came since early
      if (wait <= 0) setImmediate(() => this.flushOutbox());
      else setTimeout(() => this.flushOutbox(), wait);
    }
  }

  /** alarms held for the check phase ('read') go now if they have waited READ_HOLD_MS; true if they went */
  private flushIfHeldLong(): boolean {
    if (this.outboxFlush !== 'read' || performance.now() - this.readSince < this.readHoldMs) return false;
    this.flushOutbox();
    return true;
  }

  private flushOutbox(): void {
    this.outboxFlush = null;
    this.lastFlushAt = performance.now();
    const batch = this.outbox;
    this.outbox = [];
    if (batch.length === 0) return;
    if (this.live) {
      let alarms = 0;
      for (const m of batch) if (m.op === 'submit') alarms++;
      // said before they are posted: the writer cuts its telemetry slice short from now on
      if (alarms > 0) Atomics.add(this.taken, ALARMS_ON_THE_WAY, alarms);
      this.worker.postMessage(batch);
      this.posted = (this.posted + batch.length) | 0;
      return;
    }
    // nothing is handed to a thread that is gone (it would be dropped silently): the next one is told who is online,
    // and reloads what the registry changed meanwhile (its own copy may have been read before the change)
    for (const m of batch) if (m.op === 'registry') this.replicationWhileDown.push(m);
  }

  private replicationWhileDown: ToWriter[] = [];
  /** messages posted to the current writer thread, and those it has taken off its port (shared memory): PORT_LIMIT */
  private posted = 0;
  private taken = new Int32Array(new SharedArrayBuffer(4 * TAKEN_SLOTS));
  private get onPort(): number {
    return (this.posted - Atomics.load(this.taken, TAKEN)) | 0;
  }

  /**
   * Resolves once the writer thread has taken off its port everything handed to it until now (the outbox included),
   * polled every millisecond, after at most `maxMs` whatever it has taken, and at once while no writer runs. Bulk work
   * that feeds the writer (an import's registry replication) waits for it between slices: the port is one queue, and
   * an alarm posted behind a backlog of replication waits for all of it (a 50,000-device import held an SOS 0.6–0.9 s).
   */
  async caughtUp(maxMs = 250): Promise<void> {
    const until = performance.now() + maxMs;
    const taken = this.taken;
    const mark = (this.posted + this.outbox.length) | 0;
    while (this.live && taken === this.taken && ((Atomics.load(taken, TAKEN) - mark) | 0) < 0 && performance.now() < until) {
      await new Promise((r) => setTimeout(r, 1));
    }
  }

  /**
   * Hand a message to the writer thread; the promise settles with its answer. `observation`: a device's, held while no
   * writer runs (up to ingest.writerRestartHoldMs) and handed to the next one if this one dies before answering; anything else is
   * refused at once while no writer runs — not stored, not acknowledged.
   */
  private call<T>(make: (id: number) => ToWriter, observation?: { deviceId: string; event: boolean; again: Resubmit }, read = false): Promise<T> {
    if (!this.live && !(observation && this.holding)) {
      return Promise.reject(new Error('the writer thread is restarting: not stored, send it again'));
    }
    return new Promise<T>((resolve, reject) => {
      const w: Waiter = { resolve: resolve as (v: unknown) => void, reject, ...(observation ? { ...observation, deaths: 0, order: this.nextOrder++ } : {}) };
      if (this.live) this.send(w, make, read);
      else this.hold([{ ...w, again: observation!.again, deviceId: observation!.deviceId, since: Date.now() }]);
    });
  }

  /**
   * Devices' observations wait, unanswered, for a new writer thread (not while closing, nor when the hold is set to
   * 0), up to ingest.writerRestartHoldMs. Within it a writer restart costs a terminal nothing but a late PUBACK / ACK:
   * its connection stays up and it resends nothing (a terminal that reconnects and resends while the new writer is
   * still starting meets the refusal again; mqtt.js then fails, rather than resends, what was queued behind its
   * resends). Beyond it the observation is refused (no PUBACK, the connection closes): a terminal that has another
   * way to call for help (a voice call, an SMS) is not kept waiting on this one.
   */
  private get holding(): boolean {
    return !this.closing && !this.stopping && this.o.config.ingest.writerRestartHoldMs > 0;
  }

  private send(w: Waiter, make: (id: number) => ToWriter, read = false): void {
    const id = this.nextId++;
    this.waiters.set(id, w);
    this.post(make(id), read);
  }

  private failWaiters(err: Error): void {
    const all = [...this.waiters.values()];
    this.waiters.clear();
    this.refuseHeld(err);
    for (const w of all) w.reject(err);
  }

  /** refuse everything held (shutdown) */
  private refuseHeld(err: Error): void {
    const held = this.held;
    this.setHeld([]);
    for (const w of held) w.reject(err);
  }

  /** the writer thread died: what it had not answered is refused, except devices' observations, which are held */
  private holdOrFail(err: Error): void {
    const all = [...this.waiters.values()];
    this.waiters.clear();
    const now = Date.now();
    const held: Held[] = [];
    for (const w of all) {
      const deaths = (w.deaths ?? 0) + 1;
      if (w.again && w.deviceId !== undefined && deaths < HOLD_DEATHS && this.holding) held.push({ ...w, again: w.again, deviceId: w.deviceId, deaths, since: w.heldSince ?? now });
      else this.refuse(w, err);
    }
    if (held.length) this.log.warn({ held: held.length }, 'devices\' messages the writer thread had not answered are held for the next one');
    this.hold(held);
  }

  /**
   * Refused while no writer runs. An event's refusal refuses what its device sent after it (see refusedWhileDown);
   * telemetry refused for its bound does not (a position's place is not an alarm's).
   */
  private refuse(w: Waiter, err: Error): void {
    if (w.deviceId !== undefined && w.event) {
      const at = this.refusedWhileDown.get(w.deviceId);
      if (at === undefined || (w.order ?? 0) < at) this.refusedWhileDown.set(w.deviceId, w.order ?? 0);
    }
    w.reject(err);
  }

  /** an earlier event of its device was refused while no writer ran */
  private behindRefused(w: Held): boolean {
    const at = this.refusedWhileDown.get(w.deviceId);
    return at !== undefined && (w.order ?? 0) > at;
  }

  private held: Held[] = [];
  private heldTelemetry = 0;
  /** HOLD_TELEMETRY_LIMIT (a field: a test meets it with a few connections — aedes reads a connection's next message
   * only once the one before is answered, so what is held is at most one per connection) */
  private holdTelemetryLimit = HOLD_TELEMETRY_LIMIT;
  private holdSweep: NodeJS.Timeout | null = null;

  private setHeld(held: Held[]): void {
    this.held = held;
    this.heldTelemetry = 0;
    for (const w of held) if (!w.event) this.heldTelemetry++;
    this.o.metrics.queue.set({ queue: 'held' }, held.length);
    if (held.length === 0 && this.holdSweep) {
      clearInterval(this.holdSweep);
      this.holdSweep = null;
    }
  }

  private hold(items: Held[]): void {
    if (items.length === 0) return;
    for (const w of items) {
      if (this.behindRefused(w)) {
        w.reject(behindRefusedError());
      } else if (w.event ? this.held.length - this.heldTelemetry >= IN_FLIGHT_LIMIT : this.heldTelemetry >= this.holdTelemetryLimit) {
        // bounded: telemetry apart from events, so a fleet's telemetry never takes an alarm's place
        this.refuse(w, new OverloadError('too many messages wait for the writer thread to restart: not stored, send it again later'));
      } else {
        this.held.push(w);
        if (!w.event) this.heldTelemetry++;
      }
    }
    this.o.metrics.queue.set({ queue: 'held' }, this.held.length);
    if (this.held.length) this.holdSweep ??= setInterval(() => this.sweepHeld(), Math.min(500, Math.ceil(this.o.config.ingest.writerRestartHoldMs / 4))).unref();
  }

  /** what has waited ingest.writerRestartHoldMs for a writer is refused: the device may have another way to call for help */
  private sweepHeld(): void {
    const now = Date.now();
    const holdMs = this.o.config.ingest.writerRestartHoldMs;
    const keep: Held[] = [];
    for (const w of this.held) {
      if (now - w.since >= holdMs) this.refuse(w, new Error(`no writer thread ran for ${holdMs} ms (ingest.writerRestartHoldMs): not stored, send it again`));
      else if (this.behindRefused(w)) w.reject(behindRefusedError());
      else keep.push(w);
    }
    this.setHeld(keep);
  }

  /** a new writer thread runs: what was held goes to it first, in the order it came */
  private handOnHeld(): void {
    const held = this.held;
    this.setHeld([]);
    this.refusedWhileDown.clear();
    if (held.length) this.log.warn({ handedOn: held.length }, 'devices\' messages held while no writer thread ran are handed to the new one');
    // handed to a thread before (deaths > 0): it may have committed it, so it goes as a resend (dedup answers it)
    for (const { since, ...w } of held) this.send({ ...w, heldSince: since }, (id) => w.again(id, (w.deaths ?? 0) > 0));
  }

  /**
   * Shutdown begins: nothing more is held, and what is held is refused now (not after ingest.writerRestartHoldMs:
   * the transports close before the writer, and would wait for it).
   */
  stopHolding(): void {
    this.stopping = true;
    this.refuseHeld(new Error('ingest is closed: the gateway is shutting down'));
  }

  submit(obs: Observation, read = false): Promise<IngestResult> {
    if (this.closing) return Promise.reject(new Error('ingest is closed: the gateway is shutting down'));
    const again: Resubmit = (id, resent) => ({ op: 'submit', id, obs: resent ? { ...obs, redelivered: true } : obs });
    const answer = this.call<IngestResult>((id) => again(id, false), { deviceId: obs.deviceId, event: true, again }, read);
    // received → the writer's answer is here (its commit done, the PUBACK or ACK next): what is left of the alarm
    // path after the commit is visible apart from it (bench/analysis.md, 2026-12-04 04:00)
    void answer.then(() => this.o.metrics.stage.observe({ stage: 'answered' }, Math.max(0, Date.now() - obs.receivedAt) / 1000), () => undefined);
    return answer;
  }

  submitTelemetry(obs: Observation, wait: boolean, read = false): Promise<IngestResult> | undefined {
    if (this.closing) return wait ? Promise.reject(new Error('ingest is closed')) : undefined;
    // an alarm on the telemetry channel is an alarm: written urgently and answered, QoS 0 or not
    if (isLifeSafety(obs.type)) return this.submit(obs, read);
    if (!wait) {
      // QoS 0 is shed here, before the hand-over, where the writer would only drop it (its queue is full: the flag it
      // keeps in shared memory) or could not take it soon (PORT_LIMIT on its port; no writer running). Under a flood
      // the writer is the bottleneck: shed there, each reading cost it a structured clone read back and a queue check
      // (figure 2 shed ~40k msg/s at the writer, bench/analysis.md).
      if (!this.live || this.waiters.size >= IN_FLIGHT_LIMIT || Atomics.load(this.taken, TELEMETRY_FULL) === 1 ||
        this.onPort + this.outbox.length >= PORT_LIMIT) {
        this.o.metrics.shed.inc({ where: 'hand-over' });
        return undefined;
      }
      this.post({ op: 'telemetry', obs, wait: false });
      return undefined;
    }
    if (this.waiters.size >= IN_FLIGHT_LIMIT) {
      this.o.metrics.refused.inc({ stage: 'ingest', reason: 'overload' });
      return Promise.reject(new OverloadError(`${this.waiters.size} messages wait for the writer: not stored, send it again later`));
    }
    const again: Resubmit = (id, resent) => ({ op: 'telemetry', id, obs: resent ? { ...obs, redelivered: true } : obs, wait });
    return this.call((id) => again(id, false), { deviceId: obs.deviceId, event: false, again });
  }

  recordReject(row: Omit<RejectRow, 'raw'> & { raw: Buffer | string }): void {
    const raw = typeof row.raw === 'string' ? row.raw : row.raw.toString('utf8');
    this.post({ op: 'reject', row: { ...row, raw: raw.slice(0, this.o.config.ingest.rejectRawBytes) } });
  }

  setPressure(on: boolean): void {
    this.post({ op: 'pressure', on });
  }

  /**
   * Messages handed to the writer thread that it has not taken off its port yet (the outbox included): what an alarm
   * posted now would queue behind. 0 while no writer runs (what waits then is `held`).
   */
  portBacklog(): number {
    return this.live ? this.onPort + this.outbox.length : 0;
  }

  /** as the writer last reported (every 250 ms) */
  queueDepth(): WriterStats {
    return this.stats;
  }

  /**
   * A write of the incident log, run by the writer thread (the log's one writer: this thread never waits for SQLite's
   * write lock behind a telemetry slice). `events` gets what it committed as the answer is read — before any later
   * message of the writer, so events reach the bus in seq order — and the promise then resolves with the answer.
   * While no writer runs it is refused at once with a 503 that says to try again.
   */
  incident<T>(call: IncidentCall, events: (value: T) => readonly IncidentEvent[]): Promise<T> {
    return this.forPerson((id) => ({ op: 'incident', id, call }), 'reload the incident before trying again', (v) => this.o.onCommitted([...events(v as T)]));
  }

  /** A write of the commands table (a person's command, the broker's hand-over, expiry), run by the writer thread. */
  command<T>(call: CommandCall): Promise<T> {
    return this.forPerson((id) => ({ op: 'command', id, call }), 'look at the device\'s commands before trying again');
  }

  /** a write someone waits on: refused at once with a 503 "try again" while no writer runs */
  private forPerson<T>(make: (id: number) => ToWriter, check: string, first?: (v: unknown) => void): Promise<T> {
    if (!this.live || this.closing) {
      return Promise.reject(new EldergateError('UNAVAILABLE',
        'the gateway\'s writer is restarting (or the gateway is stopping): nothing was recorded; try again in a few seconds', { status: 503 }));
    }
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.waiters.set(id, {
        resolve: resolve as (v: unknown) => void,
        // the writer stopped before answering: it may have committed; the person is told so, not "not stored"
        reject: (err) => reject(err instanceof EldergateError ? err : new EldergateError('UNAVAILABLE',
          `the gateway's writer stopped before answering: this may or may not have been recorded; ${check}`,
          { status: 503, cause: err })),
        ...(first ? { first } : {}),
      });
      this.post(make(id));
    });
  }

  /** A batch of the consoles' push and delivery receipts, written by the writer thread; resolves with how many were new. */
  receipts(batch: readonly IncidentReceipt[]): Promise<number> {
    return this.call((id) => ({ op: 'receipts', id, batch: [...batch] }));
  }

  /** Write everything the writer holds now (tests, shutdown). */
  flushAll(): Promise<void> {
    return this.call((id) => ({ op: 'flush', id }));
  }

  /**
   * Asks the writer about these devices READ_SLICE at a time, each slice once the one before has answered: the writer
   * takes its port in order, so an alarm posted during a read of the whole fleet waits behind one slice, not behind
   * all of it (100,000 states in one message held the writer 90-160 ms).
   */
  private async askInSlices<T>(deviceIds: readonly string[], ask: (id: number, slice: string[]) => ToWriter, take: (answer: T) => void): Promise<void> {
    for (let from = 0; from < deviceIds.length; from += READ_SLICE) {
      const slice = deviceIds.slice(from, from + READ_SLICE);
      take(await this.call<T>((id) => ask(id, slice)));
    }
  }

  private async readStates(deviceIds: readonly string[]): Promise<Map<string, LiveState>> {
    const out = new Map<string, LiveState>();
    await this.askInSlices<StatesReply>(deviceIds, (id, slice) => ({ op: 'states', id, deviceIds: slice }), (rows) => {
      for (const [id, s] of rows) {
        if (!s) continue;
        // connected is this thread's to say: the writer hears of it a message later
        const at = this.online.get(id);
        out.set(id, at !== undefined ? { ...s, online: true, connectedAt: s.connectedAt ?? at } : { ...s, online: false });
      }
    });
    return out;
  }

  /** The Prometheus text of this thread's metrics and the writer's, summed where both count the same thing. */
  async metricsText(): Promise<string> {
    const own = await this.o.metrics.registry.getMetricsAsJSON();
    let theirs: MetricsJson = [];
    try {
      theirs = await withTimeout(this.call<MetricsJson>((id) => ({ op: 'metrics', id })), 2000, NO_ANSWER);
    } catch (err) {
      this.log.warn({ err }, 'the writer thread did not give its metrics: /metrics shows this thread\'s only');
    }
    // the writer counts (counters, histograms); gauges are this thread's to set (the writer's build_info would be a 2)
    theirs = theirs.filter((m) => String(m.type) !== 'gauge');
    return AggregatorRegistry.aggregate([own, theirs] as never).metrics();
  }

  /** The writer writes what it holds (queued telemetry, device-state rows owed) and closes its connection. */
  async close(): Promise<void> {
    if (this.closing) return;
    const closeCall = this.live ? this.call((id) => ({ op: 'close', id })) : Promise.resolve();
    // from here nothing new is taken, and a death is not restarted
    this.closing = true;
    if (this.stallWatch) clearInterval(this.stallWatch);
    try {
      await withTimeout(closeCall, CLOSE_TIMEOUT_MS, NO_ANSWER);
    } catch (err) {
      this.log.error({ err }, 'the writer thread did not close cleanly: what it held is not acknowledged (devices resend)');
    }
    this.failWaiters(new Error('ingest is closed: the gateway is shutting down'));
    await this.worker.terminate();
    await this.checkpointer?.close();
  }
}

/** how often the checkpointer copies the WAL back into the database file */
const CHECKPOINT_INTERVAL_MS = 1000;

/** Start the checkpointer thread (gateway/writer/checkpointer.ts); its last result goes to the WAL gauge. */
export function startCheckpointer(o: {
  file: string; metrics: Metrics; log: Logger; walRestart: SharedArrayBuffer; walSoftLimitBytes: number; intervalMs?: number;
}): { close(): Promise<void> } {
  const init: CheckpointerInit = {
    file: o.file, intervalMs: o.intervalMs ?? CHECKPOINT_INTERVAL_MS, walRestart: o.walRestart, walSoftLimitBytes: o.walSoftLimitBytes,
  };
  let lastFailure = 0;
  let closing = false;
  let worker: Worker;
  const start = () => {
    worker = startThread(import.meta.url, 'checkpointer', init);
    worker.on('message', (m: { op: string; log?: number; checkpointed?: number; message?: string; code?: string | null; outcome?: WindowOutcome }) => {
      if (m.op === 'restart-window') {
        o.metrics.walRestartWindows.inc({ outcome: m.outcome ?? 'incomplete' });
      } else if (m.op === 'checkpoint') {
        o.metrics.walFrames.set({ state: 'log' }, Math.max(0, m.log ?? 0));
        o.metrics.walFrames.set({ state: 'checkpointed' }, Math.max(0, m.checkpointed ?? 0));
      } else if (m.op === 'checkpoint-failed' && Date.now() - lastFailure > 60_000) {
        lastFailure = Date.now();
        o.log.warn({ reason: m.message, code: m.code }, 'a WAL checkpoint failed: the write-ahead log grows until one succeeds');
      }
    });
    worker.on('error', (err) => o.log.error({ err }, 'the checkpointer thread failed'));
    // no connection checkpoints by itself: a checkpointer that died is started again, or the WAL would grow for ever
    worker.on('exit', () => {
      if (closing) return;
      o.metrics.internalErrors.inc({ where: 'checkpointer-thread' });
      o.log.error('the checkpointer thread stopped: starting a new one in 1 s');
      setTimeout(() => { if (!closing) start(); }, 1000).unref();
    });
  };
  start();
  return {
    async close() {
      closing = true;
      const w = worker;
      const exited = new Promise<void>((r) => w.once('exit', () => r()));
      w.postMessage({ op: 'close' });
      await withTimeout(exited, 5000, 'the checkpointer thread did not exit').catch(() => w.terminate());
    },
  };
}

/** The writer's error as the transports know it: the same class by name, the SQLite code kept (isStorageError). */
export function fromWire(w: WireError): Error {
  const cause = w.cause ? fromWire(w.cause) : undefined;
  let err: Error;
  if (w.problems) err = new ConfigError(w.problems);
  // a person's action refused by the domain: the same answer (status, message, details) as on this thread
  else if (w.name === 'ConflictError') err = new ConflictError(w.message, w.details);
  else if (w.name === 'ValidationError') err = new ValidationError(w.message, w.details);
  else if (w.status !== undefined && w.code !== undefined) {
    err = new EldergateError(w.code, w.message, { status: w.status, details: w.details, ...(cause ? { cause } : {}) });
    err.name = w.name;
  }
  else if (w.name === 'OverloadError') err = new OverloadError(w.message);
  else if (w.name === 'AlarmNotRecordedError') err = new AlarmNotRecordedError(w.message, cause ? { cause } : undefined);
  else {
    err = new Error(w.message, cause ? { cause } : undefined);
    err.name = w.name;
  }
  if (w.code !== undefined) (err as Error & { code?: string }).code = w.code;
  if (w.stack) err.stack = w.stack;
  return err;
}

/** The commands table written through the writer thread (once it runs; before, a 503 "try again"). */
export function commandWritesVia(writer: () => WriterThread | undefined): CommandWrites {
  const via = <T>(call: CommandCall): Promise<T> => {
    const w = writer();
    if (!w) return Promise.reject(new EldergateError('UNAVAILABLE', 'the gateway is still starting: nothing was recorded; try again in a few seconds', { status: 503 }));
    return w.command<T>(call);
  };
  return {
    create: (deviceId, type, params, opts) => via<CommandRow>({ method: 'create', deviceId, type, params, ...opts }),
    sent: (commandId, at) => via<number>({ method: 'sent', commandId, at }),
    expire: (now) => via<number>({ method: 'expire', now }),
  };
}

/**
 * The incident log's writes as the main thread's response side calls them, handed to the writer thread (the log's
 * one writer). `writer` is read at each call: the response side is built before the writer thread starts.
 */
export function incidentWritesVia(writer: () => WriterThread | undefined): IncidentWrites {
  const via = <T>(call: IncidentCall, events: (value: T) => readonly IncidentEvent[]): Promise<T> => {
    const w = writer();
    if (!w) return Promise.reject(new EldergateError('UNAVAILABLE', 'the gateway is still starting: nothing was recorded; try again in a few seconds', { status: 503 }));
    return w.incident(call, events);
  };
  return {
    act: (incidentId, action, actor) =>
      via<{ incident: IncidentRow; events: CommittedEvent[] }>({ method: 'act', incidentId, action, actor }, (r) => r.events),
    escalate: (incidentId, steps) =>
      via<CommittedOf<'escalated'>[]>({ method: 'escalate', incidentId, steps: [...steps] }, (events) => events),
    resolveBySystem: (incidentId, outcome, data) =>
      via<CommittedEvent[]>({ method: 'resolveBySystem', incidentId, outcome, ...(data ? { data } : {}) }, (events) => events),
    followUp: (incidentId, dueAt, opts) =>
      via<CommittedOf<'overdue'>[]>({ method: 'followUp', incidentId, dueAt, ...(opts ? { opts } : {}) }, (events) => events),
    move: (incidentId, to, reason) =>
      via<CommittedEvent[]>({ method: 'move', incidentId, to, reason }, (events) => events),
    record: (incidentId, type, data, actor = null) =>
      via<CommittedEvent[]>({ method: 'record', incidentId, type, data, actor }, (events) => events),
  };
}
