import { describe, expect, it } from 'vitest';
import type { SafeZone } from '../../devices/schema.js';
import { distanceM, signedDistanceToZone } from '../../gateway/geo.js';
import { World } from './harness.js';

const C = { lat: 39.9, lon: 116.4 };
const M_PER_DEG_LAT = 111_195;
/** a point `m` metres north of the centre */
const north = (m: number) => ({ lat: C.lat + m / M_PER_DEG_LAT, lon: C.lon });
const east = (m: number) => ({ lat: C.lat, lon: C.lon + m / (M_PER_DEG_LAT * Math.cos((C.lat * Math.PI) / 180)) });

const circle: SafeZone = { type: 'circle', center: C, radiusM: 500 };
// a 1 km square centred on C
const N = north(500).lat, S = north(-500).lat, E = east(500).lon, W = east(-500).lon;
const square: SafeZone = { type: 'polygon', points: [{ lat: N, lon: W }, { lat: N, lon: E }, { lat: S, lon: E }, { lat: S, lon: W }] };

function world(zone: SafeZone) {
  const w = new World({ ruleSettings: { safeZoneHysteresisM: 30 } });
  w.resident('r1', { safeZone: zone });
  w.device('w1', { kind: 'locator', residentId: 'r1' });
  return w;
}
const at = (w: World, p: { lat: number; lon: number }, accuracy?: number) =>
  w.send('w1', { type: 'position', position: { ...p, ...(accuracy !== undefined && { accuracy }) } });

describe('geo', () => {
  it('distances and signed distances are right to a metre at city scale', () => {
    expect(distanceM(C, north(1000))).toBeCloseTo(1000, 0);
    expect(signedDistanceToZone(circle, north(600))).toBeCloseTo(100, 0);
    expect(signedDistanceToZone(circle, north(400))).toBeCloseTo(-100, 0);
    expect(signedDistanceToZone(square, east(600))!).toBeCloseTo(100, 0);
    expect(signedDistanceToZone(square, east(450))!).toBeCloseTo(-50, 0);
    expect(signedDistanceToZone(square, C)!).toBeCloseTo(-500, 0);
    expect(signedDistanceToZone({ type: 'polygon', points: [C, north(10)] }, C)).toBeNull();
  });
});

describe.each([['circle', circle], ['polygon', square]] as const)('safe-zone rule (%s)', (_name, zone) => {
  it('inside → nothing; well outside → P2 safe-zone-exit with the fix; back inside → cleared', () => {
    const w = world(zone);
    expect(at(w, north(100)).alarms).toEqual([]);
    const out = at(w, north(700));
    expect(out.alarms).toEqual([expect.objectContaining({ action: 'raise', type: 'safe-zone-exit', priority: 'P2', position: expect.objectContaining({ stale: false }) })]);
    expect(at(w, north(800)).alarms).toEqual([]); // still out: the same card, not a new one per fix
    const back = at(w, north(300));
    expect(back.alarms).toEqual([expect.objectContaining({ action: 'clear', type: 'safe-zone-exit', reason: 'back inside the safe zone' })]);
    expect(w.incidents).toHaveLength(1);
    expect(w.incidents[0]!.status).toBe('resolved');
  });

  it('hysteresis: walking along the border does not flap', () => {
    const w = world(zone);
    at(w, north(100));
    // within 30 m outside: not yet an exit
    expect(at(w, north(520)).alarms).toEqual([]);
    expect(at(w, north(490)).alarms).toEqual([]);
    expect(at(w, north(540)).alarms[0]).toMatchObject({ action: 'raise' });
    // back into the band just outside (not inside): not a return
    expect(at(w, north(510)).alarms).toEqual([]);
    expect(at(w, north(540)).alarms).toEqual([]);
    expect(at(w, north(495)).alarms[0]).toMatchObject({ action: 'clear' });
    expect(w.raised()).toHaveLength(1);
  });

  it('a poor fix must be outside by more than its accuracy to count', () => {
    const w = world(zone);
    expect(at(w, north(600), 150).alarms).toEqual([]);
    expect(at(w, north(700), 150).alarms[0]).toMatchObject({ action: 'raise' });
  });
});

describe('safe-zone rule, edges', () => {
  it('an operator resolving the card while the resident is still out does not make every later fix reopen it', () => {
    const w = world(circle);
    at(w, north(700));
    w.resolve(w.incidents[0]!);
    expect(at(w, north(750)).alarms).toEqual([]);
    at(w, north(0));
    expect(at(w, north(700)).alarms[0]).toMatchObject({ action: 'raise' }); // a new exit after a return
    expect(w.incidents.filter((i) => i.status === 'open')).toHaveLength(1);
  });

  it('after a restart the open card tells which side the resident was on', () => {
    const w = world(circle);
    at(w, north(700));
    w.restart();
    expect(at(w, north(720)).alarms).toEqual([]);
    expect(at(w, north(10)).alarms[0]).toMatchObject({ action: 'clear' });
  });

  it('no zone: nothing; a zone removed while out: the card stays for a person (a search is not called off); a zone set again while she is back inside clears it', () => {
    const w = world(circle);
    at(w, north(700));
    w.residents.get('r1')!.safeZone = null;
    expect(at(w, north(700)).alarms).toEqual([]);
    expect(at(w, north(900)).alarms).toEqual([]);
    expect(w.incidents.filter((i) => i.status === 'open')).toHaveLength(1);
    // the zone drawn again: still out, nothing new; back inside, the card is cleared
    w.residents.get('r1')!.safeZone = circle;
    expect(at(w, north(800)).alarms).toEqual([]);
    expect(at(w, north(10)).alarms[0]).toMatchObject({ action: 'clear', reason: 'back inside the safe zone' });
  });

  it('a malformed fix is ignored, not taken for an exit', () => {
    const w = world(circle);
    expect(w.send('w1', { type: 'position', position: { lat: Number.NaN, lon: 0 } }).alarms).toEqual([]);
    expect(w.send('w1', { type: 'position', position: { lat: 0, lon: 0 } }).alarms).toEqual([]);
  });
});
