import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ScenarioError } from '../../firmware-sim/core/errors.js';
import { loadScenario, parseScenario } from '../../firmware-sim/scenario/parse.js';
import { REPO } from './helpers/gateway.js';

const problemsOf = (text: string) => {
  try {
    parseScenario(text, 'test.yaml');
  } catch (err) {
    if (err instanceof ScenarioError) return err.problems;
    throw err;
  }
  throw new Error('expected the scenario to be refused');
};

describe('scenario files', () => {
  it('lists every schema problem at once, each with its line', () => {
    const text = [
      'name: bad one', //                         1
      'devices:', //                              2
      '  - name: phones', //                      3
      '    kind: call-phon', //                   4
      '    count: 2', //                          5
      '  - name: sensor', //                      6
      '    kind: fall-sensor', //                 7
      '    colour: red', //                       8
      'timeline:', //                             9
      '  - at: 1s', //                            10
      '    sos: phones[5]', //                    11
      '  - at: 2x', //                            12
      '    fall: sensor', //                      13
      '  - at: 3s', //                            14
      '    sos: sensor', //                       15
      '  - at: 4s', //                            16
      '    dance: phones', //                     17
      '  - at: 5s', //                            18
      '    disconnect: ghosts', //                19
      '    for: soon', //                         20
      '  - at: 1s', //                            21
      '    cancel: sensor', //                    22
      'expect:', //                               23
      '  - incident: { type: sos, priority: P9 }', // 24
      '    within: 1s', //                        25
      '  - latency: { metric: puback }', //       26
      '  - incident: { type: sos }', //           27
      '    no-incident: { type: fall }', //       28
    ].join('\n');
    const p = problemsOf(text);
    const at = (line: number) => p.filter((x) => x.line === line).map((x) => x.message).join(' | ');
    expect(at(4)).toMatch(/kind must be one of: call-phone, fall-sensor, locator, watch, jt808, dc09/);
    expect(at(8)).toMatch(/unknown field "colour" \(allowed here: name, kind, count/);
    expect(at(11)).toMatch(/group "phones" has 2 device\(s\): index 5 is out of range/);
    expect(at(12)).toMatch(/at must be a duration like 500ms, 2s/);
    expect(at(15)).toMatch(/a fall-sensor cannot do that \(call-phone, locator, watch, jt808 or dc09 can\)/);
    expect(at(16)).toMatch(/a step needs one action: connect, disconnect/);
    expect(at(19)).toMatch(/no device group "ghosts" \(groups: phones, sensor\)/);
    expect(at(20)).toMatch(/for must be a duration/);
    expect(at(21)).toMatch(/earlier than the step before it/);
    expect(at(24)).toMatch(/priority must be one of: P1, P2, P3/);
    expect(at(26)).toMatch(/give at least one bound/);
    expect(at(27)).toMatch(/exactly one of incident, no-incident/);
    expect(p.every((x) => x.line > 0 && x.col > 0)).toBe(true);
    expect(p.length).toBe(12);
  });

  it('reports YAML syntax errors with their line, the first few only, with a hint for brackets', () => {
    const p = problemsOf('name: x\ndevices:\n  - name: a\n    kind: locator\ntimeline:\n  - at: 1s\n    sos: a\n    expect:\n      - incident: { device: a[0], type: sos }\n');
    expect(p[0]!.line).toBe(9);
    expect(p[0]!.message).toMatch(/^YAML: .*quote a value with brackets/);
    expect(p.length).toBeLessThanOrEqual(4);
  });

  it('names what is missing', () => {
    const p = problemsOf('devices:\n  - kind: locator\ntimeline:\n  - at: 1s\n    battery: all\n');
    expect(p.map((x) => `${x.line}:${x.message}`)).toEqual(['1:missing "name"', '2:missing "name"', '4:missing "level"']);
  });

  it('reads JSON too, with lines', () => {
    const json = JSON.stringify({ name: 'j', devices: [{ name: 'p', kind: 'call-phone' }], timeline: [{ at: '1s', sos: 'p', expect: [{ incident: { type: 'sos' }, within: 'soon' }] }] }, null, 2);
    const p = problemsOf(json);
    expect(p).toHaveLength(1);
    expect(p[0]!.message).toMatch(/within must be a duration/);
    expect(json.split('\n')[p[0]!.line - 1]).toContain('"within"');
  });

  it('turns a valid file into steps with times, targets and expectations; --scale multiplies marked groups', () => {
    const sc = parseScenario(
      [
        'name: ok',
        'seed: 5',
        'devices:',
        '  - { name: phones, kind: call-phone, count: 10, scale: true, heartbeat: 30s }',
        '  - { name: watch, kind: locator, resident: { safeZoneRadiusM: 150 } }',
        'timeline:',
        '  - at: 500ms',
        '    sos: phones[2..4]',
        '    expect:',
        '      - incident: { type: sos, priority: P1 }',
        '        within: 1s',
        '  - wait: 2s',
        '  - walk-out-of-zone: watch',
        '    over: 4s',
        'expect:',
        '  - latency: { metric: puback, p99: 250ms }',
      ].join('\n'),
      'ok.yaml',
      { scale: 3 },
    );
    expect(sc.groups.map((g) => [g.name, g.count, g.heartbeatS])).toEqual([['phones', 30, 30], ['watch', 1, undefined]]);
    expect(sc.groups[1]!.resident).toEqual({ safeZoneRadiusM: 150 });
    expect(sc.steps.map((s) => [s.atMs, s.action.kind, s.line])).toEqual([[500, 'sos', 7], [500, 'wait', 12], [2500, 'walk-out-of-zone', 13]]);
    expect(sc.steps[0]!.action).toMatchObject({ target: { group: 'phones', from: 2, to: 4 } });
    expect(sc.steps[0]!.expect[0]).toMatchObject({ kind: 'incident', type: 'sos', priority: 'P1', withinMs: 1000, line: 10, device: { group: 'phones', from: 2, to: 4 } });
    expect(sc.expect[0]).toMatchObject({ kind: 'latency', metric: 'puback', bounds: { p99: 250 } });
  });

  it('every shipped scenario is valid', async () => {
    const dir = join(REPO, 'scenarios');
    const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));
    expect(files.sort()).toEqual(['dc09.yaml', 'fall-cancel.yaml', 'fall-no-cancel.yaml', 'jt808.yaml', 'silent-fall-sensor.yaml', 'sos.yaml', 'storm.yaml', 'wander.yaml', 'watch.yaml']);
    for (const f of files) {
      const sc = await loadScenario(join(dir, f));
      expect(sc.steps.length, f).toBeGreaterThan(0);
    }
    const storm = await loadScenario(join(dir, 'storm.yaml'), { scale: 20 });
    expect(storm.groups.reduce((n, g) => n + g.count, 0)).toBe(6000);
  });

  it('protocol kinds: what their protocol carries is accepted, the rest refused with the reason', () => {
    const ok = parseScenario([
      'name: protocols',
      'devices:',
      '  - { name: watch, kind: watch, heartbeat: 1s }',
      '  - { name: pendant, kind: jt808 }',
      '  - { name: panel, kind: dc09, heartbeat: 2s }',
      'timeline:',
      '  - { at: 1s, sos: all }',
      '  - { at: 2s, fall: watch }',
      '  - { at: 3s, position: pendant, lat: 31.2, lon: 121.4 }',
      '  - { at: 4s, heartbeat: panel }',
      '  - at: 5s',
      '    command: pendant',
      '    type: call-back',
      '    params: { number: "+8613800138000" }',
      '    expect:',
      '      - command: { type: call-back }',
      '  - at: 6s',
      '    disconnect: panel',
      '    expect:',
      '      - incident: { type: comm-lost }',
      '  - at: 9s',
      '    connect: panel',
      '    expect:',
      '      - cleared: { type: comm-lost }',
      '        within: 3s',
      '',
    ].join('\n'));
    expect(ok.groups.map((g) => [g.kind, g.heartbeatS])).toEqual([['watch', 1], ['jt808', undefined], ['dc09', 2]]);
    expect(ok.steps.map((st) => st.action.kind)).toEqual(['sos', 'fall', 'position', 'heartbeat', 'command', 'disconnect', 'connect']);
    expect(ok.steps[6]!.expect[0]).toMatchObject({ kind: 'cleared', type: 'comm-lost', withinMs: 3000 });

    const p = problemsOf([
      'name: protocols', //                                  1
      'devices:', //                                         2
      '  - { name: watch, kind: watch, keepalive: 60s }', // 3
      '  - { name: panel, kind: dc09 }', //                  4
      'timeline:', //                                        5
      '  - { at: 1s, fall: panel }', //                      6
      '  - { at: 2s, position: panel }', //                  7
      '  - { at: 3s, event: watch, type: sos }', //          8
      '  - at: 4s', //                                       9
      '    acknowledge: panel', //                           10
      '    expect:', //                                      11
      '      - command: { type: acknowledge-alarm }', //    12
      '  - { at: 5s, position: watch, lat: 1 }', //          13
      '',
    ].join('\n'));
    const at = (line: number) => p.filter((x) => x.line === line).map((x) => x.message).join(' | ');
    expect(at(3)).toMatch(/keepalive is for the MQTT kinds; a watch terminal does not take it/);
    expect(at(6)).toMatch(/fall: a dc09 cannot do that/);
    expect(at(7)).toMatch(/position: a dc09 cannot do that \(watch or jt808 can\)/);
    expect(at(8)).toMatch(/event: a watch cannot do that/);
    expect(at(12)).toMatch(/SIA DC-09 has no downlink/);
    expect(at(13)).toMatch(/both lat and lon, or neither/);
  });
});
