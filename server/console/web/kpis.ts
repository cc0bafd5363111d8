// Answer-time KPIs per shift (GET /api/kpis, computed in response/kpis.ts): the share acknowledged within 60 s and
// 180 s, time to acknowledge and to be on site (median and p95, as the API gives them), on site within the reach
// budget, and budget breaches; a chart of the shares and the counts per shift (uPlot). Admins, operators and
// stewards (a steward's units only: the server scopes the numbers). Test incidents are not counted by the server.
import uPlot from 'uplot';
import type { Ctx } from './context.js';
import { fmtLatency, h, pad } from './dom.js';

interface Share { count: number; eligible: number; share: number | null }
interface Dist { n: number; medianMs: number | null; p95Ms: number | null }
interface Block {
  incidents: number; acknowledged: number; ackWithin60s: Share; ackWithin180s: Share;
  timeToAck: Dist; timeToOnSite: Dist; onSiteWithinReach: Share; breaches: number;
}
interface Shift extends Block { start: number; end: number; label: string }
interface Report { from: number; to: number; shifts: Shift[]; total: Block }

const DAY = 86_400_000;
const dateValue = (d: Date) => `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
/** local midnight of an <input type=date> value */
const midnight = (v: string) => {
  const [y, m, d] = v.split('-').map(Number);
  return new Date(y!, m! - 1, d!).getTime();
};

export const pct = (s: Share) => (s.share === null ? '—' : `${(s.share * 100).toFixed(1)} %`);
const pctTitle = (s: Share) => `${s.count} of ${s.eligible}`;

export function kpisView(ctx: Ctx, root: HTMLElement): () => void {
  if (!ctx.can('admin', 'operator', 'steward')) {
    root.append(h('div', { class: 'toolbar' }, h('h1', null, 'KPIs per shift')),
      h('p', { class: 'notice error', 'data-not-allowed': '' }, `The KPIs are for admins, operators and stewards; you are logged in as ${ctx.api.user?.role}.`));
    return () => undefined;
  }
  const today = new Date();
  const from = h('input', { type: 'date', name: 'from', value: dateValue(new Date(today.getFullYear(), today.getMonth(), today.getDate() - 6)) });
  const to = h('input', { type: 'date', name: 'to', value: dateValue(today) });
  const emptyToo = h('input', { type: 'checkbox', name: 'empty' });
  const error = h('p', { class: 'error', role: 'alert', 'data-kpi-error': '' });
  const totals = h('div', { class: 'kpi-totals', 'data-kpi-total': '' });
  const chartBox = h('div', { class: 'kpi-chart', 'data-kpi-chart': '' });
  const table = h('div', { class: 'table-wrap' });
  const form = h('form', { class: 'filters' },
    h('label', { class: 'field' }, h('span', null, 'from'), from),
    h('label', { class: 'field' }, h('span', null, 'to (inclusive)'), to),
    h('label', { class: 'check' }, emptyToo, ' shifts without incidents'),
    h('button', { type: 'submit', class: 'primary' }, 'Show'));
  root.append(h('div', { class: 'toolbar' }, h('h1', null, 'KPIs per shift'),
    h('span', { class: 'muted' }, ctx.api.user?.unitId ? `units: ${ctx.unitName(ctx.api.user.unitId)} and below` : 'all units; test incidents excluded')),
  form, error, totals, h('section', { class: 'panel' }, chartBox), h('section', { class: 'panel' }, table));

  let chart: uPlot | null = null;
  let report: Report | null = null;
  let generation = 0;

  const load = async () => {
    error.textContent = '';
    if (!from.value || !to.value) return void (error.textContent = 'choose both dates');
    const f = midnight(from.value);
    const t = Math.min(Date.now(), midnight(to.value) + DAY);
    if (t <= f) return void (error.textContent = '"from" must be before "to"');
    if (t - f > 366 * DAY) return void (error.textContent = 'at most one year at a time: narrow the dates');
    const mine = ++generation;
    try {
      const r = await ctx.api.get<Report>(`/api/kpis?from=${f}&to=${t}`);
      if (mine !== generation) return;
      report = r;
      draw();
    } catch (err) {
      if (mine === generation) error.textContent = `The KPIs could not be loaded: ${(err as Error).message}`;
    }
  };

  const draw = () => {
    const r = report!;
    root.dataset.from = String(r.from);
    root.dataset.to = String(r.to);
    const b = r.total;
    const tile = (label: string, value: string, key: string, title?: string) =>
      h('div', { class: 'kpi-tile', 'data-kpi': key, title: title ?? null }, h('span', { class: 'muted' }, label), h('strong', null, value));
    totals.replaceChildren(
      tile('incidents', String(b.incidents), 'incidents'),
      tile('acknowledged ≤ 60 s', pct(b.ackWithin60s), 'ack60', pctTitle(b.ackWithin60s)),
      tile('acknowledged ≤ 180 s', pct(b.ackWithin180s), 'ack180', pctTitle(b.ackWithin180s)),
      tile('time to acknowledge (median)', fmtLatency(b.timeToAck.medianMs), 'ackMedian'),
      tile('on site (median / p95)', `${fmtLatency(b.timeToOnSite.medianMs)} / ${fmtLatency(b.timeToOnSite.p95Ms)}`, 'onSite'),
      tile('breaches', String(b.breaches), 'breaches'));

    const shifts = r.shifts.filter((s) => emptyToo.checked || s.incidents > 0 || s.breaches > 0);
    const row = (label: string, s: Block, attrs: Record<string, string>) => h('tr', attrs,
      h('th', null, label),
      h('td', { class: 'num', 'data-col': 'incidents' }, s.incidents),
      h('td', { class: 'num', 'data-col': 'acknowledged' }, s.acknowledged),
      h('td', { class: 'num', 'data-col': 'ack60', title: pctTitle(s.ackWithin60s) }, pct(s.ackWithin60s)),
      h('td', { class: 'num', 'data-col': 'ack180', title: pctTitle(s.ackWithin180s) }, pct(s.ackWithin180s)),
      h('td', { class: 'num', 'data-col': 'ackMedian' }, fmtLatency(s.timeToAck.medianMs)),
      h('td', { class: 'num', 'data-col': 'ackP95' }, fmtLatency(s.timeToAck.p95Ms)),
      h('td', { class: 'num', 'data-col': 'onSiteMedian' }, fmtLatency(s.timeToOnSite.medianMs)),
      h('td', { class: 'num', 'data-col': 'onSiteP95' }, fmtLatency(s.timeToOnSite.p95Ms)),
      h('td', { class: 'num', 'data-col': 'inReach', title: pctTitle(s.onSiteWithinReach) }, pct(s.onSiteWithinReach)),
      h('td', { class: 'num', 'data-col': 'breaches' }, s.breaches));
    table.replaceChildren(h('table', { class: 'fleet kpis' },
      h('thead', null, h('tr', null, ...['Shift (start)', 'Incidents', 'Acknowledged', 'Ack ≤ 60 s', 'Ack ≤ 180 s', 'Ack median', 'Ack p95',
        'On site median', 'On site p95', 'On site in reach', 'Breaches'].map((x) => h('th', null, x)))),
      h('tbody', null, ...(shifts.length ? shifts.map((s) => row(s.label, s, { 'data-shift': String(s.start) }))
        : [h('tr', null, h('td', { colspan: 11, class: 'muted' }, 'no incidents in these shifts'))])),
      h('tfoot', null, row('All shifts', b, { 'data-shift': 'total' }))));
    drawChart(r.shifts);
  };

  // one point per shift, at its middle (all shifts: a gap in time is a shift with nothing, not a missing one)
  const drawChart = (shifts: Shift[]) => {
    const xs = shifts.map((s) => (s.start + s.end) / 2000);
    const span: [number, number] = shifts.length ? [shifts[0]!.start / 1000, shifts.at(-1)!.end / 1000] : [0, 1];
    const share = (f: (s: Shift) => Share) => shifts.map((s) => (f(s).share === null ? null : f(s).share! * 100));
    const data: uPlot.AlignedData = [
      xs,
      share((s) => s.ackWithin60s),
      share((s) => s.ackWithin180s),
      shifts.map((s) => s.incidents),
      shifts.map((s) => s.breaches),
    ];
    const width = Math.max(280, chartBox.clientWidth || root.clientWidth - 40);
    const opts: uPlot.Options = {
      title: 'per shift',
      width,
      height: 280,
      scales: { x: { time: true, range: () => span }, '%': { range: [0, 100] }, n: { range: (_u, _min, max) => [0, Math.max(4, Math.ceil(max * 1.2))] } },
      series: [
        {},
        { label: 'ack ≤ 60 s (%)', scale: '%', stroke: '#1f4fbf', width: 2, points: { show: true, size: 6 }, spanGaps: true },
        { label: 'ack ≤ 180 s (%)', scale: '%', stroke: '#1e7a3c', width: 2, points: { show: true, size: 6 }, spanGaps: true },
        { label: 'incidents', scale: 'n', stroke: '#5f6570', fill: 'rgba(95,101,112,.25)', paths: uPlot.paths.bars!({ size: [0.5, 40] }), points: { show: false } },
        { label: 'breaches', scale: 'n', stroke: '#b3261e', width: 2, dash: [6, 4], points: { show: true, size: 5 } },
      ],
      axes: [
        // day and hour as the table writes them (24 h), not the browser's locale
        { space: 70, values: (_u, splits) => splits.map((v) => { const d = new Date(v * 1000); return `${pad(d.getMonth() + 1)}-${pad(d.getDate())}\n${pad(d.getHours())}:${pad(d.getMinutes())}`; }) },
        { scale: '%', label: '% acknowledged in time', values: (_u, v) => v.map((x) => `${x} %`) },
        { scale: 'n', side: 1, label: 'incidents / breaches', grid: { show: false } },
      ],
    };
    chart?.destroy();
    chartBox.replaceChildren();
    chart = new uPlot(opts, data, chartBox);
  };

  const onResize = () => { if (chart && chartBox.clientWidth) chart.setSize({ width: Math.max(280, chartBox.clientWidth), height: 280 }); };
  window.addEventListener('resize', onResize);
  form.addEventListener('submit', (e) => { e.preventDefault(); void load(); });
  emptyToo.addEventListener('change', () => { if (report) draw(); });
  void load();
  return () => {
    window.removeEventListener('resize', onResize);
    chart?.destroy();
  };
}
