// Inline SVG pictures for the report: a latency histogram on 1-2-5 buckets and a run timeline. Hand-drawn on
// purpose: the page must open on an air-gapped console with no CDN and no script.
import { logBuckets } from '../core/stats.js';
import { formatMs } from '../core/duration.js';
import type { Sample, StepRecord } from './types.js';

export function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);
}

const fmtBucket = (ms: number) => (ms < 1 ? `${ms}ms` : ms < 1000 ? `${ms}ms` : ms < 60_000 ? `${ms / 1000}s` : `${ms / 60_000}m`);

/** bars of a log-bucketed histogram; the p50 and p99 buckets are marked */
export function histogramSvg(samples: readonly number[], title: string, color = '#2f6fb3'): string {
  const W = 520;
  const H = 230;
  const pad = { l: 48, r: 12, t: 28, b: 44 };
  if (samples.length === 0) {
    return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="80" role="img" aria-label="${esc(title)}: no samples">
<text x="8" y="20" font-size="13" font-weight="600">${esc(title)}</text><text x="8" y="50" font-size="12" fill="#777">no samples in this run</text></svg>`;
  }
  const buckets = logBuckets(samples);
  const max = Math.max(...buckets.map((b) => b.count), 1);
  const sorted = [...samples].sort((a, b) => a - b);
  const q = (p: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))] as number;
  const p50 = q(0.5);
  const p99 = q(0.99);
  const bucketOf = (v: number) => Math.max(0, buckets.findIndex((b) => v <= b.le));
  const iw = W - pad.l - pad.r;
  const ih = H - pad.t - pad.b;
  const bw = iw / buckets.length;
  const parts: string[] = [];
  parts.push(`<text x="${pad.l}" y="16" font-size="13" font-weight="600">${esc(title)}</text>`);
  parts.push(`<text x="${W - pad.r}" y="16" font-size="11" text-anchor="end" fill="#555">n=${samples.length} · p50 ${esc(formatMs(p50))} · p99 ${esc(formatMs(p99))}</text>`);
  // y axis: counts
  for (const f of [0, 0.5, 1]) {
    const y = pad.t + ih - f * ih;
    parts.push(`<line x1="${pad.l}" x2="${W - pad.r}" y1="${y}" y2="${y}" stroke="#e3e3e3"/>`);
    parts.push(`<text x="${pad.l - 6}" y="${y + 4}" font-size="10" text-anchor="end" fill="#666">${Math.round(f * max)}</text>`);
  }
  buckets.forEach((b, i) => {
    const h = (b.count / max) * ih;
    const x = pad.l + i * bw;
    const mark = i === bucketOf(p99) ? '#c0392b' : i === bucketOf(p50) ? '#1e8449' : color;
    parts.push(`<rect x="${(x + 2).toFixed(1)}" y="${(pad.t + ih - h).toFixed(1)}" width="${Math.max(1, bw - 4).toFixed(1)}" height="${h.toFixed(1)}" fill="${mark}"><title>≤ ${esc(fmtBucket(b.le))}: ${b.count}</title></rect>`);
    if (b.count > 0) parts.push(`<text x="${(x + bw / 2).toFixed(1)}" y="${(pad.t + ih - h - 3).toFixed(1)}" font-size="9" text-anchor="middle" fill="#333">${b.count}</text>`);
    parts.push(`<text x="${(x + bw / 2).toFixed(1)}" y="${pad.t + ih + 14}" font-size="9" text-anchor="middle" fill="#444">≤${esc(fmtBucket(b.le))}</text>`);
  });
  parts.push(`<text x="${pad.l}" y="${H - 8}" font-size="10" fill="#555"><tspan fill="#1e8449">■</tspan> bucket of p50  <tspan fill="#c0392b">■</tspan> bucket of p99</text>`);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(title)}" font-family="system-ui, sans-serif">${parts.join('')}</svg>`;
}

/** devices online and alarms over time, with the steps and the verdicts of their expectations */
export function timelineSvg(
  samples: readonly Sample[],
  steps: readonly StepRecord[],
  verdicts: ReadonlyMap<number, boolean>,
  total: number,
): string {
  const W = 1100;
  const H = 300;
  const pad = { l: 56, r: 56, t: 54, b: 34 };
  if (samples.length === 0) return '';
  const t0 = Math.min(0, ...samples.map((s) => s.t));
  const t1 = Math.max(1000, ...samples.map((s) => s.t), ...steps.map((s) => s.actualMs));
  const iw = W - pad.l - pad.r;
  const ih = H - pad.t - pad.b;
  const x = (t: number) => pad.l + ((t - t0) / (t1 - t0)) * iw;
  const yMaxL = Math.max(total, 1, ...samples.map((s) => s.connected));
  const yMaxR = Math.max(1, ...samples.map((s) => s.alarmsSent));
  const yl = (v: number) => pad.t + ih - (v / yMaxL) * ih;
  const yr = (v: number) => pad.t + ih - (v / yMaxR) * ih;
  const parts: string[] = [];
  const path = (pts: [number, number][]) => pts.map(([a, b], i) => `${i ? 'L' : 'M'}${a.toFixed(1)},${b.toFixed(1)}`).join('');
  // grid and axes
  for (const f of [0, 0.25, 0.5, 0.75, 1]) {
    const y = pad.t + ih - f * ih;
    parts.push(`<line x1="${pad.l}" x2="${W - pad.r}" y1="${y}" y2="${y}" stroke="#eee"/>`);
    parts.push(`<text x="${pad.l - 6}" y="${y + 4}" font-size="10" text-anchor="end" fill="#2f6fb3">${Math.round(f * yMaxL)}</text>`);
    parts.push(`<text x="${W - pad.r + 6}" y="${y + 4}" font-size="10" fill="#b9770e">${Math.round(f * yMaxR)}</text>`);
  }
  const ticks = niceTicks(t0, t1, 10);
  for (const t of ticks) {
    parts.push(`<line x1="${x(t)}" x2="${x(t)}" y1="${pad.t + ih}" y2="${pad.t + ih + 4}" stroke="#999"/>`);
    parts.push(`<text x="${x(t)}" y="${pad.t + ih + 16}" font-size="10" text-anchor="middle" fill="#555">${(t / 1000).toFixed(t1 - t0 < 10_000 ? 1 : 0)}s</text>`);
  }
  // connected devices (area) and alarms sent / PUBACKed (lines)
  const conn = samples.map((s) => [x(s.t), yl(s.connected)] as [number, number]);
  parts.push(`<path d="${path(conn)}L${x(samples[samples.length - 1]!.t)},${pad.t + ih}L${x(samples[0]!.t)},${pad.t + ih}Z" fill="#2f6fb3" fill-opacity="0.15" stroke="none"/>`);
  parts.push(`<path d="${path(conn)}" fill="none" stroke="#2f6fb3" stroke-width="1.6"/>`);
  parts.push(`<path d="${path(samples.map((s) => [x(s.t), yr(s.alarmsSent)]))}" fill="none" stroke="#b9770e" stroke-width="1.6"/>`);
  parts.push(`<path d="${path(samples.map((s) => [x(s.t), yr(s.alarmsAcked)]))}" fill="none" stroke="#1e8449" stroke-width="1.4" stroke-dasharray="4 3"/>`);
  // t = 0 and the steps
  parts.push(`<line x1="${x(0)}" x2="${x(0)}" y1="${pad.t - 6}" y2="${pad.t + ih}" stroke="#555" stroke-width="1"/>`);
  steps.forEach((s, i) => {
    const sx = x(s.actualMs);
    const v = verdicts.get(s.index);
    const row = i % 3;
    parts.push(`<line x1="${sx}" x2="${sx}" y1="${pad.t - 4}" y2="${pad.t + ih}" stroke="${s.error ? '#c0392b' : '#888'}" stroke-dasharray="3 3"/>`);
    const mark = v === undefined ? '' : v ? ' ✓' : ' ✗';
    const fill = s.error || v === false ? '#c0392b' : v ? '#1e8449' : '#333';
    parts.push(`<text x="${sx + 3}" y="${12 + row * 13}" font-size="10" fill="${fill}">${esc(truncate(s.label, 34))}${mark}</text>`);
  });
  parts.push(
    `<text x="${pad.l}" y="${H - 4}" font-size="10" fill="#555"><tspan fill="#2f6fb3">■</tspan> devices online (left)   <tspan fill="#b9770e">━</tspan> alarms sent   <tspan fill="#1e8449">┅</tspan> alarms PUBACKed (right)   t = 0: fleet online</text>`,
  );
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="run timeline" font-family="system-ui, sans-serif">${parts.join('')}</svg>`;
}

function truncate(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
}

function niceTicks(a: number, b: number, n: number): number[] {
  const span = b - a;
  const raw = span / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => span / s <= n) ?? 10 * mag;
  const out: number[] = [];
  for (let t = Math.ceil(a / step) * step; t <= b; t += step) out.push(t);
  return out;
}
