// Shared fixtures for the response tests: a real SQLite file with the committed migrations, a manual clock,
// and a small network tree.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore, type Store } from '../../core/db.js';
import { Bus } from '../../core/bus.js';
import { loadConfig, type Config } from '../../core/config.js';
import { createLogger, type Logger } from '../../core/logger.js';
import type { AlarmAction, AlarmSource, IncidentEvent } from '../../core/contracts.js';
import { createManualClock, type ManualClock } from '../../response/clock.js';
import { createResponse, type Response } from '../../response/index.js';
import type { Network } from '../../response/network.js';

export const log = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');

export function tempDir(): { dir: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'eldergate-response-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export function testConfig(overrides: Record<string, unknown> = {}): Readonly<Config> {
  return loadConfig({}, overrides);
}

export interface Harness {
  dir: string;
  file: string;
  store: Store;
  bus: Bus;
  clock: ManualClock;
  config: Readonly<Config>;
  response: Response;
  /** every incident event emitted on the bus, in order */
  seen: (IncidentEvent & { unitId: string | null })[];
  close(): Promise<void>;
}

export function openHarness(opts: {
  dir?: string;
  clock?: ManualClock;
  config?: Record<string, unknown>;
  start?: boolean;
  webhook?: { timeoutMs?: number };
  log?: Logger;
} = {}): Harness {
  const tmp = opts.dir ? undefined : tempDir();
  const dir = opts.dir ?? tmp!.dir;
  const file = join(dir, 'eldergate.db');
  const store = openStore(file);
  const bus = new Bus();
  const clock = opts.clock ?? createManualClock();
  const config = testConfig(opts.config);
  const response = createResponse({ store, bus, config, log: opts.log ?? log, clock, ...(opts.webhook ? { webhook: opts.webhook } : {}) });
  const seen: Harness['seen'] = [];
  bus.on('incident-event', (e) => seen.push(e));
  if (opts.start !== false) response.start();
  return {
    dir, file, store, bus, clock, config, response, seen,
    async close() {
      await response.close();
      store.close();
    },
  };
}

/**
 * district d1 → street s1 → community c1 → grid g1, g2; street s2 → community c2 → grid g3.
 * A second district d2 → street s3 → community c3 → grid g4.
 */
export function buildTree(network: Network) {
  network.createUnit({ id: 'd1', name: 'District North', tier: 'district' });
  network.createUnit({ id: 's1', name: 'Street One', tier: 'street', parentId: 'd1' });
  network.createUnit({ id: 'c1', name: 'Community One', tier: 'community', parentId: 's1' });
  network.createUnit({ id: 'g1', name: 'Grid One', tier: 'grid', parentId: 'c1' });
  network.createUnit({ id: 'g2', name: 'Grid Two', tier: 'grid', parentId: 'c1' });
  network.createUnit({ id: 's2', name: 'Street Two', tier: 'street', parentId: 'd1' });
  network.createUnit({ id: 'c2', name: 'Community Two', tier: 'community', parentId: 's2' });
  network.createUnit({ id: 'g3', name: 'Grid Three', tier: 'grid', parentId: 'c2' });
  network.createUnit({ id: 'd2', name: 'District South', tier: 'district' });
  network.createUnit({ id: 's3', name: 'Street Three', tier: 'street', parentId: 'd2' });
  network.createUnit({ id: 'c3', name: 'Community Three', tier: 'community', parentId: 's3' });
  network.createUnit({ id: 'g4', name: 'Grid Four', tier: 'grid', parentId: 'c3' });
}

export function source(over: Partial<AlarmSource> = {}, now = Date.now()): AlarmSource {
  return {
    deviceId: 'dev-1',
    residentId: null,
    unitId: 'g1',
    stamps: { deviceTs: now - 50, received: now - 5, ruleEvaluated: now - 2 },
    ...over,
  };
}

export const sos = (over: Partial<Extract<AlarmAction, { action: 'raise' }>> = {}): AlarmAction => ({
  action: 'raise', type: 'sos', priority: 'P1', rule: 'sos', ...over,
});

/** Apply an alarm the way ingest does: inside a transaction, published after commit. */
export function ingest(h: Harness, action: AlarmAction, src: AlarmSource) {
  const events = h.store.sqlite.transaction(() => h.response.incidents.applyAlarm(action, src)).immediate();
  h.response.incidents.publishCommitted(events);
  return events;
}

export async function waitFor<T>(what: string, fn: () => T | undefined | false, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The two look-ups planEscalation needs, over a chain of units given as [id, tier, parentId]. */
export function chainNetwork(chain: [id: string, tier: string, parentId: string | null][]) {
  const units = new Map(chain.map(([id, tier, parentId]) => [id, { id, tier, parentId }]));
  return {
    getUnit: (id: string) => units.get(id) as never,
    parentOf: (id: string) => {
      const p = units.get(id)?.parentId;
      return (p ? units.get(p) : undefined) as never;
    },
  };
}
