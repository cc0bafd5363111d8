import { describe, expect, it } from 'vitest';
import { HOUR, MIN, World } from './harness.js';

const hb = { type: 'heartbeat' } as const;

describe('supervision rule', () => {
  it('battery call-phone (1 h): late at 1.5 h without an incident, offline at 3 h → P3, back online → cleared', () => {
    const w = new World();
    w.device('p1');
    expect(w.send('p1', hb).state).toEqual({ supervision: 'ok' });
    w.advance(1.5 * HOUR - 1);
    expect(w.devices.get('p1')!.supervision).toBe('ok');
    w.advance(1);
    expect(w.devices.get('p1')!.supervision).toBe('late');
    expect(w.incidents).toEqual([]);
    w.advance(1.5 * HOUR - 1);
    expect(w.devices.get('p1')!.supervision).toBe('late');
    w.advance(1);
    expect(w.devices.get('p1')!.supervision).toBe('offline');
    expect(w.openIncident('p1', 'offline')).toMatchObject({ priority: 'P3', data: expect.objectContaining({ intervalMs: HOUR, silentMs: 3 * HOUR }) });
    const back = w.send('p1', hb);
    expect(back.state).toEqual({ supervision: 'ok' });
    expect(back.alarms).toEqual([{ action: 'clear', type: 'offline', rule: 'supervision', reason: 'device back online' }]);
    expect(w.incidents[0]!.status).toBe('resolved');
  });

  it('a late device heard from again is simply ok (no incident was opened)', () => {
    const w = new World();
    w.device('p1');
    w.send('p1', hb);
    w.advance(2 * HOUR);
    expect(w.devices.get('p1')!.supervision).toBe('late');
    const r = w.send('p1', hb);
    expect(r).toMatchObject({ state: { supervision: 'ok' }, alarms: [] });
  });

  it('a life-safety sensor (fall sensor) going offline is P2', () => {
    const w = new World();
    w.device('f1', { kind: 'fall-sensor' });
    w.send('f1', hb);
    w.advance(30 * MIN);
    expect(w.openIncident('f1', 'offline')?.priority).toBe('P2');
  });

  it('a mains-powered device is held to its kind’s shorter mains interval', () => {
    const w = new World();
    w.device('mains', { power: 'mains' }); // call-phone mains: 5 min → offline at 15 min
    w.device('batt', { power: 'battery' }); // 1 h → offline at 3 h
    w.send('mains', hb);
    w.send('batt', hb);
    w.advance(15 * MIN);
    expect(w.devices.get('mains')!.supervision).toBe('offline');
    expect(w.devices.get('batt')!.supervision).toBe('ok');
    expect(w.raisedOf('offline').length).toBe(1);
  });

  it('a device’s own heartbeatMs and the intervalScale setting apply', () => {
    const w = new World({ supervision: { intervalScale: 0.01 } });
    w.device('p1', { config: { heartbeatMs: 10 * MIN } }); // 10 min × 0.01 = 6 s → offline at 18 s
    w.send('p1', hb);
    w.advance(18_000);
    expect(w.devices.get('p1')!.supervision).toBe('offline');
  });

  it('a Last Will counts as a drop but opens nothing: supervision still waits for the interval', () => {
    const w = new World();
    w.device('p1');
    w.send('p1', hb);
    w.advance(MIN);
    const will = w.send('p1', { type: 'status', online: false });
    expect(will.alarms).toEqual([]);
    expect(will.timers).toEqual([]);
    w.advance(3 * HOUR - MIN - 1);
    expect(w.devices.get('p1')!.supervision).toBe('late');
    w.advance(1);
    expect(w.devices.get('p1')!.supervision).toBe('offline');
  });

  it('a Last Will of an offline device keeps it offline (even if ingest folds it in as "seen"); its return clears the card', () => {
    const w = new World();
    w.device('p1');
    w.send('p1', hb);
    w.advance(3 * HOUR);
    expect(w.devices.get('p1')!.supervision).toBe('offline');
    expect(w.send('p1', { type: 'status', online: false }).state).toEqual({ supervision: 'offline' });
    expect(w.devices.get('p1')!.supervision).toBe('offline');
    expect(w.send('p1', { type: 'status', online: true }).alarms).toEqual([expect.objectContaining({ action: 'clear', type: 'offline' })]);
  });

  it('gateway-made observations and comm-lost are not proof of life', () => {
    const w = new World();
    w.device('m1', { kind: 'modbus' }); // 1 min → offline at 3 min
    w.send('m1', hb);
    w.advance(2 * MIN);
    w.send('m1', { type: 'comm-lost', source: 'modbus' });
    w.send('m1', { type: 'tamper', source: 'gateway' });
    w.advance(MIN);
    expect(w.devices.get('m1')!.supervision).toBe('offline');
  });

  it('flapping: more than flapCount drops in the window keeps the card open (joined, not reopened) until stable', () => {
    const w = new World({ supervision: { flapCount: 4, flapWindowMs: 15 * MIN } });
    w.device('p1', { config: { heartbeatMs: MIN } }); // offline at 3 min
    w.send('p1', hb);
    for (let i = 0; i < 4; i++) {
      w.advance(20_000);
      w.send('p1', { type: 'status', online: false });
      w.advance(5_000);
      w.send('p1', { type: 'status', online: true });
    }
    expect(w.incidents).toEqual([]); // Wills alone open nothing
    w.advance(3 * MIN); // the fifth drop: offline by timer
    expect(w.openIncident('p1', 'offline')?.data).toMatchObject({ flapping: true });
    expect(w.send('p1', hb).alarms).toEqual([]); // back, but flapping: the card stays
    expect(w.devices.get('p1')!.supervision).toBe('ok');
    w.advance(3 * MIN); // drops again: joins
    expect(w.incidents).toHaveLength(1);
    expect(w.incidents[0]).toMatchObject({ status: 'open', count: 2 });
    w.send('p1', hb);
    // stays up, heartbeating every minute, for a whole flap window: then cleared
    for (let i = 0; i < 14; i++) {
      w.advance(MIN);
      w.send('p1', hb);
    }
    expect(w.incidents[0]!.status).toBe('open');
    w.advance(MIN);
    w.send('p1', hb);
    expect(w.incidents[0]).toMatchObject({ status: 'resolved', closedReason: expect.stringContaining('stable again') });
  });

  it('without flapping each outage is its own card, cleared on return', () => {
    const w = new World();
    w.device('p1', { config: { heartbeatMs: MIN } });
    w.send('p1', hb);
    w.advance(3 * MIN);
    w.send('p1', hb);
    w.advance(30 * MIN);
    w.send('p1', hb);
    expect(w.incidents.map((i) => i.status)).toEqual(['resolved', 'resolved']);
  });

  it('a timer fire overtaken by an observation of the device is stale and does nothing', () => {
    const w = new World();
    w.device('p1');
    w.send('p1', hb);
    w.holdFires = true;
    w.clock.advance(1.5 * HOUR); // 'late' comes due and is queued behind…
    expect(w.fires).toHaveLength(1);
    w.send('p1', hb, { drainFirst: false }); // …a heartbeat that arrived first
    const [r] = w.drain();
    expect(r).toMatchObject({ stale: true, alarms: [], state: {} });
    expect(w.devices.get('p1')!.supervision).toBe('ok');
  });

  it('restore at start-up: from lastSeen, an overdue device is handled at once', () => {
    const w = new World();
    w.device('gone', { lastSeen: w.now - 4 * HOUR, supervision: 'ok' });
    w.device('late', { lastSeen: w.now - 2 * HOUR, supervision: 'ok' });
    w.device('fine', { lastSeen: w.now - 10 * MIN, supervision: 'ok' });
    w.device('never', { lastSeen: null, supervision: 'never-seen' });
    w.restart();
    expect(w.devices.get('gone')!.supervision).toBe('offline');
    expect(w.openIncident('gone', 'offline')).toBeDefined();
    expect(w.devices.get('late')!.supervision).toBe('late');
    expect(w.engine.pendingTimers('late')).toEqual([{ rule: 'supervision', key: 'offline', inMs: HOUR }]);
    expect(w.engine.pendingTimers('fine')).toEqual([{ rule: 'supervision', key: 'late', inMs: 80 * MIN }]);
    expect(w.engine.pendingTimers('never')).toEqual([]);
    // a second restart does not raise the offline device again
    w.restart();
    expect(w.incidents.filter((i) => i.deviceId === 'gone')).toHaveLength(1);
    expect(w.incidents[0]!.count).toBe(1);
  });
});
