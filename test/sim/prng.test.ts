import { describe, expect, it } from 'vitest';
import { Rng, hashLabel } from '../../firmware-sim/core/prng.js';
import { VirtualScheduler } from '../../firmware-sim/core/scheduler.js';
import { backoffDelay, DEFAULT_BACKOFF } from '../../firmware-sim/devices/terminal.js';
import { Fleet, parseMix } from '../../firmware-sim/fleet.js';
import type { Credentials } from '../../firmware-sim/devices/types.js';

const draw = (r: Rng, n: number) => Array.from({ length: n }, () => r.next());

describe('seeded randomness', () => {
  it('the same seed gives the same stream, another seed another one', () => {
    expect(draw(new Rng(42), 1000)).toEqual(draw(new Rng(42), 1000));
    expect(draw(new Rng(42), 10)).not.toEqual(draw(new Rng(43), 10));
    for (const v of draw(new Rng(7), 10_000)) {
      expect(v).toBeGreaterThanOrEqual(0);
      expect(v).toBeLessThan(1);
    }
  });

  it('is roughly uniform (no bucket of ten far from 10 %)', () => {
    const buckets = new Array(10).fill(0);
    for (const v of draw(new Rng(3), 100_000)) buckets[Math.floor(v * 10)]++;
    for (const b of buckets) expect(Math.abs(b - 10_000)).toBeLessThan(600);
  });

  it('forks are independent of how much the parent or a sibling drew', () => {
    const a = new Rng(9);
    const b = new Rng(9);
    draw(b, 500);
    expect(draw(a.fork('device/17'), 20)).toEqual(draw(b.fork('device/17'), 20));
    expect(draw(a.fork('device/17'), 5)).not.toEqual(draw(a.fork('device/18'), 5));
    expect(hashLabel('x')).toBe(hashLabel('x'));
  });

  it('back-off: exponential, capped, jittered within [d/2, d), reproducible', () => {
    const seq = (seed: number) => {
      const r = new Rng(seed);
      return Array.from({ length: 12 }, (_, i) => backoffDelay(i, DEFAULT_BACKOFF, r));
    };
    const s = seq(5);
    expect(s).toEqual(seq(5));
    expect(s).not.toEqual(seq(6));
    s.forEach((d, i) => {
      const cap = Math.min(DEFAULT_BACKOFF.maxMs, DEFAULT_BACKOFF.initialMs * 2 ** i);
      expect(d).toBeGreaterThanOrEqual(cap / 2);
      expect(d).toBeLessThanOrEqual(cap);
    });
    expect(s[11]).toBeLessThanOrEqual(60_000);
  });

  it('a fleet with the same seed presses the same alarms on the same devices at the same times', () => {
    const devices: Credentials[] = Array.from({ length: 50 }, (_, i) => ({
      id: `d${i}`,
      secret: 's',
      kind: i % 3 === 0 ? 'call-phone' : i % 3 === 1 ? 'fall-sensor' : 'locator',
    }));
    const run = (seed: number) => {
      const scheduler = new VirtualScheduler();
      // never started: nothing connects, every message stays in the device buffers where we can read it
      const fleet = new Fleet({ devices, mqttUrl: 'mqtt://127.0.0.1:1', seed, scheduler });
      fleet.startTraffic({ ratePerMin: 30, cancelShare: 0.5 });
      scheduler.advance(10 * 60_000);
      fleet.stopTraffic();
      return fleet.terminals.flatMap((t) => t.events.map((m) => `${t.id}:${m.type}:${m.seq}@${Math.round(m.createdAt)}:${m.json.replace(/"ts":\d+,/, '')}`));
    };
    const a = run(1);
    expect(a.length).toBeGreaterThan(150);
    expect(a.length).toBeLessThan(500);
    expect(run(1)).toEqual(a);
    expect(run(2)).not.toEqual(a);
  });

  it('parses a mix into counts that add up exactly', () => {
    expect(parseMix('call-phone:50,fall-sensor:30,locator:20', 5000)).toEqual({ 'call-phone': 2500, 'fall-sensor': 1500, locator: 1000 });
    const odd = parseMix('call-phone:1,fall-sensor:1,locator:1', 100);
    expect(odd['call-phone'] + odd['fall-sensor'] + odd.locator).toBe(100);
    expect(parseMix('locator', 7)).toEqual({ 'call-phone': 0, 'fall-sensor': 0, locator: 7 });
    expect(() => parseMix('toaster:5', 10)).toThrow(/unknown kind "toaster"/);
  });
});
