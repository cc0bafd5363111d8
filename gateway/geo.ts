// Small geodesy for safe zones and alarm positions. City scale: a zone is at most tens of km across, so a local
// equirectangular projection around the point is accurate to well under a metre there, and no library is needed.
import type { Position } from '../core/contracts.js';
import type { SafeZone } from '../devices/schema.js';

const EARTH_RADIUS_M = 6_371_008.8; // IUGG mean radius
const RAD = Math.PI / 180;

export interface LatLon {
  lat: number;
  lon: number;
}

/** Great-circle distance in metres (haversine). */
export function distanceM(a: LatLon, b: LatLon): number {
  const dLat = (b.lat - a.lat) * RAD;
  const dLon = (b.lon - a.lon) * RAD;
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(a.lat * RAD) * Math.cos(b.lat * RAD) * Math.sin(dLon / 2) ** 2;
  return 2 * EARTH_RADIUS_M * Math.asin(Math.min(1, Math.sqrt(h)));
}

export type PositionProblem = 'missing' | 'malformed' | 'out-of-range' | 'null-island';

/**
 * A position that can be shown on a map, or why not. (0, 0) is what many GPS chips report before their first
 * fix ("null island"), so it is treated as no fix rather than as a point in the Gulf of Guinea.
 * An invalid `accuracy` is dropped, not fatal: the fix itself is still worth showing.
 */
export function checkPosition(p: unknown): { ok: true; position: Position } | { ok: false; problem: PositionProblem } {
  if (p === undefined || p === null) return { ok: false, problem: 'missing' };
  if (typeof p !== 'object') return { ok: false, problem: 'malformed' };
  const { lat, lon, accuracy, at } = p as Record<string, unknown>;
  if (typeof lat !== 'number' || typeof lon !== 'number' || !Number.isFinite(lat) || !Number.isFinite(lon)) {
    return { ok: false, problem: 'malformed' };
  }
  if (lat < -90 || lat > 90 || lon < -180 || lon > 180) return { ok: false, problem: 'out-of-range' };
  if (lat === 0 && lon === 0) return { ok: false, problem: 'null-island' };
  const position: Position = { lat, lon };
  if (typeof accuracy === 'number' && Number.isFinite(accuracy) && accuracy >= 0) position.accuracy = accuracy;
  if (typeof at === 'number' && Number.isFinite(at)) position.at = at;
  return { ok: true, position };
}

/** Metres east (x) and north (y) of `origin`. */
function project(origin: LatLon, p: LatLon): { x: number; y: number } {
  return {
    x: (p.lon - origin.lon) * RAD * EARTH_RADIUS_M * Math.cos(origin.lat * RAD),
    y: (p.lat - origin.lat) * RAD * EARTH_RADIUS_M,
  };
}

/** Ray casting (even-odd), in the plane projected around the point itself (the point is at (0, 0)). */
function insidePolygonPlanar(pts: { x: number; y: number }[]): boolean {
  let inside = false;
  for (let i = 0, j = pts.length - 1; i < pts.length; j = i++) {
    const a = pts[i]!;
    const b = pts[j]!;
    if (a.y > 0 !== b.y > 0 && 0 < ((b.x - a.x) * (0 - a.y)) / (b.y - a.y) + a.x) inside = !inside;
  }
  return inside;
}

function distanceToSegment(a: { x: number; y: number }, b: { x: number; y: number }): number {
  const dx = b.x - a.x;
  const dy = b.y - a.y;
  const len2 = dx * dx + dy * dy;
  const t = len2 === 0 ? 0 : Math.max(0, Math.min(1, -(a.x * dx + a.y * dy) / len2));
  return Math.hypot(a.x + t * dx, a.y + t * dy);
}

/**
 * Signed distance in metres from the zone's boundary: negative inside, positive outside.
 * Returns null for a zone that cannot be evaluated (fewer than 3 points, bad numbers) so the caller can
 * tell "no usable zone" apart from "inside".
 */
export function signedDistanceToZone(zone: SafeZone, p: LatLon): number | null {
  if (zone.type === 'circle') {
    const ok = checkPosition(zone.center).ok && Number.isFinite(zone.radiusM) && zone.radiusM > 0;
    return ok ? distanceM(zone.center, p) - zone.radiusM : null;
  }
  if (!Array.isArray(zone.points) || zone.points.length < 3) return null;
  if (!zone.points.every((q) => checkPosition(q).ok)) return null;
  const pts = zone.points.map((q) => project(p, q));
  let d = Infinity;
  for (let i = 0, j = pts.length - 1; i < pts.length; j = i++) d = Math.min(d, distanceToSegment(pts[j]!, pts[i]!));
  return insidePolygonPlanar(pts) ? -d : d;
}
