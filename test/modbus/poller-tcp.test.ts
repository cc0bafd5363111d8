// The poller against the simulated device running in another process over Modbus TCP.
import { afterEach, describe, expect, it } from 'vitest';
import { loadRegisterMap } from '../../gateway/adapters/modbus/register-map.js';
import { startModbusLink, type ModbusLink, type ModbusLinkOptions } from '../../gateway/adapters/modbus/poller.js';
import { deviceForChannels } from '../../gateway/adapters/modbus/config.js';
import { startModbusAdapter, type ModbusAdapter } from '../../gateway/adapters/modbus/index.js';
import { ConfigError } from '../../core/errors.js';
import { killAll, log, RecordingSink, startSim, waitFor } from './helpers.js';

const links: (ModbusLink | ModbusAdapter)[] = [];
afterEach(async () => {
  await Promise.all(links.splice(0).map((l) => l.close()));
  await killAll();
});

function poll(port: number, mapName: string, sink: RecordingSink, over: Partial<ModbusLinkOptions> = {}) {
  const channels = { '1': 'mat-1', '2': 'mat-2', '3': 'mat-3', '4': 'mat-4' };
  const link = startModbusLink({
    link: { transport: 'tcp', host: '127.0.0.1', port },
    unitId: 1,
    map: loadRegisterMap(mapName),
    pollMs: 50,
    timeoutMs: 500,
    retry: { initialMs: 50, maxMs: 400, failuresBeforeCommLost: 3, jitter: 0 },
    deviceFor: deviceForChannels({ deviceId: 'controller', channels }),
    sink,
    log,
    linkDeviceId: 'controller',
    ...over,
  });
  links.push(link);
  return link;
}

describe('Modbus poller over TCP against the simulator process', () => {
  it('raises a bed exit, restores it, and raises at the first poll a bed that is already empty', async () => {
    const { proc, ready } = await startSim(['--map', 'bed-exit-controller', '--tcp-port', '0']);
    // bed 3 is empty before the gateway starts: that resident may be on the floor now
    await proc.send('point bed-3-exit 0');
    const sink = new RecordingSink();
    const link = poll(ready.port as number, 'bed-exit-controller', sink);

    const [first] = await sink.waitFor('the bed 3 exit found at the first poll', (o) => o.type === 'bed-exit');
    expect(first).toMatchObject({
      type: 'bed-exit',
      deviceId: 'mat-3',
      source: 'modbus',
      detail: { register: 0, table: 'input', bit: 2, value: 0, unitId: 1, channel: 3, point: 'bed-3-exit' },
    });
    expect(first!.restore).toBeUndefined();
    await waitFor('a few more polls', () => link.stats().okPolls >= 5 || undefined);
    expect(sink.observations).toHaveLength(1); // the other beds are occupied: the baseline raises nothing

    await proc.send('point bed-1-exit 0');
    await sink.waitFor('bed 1 exit', (o) => o.type === 'bed-exit' && o.deviceId === 'mat-1');
    await proc.send('point bed-1-exit 1');
    const [restore] = await sink.waitFor('bed 1 restore', (o) => o.deviceId === 'mat-1' && o.restore === true);
    expect(restore).toMatchObject({ type: 'bed-exit', restore: true, detail: { value: 1 } });

    // a channel-less point reports on the controller itself
    await proc.send('point controller-fault 1');
    const [fault] = await sink.waitFor('controller fault', (o) => o.type === 'device-fault');
    expect(fault!.deviceId).toBe('controller');

    // a level below its threshold carries the level
    await proc.send('point battery-low 12');
    const [battery] = await sink.waitFor('battery low', (o) => o.type === 'battery');
    expect(battery).toMatchObject({ type: 'battery', level: 12, deviceId: 'controller' });

    const polls = link.stats().okPolls;
    await waitFor('a few more polls', () => link.stats().okPolls >= polls + 3 || undefined);
    expect(sink.of('bed-exit', 'mat-1')).toHaveLength(2); // one raise, one restore: no repeats while unchanged
    // A poll may time out on a loaded machine (500 ms); fewer than three in a row is not a lost link.
    expect(link.stats()).toMatchObject({ state: 'ok', commLost: false, blocks: [{ table: 'input', start: 0, length: 3 }] });
    expect(sink.of('comm-lost')).toHaveLength(0);
  });

  it('submits in map order, one at a time, and never overlaps polls while the sink is slow', async () => {
    const { proc, ready } = await startSim(['--map', 'bed-exit-controller', '--tcp-port', '0']);
    const sink = new RecordingSink(150);
    const link = poll(ready.port as number, 'bed-exit-controller', sink, { pollMs: 20 });
    await waitFor('the baseline', () => link.stats().okPolls >= 2 || undefined);
    // all four beds empty in one register write: four changes seen by one poll
    await proc.send('set input 0 0');
    const exits = await sink.waitFor('four bed exits', (o) => o.type === 'bed-exit', 4);
    expect(exits.map((o) => o.deviceId)).toEqual(['mat-1', 'mat-2', 'mat-3', 'mat-4']);
    expect(sink.maxInFlight).toBe(1);
    await new Promise((r) => setTimeout(r, 300));
    expect(sink.of('bed-exit')).toHaveLength(4);
  });

  it('a change the sink fails to store is retried at the next poll, not lost', async () => {
    const { proc, ready } = await startSim(['--map', 'pull-cord-panel', '--tcp-port', '0']);
    const sink = new RecordingSink();
    const link = poll(ready.port as number, 'pull-cord-panel', sink);
    await waitFor('the baseline', () => link.stats().okPolls >= 2 || undefined);
    sink.failNext = 2;
    await proc.send('point cord-5 1');
    const [cord] = await sink.waitFor('the pull cord after the store recovered', (o) => o.type === 'pull-cord');
    expect(cord).toMatchObject({ deviceId: 'controller', detail: { table: 'coil', register: 4, channel: 5 } });
    expect(link.stats().sinkErrors).toBe(2);
    expect(sink.of('pull-cord')).toHaveLength(1);
  });

  it('a device the store refuses does not hold back the alarms of the others', async () => {
    const { proc, ready } = await startSim(['--map', 'bed-exit-controller', '--tcp-port', '0']);
    const sink = new RecordingSink();
    sink.refuse.add('mat-1');
    const link = poll(ready.port as number, 'bed-exit-controller', sink);
    await waitFor('the baseline', () => link.stats().okPolls >= 2 || undefined);
    await proc.send('set input 0 0');
    const exits = await sink.waitFor('the other beds', (o) => o.type === 'bed-exit', 3);
    expect(exits.map((o) => o.deviceId)).toEqual(['mat-2', 'mat-3', 'mat-4']);
    // bed 1 is retried at every poll until the store takes it
    const errors = link.stats().sinkErrors;
    await waitFor('retries of bed 1', () => link.stats().sinkErrors >= errors + 3 || undefined);
    sink.refuse.clear();
    await sink.waitFor('bed 1 at last', (o) => o.deviceId === 'mat-1');
    await new Promise((r) => setTimeout(r, 200));
    expect(sink.of('bed-exit')).toHaveLength(4);
  });

  it('a killed link is comm-lost once; the device back is comm-restored, and what changed meanwhile is seen', async () => {
    const first = await startSim(['--map', 'pull-cord-panel', '--tcp-port', '0']);
    const port = first.ready.port as number;
    const sink = new RecordingSink();
    const link = poll(port, 'pull-cord-panel', sink);
    await waitFor('the baseline', () => link.stats().okPolls >= 2 || undefined);

    await first.proc.kill('SIGKILL');
    const [lost] = await sink.waitFor('comm-lost', (o) => o.type === 'comm-lost');
    expect(lost).toMatchObject({ deviceId: 'controller', source: 'modbus', detail: { unitId: 1, link: `tcp://127.0.0.1:${port}` } });
    expect(link.stats()).toMatchObject({ state: 'comm-lost', commLost: true });
    // keep failing for a while: comm-lost is reported once, not once per retry
    const failed = link.stats().failedPolls;
    await waitFor('more failed polls', () => link.stats().failedPolls >= failed + 3 || undefined);
    expect(sink.of('comm-lost')).toHaveLength(1);

    // the panel comes back on the same port with cord 2 pulled while the link was down
    const second = await startSim(['--map', 'pull-cord-panel', '--tcp-port', String(port)]);
    await second.proc.send('point cord-2 1');
    const [restored] = await sink.waitFor('comm-restored', (o) => o.type === 'comm-restored');
    expect(restored).toMatchObject({ deviceId: 'controller', restore: true });
    const [cord] = await sink.waitFor('the cord pulled while the link was down', (o) => o.type === 'pull-cord');
    expect(sink.observations.indexOf(cord!)).toBeGreaterThan(sink.observations.indexOf(restored!));
    expect(link.stats()).toMatchObject({ state: 'ok', commLost: false, consecutiveFailures: 0 });
    expect(link.stats().connects).toBeGreaterThanOrEqual(2);
  });

  it("an exception for one register is that point's device-fault, once; the link stays up and the other points keep their rate", async () => {
    const { proc, ready } = await startSim(['--map', 'gas-smoke-detector', '--tcp-port', '0', '--trace']);
    const sink = new RecordingSink();
    const link = poll(ready.port as number, 'gas-smoke-detector', sink, {
      retry: { initialMs: 100, maxMs: 400, failuresBeforeCommLost: 3, jitter: 0 },
    });
    await waitFor('the baseline', () => link.stats().okPolls >= 2 || undefined);
    expect(link.stats().blocks).toEqual([{ table: 'holding', start: 0, length: 3 }]);
    // the status word (smoke, sensor fault, tamper bits) is refused: exception 02, as for a register the unit lacks
    await proc.send('fail holding 1 2');
    const [fault] = await sink.waitFor('device-fault for the refused register', (o) => o.type === 'device-fault');
    expect(fault).toMatchObject({ deviceId: 'controller', source: 'modbus' });
    expect(fault!.restore).toBeUndefined();
    expect(fault!.detail).toMatchObject({ exceptionCode: 2, table: 'holding', register: 1, point: 'smoke-alarm', points: ['smoke-alarm', 'sensor-fault', 'tamper'] });
    // the refused address is left out of the blocks: its neighbours are read without it, it is asked alone now and then
    expect(link.stats().blocks).toEqual([{ table: 'holding', start: 0, length: 1 }, { table: 'holding', start: 2, length: 1 }]);
    expect(link.stats().refusedAddresses).toEqual(['holding:1']);
    const exceptions = () => proc.lines.filter((l) => l.event === 'exception').length;
    const e0 = exceptions();
    const p0 = link.stats().okPolls;
    const t0 = Date.now();
    await waitFor('30 more polls', () => link.stats().okPolls >= p0 + 30 || undefined);
    // before: every poll asked the block (refused) and then each of its addresses (one refused) — 2 exceptions a
    // poll, 60 here; now one request every retry.maxMs (400 ms) however fast the polls, whatever the machine's speed
    expect(exceptions() - e0).toBeLessThanOrEqual(Math.ceil((Date.now() - t0) / 400) + 1);
    await waitFor('a probe of the refused address', () => (exceptions() > e0 ? true : undefined));
    expect(link.stats().exceptions).toBeGreaterThanOrEqual(exceptions());

    // the same block's other registers are still read: CO rises while the status word is refused
    await proc.send('point co-ppm 80');
    const [gas] = await sink.waitFor('gas read beside the refused register', (o) => o.type === 'gas');
    expect(gas!.detail).toMatchObject({ value: 80, register: 0 });
    // reported once, the link never lost, polls at the normal rate (no back-off: no failed poll at all)
    expect(sink.of('device-fault')).toHaveLength(1);
    expect(sink.of('comm-lost')).toEqual([]);
    expect(link.stats()).toMatchObject({ state: 'ok', commLost: false, failedPolls: 0, consecutiveFailures: 0, pointFaults: ['smoke-alarm', 'sensor-fault', 'tamper'] });

    // meanwhile smoke was detected: it is raised as soon as the register can be read again, and the fault restored
    await proc.send('point smoke-alarm 1');
    await proc.send('unfail holding 1');
    const [restored] = await sink.waitFor('device-fault restored', (o) => o.type === 'device-fault' && o.restore === true);
    expect(restored).toMatchObject({ deviceId: 'controller', detail: { points: ['smoke-alarm', 'sensor-fault', 'tamper'] } });
    const [smoke] = await sink.waitFor('smoke', (o) => o.type === 'smoke');
    expect(smoke).toMatchObject({ deviceId: 'controller', detail: { register: 1, bit: 0, table: 'holding' } });
    expect(link.stats().pointFaults).toEqual([]);
    expect(sink.of('comm-lost')).toEqual([]);
    // and it is read with its block again
    expect(link.stats().blocks).toEqual([{ table: 'holding', start: 0, length: 3 }]);
    expect(link.stats().refusedAddresses).toEqual([]);
  });

  it('a device that stops answering times out into comm-lost and back', async () => {
    const { proc, ready } = await startSim(['--map', 'gas-smoke-detector', '--tcp-port', '0']);
    const sink = new RecordingSink();
    const link = poll(ready.port as number, 'gas-smoke-detector', sink, { timeoutMs: 200 });
    await waitFor('the baseline', () => link.stats().okPolls >= 2 || undefined);
    await proc.send('silence on');
    const [lost] = await sink.waitFor('comm-lost after timeouts', (o) => o.type === 'comm-lost');
    expect(lost!.detail).toMatchObject({ reason: 'timeout' });
    expect(link.stats().timeouts).toBeGreaterThanOrEqual(3);
    await proc.send('point co-ppm 80');
    await proc.send('silence off');
    await sink.waitFor('comm-restored', (o) => o.type === 'comm-restored');
    const [gas] = await sink.waitFor('gas', (o) => o.type === 'gas');
    expect(gas!.detail).toMatchObject({ value: 80, raw: 800, unit: 'ppm' });
  });

  it('close() stops polling promptly even while a request is unanswered', async () => {
    const { proc, ready } = await startSim(['--map', 'gas-smoke-detector', '--tcp-port', '0']);
    const sink = new RecordingSink();
    const link = poll(ready.port as number, 'gas-smoke-detector', sink, { timeoutMs: 1000 });
    await waitFor('the baseline', () => link.stats().okPolls >= 1 || undefined);
    await proc.send('silence on');
    await new Promise((r) => setTimeout(r, 100));
    const t0 = Date.now();
    await link.close();
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(link.stats().state).toBe('closed');
    const polls = link.stats().polls;
    await new Promise((r) => setTimeout(r, 300));
    expect(link.stats().polls).toBe(polls);
  });

  it('starts from the gateway configuration entries, or refuses them all naming every bad field', async () => {
    const { proc, ready } = await startSim(['--map', 'bed-exit-controller', '--tcp-port', '0', '--unit', '9']);
    const sink = new RecordingSink();
    expect(() =>
      startModbusAdapter([{ name: 'ward-a', deviceId: 'ctl', link: { transport: 'tcp', host: '127.0.0.1', port: 0 }, map: 'bed-exit-controler' }], { sink, log }),
    ).toThrow(ConfigError);
    const adapter = startModbusAdapter(
      [
        {
          name: 'ward-a',
          deviceId: 'ctl',
          link: { transport: 'tcp', host: '127.0.0.1', port: ready.port },
          unitId: 9,
          map: 'bed-exit-controller',
          pollMs: 50,
          channels: { '1': 'mat-1', '2': 'mat-2', '3': 'mat-3', '4': 'mat-4' },
        },
      ],
      { sink, log },
    );
    links.push(adapter);
    await waitFor('the baseline', () => adapter.stats()[0]!.okPolls >= 2 || undefined);
    await proc.send('point bed-4-exit 0');
    const [exit] = await sink.waitFor('bed 4 exit', (o) => o.type === 'bed-exit');
    expect(exit).toMatchObject({ deviceId: 'mat-4', detail: { unitId: 9 } });
    expect(adapter.stats()[0]).toMatchObject({ name: 'ward-a', state: 'ok' });
  });
});
