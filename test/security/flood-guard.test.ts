// The cluster-mode flood guard's rule (gateway/cluster/flood-guard.ts), reading by reading: closed only after staying
// over its rate for mqtt.publishOverRateCloseMs, a dip back within it starts the count afresh, a close that fails is
// tried again, nothing is closed after close(). The management API is a stand-in here: its readings are set per step.
// The real API, a real RabbitMQ node and real devices are in test/cluster/flood-guard.test.ts.
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../core/config.js';
import { ConfigError } from '../../core/errors.js';
import { createLogger } from '../../core/logger.js';
import { createMetrics } from '../../core/metrics.js';
import { startFloodGuard } from '../../gateway/cluster/flood-guard.js';

const config = loadConfig({}, { mqtt: { publishRatePerS: 20, publishOverRateCloseMs: 3000 }, rabbitmq: { floodCheckMs: 0 } });

function rig() {
  let clock = 0;
  let rates: Record<string, number> = {};
  let failClose = 0;
  const closed: string[] = [];
  const metrics = createMetrics();
  const guard = startFloodGuard({
    config, log: createLogger('silent'), metrics, now: () => clock,
    management: {
      topPublishers: async () => Object.entries(rates).map(([deviceId, ratePerS]) => ({ deviceId, ratePerS })).sort((a, b) => b.ratePerS - a.ratePerS),
      closeConnections: async (deviceId) => {
        if (failClose > 0) { failClose--; throw new Error('HTTP 503'); }
        closed.push(deviceId);
        return 1;
      },
      brokerVersion: async () => '3.10.8',
    },
  });
  /** one reading at `at` ms with these rates; the devices it closed */
  const read = async (at: number, now: Record<string, number>) => { clock = at; rates = now; return guard.check(); };
  return { guard, read, closed, metrics, failNextClose: (n: number) => { failClose = n; } };
}

describe('the flood guard\'s rule', () => {
  it('closes a device only once it stayed over its rate for publishOverRateCloseMs; at the rate is within it', async () => {
    const r = rig();
    expect(await r.read(0, { flooder: 200, calm: 20, quiet: 1 })).toEqual([]);
    expect(await r.read(2000, { flooder: 200, calm: 20 })).toEqual([]);
    expect(await r.read(3000, { flooder: 200, calm: 20 })).toEqual(['flooder']);
    // closed: the count starts again if it comes back flooding
    expect(await r.read(4000, { flooder: 200 })).toEqual([]);
    expect(await r.read(7000, { flooder: 200 })).toEqual(['flooder']);
    expect(r.closed).toEqual(['flooder', 'flooder']);
    expect(await r.metrics.registry.getSingleMetricAsString('eldergate_connections_refused_total')).toMatch(/listener="rabbitmq",reason="over-rate"} 2/);
  });

  it('a reading back within its rate starts the count afresh', async () => {
    const r = rig();
    await r.read(0, { bursty: 100 });
    await r.read(2500, { bursty: 10 });
    expect(await r.read(3500, { bursty: 100 })).toEqual([]);
    expect(await r.read(6000, { bursty: 100 })).toEqual([]);
    expect(await r.read(6500, { bursty: 100 })).toEqual(['bursty']);
  });

  it('a close that fails is tried again at the next reading', async () => {
    const r = rig();
    r.failNextClose(1);
    await r.read(0, { flooder: 200 });
    expect(await r.read(3000, { flooder: 200 })).toEqual([]);
    expect(await r.read(4000, { flooder: 200 })).toEqual(['flooder']);
  });

  it('closes nothing once stopped', async () => {
    const r = rig();
    await r.read(0, { flooder: 200 });
    await r.guard.close();
    expect(await r.read(5000, { flooder: 200 })).toEqual([]);
    expect(r.closed).toEqual([]);
  });

  it('refuses to read RabbitMQ\'s statistics more often than once a second', () => {
    expect(() => loadConfig({}, { rabbitmq: { floodCheckMs: 200 } })).toThrow(ConfigError);
    expect(() => loadConfig({}, { rabbitmq: { floodCheckMs: 200 } })).toThrow(/floodCheckMs: 200 ms is too often/);
    expect(loadConfig({}, { rabbitmq: { floodCheckMs: 0 } }).rabbitmq.floodCheckMs).toBe(0);
  });
});
