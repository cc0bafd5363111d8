import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  loadRegisterMap,
  MAPS_DIR,
  parseRegisterMap,
  RegisterMapError,
  validateRegisterMap,
  type RegisterPoint,
} from '../../gateway/adapters/modbus/register-map.js';
import { evaluate, planBlocks, pointValue, toObservation } from '../../gateway/adapters/modbus/points.js';
import { deviceForChannels, loadModbusLinks, validateModbusLinks } from '../../gateway/adapters/modbus/config.js';
import { ConfigError } from '../../core/errors.js';

const good = {
  name: 'two-beds',
  model: 'test controller',
  pollMs: 250,
  points: [
    { name: 'bed-1', table: 'discrete', address: 0, observation: 'bed-exit', trigger: 'falling', channel: 1 },
    { name: 'bed-2', table: 'discrete', address: 1, observation: 'bed-exit', trigger: 'falling', channel: 2 },
    { name: 'gas', table: 'holding', address: 10, scale: 0.1, observation: 'gas', trigger: { above: 50 }, hysteresis: 10 },
  ],
};

describe('register maps', () => {
  it('every shipped map validates', () => {
    const files = readdirSync(MAPS_DIR).filter((f) => f.endsWith('.json'));
    expect(files.sort()).toEqual(['bed-exit-controller.json', 'gas-smoke-detector.json', 'pull-cord-panel.json']);
    for (const f of files) {
      const result = validateRegisterMap(JSON.parse(readFileSync(join(MAPS_DIR, f), 'utf8')), f);
      expect(result.problems, f).toEqual([]);
      expect(loadRegisterMap(f.replace(/\.json$/, '')).name).toBe(f.replace(/\.json$/, ''));
    }
  });

  it('accepts a good map', () => {
    const result = validateRegisterMap(good, 'inline');
    expect(result.ok).toBe(true);
    expect(parseRegisterMap(good, 'inline').points).toHaveLength(3);
  });

  it('reports every problem of a broken map, each by the JSON path of its field', () => {
    const broken = {
      name: 'Broken Map',
      pollMs: 5,
      colour: 'red',
      points: [
        { name: 'a', table: 'coils', address: 70000, observation: 'smoke', trigger: 'rising' },
        { name: 'a', table: 'coil', address: 1, bit: 3, observation: 'smoke', trigger: 'change' },
        { name: 'c', table: 'holding', address: 1, bit: 2, observation: 'battery', trigger: { below: 3 }, adress: 4 },
        { name: 'd', table: 'input', address: 2, observation: 'flood', trigger: 'up', scale: 0 },
        { name: 'e', table: 'input', address: 3, observation: 'device-fault', trigger: 'rising', hysteresis: 2 },
      ],
    };
    const result = validateRegisterMap(broken, 'broken.json');
    expect(result.ok).toBe(false);
    const byPath = Object.fromEntries(result.problems.map((p) => [p.path, p.message]));
    expect(Object.keys(byPath).sort()).toEqual(
      [
        '/colour', '/model', '/name', '/pollMs',
        '/points/0/address', '/points/0/table',
        '/points/1/bit', '/points/1/name', '/points/1/trigger',
        '/points/2/adress', '/points/2/observation', '/points/2/trigger',
        '/points/3/observation', '/points/3/trigger',
        '/points/4/hysteresis',
      ].sort(),
    );
    expect(byPath['/model']).toBe('is required');
    expect(byPath['/colour']).toMatch(/unknown field/);
    expect(byPath['/points/0/table']).toMatch(/"coil", "discrete", "holding", "input".*"coils"/);
    expect(byPath['/points/1/trigger']).toMatch(/life-safety/);
    expect(byPath['/points/1/name']).toMatch(/already the name of \/points\/0/);
    expect(byPath['/points/2/observation']).toMatch(/whole register/);
    expect(byPath['/points/3/observation']).toMatch(/"flood"/);
    // the start-up error names the file and every field
    expect(() => parseRegisterMap(broken, 'broken.json')).toThrow(RegisterMapError);
    try {
      parseRegisterMap(broken, 'broken.json');
    } catch (err) {
      expect((err as RegisterMapError).code).toBe('MODBUS_MAP_INVALID');
      expect((err as Error).message).toContain('broken.json/points/0/table');
      expect((err as Error).message).toContain('broken.json/pollMs');
    }
  });

  it('a map file that is not JSON is an error naming the file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'eg-map-'));
    const file = join(dir, 'bad.json');
    writeFileSync(file, '{ "name": ');
    expect(() => loadRegisterMap(file)).toThrow(/bad\.json.*not valid JSON/s);
    expect(() => loadRegisterMap('no-such-map')).toThrow(/no-such-map\.json.*cannot read it/s);
  });
});

describe('points', () => {
  const p = (over: Partial<RegisterPoint>): RegisterPoint =>
    ({ name: 'p', table: 'holding', address: 0, observation: 'gas', trigger: 'rising', ...over }) as RegisterPoint;

  it('plans the fewest contiguous reads, never bridging a gap, split at the protocol maximum', () => {
    const points = [
      p({ table: 'holding', address: 3 }), p({ table: 'holding', address: 1 }), p({ table: 'holding', address: 2 }),
      p({ table: 'holding', address: 2, bit: 4 }), p({ table: 'holding', address: 7 }), p({ table: 'coil', address: 0 }),
      ...Array.from({ length: 130 }, (_, i) => p({ table: 'input', address: 100 + i })),
    ];
    expect(planBlocks(points)).toEqual([
      { table: 'coil', start: 0, length: 1 },
      { table: 'holding', start: 1, length: 3 },
      { table: 'holding', start: 7, length: 1 },
      { table: 'input', start: 100, length: 125 },
      { table: 'input', start: 225, length: 5 },
    ]);
  });

  it('reads bits, signed and scaled registers', () => {
    expect(pointValue(p({ bit: 3 }), 0b1000)).toBe(1);
    expect(pointValue(p({ bit: 2 }), 0b1000)).toBe(0);
    expect(pointValue(p({ table: 'coil' }), true)).toBe(1);
    expect(pointValue(p({ scale: 0.1 }), 105)).toBe(10.5);
    expect(pointValue(p({ signed: true, scale: 0.5, offset: 1 }), 0xfffe)).toBe(0);
  });

  it('raises an alarm already active at the first poll; otherwise the first poll is only the baseline', () => {
    const falling = p({ trigger: 'falling', observation: 'bed-exit' });
    expect(evaluate(falling, undefined, 0).emit).toEqual({ restore: false, active: true });
    expect(evaluate(falling, undefined, 1).emit).toBeNull();
    const change = p({ trigger: 'change', observation: 'battery' });
    expect(evaluate(change, undefined, 50).emit).toBeNull();
    expect(evaluate(change, { value: 50, active: true }, 49).emit).toEqual({ restore: false, active: true });
  });

  it('thresholds restore only across the hysteresis', () => {
    const gas = p({ trigger: { above: 50 }, hysteresis: 10 });
    let s = evaluate(gas, undefined, 20);
    expect(s.emit).toBeNull();
    s = evaluate(gas, s.next, 55);
    expect(s.emit).toEqual({ restore: false, active: true });
    s = evaluate(gas, s.next, 45); // below 50 but not below 40: still the same alarm
    expect(s.emit).toBeNull();
    s = evaluate(gas, s.next, 39);
    expect(s.emit).toEqual({ restore: true, active: false });
    expect(evaluate(p({ trigger: 'rising', restore: false }), { value: 1, active: true }, 0).emit).toBeNull();
  });

  it('builds observations in the shared vocabulary', () => {
    const ctx = { deviceId: 'd1', unitId: 3, map: parseRegisterMap(good, 'x'), receivedAt: 1 };
    expect(toObservation(p({ observation: 'battery', trigger: { below: 20 }, unit: '%' }), ctx, 12, 12, { restore: false, active: true }))
      .toEqual({ deviceId: 'd1', receivedAt: 1, source: 'modbus', type: 'battery', level: 12,
        detail: { register: 0, table: 'holding', value: 12, raw: 12, unit: '%', unitId: 3, point: 'p', map: 'two-beds' } });
    expect(toObservation(p({ observation: 'presence', table: 'discrete' }), ctx, 0, false, { restore: true, active: false }))
      .toMatchObject({ type: 'presence', present: false });
    expect(toObservation(p({ observation: 'smoke', bit: 0 }), ctx, 0, 0, { restore: true, active: false }))
      .toMatchObject({ type: 'smoke', restore: true, detail: { bit: 0 } });
  });
});

describe('Modbus link configuration', () => {
  it('applies defaults and loads the named map', () => {
    const { links, problems, warnings } = validateModbusLinks([
      { name: 'ward-a-beds', deviceId: 'ctl-1', link: { transport: 'tcp', host: '10.0.0.5' }, map: 'bed-exit-controller', channels: { '1': 'mat-1', '2': 'mat-2' } },
      { name: 'ward-a-cords', deviceId: 'ctl-2', link: { transport: 'rtu', path: '/dev/ttyUSB0' }, unitId: 7, map: good },
    ]);
    expect(problems).toEqual([]);
    expect(links[0]).toMatchObject({ link: { transport: 'tcp', port: 502 }, unitId: 1, timeoutMs: 1000, pollMs: 500, retry: { failuresBeforeCommLost: 3 } });
    expect(links[1]).toMatchObject({ link: { transport: 'rtu', baudRate: 19200, parity: 'even', dataBits: 8, stopBits: 1 }, pollMs: 250 });
    expect(warnings).toEqual([
      '/modbus/0/channels: channel 3 of map bed-exit-controller has no device; it reports on ctl-1',
      '/modbus/0/channels: channel 4 of map bed-exit-controller has no device; it reports on ctl-1',
    ]);
    const deviceFor = deviceForChannels(links[0]!);
    expect([deviceFor(1), deviceFor(3), deviceFor(undefined)]).toEqual(['mat-1', 'ctl-1', 'ctl-1']);
  });

  it('lists every problem of every entry by field, maps included', () => {
    const entries = [
      { name: 'x', deviceId: 'c', link: { transport: 'tcp', host: 'h', port: 70000 }, map: 'bed-exit-controller', channels: { '9': 'mat-9' }, extra: 1 },
      { name: 'x', deviceId: '', link: { transport: 'rtu', path: '/dev/ttyS0' }, unitId: 0, map: { ...good, pollMs: 1 } },
      { name: 'y', deviceId: 'c', link: { transport: 'udp' }, map: 'nope' },
      { name: 'z', deviceId: 'c', link: { transport: 'rtu', path: '/dev/ttyS0' }, map: good },
      'junk',
    ];
    const { problems } = validateModbusLinks(entries);
    const text = problems.join('\n');
    for (const expected of [
      '/modbus/0/link/port:',
      '/modbus/0/channels/9: map bed-exit-controller has no channel 9',
      '/modbus/0/extra: unknown field',
      '/modbus/1/name: "x" is already the name of /modbus/0',
      '/modbus/1/deviceId:',
      '/modbus/1/unitId: on a serial line the unit id is 1–247',
      '/modbus/1/map/pollMs:',
      '/modbus/2/link/transport: must be "tcp" or "rtu"',
      '/modbus/2/map: ',
      '/modbus/3/link/path: /dev/ttyS0 is already used by /modbus/1',
      '/modbus/4: a Modbus link is an object',
    ]) {
      expect(text).toContain(expected);
    }
    expect(text).toMatch(/\/modbus\/2\/map: .*nope\.json: cannot read it/);
    expect(() => loadModbusLinks(entries)).toThrow(ConfigError);
  });
});
