// The parent's handle on a set of load-generator processes (bench/load/fleet.ts): devices split between them,
// each generator on its own loopback source address (127.0.0.2, .3 …) so ephemeral ports never run out, commands
// sent to all at once and their answers added up.
import { Child, nodeArgsFromEnv } from './ipc.js';
import type { Cred } from './creds.js';
import type { TcpTarget } from './mqtt-lite.js';

/**
 * Devices per loopback source address. A socket bound to an address with port 0 (what `localAddress` does) makes the
 * kernel search that address's ephemeral range (28,000 ports here) for a port no socket holds, TIME_WAIT included, in
 * the connect() call itself. With one address per generator, a storm of 14,000 left each address's range half full
 * after the first drop: 70 % of the generators' CPU went to connect(), their loop fell behind, CONNACKs were read late,
 * their own timeouts fired and the devices backed off — the storm's "slow mode" (bench/analysis.md). Real terminals
 * each have an address of their own; a hundred per address keeps every range nearly empty.
 */
export const DEVICES_PER_ADDRESS = 100;

/** Source addresses for generator `i` (0-based): 127.(i+1).x.y, one per DEVICES_PER_ADDRESS of its devices. */
export function sourceAddresses(i: number, devices: number): string[] {
  const n = Math.max(1, Math.ceil(devices / DEVICES_PER_ADDRESS));
  return Array.from({ length: n }, (_, j) => `127.${i + 1}.${Math.floor(j / 250)}.${1 + (j % 250)}`);
}

/** one process may hold at most 20,000 file descriptors here: stay well under it */
export const MAX_PER_GENERATOR = 9000;

export class Generators {
  private constructor(readonly children: Child[]) {}

  static spawn(count: number): Generators {
    // BENCH_GENERATOR_NODE_ARGS="--cpu-prof --cpu-prof-dir=DIR": node flags for the load generators only, to see where
    // the devices' side of a load spends its CPU (the storm's generators can saturate the load core)
    const nodeArgs = nodeArgsFromEnv('BENCH_GENERATOR_NODE_ARGS');
    return new Generators(Array.from({ length: count }, (_, i) => Child.spawn('bench/load/fleet.ts', { name: `generator-${i + 1}`, nodeArgs })));
  }

  /** enough generators for `devices` connections, at least `min` */
  static forDevices(devices: number, min = 1): Generators {
    return Generators.spawn(Math.max(min, Math.ceil(devices / MAX_PER_GENERATOR)));
  }

  get pids(): number[] {
    return this.children.map((c) => c.pid);
  }

  async connect(target: TcpTarget, devices: Cred[], o: { keepaliveS?: number; concurrency?: number; timeoutMs?: number } = {}) {
    const n = this.children.length;
    const results = await Promise.all(this.children.map((c, i) => c.call<{ connected: number; failed: number; errors: Record<string, number>; ms: number }>('connect', {
      target,
      devices: devices.filter((_, k) => k % n === i),
      localAddresses: sourceAddresses(i, Math.ceil(devices.length / n)),
      keepaliveS: o.keepaliveS ?? 60,
      concurrency: o.concurrency ?? 100,
      timeoutMs: o.timeoutMs ?? 20_000,
    }, 600_000)));
    const errors: Record<string, number> = {};
    for (const r of results) for (const [k, v] of Object.entries(r.errors)) errors[k] = (errors[k] ?? 0) + v;
    return {
      connected: sum(results.map((r) => r.connected)),
      failed: sum(results.map((r) => r.failed)),
      errors,
      ms: Math.max(...results.map((r) => r.ms)),
    };
  }

  /** total `ratePerS` of telemetry shared between the generators */
  async rate(ratePerS: number, durationMs: number) {
    const n = this.children.length;
    const r = await Promise.all(this.children.map((c) => c.call<{ sent: number; backlogged: number; maxBurst: number; maxTickGapMs: number }>('rate', { ratePerS: ratePerS / n, durationMs }, durationMs + 60_000)));
    return {
      sent: sum(r.map((x) => x.sent)), backlogged: sum(r.map((x) => x.backlogged)),
      maxBurst: Math.max(...r.map((x) => x.maxBurst)), maxTickGapMs: Math.max(...r.map((x) => x.maxTickGapMs)),
    };
  }

  async flood(clients: number, durationMs: number) {
    const n = this.children.length;
    const r = await Promise.all(this.children.map((c, i) => c.call<{ sent: number }>('flood', {
      clients: Math.floor(clients / n) + (i < clients % n ? 1 : 0), durationMs,
    }, durationMs + 60_000)));
    return { sent: sum(r.map((x) => x.sent)) };
  }

  heartbeats(intervalMs: number) {
    return Promise.all(this.children.map((c) => c.call('heartbeats', { intervalMs })));
  }

  stopHeartbeats() {
    return Promise.all(this.children.map((c) => c.call('stopHeartbeats')));
  }

  async alarms(durationMs: number, warmupMs: number, devices: number) {
    const n = this.children.length;
    const r = await Promise.all(this.children.map((c, i) => c.call<{ acked: number; latencies: number[]; timedOut: number; windowMs: number }>('alarms', {
      durationMs, warmupMs, devices: Math.floor(devices / n) + (i < devices % n ? 1 : 0),
    }, durationMs + 60_000)));
    return { acked: sum(r.map((x) => x.acked)), latencies: r.flatMap((x) => x.latencies), timedOut: sum(r.map((x) => x.timedOut)), windowMs: r[0]?.windowMs ?? 0 };
  }

  async storm(backoff: { initialMs: number; maxMs: number; factor: number }, connectTimeoutMs: number, maxMs: number) {
    const r = await Promise.all(this.children.map((c) => c.call<{ total: number; back: number; allBackMs: number | null; elapsedMs: number; firstAttemptMs: number | null; attempts: number; refused: number; failed: number }>('storm', {
      backoff, connectTimeoutMs, maxMs,
    }, maxMs + 60_000)));
    const total = sum(r.map((x) => x.total));
    const back = sum(r.map((x) => x.back));
    return {
      total,
      back,
      allBackMs: back === total && r.every((x) => x.allBackMs !== null) ? Math.max(...r.map((x) => x.allBackMs ?? 0)) : null,
      elapsedMs: Math.max(...r.map((x) => x.elapsedMs)),
      // generators start together (within an IPC round trip): the earliest first attempt of any of them
      firstAttemptMs: r.some((x) => x.firstAttemptMs !== null) ? Math.min(...r.filter((x) => x.firstAttemptMs !== null).map((x) => x.firstAttemptMs!)) : null,
      attempts: sum(r.map((x) => x.attempts)),
      refused: sum(r.map((x) => x.refused)),
      failed: sum(r.map((x) => x.failed)),
    };
  }

  async close(): Promise<void> {
    await Promise.all(this.children.map(async (c) => {
      await c.call('close', {}, 20_000).catch(() => undefined);
      await c.stop(5000);
    }));
  }
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
