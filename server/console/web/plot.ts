// Where the resident is, drawn without map tiles (the console must work with no internet, and a city need not run a
// tile server): the home, the safe zone, the fixes with their accuracy and the path of the last hour on a metre grid
// around the home, with a scale bar. A local equirectangular projection is exact enough over the few kilometres a
// resident walks. The map (map.ts) draws the same scene with the same labels when tiles are configured.
import type { LatLon, Resident } from './api.js';
import { fmtAgo, s } from './dom.js';

/** A position as the API gives it (core/contracts.ts Position). */
export interface ShownPosition {
  lat: number; lon: number; accuracy?: number; at?: number; stale?: boolean; source?: 'last-known' | 'home';
}

/** A fix of this message, the device's last known fix, or no fix at all: the resident's home address. */
export type Origin = 'fix' | 'last-known' | 'home';

export function positionOrigin(p: ShownPosition): Origin {
  if (!p.stale) return 'fix';
  if (p.source) return p.source;
  // incidents written before positions carried `source`: a last known fix always has its time (the gateway stamps
  // it when the fix arrives), a home address never has one
  return p.at === undefined ? 'home' : 'last-known';
}

/** What a position is, in the words every view uses: a home is "home address (no fix)", never "last known". */
export function originLabel(p: ShownPosition): string {
  const o = positionOrigin(p);
  return o === 'home' ? 'home address (no fix)' : o === 'last-known' ? 'last known fix' : 'fix';
}

export type PointRole = 'alarm' | 'device';

export interface ScenePoint {
  role: PointRole;
  pos: ShownPosition;
  /** when the fix was taken, if the position does not say (the alarm's receive time) */
  at?: number;
}

export interface PositionScene {
  home: LatLon | null;
  zone: Resident['safeZone'];
  points: ScenePoint[];
  /** fixes of the last hour, oldest first */
  path: (LatLon & { at: number })[];
}

const ROLE_NOUN: Record<PointRole, string> = { alarm: 'alarm', device: 'device' };

/**
 * The label of one point: "alarm: fix, 2 min ago, ±10 m", "alarm: last known fix, 14 min ago, ±25 m",
 * "alarm: home address (no fix)", "device: last fix, 1 min ago, ±8 m". The same text on the map, the plot and the
 * legend below them.
 */
export function pointLabel(p: ScenePoint, now = Date.now()): string {
  const origin = positionOrigin(p.pos);
  if (origin === 'home') return `${ROLE_NOUN[p.role]}: home address (no fix)`;
  const at = p.pos.at ?? p.at;
  const what = origin === 'last-known' ? 'last known fix' : p.role === 'device' ? 'last fix' : 'fix';
  const acc = p.pos.accuracy !== undefined ? `, ±${Math.round(p.pos.accuracy)} m` : '';
  return `${ROLE_NOUN[p.role]}: ${what}${at !== undefined ? `, ${fmtAgo(at, now)}` : ''}${acc}`;
}

/** Points shown as markers: a home-derived position is the home marker itself, not a fix of its own. */
export const fixPoints = (scene: PositionScene) => scene.points.filter((p) => positionOrigin(p.pos) !== 'home');
/** Labels said at the home: what is there besides the home (an alarm whose only position is the home address). */
export const atHome = (scene: PositionScene, now = Date.now()) =>
  scene.points.filter((p) => positionOrigin(p.pos) === 'home').map((p) => pointLabel(p, now));

export function zoneText(zone: Resident['safeZone']): string | null {
  if (!zone) return null;
  return zone.type === 'circle' ? `safe zone: circle of ${Math.round(zone.radiusM)} m` : `safe zone: area of ${zone.points.length} corners`;
}

export const pathText = (n: number) => `path of the last hour: ${n === 0 ? 'no fixes' : n === 1 ? '1 fix' : `${n} fixes`}`;

const M_PER_DEG_LAT = 110_574;
const M_PER_DEG_LON_EQ = 111_320;

function niceStep(span: number): number {
  const raw = span / 6;
  const p = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (raw <= m * p) return m * p;
  return 10 * p;
}

export function positionPlot(scene: PositionScene, now = Date.now()): SVGElement {
  const { zone, home } = scene;
  const fixes = fixPoints(scene);
  const origin: LatLon | undefined =
    home ?? (zone?.type === 'circle' ? zone.center : zone?.points[0]) ?? fixes[0]?.pos ?? scene.path[0];
  const svg = s('svg', { class: 'plot', role: 'img', 'aria-label': 'position around the home', 'data-path-points': scene.path.length });
  if (!origin) {
    svg.setAttribute('viewBox', '0 0 100 30');
    svg.append(s('text', { x: 50, y: 17, 'text-anchor': 'middle', class: 'plot-label', 'font-size': 5 }, 'no position and no home on record'));
    return svg;
  }
  const kx = M_PER_DEG_LON_EQ * Math.cos((origin.lat * Math.PI) / 180);
  const xy = (p: LatLon) => ({ x: (p.lon - origin.lon) * kx, y: -(p.lat - origin.lat) * M_PER_DEG_LAT });

  // the extent: everything drawn, at least 200 m across
  const xs: number[] = [0];
  const ys: number[] = [0];
  const extend = (p: LatLon, r = 0) => {
    const q = xy(p);
    xs.push(q.x - r, q.x + r);
    ys.push(q.y - r, q.y + r);
  };
  if (zone?.type === 'circle') extend(zone.center, zone.radiusM);
  if (zone?.type === 'polygon') zone.points.forEach((p) => extend(p));
  for (const pt of fixes) extend(pt.pos, Math.min(pt.pos.accuracy ?? 0, 5000));
  for (const p of scene.path) extend(p);
  let minX = Math.min(...xs), maxX = Math.max(...xs), minY = Math.min(...ys), maxY = Math.max(...ys);
  const span = Math.max(200, maxX - minX, maxY - minY) * 1.25;
  const cx = (minX + maxX) / 2, cy = (minY + maxY) / 2;
  minX = cx - span / 2; maxX = cx + span / 2; minY = cy - span / 2; maxY = cy + span / 2;
  svg.setAttribute('viewBox', `${minX} ${minY} ${span} ${span}`);
  const font = span / 28;
  const stroke = { 'vector-effect': 'non-scaling-stroke' };

  const step = niceStep(span);
  const grid = s('g', { class: 'plot-grid' });
  for (let x = Math.ceil(minX / step) * step; x <= maxX; x += step) grid.append(s('line', { x1: x, y1: minY, x2: x, y2: maxY, ...stroke }));
  for (let y = Math.ceil(minY / step) * step; y <= maxY; y += step) grid.append(s('line', { x1: minX, y1: y, x2: maxX, y2: y, ...stroke }));
  svg.append(grid);

  if (zone?.type === 'circle') {
    const c = xy(zone.center);
    svg.append(s('circle', { class: 'plot-zone', cx: c.x, cy: c.y, r: zone.radiusM, ...stroke }));
  } else if (zone?.type === 'polygon') {
    svg.append(s('polygon', { class: 'plot-zone', points: zone.points.map((p) => { const q = xy(p); return `${q.x},${q.y}`; }).join(' '), ...stroke }));
  }
  if (scene.path.length > 1) {
    svg.append(s('polyline', { class: 'plot-path', points: scene.path.map((p) => { const q = xy(p); return `${q.x},${q.y}`; }).join(' '), ...stroke }));
  }
  const label = (x: number, y: number, text: string, cls = '') =>
    s('text', { class: `plot-label${cls ? ' ' + cls : ''}`, x, y, 'font-size': font }, text);
  if (home) {
    const q = xy(home);
    const r = span / 60;
    svg.append(s('rect', { class: 'plot-home', x: q.x - r, y: q.y - r, width: 2 * r, height: 2 * r, ...stroke }));
    svg.append(label(q.x + r * 1.6, q.y + font / 3, 'home'));
    atHome(scene, now).forEach((t, i) => svg.append(label(q.x + r * 1.6, q.y + font / 3 + (i + 1) * font * 1.2, t, 'plot-at-home')));
  }
  fixes.forEach((pt, i) => {
    const q = xy(pt.pos);
    const stale = positionOrigin(pt.pos) === 'last-known';
    if (pt.pos.accuracy) svg.append(s('circle', { class: `plot-acc ${pt.role}`, cx: q.x, cy: q.y, r: pt.pos.accuracy, ...stroke }));
    svg.append(s('circle', {
      class: `plot-point ${pt.role}${stale ? ' stale' : ''}`, cx: q.x, cy: q.y, r: span / (pt.role === 'alarm' ? 70 : 100), ...stroke,
    }));
    // two points close together: the second label goes below, not over the first
    svg.append(label(q.x + span / 50, q.y - span / 50 + i * font * 1.3, pointLabel(pt, now), `plot-fix ${pt.role}`));
  });
  // scale bar, bottom left
  const bx = minX + span * 0.05, by = maxY - span * 0.05;
  svg.append(s('line', { class: 'plot-scale', x1: bx, y1: by, x2: bx + step, y2: by, ...stroke }));
  svg.append(label(bx, by - font / 2, step >= 1000 ? `${step / 1000} km` : `${step} m`));
  return svg;
}
