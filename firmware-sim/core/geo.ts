// Just enough geodesy for a locator walking around home: metres on a sphere (errors of a few parts in a
// thousand at city scale, far below GPS accuracy).

export interface LatLon {
  lat: number;
  lon: number;
}

export type SafeZone =
  | { type: 'circle'; center: LatLon; radiusM: number }
  | { type: 'polygon'; points: LatLon[] };

const R = 6_371_000;
const rad = (d: number) => (d * Math.PI) / 180;
const deg = (r: number) => (r * 180) / Math.PI;

export function distanceM(a: LatLon, b: LatLon): number {
  const dLat = rad(b.lat - a.lat);
  const dLon = rad(b.lon - a.lon);
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(rad(a.lat)) * Math.cos(rad(b.lat)) * Math.sin(dLon / 2) ** 2;
  return 2 * R * Math.asin(Math.min(1, Math.sqrt(h)));
}

/** the point `meters` away from `p` on compass bearing `bearingDeg` */
export function offset(p: LatLon, meters: number, bearingDeg: number): LatLon {
  const d = meters / R;
  const b = rad(bearingDeg);
  const lat1 = rad(p.lat);
  const lon1 = rad(p.lon);
  const lat2 = Math.asin(Math.sin(lat1) * Math.cos(d) + Math.cos(lat1) * Math.sin(d) * Math.cos(b));
  const lon2 = lon1 + Math.atan2(Math.sin(b) * Math.sin(d) * Math.cos(lat1), Math.cos(d) - Math.sin(lat1) * Math.sin(lat2));
  return { lat: round7(deg(lat2)), lon: round7(deg(lon2)) };
}

export function bearing(from: LatLon, to: LatLon): number {
  const y = Math.sin(rad(to.lon - from.lon)) * Math.cos(rad(to.lat));
  const x =
    Math.cos(rad(from.lat)) * Math.sin(rad(to.lat)) -
    Math.sin(rad(from.lat)) * Math.cos(rad(to.lat)) * Math.cos(rad(to.lon - from.lon));
  return (deg(Math.atan2(y, x)) + 360) % 360;
}

export function insideZone(p: LatLon, zone: SafeZone): boolean {
  if (zone.type === 'circle') return distanceM(p, zone.center) <= zone.radiusM;
  // ray casting on lat/lon: fine for zones of a few kilometres
  let inside = false;
  const pts = zone.points;
  for (let i = 0, j = pts.length - 1; i < pts.length; j = i++) {
    const a = pts[i] as LatLon;
    const b = pts[j] as LatLon;
    if (a.lat > p.lat !== b.lat > p.lat && p.lon < ((b.lon - a.lon) * (p.lat - a.lat)) / (b.lat - a.lat) + a.lon) {
      inside = !inside;
    }
  }
  return inside;
}

/** centre and a radius that covers the zone (for a polygon: centroid of the points and the farthest point) */
export function zoneCentre(zone: SafeZone): { center: LatLon; radiusM: number } {
  if (zone.type === 'circle') return { center: zone.center, radiusM: zone.radiusM };
  const n = zone.points.length || 1;
  const center = {
    lat: zone.points.reduce((s, p) => s + p.lat, 0) / n,
    lon: zone.points.reduce((s, p) => s + p.lon, 0) / n,
  };
  return { center, radiusM: Math.max(1, ...zone.points.map((p) => distanceM(center, p))) };
}

export function round7(x: number): number {
  return Math.round(x * 1e7) / 1e7;
}
