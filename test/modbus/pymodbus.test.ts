// The poller against a Modbus TCP server that is not our code: Debian's pymodbus, run by Debian's own Python.
import { afterEach, describe, expect, it } from 'vitest';
import { loadRegisterMap, parseRegisterMap } from '../../gateway/adapters/modbus/register-map.js';
import { startModbusLink, type ModbusLink } from '../../gateway/adapters/modbus/poller.js';
import type { RegisterMap } from '../../gateway/adapters/modbus/register-map.js';
import { killAll, log, RecordingSink, requireTool, startLineProcess, waitFor } from './helpers.js';

// pymodbus is installed for Debian's interpreter; the python3 first on PATH may be another one that cannot see it
const PYTHON = '/usr/bin/python3';
const links: ModbusLink[] = [];
afterEach(async () => {
  await Promise.all(links.splice(0).map((l) => l.close()));
  await killAll();
});

async function startPymodbus() {
  requireTool([PYTHON, '-c', 'import pymodbus.server, pymodbus.datastore'], 'python3-pymodbus');
  return startLineProcess(PYTHON, ['test/modbus/pymodbus_server.py', '--size', '100'], 'the pymodbus server');
}

function poll(port: number, map: RegisterMap, sink: RecordingSink) {
  const link = startModbusLink({
    link: { transport: 'tcp', host: '127.0.0.1', port },
    unitId: 1,
    map,
    pollMs: 50,
    timeoutMs: 1000,
    retry: { initialMs: 50, maxMs: 300, failuresBeforeCommLost: 3, jitter: 0 },
    deviceFor: (channel) => (channel === undefined ? 'detector' : `ch-${channel}`),
    sink,
    log,
    linkDeviceId: 'detector',
  });
  links.push(link);
  return link;
}

describe('Modbus poller against pymodbus', () => {
  it('reads holding registers: a scaled gas level crossing its threshold and back, a smoke bit', async () => {
    const { proc, ready } = await startPymodbus();
    // the device is quiet: battery full
    await proc.send('set holding 2 100');
    const sink = new RecordingSink();
    const link = poll(ready.port as number, loadRegisterMap('gas-smoke-detector'), sink);
    await waitFor('polls of pymodbus', () => link.stats().okPolls >= 3 || undefined);
    expect(sink.observations).toEqual([]);

    await proc.send('set holding 0 812'); // 81.2 ppm
    const [gas] = await sink.waitFor('gas', (o) => o.type === 'gas');
    expect(gas).toMatchObject({ deviceId: 'detector', source: 'modbus', detail: { register: 0, table: 'holding', value: 81.2, raw: 812, unit: 'ppm', unitId: 1 } });
    await proc.send('set holding 1 1'); // status word bit 0: smoke
    await sink.waitFor('smoke', (o) => o.type === 'smoke');
    await proc.send('set holding 0 300');
    const [restore] = await sink.waitFor('gas restored', (o) => o.type === 'gas' && o.restore === true);
    expect(restore!.detail).toMatchObject({ value: 30 });
    expect(link.stats()).toMatchObject({ state: 'ok', failedPolls: 0 });
  });

  it('reads coils, discrete inputs and input registers', async () => {
    const { proc, ready } = await startPymodbus();
    const map = parseRegisterMap(
      {
        name: 'mixed',
        model: 'pymodbus',
        pollMs: 50,
        points: [
          { name: 'cord', table: 'coil', address: 3, observation: 'pull-cord', trigger: 'rising', channel: 1 },
          { name: 'mains', table: 'discrete', address: 40, observation: 'power-lost', trigger: 'falling', restore: true },
          { name: 'signal', table: 'input', address: 7, observation: 'signal', trigger: 'change', offset: -100 },
        ],
      },
      'mixed',
    );
    await proc.send('set discrete 40 1');
    await proc.send('set input 7 40');
    const sink = new RecordingSink();
    const link = poll(ready.port as number, map, sink);
    await waitFor('polls of pymodbus', () => link.stats().okPolls >= 3 || undefined);
    expect(sink.observations).toEqual([]);
    await proc.send('set coil 3 1');
    await proc.send('set discrete 40 0');
    await proc.send('set input 7 35');
    await sink.waitFor('three changes', () => true, 3);
    expect(sink.observations.map((o) => o.type).sort()).toEqual(['power-lost', 'pull-cord', 'signal']);
    expect(sink.of('pull-cord')[0]!.deviceId).toBe('ch-1');
    expect(sink.of('signal')[0]).toMatchObject({ level: -65 });
  });

  it("pymodbus's exception for an address it does not have is that point's device-fault, not a lost link: a pull cord beside it is still heard", async () => {
    const { proc, ready } = await startPymodbus();
    const map = parseRegisterMap(
      {
        name: 'too-far',
        model: 'pymodbus',
        pollMs: 50,
        points: [
          { name: 'cord', table: 'holding', address: 5, observation: 'pull-cord', trigger: 'rising', channel: 1 },
          { name: 'beyond', table: 'holding', address: 500, observation: 'gas', trigger: { above: 1 }, channel: 7 },
        ],
      },
      'too-far',
    );
    const sink = new RecordingSink();
    const link = poll(ready.port as number, map, sink);
    const [fault] = await sink.waitFor('device-fault of the point beyond the table', (o) => o.type === 'device-fault');
    expect(fault).toMatchObject({ deviceId: 'ch-7', detail: { point: 'beyond', exceptionCode: 2, table: 'holding', register: 500 } });
    await waitFor('more polls', () => link.stats().okPolls >= 10 || undefined);
    // the cord is pulled: heard at the normal rate, as if nothing were wrong next to it
    await proc.send('set holding 5 1');
    const [cord] = await sink.waitFor('pull-cord', (o) => o.type === 'pull-cord');
    expect(cord!.deviceId).toBe('ch-1');
    expect(sink.of('device-fault')).toHaveLength(1);
    expect(sink.of('comm-lost')).toEqual([]);
    expect(link.stats()).toMatchObject({ state: 'ok', commLost: false, failedPolls: 0, pointFaults: ['beyond'] });
    expect(link.stats().nextDelayMs).toBeLessThanOrEqual(50);
    // the address pymodbus lacks is out of the read plan, asked alone at the back-off ceiling's rate (300 ms here)
    expect(link.stats().blocks).toEqual([{ table: 'holding', start: 5, length: 1 }]);
    expect(link.stats().refusedAddresses).toEqual(['holding:500']);
    await waitFor('a second ask of the refused address', () => link.stats().exceptions >= 2 || undefined);
  });
});
