// The poller over Modbus RTU: the simulator in another process on one end of a socat pseudo-terminal pair,
// the poller on the other.
import { afterEach, describe, expect, it } from 'vitest';
import { loadRegisterMap } from '../../gateway/adapters/modbus/register-map.js';
import { startModbusLink, type ModbusLink } from '../../gateway/adapters/modbus/poller.js';
import { deviceForChannels } from '../../gateway/adapters/modbus/config.js';
import { killAll, log, RecordingSink, socatPair, startSim, waitFor } from './helpers.js';

const links: ModbusLink[] = [];
afterEach(async () => {
  await Promise.all(links.splice(0).map((l) => l.close()));
  await killAll();
});

describe('Modbus poller over RTU through a socat pseudo-terminal pair', () => {
  it('raises a pull cord, restores it on reset, and loses and regains a unit that stops answering', async () => {
    const line = await socatPair();
    const { proc } = await startSim(['--map', 'pull-cord-panel', '--rtu-path', line.a, '--unit', '5', '--baud', '19200']);
    const sink = new RecordingSink();
    const link = startModbusLink({
      link: { transport: 'rtu', path: line.b, baudRate: 19200, parity: 'even' },
      unitId: 5,
      map: loadRegisterMap('pull-cord-panel'),
      pollMs: 100,
      timeoutMs: 500,
      retry: { initialMs: 100, maxMs: 500, failuresBeforeCommLost: 3, jitter: 0 },
      deviceFor: deviceForChannels({ deviceId: 'panel', channels: { '2': 'room-2' } }),
      sink,
      log,
      linkDeviceId: 'panel',
    });
    links.push(link);
    await waitFor('the baseline over RTU', () => link.stats().okPolls >= 2 || undefined, 30_000);
    expect(link.stats().blocks).toEqual([
      { table: 'coil', start: 0, length: 6 },
      { table: 'discrete', start: 8, length: 2 },
    ]);

    await proc.send('point cord-2 1');
    const [cord] = await sink.waitFor('the pull cord', (o) => o.type === 'pull-cord');
    expect(cord).toMatchObject({ deviceId: 'room-2', source: 'modbus', detail: { table: 'coil', register: 1, unitId: 5, value: 1 } });

    // the carer resets the cord at the panel: the latch coil goes back to 0
    await proc.send('set coil 1 0');
    const [restore] = await sink.waitFor('the reset', (o) => o.type === 'pull-cord' && o.restore === true);
    expect(restore!.deviceId).toBe('room-2');

    // mains lost on a normally-closed supervision contact (falling)
    await proc.send('point mains-present 0');
    const [power] = await sink.waitFor('power lost', (o) => o.type === 'power-lost');
    expect(power).toMatchObject({ deviceId: 'panel', detail: { table: 'discrete', register: 8 } });

    // the device stops answering (a hung unit on the line): comm-lost, then back
    await proc.send('silence on');
    await sink.waitFor('comm-lost', (o) => o.type === 'comm-lost');
    expect(link.stats().state).toBe('comm-lost');
    await proc.send('silence off');
    await sink.waitFor('comm-restored', (o) => o.type === 'comm-restored', 1, 30_000);
    expect(link.stats().state).toBe('ok');
    expect(sink.of('pull-cord')).toHaveLength(2);
  });

  it('a request to another unit id on the line gets no answer: timeouts, then comm-lost', async () => {
    const line = await socatPair();
    await startSim(['--map', 'gas-smoke-detector', '--rtu-path', line.a, '--unit', '3']);
    const sink = new RecordingSink();
    const link = startModbusLink({
      link: { transport: 'rtu', path: line.b, baudRate: 19200, parity: 'even' },
      unitId: 4,
      map: loadRegisterMap('gas-smoke-detector'),
      timeoutMs: 300,
      retry: { initialMs: 50, maxMs: 200, failuresBeforeCommLost: 2, jitter: 0 },
      deviceFor: () => 'detector',
      sink,
      log,
      linkDeviceId: 'detector',
    });
    links.push(link);
    const [lost] = await sink.waitFor('comm-lost', (o) => o.type === 'comm-lost');
    expect(lost!.detail).toMatchObject({ reason: 'timeout', unitId: 4, link: `rtu:${line.b}@19200` });
    expect(link.stats().okPolls).toBe(0);
  });
});
