// A scenario after parsing: durations in milliseconds, targets resolved to groups, every item with its line.
import type { ResidentSpec } from '../provision.js';
import type { ScenarioKind } from './schema.js';

export interface Target {
  /** as written: all, phones, phones[0], phones[0..9] */
  text: string;
  group: string | 'all';
  /** inclusive index range inside the group; undefined = the whole group */
  from?: number;
  to?: number;
}

export interface Group {
  name: string;
  /** an MQTT terminal (call-phone, fall-sensor, locator) or a terminal of the gateway's own protocols (watch, jt808, dc09) */
  kind: ScenarioKind;
  count: number;
  resident: ResidentSpec | null;
  heartbeatS?: number;
  keepaliveS?: number;
  positionS?: number;
  battery?: number;
  drainPerHour?: number;
  autoConnect: boolean;
  line: number;
}

export type Action =
  | { kind: 'connect'; target: Target; count?: number; rampMs?: number }
  | { kind: 'disconnect'; target: Target; count?: number; forMs?: number }
  | { kind: 'silence'; target: Target; count?: number; forMs?: number; mode: 'dead' | 'mute' }
  | { kind: 'flap'; target: Target; count?: number; times: number; periodMs: number }
  | { kind: 'reboot'; target: Target; count?: number }
  | { kind: 'sos'; target: Target; count?: number }
  | { kind: 'fall'; target: Target; count?: number; confidence?: number }
  | { kind: 'cancel'; target: Target; count?: number }
  | { kind: 'event'; target: Target; count?: number; type: string; data?: Record<string, unknown> }
  | { kind: 'walk-out-of-zone'; target: Target; count?: number; overMs: number; distanceM?: number }
  | { kind: 'return-home'; target: Target; count?: number; overMs: number }
  | { kind: 'battery'; target: Target; count?: number; level: number }
  | { kind: 'position'; target: Target; count?: number; lat?: number; lon?: number }
  | { kind: 'heartbeat'; target: Target; count?: number }
  | { kind: 'command'; target: Target; count?: number; type: string; params?: Record<string, unknown> }
  | { kind: 'acknowledge'; target: Target; count?: number; type?: string }
  | { kind: 'wait'; ms: number };

export type Expectation = { line: number; text: string } & (
  | {
      kind: 'incident';
      device?: Target;
      type: string;
      priority?: string;
      status?: string;
      test?: boolean;
      withinMs: number;
    }
  | { kind: 'no-incident'; device?: Target; type?: string; priority?: string; withinMs?: number }
  | { kind: 'latency'; metric: 'puback' | 'incident' | 'ack-command'; bounds: Partial<Record<'p50' | 'p90' | 'p99' | 'max', number>> }
  | { kind: 'delivered'; device?: Target; withinMs: number }
  | { kind: 'connected'; device?: Target; count?: number; withinMs: number }
  | { kind: 'command'; device?: Target; type: string; withinMs: number }
  | { kind: 'cleared'; device?: Target; type: string; withinMs: number }
);

export interface Step {
  index: number;
  line: number;
  atMs: number;
  label: string;
  action: Action;
  expect: Expectation[];
}

export interface Scenario {
  file: string;
  name: string;
  description?: string;
  seed?: number;
  settleMs: number;
  firmware: {
    backoffInitialMs?: number;
    backoffMaxMs?: number;
    ackTimeoutMs?: number;
    connectRate?: number;
    willRetain?: boolean;
  };
  groups: Group[];
  steps: Step[];
  expect: Expectation[];
}
