// The Modbus adapter inside a real gateway (real SQLite file, rules, incidents) against the simulated device in its own
// process: a link lost before a restart is cleared after it; a point the unit refuses is that device's fault card,
// carried over a restart and cleared when the point reads again, while the link stays up.
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../core/config.js';
import { createLogger } from '../../core/logger.js';
import { startEldergate, type Eldergate } from '../../eldergate.js';
import { startTestGateway, waitFor } from '../helpers/gateway.js';
import { killAll, startSim } from './helpers.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await killAll();
});

async function gatewayWithLink(dataDir: string, port: number, deviceId: string): Promise<Eldergate> {
  const config = loadConfig({}, {
    dataDir, logLevel: process.env.TEST_LOG_LEVEL ?? 'silent',
    mqtt: { port: 0, host: '127.0.0.1' }, http: { port: 0, host: '127.0.0.1' },
    modbus: [{
      name: 'detector', deviceId, link: { transport: 'tcp', host: '127.0.0.1', port }, unitId: 1, map: 'gas-smoke-detector',
      pollMs: 100, timeoutMs: 300, retry: { initialMs: 50, maxMs: 300, failuresBeforeCommLost: 3, jitter: 0 },
    }],
  });
  return startEldergate({ config, log: createLogger(config.logLevel) });
}

const open = (gw: Eldergate, deviceId: string) => gw.response.incidents.list({ status: ['open'], deviceId }).items;

describe('Modbus link in the running gateway', () => {
  it('a link lost before a restart, and a refused point, are cleared after it when the unit answers again', { timeout: 90_000 }, async () => {
    const t = await startTestGateway();
    cleanups.push(() => t.stop());
    const detector = await t.provision('modbus', 'DETECTOR-1');
    const { proc, ready } = await startSim(['--map', 'gas-smoke-detector', '--tcp-port', '0']);
    await t.gw.close();

    let gw = await gatewayWithLink(t.dataDir, ready.port as number, detector.id);
    await waitFor(() => (gw.modbus.stats()[0]?.okPolls ?? 0) >= 2, 'the first polls');
    // the status word is refused (exception 02): a device-fault card, the link up
    await proc.send('fail holding 1 2');
    await waitFor(() => open(gw, detector.id).find((i) => i.type === 'device-fault'), 'the device-fault card', 20_000);
    // a refused point is not a failed poll: the link stays up (a poll may still time out on a loaded machine — 300 ms
    // here — but fewer than the failures it takes to call the link lost)
    const stats = gw.modbus.stats()[0]!;
    expect(stats.commLost).toBe(false);
    expect(stats.failedPolls).toBeLessThan(3);
    // then the unit stops answering: comm-lost
    await proc.send('silence on');
    await waitFor(() => open(gw, detector.id).find((i) => i.type === 'comm-lost'), 'the comm-lost card', 20_000);

    await gw.close();
    gw = await gatewayWithLink(t.dataDir, ready.port as number, detector.id);
    cleanups.push(() => gw.close());
    expect(open(gw, detector.id).map((i) => i.type).sort()).toEqual(['comm-lost', 'device-fault']);
    expect(gw.modbus.stats()[0]).toMatchObject({ commLost: true, pointFaults: ['smoke-alarm', 'sensor-fault', 'tamper'] });

    // the unit answers again, the register too: both cards clear
    await proc.send('unfail holding 1');
    await proc.send('silence off');
    await waitFor(() => open(gw, detector.id).length === 0, 'both cards to clear', 20_000);
    // the poller's own view follows once its write is answered (the cards may clear a moment before)
    await waitFor(() => (!gw.modbus.stats()[0]!.commLost && gw.modbus.stats()[0]!.pointFaults.length === 0) || undefined, 'the poller\'s link and points clear', 10_000);
    expect(gw.modbus.stats()[0]).toMatchObject({ commLost: false, pointFaults: [] });
    const rows = gw.store.sqlite.prepare(`SELECT type, json_extract(data, '$.restore') AS restore FROM observations WHERE device_id = ? ORDER BY id`).all(detector.id);
    expect(rows).toEqual([
      { type: 'device-fault', restore: null },
      { type: 'comm-lost', restore: null },
      { type: 'comm-restored', restore: 1 },
      { type: 'device-fault', restore: 1 },
    ]);
  });
});
