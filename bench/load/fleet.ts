// Load generator process: holds many simulated terminals over real TCP and drives them as the parent asks —
// paced telemetry, a flood with TCP back-pressure, heartbeats, closed-loop QoS 1 alarms, or a reconnect storm with
// the firmware's back-off and jitter. Every loop is bounded in count and time.
import { serve } from '../lib/ipc.js';
import { ConnectRefused, LiteClient, encodePublish, type TcpTarget } from '../lib/mqtt-lite.js';
import { backoffDelay, type BackoffOptions } from '../../firmware-sim/devices/terminal.js';
import { Rng, hashLabel } from '../../firmware-sim/core/prng.js';
import type { Cred } from '../lib/creds.js';

interface Device {
  cred: Cred;
  client: LiteClient | null;
  seq: number;
  /** round-robin over source addresses */
  local: string | undefined;
}

let target: TcpTarget = { host: '127.0.0.1', port: 0 };
let keepaliveS = 60;
let devices: Device[] = [];
let heartbeatTimer: NodeJS.Timeout | null = null;
const rng = new Rng(hashLabel(`fleet-${process.pid}`));

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function telemetry(d: Device, now: number): Buffer {
  d.seq++;
  // a call-phone heartbeat, as the firmware sends it (docs/design.md §2 payload envelope)
  const payload = `{"ts":${now},"seq":${d.seq},"type":"heartbeat","battery":${80 + (d.seq % 20)},"signal":-${60 + (d.seq % 30)}}`;
  return encodePublish(`devices/${d.cred.id}/telemetry`, payload, 0, 0);
}

async function connectOne(d: Device, timeoutMs: number): Promise<void> {
  const c = await LiteClient.tcp(
    { ...target, ...(d.local ? { localAddress: d.local } : {}) },
    {
      clientId: d.cred.id, username: d.cred.id, password: d.cred.secret, keepaliveS, timeoutMs,
      will: { topic: `devices/${d.cred.id}/status`, payload: '{"online":false}', qos: 1, retain: true },
    },
  );
  d.client = c;
  c.onClose = () => {
    if (d.client === c) d.client = null;
  };
}

/** run `fn` over items with at most `n` in flight */
async function pool<T>(items: T[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]!);
  }));
}

serve({
  async connect(a: { target: TcpTarget; devices: Cred[]; localAddresses?: string[]; concurrency?: number; keepaliveS?: number; timeoutMs?: number }) {
    target = a.target;
    keepaliveS = a.keepaliveS ?? 60;
    const locals = a.localAddresses?.length ? a.localAddresses : [undefined];
    devices = a.devices.map((cred, i) => ({ cred, client: null, seq: 0, local: locals[i % locals.length] }));
    const started = performance.now();
    const errors: Record<string, number> = {};
    let connected = 0;
    await pool(devices, a.concurrency ?? 200, async (d) => {
      try {
        await connectOne(d, a.timeoutMs ?? 20_000);
        connected++;
      } catch (err) {
        const k = (err as Error).message.slice(0, 60);
        errors[k] = (errors[k] ?? 0) + 1;
      }
    });
    return { connected, failed: devices.length - connected, errors, ms: performance.now() - started };
  },

  /**
   * open-loop telemetry at `ratePerS` (this generator's share) for `durationMs`, QoS 0, on 1 ms ticks: each tick sends
   * what is due by the clock, so 10k msg/s arrives as a few messages every millisecond, not bursts of hundreds. A tick
   * that comes late (the generator did not get its CPU) catches up at most 2 ms' worth at a time; `maxBurst` and
   * `maxTickGapMs` say whether that happened.
   */
  async rate(a: { ratePerS: number; durationMs: number }) {
    const live = devices.filter((d) => d.client?.connected);
    if (live.length === 0) throw new Error('no connected devices to send telemetry from');
    const started = performance.now();
    const capPerTick = Math.max(1, Math.ceil((a.ratePerS * 2) / 1000));
    let sent = 0;
    let backlogged = 0;
    let i = 0;
    let maxBurst = 0;
    let maxTickGapMs = 0;
    let last = started;
    for (;;) {
      const t = performance.now();
      if (t - started >= a.durationMs) break;
      if (t - last > maxTickGapMs) maxTickGapMs = t - last;
      last = t;
      const due = Math.floor(((t - started) / 1000) * a.ratePerS);
      const now = Date.now();
      let k = 0;
      for (; sent < due && k < capPerTick; k++) {
        const d = live[i++ % live.length]!;
        if (!d.client?.connected) continue;
        if (!d.client.write(telemetry(d, now))) backlogged++;
        sent++;
      }
      if (k > maxBurst) maxBurst = k;
      await sleep(1);
    }
    return { sent, backlogged, ms: performance.now() - started, maxBurst, maxTickGapMs };
  },

  /** as fast as the broker takes it, over `clients` connections, each waiting for its socket to drain */
  async flood(a: { clients: number; durationMs: number }) {
    const live = devices.filter((d) => d.client?.connected).slice(0, a.clients);
    if (live.length === 0) throw new Error('no connected devices to flood from');
    const until = performance.now() + a.durationMs;
    let sent = 0;
    await Promise.all(live.map(async (d) => {
      while (performance.now() < until && d.client?.connected) {
        const now = Date.now();
        let ok = true;
        // batches of 64 between checks of the clock, corked into one writev (a syscall per 100-byte message would
        // make the generator the bottleneck); stop as soon as the socket buffers
        const stream = d.client.stream;
        stream.cork();
        for (let k = 0; k < 64 && ok; k++) {
          ok = d.client.write(telemetry(d, now));
          sent++;
        }
        stream.uncork();
        if (!ok) await d.client.drained();
        else await new Promise<void>((r) => setImmediate(r));
      }
    }));
    return { sent, clients: live.length };
  },

  /** every device sends a heartbeat every `intervalMs`, phases spread evenly: 1 ms ticks, each sending what is due */
  heartbeats(a: { intervalMs: number }) {
    if (heartbeatTimer) clearInterval(heartbeatTimer);
    let cursor = 0;
    let sent = 0;
    const started = performance.now();
    heartbeatTimer = setInterval(() => {
      const due = Math.floor(((performance.now() - started) * devices.length) / a.intervalMs);
      const now = Date.now();
      // at most 2 ms' worth at once: a late tick catches up gradually, never as one burst
      const cap = Math.max(1, Math.ceil((2 * devices.length) / a.intervalMs));
      for (let k = 0; sent < due && k < cap && devices.length; k++, sent++) {
        const d = devices[cursor++ % devices.length]!;
        if (d.client?.connected) d.client.write(telemetry(d, now));
      }
    }, 1);
    return { devices: devices.length };
  },

  stopHeartbeats() {
    if (heartbeatTimer) clearInterval(heartbeatTimer);
    heartbeatTimer = null;
    return null;
  },

  /** closed loop: each device sends a QoS 1 SOS and the next one when PUBACK arrives; PUBACK latency recorded */
  async alarms(a: { durationMs: number; warmupMs: number; devices?: number }) {
    const live = devices.filter((d) => d.client?.connected).slice(0, a.devices ?? devices.length);
    if (live.length === 0) throw new Error('no connected devices to send alarms from');
    const started = performance.now();
    const until = started + a.durationMs;
    const measureFrom = started + a.warmupMs;
    const latencies: number[] = [];
    let acked = 0;
    let timedOut = 0;
    await Promise.all(live.map((d) => new Promise<void>((resolve) => {
      const c = d.client!;
      let t0 = 0;
      let waitingId = -1;
      let guard: NodeJS.Timeout | null = null;
      const next = () => {
        if (guard) clearTimeout(guard);
        if (performance.now() >= until || !c.connected) return resolve();
        d.seq++;
        const payload = `{"ts":${Date.now()},"seq":${d.seq},"type":"sos"}`;
        t0 = performance.now();
        waitingId = c.publish(`devices/${d.cred.id}/events`, payload, 1).messageId;
        // a PUBACK that never comes must not hang the figure
        guard = setTimeout(() => {
          timedOut++;
          c.onPuback = null;
          resolve();
        }, 10_000);
      };
      c.onPuback = (id) => {
        if (id !== waitingId) return;
        const t = performance.now();
        if (t0 >= measureFrom && t <= until) {
          acked++;
          latencies.push(t - t0);
        }
        next();
      };
      next();
    })));
    for (const d of live) if (d.client) d.client.onPuback = null;
    return { acked, windowMs: a.durationMs - a.warmupMs, latencies, timedOut, devices: live.length };
  },

  /**
   * The network drops under the whole fleet at once; every device comes back on the firmware's schedule
   * (exponential back-off, equal jitter, credentials checked by the broker). Returns when all are back or maxMs.
   */
  async storm(a: { backoff: BackoffOptions; connectTimeoutMs: number; maxMs: number }) {
    for (const d of devices) {
      d.client?.destroy();
      d.client = null;
    }
    const started = performance.now();
    let back = 0;
    let attempts = 0;
    let refused = 0;
    let failed = 0;
    let lastBackAt = 0;
    let firstAttemptAt: number | null = null;
    const total = devices.length;
    await new Promise<void>((resolve) => {
      const deadline = setTimeout(resolve, a.maxMs);
      if (total === 0) {
        clearTimeout(deadline);
        return resolve();
      }
      const attempt = (d: Device, n: number) => {
        if (performance.now() - started > a.maxMs) return;
        attempts++;
        if (firstAttemptAt === null) firstAttemptAt = performance.now() - started;
        connectOne(d, a.connectTimeoutMs).then(
          () => {
            back++;
            lastBackAt = performance.now() - started;
            if (back === total) {
              clearTimeout(deadline);
              resolve();
            }
          },
          (err) => {
            if (err instanceof ConnectRefused) refused++;
            else failed++;
            setTimeout(() => attempt(d, n + 1), backoffDelay(n + 1, a.backoff, rng));
          },
        );
      };
      // the first attempt after the drop is itself delayed: the firmware notices the loss and backs off
      for (const d of devices) setTimeout(() => attempt(d, 0), backoffDelay(0, a.backoff, rng));
    });
    return { total, back, allBackMs: back === total ? lastBackAt : null, firstAttemptMs: firstAttemptAt, elapsedMs: performance.now() - started, attempts, refused, failed };
  },

  count() {
    return { devices: devices.length, connected: devices.filter((d) => d.client?.connected).length };
  },

  async close() {
    if (heartbeatTimer) clearInterval(heartbeatTimer);
    for (const d of devices) d.client?.destroy();
    devices = [];
    return null;
  },
});
