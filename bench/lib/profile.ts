// How big and how long each figure runs. `quick` (npm run bench) is a few minutes on 2 cores; `full` is the
// issue's sizes where one machine can hold them; `smoke` only proves the harness works (npm test, no thresholds).
import { NOISE_RULE, type NoiseRule } from './sched.js';

export type ProfileName = 'smoke' | 'quick' | 'full';

export interface Profile {
  name: ProfileName;
  /** options that changed this profile's sizes (`--in-memory=…`), repeated in every figure's command */
  overrides?: string[];
  /** clean repetitions of each measured interval; figures report the median and the range over them */
  reps: number;
  /** repetitions allowed beyond `reps` to replace ones discarded as noisy */
  extraAttempts: number;
  /** when a repetition is noisy (bench/lib/sched.ts) */
  noise: NoiseRule;
  /** systems of figures 3 and 4 (TCP fleet, storm, in memory); all of them unless given */
  fleetSystems?: ('eldergate' | 'raw-aedes')[];
  /** figure 7: consoles attached (real WebSocket clients, each its own operator, acking) */
  consoles: number;
  /** figure 8: bench/retention-size.ts arguments — terminals, heartbeat minutes, retention days, simulated days */
  dbGrowth: { terminals: number; heartbeatMin: number; retentionDays: number; days: number };
  latency: {
    /** provisioned devices sending the background telemetry */
    backgroundDevices: number;
    ratesPerS: number[];
    durationMs: number;
    warmupMs: number;
    probeDevices: number;
    probeRatePerS: number;
  };
  ingest: { publishers: number; durationMs: number; warmupMs: number };
  durable: { devices: number; durationMs: number; warmupMs: number };
  terminals: {
    /**
     * real TCP connections held by the gateway: with 20,000 descriptors per process eldergate admits ~14.8k MQTT
     * connections (core/limits.ts keeps a reserve and the HTTP share; beyond it CONNECTs are refused, as designed)
     */
    tcp: number;
    heartbeatMs: number;
    steadyMs: number;
    /** in-memory duplex streams in one process (the gateway's own cost beyond the fd limit) */
    inMemory: number[];
  };
  /**
   * figure 4: `repeats` storms one after another on the same connected fleet (one run says little: runs of the same
   * system spread by a second or more); the figure reports every run and judges the median
   */
  storm: { devices: number; repeats: number; backoff: { initialMs: number; maxMs: number; factor: number }; maxMs: number; connectTimeoutMs: number };
  profileMs: number;
  generators: number;
  /** figure 6: SOS PUBACK latency while a CSV import of `rows` lines runs; one SOS every `everyMs` */
  importStall: { rows: number; everyMs: number; baselineMs: number };
}

const FIRMWARE_BACKOFF = { initialMs: 1000, maxMs: 60_000, factor: 2 };

export const PROFILES: Record<ProfileName, Profile> = {
  smoke: {
    name: 'smoke',
    reps: 1,
    // the smoke proves the harness, not the numbers: a noisy repetition is marked, never run again
    extraAttempts: 0,
    noise: NOISE_RULE,
    consoles: 3,
    dbGrowth: { terminals: 20, heartbeatMin: 60, retentionDays: 1, days: 2 },
    // the baselines' fleet and in-memory paths are the same code as eldergate's: the smoke (≤ 90 s) runs them once
    fleetSystems: ['eldergate'],
    latency: { backgroundDevices: 20, ratesPerS: [200], durationMs: 1200, warmupMs: 300, probeDevices: 5, probeRatePerS: 20 },
    ingest: { publishers: 4, durationMs: 800, warmupMs: 200 },
    // long enough for a PUBACK after the ingest flood's backlog is written, on a busy machine
    durable: { devices: 5, durationMs: 1500, warmupMs: 200 },
    terminals: { tcp: 60, heartbeatMs: 1000, steadyMs: 600, inMemory: [200] },
    storm: { devices: 60, repeats: 2, backoff: { initialMs: 200, maxMs: 2000, factor: 2 }, maxMs: 20_000, connectTimeoutMs: 5000 },
    profileMs: 600,
    generators: 1,
    importStall: { rows: 500, everyMs: 20, baselineMs: 300 },
  },
  quick: {
    name: 'quick',
    reps: 2,
    extraAttempts: 3,
    noise: NOISE_RULE,
    consoles: 20,
    dbGrowth: { terminals: 1000, heartbeatMin: 15, retentionDays: 3, days: 5 },
    // ≥ 1,000 measured alarms per repetition: 200/s for 6 s after 2 s of warm-up
    latency: { backgroundDevices: 1000, ratesPerS: [1000, 5000, 10_000], durationMs: 8000, warmupMs: 2000, probeDevices: 50, probeRatePerS: 200 },
    ingest: { publishers: 10, durationMs: 6000, warmupMs: 2000 },
    durable: { devices: 500, durationMs: 5000, warmupMs: 1000 },
    terminals: { tcp: 3000, heartbeatMs: 30_000, steadyMs: 8000, inMemory: [10_000, 20_000] },
    // as many as eldergate's descriptor budget admits here: the storm's dynamics (a burst far above the connect rate, timeouts,
    // back-off) show only at scale — 3,000 came back in 2 s; 14,000 take 4.1–6.2 s (bench/analysis.md)
    storm: { devices: 14_000, repeats: 3, backoff: FIRMWARE_BACKOFF, maxMs: 120_000, connectTimeoutMs: 10_000 },
    profileMs: 6000,
    generators: 2,
    importStall: { rows: 50_000, everyMs: 20, baselineMs: 2000 },
  },
  full: {
    name: 'full',
    reps: 3,
    extraAttempts: 4,
    noise: NOISE_RULE,
    consoles: 20,
    dbGrowth: { terminals: 1000, heartbeatMin: 15, retentionDays: 3, days: 8 },
    latency: { backgroundDevices: 2000, ratesPerS: [1000, 5000, 10_000], durationMs: 30_000, warmupMs: 5000, probeDevices: 100, probeRatePerS: 100 },
    ingest: { publishers: 10, durationMs: 15_000, warmupMs: 3000 },
    durable: { devices: 1000, durationMs: 15_000, warmupMs: 3000 },
    terminals: { tcp: 14_000, heartbeatMs: 60_000, steadyMs: 20_000, inMemory: [50_000, 100_000] },
    storm: { devices: 14_000, repeats: 5, backoff: FIRMWARE_BACKOFF, maxMs: 300_000, connectTimeoutMs: 10_000 },
    profileMs: 15_000,
    generators: 2,
    importStall: { rows: 50_000, everyMs: 10, baselineMs: 5000 },
  },
};
