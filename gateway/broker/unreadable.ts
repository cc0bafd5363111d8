// Frames the gateway refuses from an authenticated device must reach a person: they become a P3 "terminal sends
// unreadable messages" incident, raised through the writer like any other observation (durable before anyone sees
// it). A device spamming garbage must not cost an observation, an incident event and a console push per frame, so
// refusals are counted here in memory and reported at most once per window per device; the reports join the open
// incident.
//
// Acknowledgement: the device gets its PUBACK for a refused frame at once only while a report of its refusals is
// already durable (a fresh one, written within the last window); otherwise the PUBACK waits for the report's write,
// and without it the device resends — so a refusal is never acknowledged before someone can see it.
import type { Logger } from '../../core/logger.js';
import type { Metrics } from '../../core/metrics.js';
import type { Observation, ObservationSink } from '../../core/contracts.js';

export interface UnreadableReporterOptions {
  sink: ObservationSink;
  log: Logger;
  metrics: Metrics;
  /** at most one report per device per window, ms */
  windowMs: number;
  /** devices tracked at once; beyond it a refusal is reported on its own (never dropped) */
  maxDevices: number;
  /** monotonic clock, ms (default performance.now) */
  now?: () => number;
  /** wall clock for the observation, epoch ms (default Date.now) */
  wallClock?: () => number;
}

export interface UnreadableReporter {
  /**
   * A frame from `deviceId` was refused. Returns a promise to wait on before acknowledging the frame (its report is
   * being written), or undefined when the frame may be acknowledged now (a fresh report is durable).
   */
  refused(deviceId: string, reason: string, topic: string): Promise<void> | undefined;
  /** devices with refusals counted in memory (diagnosis, tests) */
  tracked(): number;
  /** stop the timer; counts not yet reported are written now (best effort) */
  close(): Promise<void>;
}

interface Waiter {
  resolve: () => void;
  reject: (err: Error) => void;
}

interface Entry {
  /** refusals not yet in a written report */
  pending: number;
  reason: string;
  topic: string;
  /** when the last report was started (monotonic ms); -Infinity if never */
  reportedAt: number;
  /** the last report is durable and nothing failed since */
  durable: boolean;
  /** the report being written, if any */
  inflight: Promise<void> | null;
  /** frames waiting for the next report to be durable before their PUBACK (bounded by the broker's inflight limit) */
  waiters: Waiter[];
}

const REASON_CHARS = 300;

/**
 * What a suspended device's refused CONNECT with its own secret reports (the embedded broker, and RabbitMQ's auth
 * question in cluster mode): its own secret, so its own terminal, perhaps a resident pressing its button.
 */
export const suspendedConnectReason = (deviceId: string): string =>
  `suspended: the device is suspended and tried to connect; its connection was refused. If it is in use again, resume it (POST /api/devices/${deviceId}/resume)`;

export function createUnreadableReporter(o: UnreadableReporterOptions): UnreadableReporter {
  const log = o.log.child({ module: 'unreadable' });
  const now = o.now ?? (() => performance.now());
  const wallClock = o.wallClock ?? Date.now;
  const devices = new Map<string, Entry>();
  let timer: NodeJS.Timeout | null = null;
  let closed = false;

  const observation = (deviceId: string, count: number, reason: string, topic: string): Observation => ({
    deviceId, type: 'unreadable', count, reason: reason.slice(0, REASON_CHARS), topic, receivedAt: wallClock(), source: 'gateway',
  });

  /** Write one report of the entry's pending refusals; settles the frames waiting for it. */
  const report = (deviceId: string, e: Entry): Promise<void> => {
    const count = e.pending;
    const waiters = e.waiters;
    e.pending = 0;
    e.waiters = [];
    e.reportedAt = now();
    const written = o.sink.submit(observation(deviceId, count, e.reason, e.topic)).then(
      () => {
        e.inflight = null;
        e.durable = true;
        o.metrics.unreadableReports.inc({ result: 'written' });
        for (const w of waiters) w.resolve();
        schedule();
      },
      (err: Error) => {
        e.inflight = null;
        e.durable = false;
        // counted again in the next report; the frames waiting get no PUBACK and are resent by their device
        e.pending += count;
        o.metrics.unreadableReports.inc({ result: 'failed' });
        log.error({ err, deviceId, count }, 'could not write the report of unreadable messages; retried');
        for (const w of waiters) w.reject(err);
        schedule();
        throw err;
      },
    );
    e.inflight = written;
    return written;
  };

  const sweep = () => {
    timer = null;
    const t = now();
    for (const [deviceId, e] of devices) {
      if (e.inflight || t - e.reportedAt < o.windowMs) continue;
      if (e.pending > 0) report(deviceId, e).catch(() => undefined); // logged in report, retried next sweep
      else devices.delete(deviceId); // quiet for a window: forgotten, so memory stays bounded
    }
    schedule();
  };

  function schedule() {
    if (timer || closed || devices.size === 0) return;
    timer = setTimeout(sweep, o.windowMs);
    timer.unref();
  }

  return {
    refused(deviceId, reason, topic) {
      let e = devices.get(deviceId);
      if (!e) {
        if (devices.size >= o.maxDevices) {
          // more devices sending garbage at once than we track: report this one on its own rather than lose it
          o.metrics.unreadableReports.inc({ result: 'untracked' });
          return o.sink.submit(observation(deviceId, 1, reason, topic)).then(() => undefined);
        }
        e = { pending: 0, reason, topic, reportedAt: -Infinity, durable: false, inflight: null, waiters: [] };
        devices.set(deviceId, e);
      }
      e.pending++;
      e.reason = reason;
      e.topic = topic;
      const fresh = now() - e.reportedAt < o.windowMs;
      if (!fresh && !e.inflight) return report(deviceId, e);
      schedule();
      // a fresh report is durable: this refusal is counted into the next one, the frame is acknowledged now
      if (e.durable && fresh) return undefined;
      // a report is being written: once it is durable, a person sees this device; this count follows in the next
      if (e.inflight) return e.inflight;
      // the last report failed a moment ago: the next is written at the window's end (the rate bound holds)
      return new Promise<void>((resolve, reject) => e!.waiters.push({ resolve, reject }));
    },
    tracked: () => devices.size,
    async close() {
      closed = true;
      if (timer) clearTimeout(timer);
      timer = null;
      const writes: Promise<void>[] = [];
      for (const [deviceId, e] of devices) if (e.pending > 0 && !e.inflight) writes.push(report(deviceId, e).catch(() => undefined));
      devices.clear();
      await Promise.all(writes);
    },
  };
}
