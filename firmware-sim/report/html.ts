// The report as one self-contained HTML page (inline CSS and SVG, no script, no CDN), and the JSON beside it.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { formatMs } from '../core/duration.js';
import type { LatencySummary } from '../core/stats.js';
import { esc, histogramSvg, timelineSvg } from './svg.js';
import type { RunReport } from './types.js';

export function renderHtml(r: RunReport): string {
  const verdict = r.passed ? '<span class="badge pass">PASSED</span>' : '<span class="badge fail">FAILED</span>';
  const total = r.groups.reduce((n, g) => n + g.count, 0);
  const stepVerdicts = new Map<number, boolean>();
  for (const s of r.steps) {
    const mine = r.expectations.filter((e) => e.scope.startsWith(`line ${s.line}:`));
    if (mine.length) stepVerdicts.set(s.index, mine.every((e) => e.passed));
  }
  const lat = (name: string, s: LatencySummary) =>
    `<tr><td>${esc(name)}</td><td>${s.count}</td>${[s.min, s.p50, s.p90, s.p99, s.max].map((v) => `<td>${esc(formatMs(v))}</td>`).join('')}</tr>`;
  const st = r.stats;
  const counters: [string, number | string][] = [
    ['devices', total],
    ['connections', st.connects],
    ['reconnections', st.reconnects],
    ['failed connection attempts', st.connectFailures],
    ['alarms sent', st.alarmsSent],
    ['alarms PUBACKed', st.alarmsAcked],
    ['events sent (all QoS 1)', st.eventsSent],
    ['resends', st.resends],
    ['telemetry sent', st.telemetrySent],
    ['telemetry dropped from full buffers', st.droppedTelemetry],
    ['alarms dropped from full buffers', st.droppedAlarms],
    ['commands received', st.commands],
    ['acknowledge-alarm commands', st.ackCommands],
  ];
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(r.name)} — eldergate-sim report</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:24px;color:#222;max-width:1160px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:26px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta{color:#555;font-size:13px}.badge{display:inline-block;padding:2px 10px;border-radius:4px;color:#fff;font-weight:700;font-size:13px;vertical-align:middle}
.pass{background:#1e8449}.fail{background:#c0392b}table{border-collapse:collapse;font-size:13px}
td,th{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}th{background:#f5f5f5}
td.ok{color:#1e8449;font-weight:700}td.ko{color:#c0392b;font-weight:700}.grid{display:flex;flex-wrap:wrap;gap:12px}
.card{border:1px solid #e2e2e2;border-radius:6px;padding:8px;background:#fff}code{background:#f3f3f3;padding:0 3px}
.notes li{color:#8a4b00}
</style></head><body>
<h1>${esc(r.name)} ${verdict}</h1>
<div class="meta">${r.kind} run · ${r.file ? `<code>${esc(r.file)}</code> · ` : ''}seed ${r.seed}${r.scale ? ` · scale ${r.scale}` : ''} · started ${esc(r.startedAt)} · ${esc(formatMs(r.durationMs))} · gateway <code>${esc(r.gateway.api)}</code> <code>${esc(r.gateway.mqtt)}</code></div>
${r.description ? `<p>${esc(r.description)}</p>` : ''}
${r.testRun ? `<div class="meta" data-test-run="${esc(r.testRun.id)}">test run <code>${esc(r.testRun.id)}</code> — devices, residents and incidents marked test${r.testRun.interrupted ? ` · <strong>stopped early</strong> (${esc(r.testRun.interrupted.reason)}) at ${esc(formatMs(r.testRun.interrupted.atMs))}` : ''} · ${r.testRun.keep ? 'kept on the gateway (--keep)' : r.testRun.cleanup ? `cleaned up: ${r.testRun.cleanup.devicesDecommissioned} device(s) decommissioned, ${r.testRun.cleanup.incidentsClosed} test incident(s) closed, ${r.testRun.cleanup.residentsMarked} resident(s) marked${r.testRun.cleanup.errors.length ? `, ${r.testRun.cleanup.errors.length} problem(s)` : ''}` : 'not cleaned up yet'}</div>` : ''}
${r.notes.length ? `<ul class="notes">${r.notes.map((n) => `<li>${esc(n)}</li>`).join('')}</ul>` : ''}
<h2>Expectations</h2>
${r.expectations.length === 0 ? '<p>none</p>' : `<table><tr><th></th><th>line</th><th>expectation</th><th>where</th><th>result</th></tr>
${r.expectations.map((e) => `<tr><td class="${e.passed ? 'ok' : 'ko'}">${e.passed ? '✓' : '✗'}</td><td>${e.line || ''}</td><td>${esc(e.text)}</td><td>${esc(e.scope)}</td><td>${esc(e.detail)}</td></tr>`).join('\n')}</table>`}
<h2>Latency</h2>
<table><tr><th>metric</th><th>n</th><th>min</th><th>p50</th><th>p90</th><th>p99</th><th>max</th></tr>
${lat('alarm publish → PUBACK (durable at the gateway)', r.latency.puback.summary)}
${lat('alarm publish → incident opened', r.latency.incident.summary)}
${lat('alarm publish → acknowledge-alarm command at the device', r.latency.ackCommand.summary)}
</table>
<div class="grid" style="margin-top:10px">
<div class="card">${histogramSvg(r.latency.puback.samples, 'alarm → PUBACK')}</div>
<div class="card">${histogramSvg(r.latency.incident.samples, 'alarm → incident', '#7d3c98')}</div>
${r.latency.ackCommand.samples.length ? `<div class="card">${histogramSvg(r.latency.ackCommand.samples, 'alarm → "help is coming" at the device', '#117a65')}</div>` : ''}
</div>
<h2>Timeline</h2>
<div class="card">${timelineSvg(r.samples, r.steps, stepVerdicts, total)}</div>
${r.steps.length ? `<h2>Steps</h2><table><tr><th>line</th><th>planned</th><th>ran at</th><th>step</th><th>devices</th><th></th></tr>
${r.steps.map((s) => `<tr><td>${s.line}</td><td>${(s.plannedMs / 1000).toFixed(1)} s</td><td>${(s.actualMs / 1000).toFixed(2)} s</td><td>${esc(s.label)}</td><td>${s.devices}</td><td>${s.error ? `<span class="ko">${esc(s.error)}</span>` : ''}</td></tr>`).join('\n')}</table>` : ''}
<h2>Devices</h2>
<table><tr><th>group</th><th>kind</th><th>count</th><th>ids (first)</th></tr>
${r.groups.map((g) => `<tr><td>${esc(g.name)}</td><td>${esc(g.kind)}</td><td>${g.count}</td><td><code>${g.sampleIds.map(esc).join('</code> <code>')}</code></td></tr>`).join('\n')}</table>
<h2>Counters</h2>
<table>${counters.map(([k, v]) => `<tr><td>${esc(k)}</td><td>${v}</td></tr>`).join('')}</table>
<p class="meta">eldergate-sim · the JSON beside this page holds every number shown here.</p>
</body></html>
`;
}

/** write `report.json` and `report.html` into `dir`; returns their paths */
export async function writeReport(dir: string, r: RunReport): Promise<{ json: string; html: string }> {
  await mkdir(dir, { recursive: true });
  const json = join(dir, 'report.json');
  const html = join(dir, 'report.html');
  await writeFile(json, JSON.stringify(r, null, 2) + '\n');
  await writeFile(html, renderHtml(r));
  return { json, html };
}
