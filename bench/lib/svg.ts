// The latency histogram picture: share of P1 alarms per latency bin (log scale), one line per system, the p99 of
// each marked, the 20 ms target drawn. Plain SVG written by the bench; rendered to PNG by headless Chromium.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { percentile } from './stats.js';

export interface Series {
  label: string;
  color: string;
  samples: number[];
}

const W = 960;
const M = { l: 70, r: 30, b: 70 };
const LO = 0.1;
const HI = 2000;
const BINS = 48;

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function latencyHistogramSvg(title: string, series: Series[], targetMs: number): string {
  // the legend sits between the title and the plot, one line per system
  const H = 420 + 22 * series.length;
  const top = 44 + 22 * series.length + 10;
  const M2 = { ...M, t: top };
  const x = (ms: number) => M.l + ((Math.log10(Math.min(HI, Math.max(LO, ms))) - Math.log10(LO)) / (Math.log10(HI) - Math.log10(LO))) * (W - M.l - M.r);
  const edges = Array.from({ length: BINS + 1 }, (_, i) => LO * (HI / LO) ** (i / BINS));
  const hists = series.map((s) => {
    const counts = new Array<number>(BINS).fill(0);
    for (const v of s.samples) {
      const i = Math.min(BINS - 1, Math.max(0, Math.floor((Math.log10(Math.max(LO, v)) - Math.log10(LO)) / (Math.log10(HI / LO) / BINS))));
      counts[i]!++;
    }
    return counts.map((c) => (s.samples.length ? (100 * c) / s.samples.length : 0));
  });
  const ymax = Math.max(5, ...hists.flat()) * 1.1;
  const y = (pct: number) => H - M.b - (pct / ymax) * (H - M2.t - M.b);
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="DejaVu Sans, Arial, sans-serif" font-size="13">`);
  parts.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
  parts.push(`<text x="${W / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold">${esc(title)}</text>`);
  // grid and axes
  for (const t of [0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000]) {
    parts.push(`<line x1="${x(t)}" y1="${M2.t}" x2="${x(t)}" y2="${H - M.b}" stroke="#eeeeee"/>`);
    parts.push(`<text x="${x(t)}" y="${H - M.b + 18}" text-anchor="middle" fill="#444">${t}</text>`);
  }
  const ystep = ymax > 40 ? 10 : ymax > 20 ? 5 : 2;
  for (let v = 0; v <= ymax; v += ystep) {
    parts.push(`<line x1="${M.l}" y1="${y(v)}" x2="${W - M.r}" y2="${y(v)}" stroke="#f2f2f2"/>`);
    parts.push(`<text x="${M.l - 8}" y="${y(v) + 4}" text-anchor="end" fill="#444">${v}%</text>`);
  }
  parts.push(`<line x1="${M.l}" y1="${H - M.b}" x2="${W - M.r}" y2="${H - M.b}" stroke="#333"/>`);
  parts.push(`<line x1="${M.l}" y1="${M2.t}" x2="${M.l}" y2="${H - M.b}" stroke="#333"/>`);
  parts.push(`<text x="${W / 2}" y="${H - 28}" text-anchor="middle">latency, device publish() → console frame (ms, log scale)</text>`);
  parts.push(`<text transform="translate(18 ${H / 2}) rotate(-90)" text-anchor="middle">share of alarms per bin</text>`);
  // the target
  parts.push(`<line x1="${x(targetMs)}" y1="${M2.t}" x2="${x(targetMs)}" y2="${H - M.b}" stroke="#c00" stroke-width="1.5" stroke-dasharray="6 4"/>`);
  parts.push(`<text x="${x(targetMs) + 4}" y="${H - M.b - 8}" fill="#c00">p99 target ${targetMs} ms</text>`);
  series.forEach((s, k) => {
    const h = hists[k]!;
    let d = `M ${x(edges[0]!)} ${y(0)}`;
    for (let i = 0; i < BINS; i++) d += ` L ${x(edges[i]!)} ${y(h[i]!)} L ${x(edges[i + 1]!)} ${y(h[i]!)}`;
    d += ` L ${x(edges[BINS]!)} ${y(0)}`;
    parts.push(`<path d="${d}" fill="${s.color}" fill-opacity="0.12" stroke="${s.color}" stroke-width="2"/>`);
    if (s.samples.length) {
      const sorted = Float64Array.from(s.samples).sort();
      const p99 = percentile(sorted, 0.99);
      parts.push(`<line x1="${x(p99)}" y1="${M2.t + 20}" x2="${x(p99)}" y2="${H - M.b}" stroke="${s.color}" stroke-width="1.5" stroke-dasharray="2 3"/>`);
    }
    const ly = 52 + k * 22;
    const sorted = Float64Array.from(s.samples).sort();
    const note = s.samples.length ? `p50 ${percentile(sorted, 0.5).toFixed(2)} · p99 ${percentile(sorted, 0.99).toFixed(2)} · max ${sorted[sorted.length - 1]!.toFixed(1)} ms (n=${s.samples.length})` : 'no samples';
    parts.push(`<rect x="${M.l}" y="${ly - 10}" width="14" height="10" fill="${s.color}"/>`);
    parts.push(`<text x="${M.l + 20}" y="${ly}" fill="#222">${esc(s.label)}: ${esc(note)}  (dotted line: its p99)</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}

export const CHROMIUM = '/usr/bin/chromium';

/** Render an SVG file to PNG with headless Chromium; resolves with an error text instead of throwing. */
export function renderPng(svgFile: string, pngFile: string): Promise<string | null> {
  if (!existsSync(CHROMIUM)) return Promise.resolve(`Chromium is not installed (${CHROMIUM}): apt-get install -y chromium — the PNG was not rendered`);
  const profile = mkdtempSync(join(tmpdir(), 'bench-chromium-'));
  const height = Number(/height="(\d+)"/.exec(readFileSync(svgFile, 'utf8'))?.[1] ?? 500);
  return new Promise((resolve) => {
    execFile(CHROMIUM, [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--hide-scrollbars', `--user-data-dir=${profile}`,
      `--window-size=${W},${height}`, `--screenshot=${pngFile}`, pathToFileURL(svgFile).href,
    ], { timeout: 60_000 }, (err, _out, stderr) => {
      rmSync(profile, { recursive: true, force: true });
      if (err || !existsSync(pngFile)) resolve(`Chromium could not render ${pngFile}: ${err?.message ?? ''} ${String(stderr).slice(-300)}`);
      else resolve(null);
    });
  });
}
