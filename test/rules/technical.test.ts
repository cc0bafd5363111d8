import { describe, expect, it } from 'vitest';
import { World } from './harness.js';

function world() {
  const w = new World({ ruleSettings: { lowBatteryHysteresisPct: 10 } });
  w.device('p1', { kind: 'call-phone', power: 'mains' }); // lowBatteryPct 20
  return w;
}

describe('technical rule', () => {
  it('low battery: raised once below the kind’s threshold, not per heartbeat; cleared only at threshold + 10', () => {
    const w = world();
    expect(w.send('p1', { type: 'battery', level: 25 }).alarms).toEqual([]);
    expect(w.send('p1', { type: 'battery', level: 19 }).alarms).toEqual([
      expect.objectContaining({ action: 'raise', type: 'low-battery', priority: 'P3', data: expect.objectContaining({ level: 19, thresholdPct: 20 }) }),
    ]);
    expect(w.send('p1', { type: 'heartbeat', battery: 18 }).alarms).toEqual([]);
    expect(w.send('p1', { type: 'position', position: { lat: 1, lon: 1 }, battery: 17 }).alarms).toEqual([]);
    expect(w.send('p1', { type: 'battery', level: 25 }).alarms).toEqual([]); // in the band: no flapping
    expect(w.send('p1', { type: 'heartbeat', battery: 30 }).alarms).toEqual([
      expect.objectContaining({ action: 'clear', type: 'low-battery' }),
    ]);
    expect(w.incidents).toHaveLength(1);
  });

  it('a Contact ID low-battery restore clears it', () => {
    const w = world();
    w.send('p1', { type: 'battery', level: 5 });
    expect(w.send('p1', { type: 'battery', level: 0, restore: true }).alarms[0]).toMatchObject({ action: 'clear', type: 'low-battery' });
  });

  it('power-lost P3, cleared by power-restored', () => {
    const w = world();
    expect(w.send('p1', { type: 'power-lost' }).alarms[0]).toMatchObject({ action: 'raise', type: 'power-lost', priority: 'P3' });
    expect(w.send('p1', { type: 'power-restored' }).alarms[0]).toMatchObject({ action: 'clear', type: 'power-lost' });
  });

  it('power-lost cleared by its restore (Contact ID 301 R), and tracked from a mains device’s heartbeats', () => {
    const w = world();
    w.send('p1', { type: 'power-lost', source: 'serial', detail: { code: '301' } });
    expect(w.send('p1', { type: 'power-lost', restore: true }).alarms[0]).toMatchObject({ action: 'clear' });
    expect(w.send('p1', { type: 'heartbeat', mains: false }).alarms[0]).toMatchObject({ action: 'raise', type: 'power-lost', data: { source: 'heartbeat' } });
    expect(w.send('p1', { type: 'heartbeat', mains: false }).alarms).toEqual([]);
    expect(w.send('p1', { type: 'heartbeat', mains: true }).alarms[0]).toMatchObject({ action: 'clear', type: 'power-lost' });
    // a battery device reporting mains:false is on its battery by design
    w.device('b1', { power: 'battery' });
    expect(w.send('b1', { type: 'heartbeat', mains: false }).alarms).toEqual([]);
  });

  it.each(['tamper', 'device-fault'] as const)('%s → P3, cleared by its restore', (type) => {
    const w = world();
    expect(w.send('p1', { type }).alarms[0]).toMatchObject({ action: 'raise', type, priority: 'P3' });
    expect(w.send('p1', { type, restore: true }).alarms[0]).toMatchObject({ action: 'clear', type });
  });

  it('comm-lost of a life-safety kind (a Modbus panel) P2, of another kind P3; cleared by comm-restored', () => {
    const w = world();
    w.device('m1', { kind: 'modbus' });
    w.device('cp1', { kind: 'call-phone' });
    expect(w.send('cp1', { type: 'comm-lost', source: 'gateway' }).alarms[0]).toMatchObject({ type: 'comm-lost', priority: 'P3' });
    expect(w.send('m1', { type: 'comm-lost', source: 'modbus' }).alarms[0]).toMatchObject({ type: 'comm-lost', priority: 'P2' });
    expect(w.send('m1', { type: 'comm-restored', source: 'modbus' }).alarms).toContainEqual(expect.objectContaining({ action: 'clear', type: 'comm-lost' }));
  });

  it('an unknown Contact ID code is raised P3 unknown-event:<code> (one card per code) so someone sees it', () => {
    const w = world();
    w.device('rx', { kind: 'receiver' });
    const r = w.send('rx', { type: 'unknown', code: '732', source: 'serial', detail: { account: '1234', qualifier: 'E' } });
    expect(r.alarms).toEqual([expect.objectContaining({
      action: 'raise', type: 'unknown-event:732', priority: 'P3', data: expect.objectContaining({ code: '732', detail: { account: '1234', qualifier: 'E' } }),
    })]);
  });

  it('a panel’s supervision failure (Contact ID 102/147/381) is P3, cleared by its restore', () => {
    const w = world();
    w.device('rx', { kind: 'receiver' });
    expect(w.send('rx', { type: 'supervision', code: '147' }).alarms[0]).toMatchObject({ type: 'supervision-failure', priority: 'P3', data: { code: '147' } });
    expect(w.send('rx', { type: 'supervision', code: '147', restore: true }).alarms[0]).toMatchObject({ action: 'clear' });
  });
});

describe('test-alarm rule', () => {
  it('a test observation raises a P3 incident marked test, not an emergency', () => {
    const w = world();
    const r = w.send('p1', { type: 'test', detail: { code: '602' } });
    expect(r.alarms).toEqual([{ action: 'raise', type: 'test', priority: 'P3', test: true, rule: 'test-alarm', data: { detail: { code: '602' } } }]);
    expect(w.incidents[0]).toMatchObject({ test: true, priority: 'P3' });
  });
});
