// What every run leaves behind: one JSON document (machine-readable) from which the HTML page is drawn.
import type { LatencySummary } from '../core/stats.js';
import type { StatsSnapshot } from '../stats.js';
import type { ExpectationResult } from '../scenario/expect.js';
import type { CleanupResult } from '../scenario/cleanup.js';

export interface StepRecord {
  index: number;
  line: number;
  label: string;
  /** from the scenario */
  plannedMs: number;
  /** when it actually ran, ms after the start */
  actualMs: number;
  devices: number;
  error?: string;
}

export interface Sample {
  /** ms after the start (negative: while the fleet was powering on) */
  t: number;
  connected: number;
  alarmsSent: number;
  alarmsAcked: number;
  ackCommands: number;
}

export interface RunReport {
  tool: 'eldergate-sim';
  kind: 'scenario' | 'fleet';
  name: string;
  file?: string;
  description?: string;
  seed: number;
  scale?: number;
  gateway: { api: string; mqtt: string };
  startedAt: string;
  durationMs: number;
  passed: boolean;
  groups: { name: string; kind: string; count: number; sampleIds: string[] }[];
  steps: StepRecord[];
  expectations: ExpectationResult[];
  stats: StatsSnapshot;
  latency: {
    puback: { summary: LatencySummary; samples: number[] };
    incident: { summary: LatencySummary; samples: number[] };
    ackCommand: { summary: LatencySummary; samples: number[] };
  };
  samples: Sample[];
  notes: string[];
  /**
   * A scenario run is a test run (issue 13 §4): what it created is marked test on the gateway and, unless kept
   * (--keep), taken away at the end.
   */
  testRun?: {
    id: string;
    keep: boolean;
    /** stopped early (Ctrl-C): the report holds what happened until then */
    interrupted?: { atMs: number; reason: string };
    /** absent while not (yet) cleaned up, and when kept */
    cleanup?: CleanupResult;
  };
}
