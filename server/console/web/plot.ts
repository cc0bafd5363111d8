// Where the resident is, drawn without map tiles (the console must work with no internet): the home, the safe zone
// and the alarm's position on a metre grid around the home, with a scale bar. A local equirectangular projection
// is exact enough over the few kilometres a resident walks.
import type { LatLon, Resident } from './api.js';
import { s } from './dom.js';

export interface PlotPoint {
  pos: { lat: number; lon: number; accuracy?: number; stale?: boolean };
  label: string;
  kind: 'alarm' | 'device';
}

const M_PER_DEG_LAT = 110_574;
const M_PER_DEG_LON_EQ = 111_320;

function niceStep(span: number): number {
  const raw = span / 6;
  const p = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (raw <= m * p) return m * p;
  return 10 * p;
}

export function positionPlot(resident: Pick<Resident, 'home' | 'safeZone'> | null, points: PlotPoint[]): SVGElement {
  const zone = resident?.safeZone ?? null;
  const origin: LatLon | undefined =
    resident?.home ?? (zone?.type === 'circle' ? zone.center : zone?.points[0]) ?? points[0]?.pos;
  const svg = s('svg', { class: 'plot', role: 'img', 'aria-label': 'position of the alarm around the home' });
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
  for (const pt of points) extend(pt.pos, Math.min(pt.pos.accuracy ?? 0, 5000));
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
  if (resident?.home) {
    const q = xy(resident.home);
    const r = span / 60;
    svg.append(s('rect', { class: 'plot-home', x: q.x - r, y: q.y - r, width: 2 * r, height: 2 * r, ...stroke }));
    svg.append(s('text', { class: 'plot-label', x: q.x + r * 1.6, y: q.y + font / 3, 'font-size': font }, 'home'));
  }
  for (const pt of points) {
    const q = xy(pt.pos);
    if (pt.pos.accuracy) svg.append(s('circle', { class: `plot-acc ${pt.kind}`, cx: q.x, cy: q.y, r: pt.pos.accuracy, ...stroke }));
    svg.append(s('circle', {
      class: `plot-point ${pt.kind}${pt.pos.stale ? ' stale' : ''}`, cx: q.x, cy: q.y, r: span / (pt.kind === 'alarm' ? 70 : 100), ...stroke,
    }));
    svg.append(s('text', { class: 'plot-label', x: q.x + span / 50, y: q.y - span / 50, 'font-size': font }, pt.label + (pt.pos.stale ? ' (last known)' : '')));
  }
  // scale bar, bottom left
  const bx = minX + span * 0.05, by = maxY - span * 0.05;
  svg.append(s('line', { class: 'plot-scale', x1: bx, y1: by, x2: bx + step, y2: by, ...stroke }));
  svg.append(s('text', { class: 'plot-label', x: bx, y: by - font / 2, 'font-size': font }, step >= 1000 ? `${step / 1000} km` : `${step} m`));
  return svg;
}
