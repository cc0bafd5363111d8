// Where the resident is, on a real map when the city gives us tiles (console.tileUrl: its own tile server or an
// offline tile set, never a public CDN), else on the schematic plot (plot.ts). Both draw one scene — home, the safe
// zone, the fixes with their age and accuracy, the path of the last hour — with the same labels, and the legend
// under them says it again in words. The map is kept across redraws of the page (an incident page redraws on
// every event): only its layers change, and the view is refitted only when what is shown moved.
import * as L from 'leaflet';
import type { Ctx } from './context.js';
import { h, s } from './dom.js';
import {
  atHome, fixPoints, pathText, pointLabel, positionOrigin, positionPlot, zoneText, type PositionScene,
} from './plot.js';

export interface MapSettings { tileUrl: string; attribution: string; maxZoom: number }

const HOUR_MS = 3_600_000;
/** a walker's watch sends a fix every few seconds at most; 4 pages of 500 is more than an hour of that */
const PATH_PAGE = 500;
const PATH_PAGES = 4;
/** the path is fetched again when the device's last fix changed, or after this long, never more often than MIN */
const PATH_REFRESH_MS = 20_000;
const PATH_MIN_MS = 3_000;
/** ages ("3 min ago") grow while the page is open */
const RELABEL_MS = 15_000;
/** the closest a fit may zoom: a street, not a doorstep */
const FIT_MAX_ZOOM = 17;

/** The map settings, as told at login; a page opened before that answer came asks once more. */
async function mapSettings(ctx: Ctx): Promise<MapSettings | null> {
  if (ctx.settings.map !== undefined) return ctx.settings.map;
  try {
    const answer = await ctx.api.get<{ map?: MapSettings | null }>('/api/console/settings');
    ctx.settings.map = answer.map ?? null;
  } catch {
    return null; // not remembered: the next page asks again
  }
  return ctx.settings.map;
}

// Leaflet sets the attribution as HTML: the configured text is shown as text
const escapeHtml = (t: string) => t.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function houseIcon(): L.DivIcon {
  const svg = s('svg', { viewBox: '0 0 24 24', width: 26, height: 26, 'aria-hidden': 'true' },
    s('path', { class: 'map-house-roof', d: 'M12 2 1 11h3v10h6v-6h4v6h6V11h3z' }));
  return L.divIcon({ className: 'map-home', html: svg as unknown as HTMLElement, iconSize: [26, 26], iconAnchor: [13, 13], tooltipAnchor: [12, 0] });
}

function tooltip(lines: string[], cls: string): HTMLElement {
  return h('span', { class: `map-label ${cls}` }, ...lines.flatMap((l, i) => (i ? [h('br'), l] : [l])));
}

/** Leaflet, drawn into an element that may be detached and re-attached (redraws) and resized (a phone turned). */
class LeafletMap {
  readonly el = h('div', { class: 'map', role: 'region', 'aria-label': 'map of the position' });
  private readonly map: L.Map;
  private readonly layers = L.layerGroup();
  private readonly resize: ResizeObserver;
  private fittedKey = '';
  private pendingFit: L.LatLngBounds | null = null;
  tileErrors = 0;
  onTileError: (() => void) | null = null;

  constructor(settings: MapSettings) {
    L.Icon.Default.imagePath = '/console/images/'; // served by the gateway (server/console/index.ts)
    this.map = L.map(this.el, { maxZoom: settings.maxZoom, zoomSnap: 1, attributionControl: true });
    this.map.attributionControl.setPrefix('Leaflet'); // no link out: the console may run without internet
    const tiles = L.tileLayer(settings.tileUrl, { maxZoom: settings.maxZoom, attribution: escapeHtml(settings.attribution) });
    tiles.on('tileerror', () => { this.tileErrors++; this.onTileError?.(); });
    tiles.addTo(this.map);
    this.layers.addTo(this.map);
    L.control.scale({ imperial: false }).addTo(this.map);
    // a map made while detached has no size: measure again when it is shown or resized, then fit
    this.resize = new ResizeObserver(() => {
      if (!this.el.clientWidth) return;
      this.map.invalidateSize();
      if (this.pendingFit) this.fit(this.pendingFit);
    });
    this.resize.observe(this.el);
  }

  draw(scene: PositionScene, now: number): void {
    this.layers.clearLayers();
    const bounds = L.latLngBounds([]);
    const zone = scene.zone;
    if (zone?.type === 'circle') {
      const c = L.circle([zone.center.lat, zone.center.lon], { radius: zone.radiusM, className: 'map-zone' }).addTo(this.layers);
      bounds.extend(L.latLng(zone.center.lat, zone.center.lon).toBounds(zone.radiusM * 2));
      c.bindTooltip(zoneText(zone) ?? '', { sticky: true });
    } else if (zone?.type === 'polygon') {
      const ring = zone.points.map((p) => L.latLng(p.lat, p.lon));
      L.polygon(ring, { className: 'map-zone' }).addTo(this.layers).bindTooltip(zoneText(zone) ?? '', { sticky: true });
      ring.forEach((p) => bounds.extend(p));
    }
    if (scene.path.length > 1) {
      // every fix drawn (no simplification, no clipping): the path is evidence of where the resident walked
      L.polyline(scene.path.map((p) => L.latLng(p.lat, p.lon)), { className: 'map-path', smoothFactor: 0, noClip: true, interactive: false })
        .addTo(this.layers);
    }
    scene.path.forEach((p) => bounds.extend([p.lat, p.lon]));
    if (scene.home) {
      const at = L.latLng(scene.home.lat, scene.home.lon);
      L.marker(at, { icon: houseIcon(), title: 'home', alt: 'home', keyboard: false })
        .bindTooltip(tooltip(['home', ...atHome(scene, now)], 'home'), { permanent: true, direction: 'right' })
        .addTo(this.layers);
      bounds.extend(at);
    }
    fixPoints(scene).forEach((pt, i) => {
      const at = L.latLng(pt.pos.lat, pt.pos.lon);
      const label = pointLabel(pt, now);
      if (pt.pos.accuracy) {
        L.circle(at, { radius: pt.pos.accuracy, className: `map-accuracy ${pt.role}`, interactive: false }).addTo(this.layers);
        bounds.extend(at.toBounds(Math.min(pt.pos.accuracy, 5000) * 2));
      }
      const stale = positionOrigin(pt.pos) === 'last-known' ? ' stale' : '';
      L.marker(at, { icon: new L.Icon.Default({ className: `map-fix ${pt.role}${stale}` }), title: label, alt: label, keyboard: false })
        .bindTooltip(tooltip([label], pt.role), { permanent: true, direction: i % 2 ? 'left' : 'right', offset: [0, -20] })
        .addTo(this.layers);
      bounds.extend(at);
    });
    this.el.dataset.pathPoints = String(scene.path.length);
    // refit only when what is shown moved (not when only an age changed): an operator who zoomed keeps the view
    const key = JSON.stringify([scene.home, scene.zone, fixPoints(scene).map((p) => [p.pos.lat, p.pos.lon, p.pos.accuracy]), scene.path.length > 0]);
    if (key === this.fittedKey || !bounds.isValid()) return;
    this.fittedKey = key;
    this.fit(bounds);
  }

  private fit(bounds: L.LatLngBounds): void {
    if (!this.el.clientWidth) { this.pendingFit = bounds; return; }
    this.pendingFit = null;
    const maxZoom = Math.min(FIT_MAX_ZOOM, this.map.getMaxZoom());
    const one = bounds.getNorthEast().equals(bounds.getSouthWest());
    if (one) this.map.setView(bounds.getCenter(), maxZoom - 1);
    else this.map.fitBounds(bounds, { padding: [28, 28], maxZoom });
  }

  destroy(): void {
    this.resize.disconnect();
    this.map.remove();
  }
}

interface PathFix { lat: number; lon: number; at: number }
interface ObservationItem { id: number; receivedAt: number; data: { position?: { lat?: unknown; lon?: unknown } } }

/** Fixes of the device in the last hour (by the gateway's receive time), oldest first. */
async function lastHourPath(ctx: Ctx, deviceId: string, now: number): Promise<PathFix[]> {
  const since = now - HOUR_MS;
  const out: PathFix[] = [];
  let before: number | undefined;
  for (let page = 0; page < PATH_PAGES; page++) {
    const q = new URLSearchParams({ deviceId, type: 'position', limit: String(PATH_PAGE) });
    if (before !== undefined) q.set('before', String(before));
    const { items } = await ctx.api.get<{ items: ObservationItem[] }>(`/api/observations?${q}`);
    for (const o of items) {
      if (o.receivedAt < since) continue;
      const p = o.data.position;
      if (typeof p?.lat === 'number' && typeof p.lon === 'number' && Number.isFinite(p.lat) && Number.isFinite(p.lon)) {
        out.push({ lat: p.lat, lon: p.lon, at: o.receivedAt });
      }
    }
    const last = items[items.length - 1];
    if (items.length < PATH_PAGE || !last || last.receivedAt < since) break;
    before = last.id;
  }
  return out.sort((a, b) => a.at - b.at);
}

/**
 * The "Position" panel of the incident and device pages. `show()` as often as the page likes (it redraws on every
 * event); the path is fetched from the observations when the device's last fix changed, and now and then.
 */
export class PositionPanel {
  readonly el: HTMLElement;
  private readonly figure = h('div', { class: 'position-figure' });
  private readonly legend = h('ul', { class: 'map-legend' });
  private readonly note = h('p', { class: 'muted map-note' });
  private settings: MapSettings | null | undefined;
  private leaflet: LeafletMap | null = null;
  private base: Omit<PositionScene, 'path'> | null = null;
  private path: PathFix[] = [];
  private pathProblem: string | null = null;
  private pathFor = { deviceId: '', fixKey: '', at: 0 };
  private pathLoading = false;
  private deviceId: string | null = null;
  private fixKey = '';
  private readonly relabel: number;
  private alive = true;

  constructor(private readonly ctx: Ctx, title = 'Position') {
    this.el = h('section', { class: 'panel position' }, h('h2', null, title), this.figure, this.legend, this.note);
    this.relabel = window.setInterval(() => { this.render(); this.refreshPath(); }, RELABEL_MS);
    void mapSettings(ctx).then((m) => {
      if (!this.alive) return;
      this.settings = m;
      this.render();
    });
  }

  /** `fixKey`: anything that changes when the device has a new fix (its time), so the path is fetched again. */
  show(scene: Omit<PositionScene, 'path'>, deviceId: string | null, fixKey = ''): void {
    this.base = scene;
    this.deviceId = deviceId;
    this.fixKey = fixKey;
    this.render();
    this.refreshPath();
  }

  private refreshPath(): void {
    const id = this.deviceId;
    if (!id || this.pathLoading) return;
    const since = Date.now() - this.pathFor.at;
    const changed = this.pathFor.deviceId !== id || this.pathFor.fixKey !== this.fixKey;
    if (since < PATH_MIN_MS || (!changed && since < PATH_REFRESH_MS)) return;
    this.pathLoading = true;
    this.pathFor = { deviceId: id, fixKey: this.fixKey, at: Date.now() };
    lastHourPath(this.ctx, id, Date.now()).then(
      (p) => { this.path = p; this.pathProblem = null; },
      (err: Error) => { this.pathProblem = err.message; },
    ).finally(() => {
      this.pathLoading = false;
      if (this.alive) this.render();
    });
  }

  private render(): void {
    if (!this.base || this.settings === undefined || !this.alive) return;
    const now = Date.now();
    const since = now - HOUR_MS;
    const scene: PositionScene = { ...this.base, path: this.path.filter((p) => p.at >= since) };
    if (this.settings) {
      if (!this.leaflet) {
        this.leaflet = new LeafletMap(this.settings);
        this.leaflet.onTileError = () => {
          // said once, plainly: the positions are still right, only the background is missing
          this.note.textContent = `Map tiles cannot be loaded from ${new URL(this.settings!.tileUrl.replace(/\{[zxy]\}/g, '0')).origin} (console.tileUrl): the positions below are still correct.`;
        };
        this.figure.replaceChildren(this.leaflet.el);
      }
      this.leaflet.draw(scene, now);
    } else {
      this.figure.replaceChildren(positionPlot(scene, now));
    }
    this.el.dataset.view = this.settings ? 'map' : 'plot';
    this.legend.replaceChildren(...legendItems(scene, now, this.pathProblem));
  }

  destroy(): void {
    this.alive = false;
    window.clearInterval(this.relabel);
    this.leaflet?.destroy();
    this.leaflet = null;
  }
}

function legendItems(scene: PositionScene, now: number, pathProblem: string | null): HTMLElement[] {
  const item = (kind: string, text: string) => h('li', { 'data-legend': kind }, h('span', { class: `key ${kind}`, 'aria-hidden': 'true' }), text);
  const items: HTMLElement[] = [];
  items.push(scene.home ? item('home', 'home') : item('home', 'no home address on record'));
  for (const p of scene.points) items.push(item(positionOrigin(p.pos) === 'home' ? 'home' : p.role, pointLabel(p, now)));
  if (!scene.points.length) items.push(item('alarm', 'no position from the device'));
  const zone = zoneText(scene.zone);
  if (zone) items.push(item('zone', zone));
  items.push(item('path', pathProblem ? `path of the last hour: cannot be loaded (${pathProblem})` : pathText(scene.path.length)));
  return items;
}
