import { describe, expect, it } from 'vitest';
import { Rng } from '../../firmware-sim/core/prng.js';
import { VirtualScheduler } from '../../firmware-sim/core/scheduler.js';
import { distanceM, insideZone } from '../../firmware-sim/core/geo.js';
import { Locator } from '../../firmware-sim/devices/locator.js';

const make = (seed: number, scheduler = new VirtualScheduler()) =>
  new Locator({
    creds: { id: 'loc', secret: 's', kind: 'locator', home: { lat: 48.8566, lon: 2.3522 } },
    mqttUrl: 'mqtt://127.0.0.1:1',
    scheduler,
    rng: new Rng(seed),
    // never started: its messages stay in the buffer where the test reads them
  });

describe('simulated locator', () => {
  it('wanders around home on a seeded walk that stays inside the safe zone', () => {
    const a = make(1);
    const b = make(1);
    const path: { lat: number; lon: number }[] = [];
    for (let i = 0; i < 2000; i++) {
      a.wander();
      b.wander();
      path.push(a.position);
      expect(insideZone(a.position, a.zone)).toBe(true);
    }
    expect(b.position).toEqual(a.position);
    // it does move about, not stand at the door
    expect(Math.max(...path.map((p) => distanceM(p, a.home)))).toBeGreaterThan(50);
  });

  it('walks out of the zone on demand, reporting positions on the way, and home again', () => {
    const s = new VirtualScheduler();
    const l = make(2, s);
    l.walkOutOfZone(6000);
    s.advance(6000);
    expect(insideZone(l.position, l.zone)).toBe(false);
    const positions = l.outbox.all().filter((m) => m.type === 'position').map((m) => JSON.parse(m.json) as { lat: number; lon: number });
    expect(positions).toHaveLength(3);
    expect(insideZone(positions[2]!, l.zone)).toBe(false);
    for (let i = 0; i < 50; i++) l.wander();
    expect(insideZone(l.position, l.zone)).toBe(false); // it stays out there until it walks home
    l.returnHome(4000);
    s.advance(4000);
    expect(distanceM(l.position, l.home)).toBeLessThan(1);
  });

  it('puts its position on an SOS', () => {
    const l = make(3);
    const m = l.sos()!;
    expect(JSON.parse(m.json)).toMatchObject({ type: 'sos', seq: 1, position: { lat: 48.8566, lon: 2.3522 } });
  });
});
