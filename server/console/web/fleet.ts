// The fleet board: every device the user may see with its connection (online, late, offline), battery, signal and
// when it was last heard from; filtered by unit, kind and connection. Refreshed every 10 s.
import type { Device } from './api.js';
import type { Ctx } from './context.js';
import { clear, fmtAgo, field, h } from './dom.js';
import { STATE_LABEL } from './devices.js';

const SUPERVISION_LABEL: Record<string, string> = { ok: 'online', late: 'late', offline: 'offline', 'never-seen': 'never seen' };

export function fleetView(ctx: Ctx, root: HTMLElement): () => void {
  const params = new URLSearchParams(location.hash.split('?')[1] ?? '');
  const kind = h('select', { name: 'kind', 'aria-label': 'kind' }, h('option', { value: '' }, 'all kinds'));
  const unit = h('select', { name: 'unitId', 'aria-label': 'unit' }, h('option', { value: '' }, 'all my units'));
  const sup = h('select', { name: 'supervision', 'aria-label': 'connection' }, h('option', { value: '' }, 'any connection'),
    ...Object.entries(SUPERVISION_LABEL).map(([v, l]) => h('option', { value: v }, l)));
  const q = h('input', { type: 'search', name: 'q', placeholder: 'serial or id', 'aria-label': 'search' });
  const summary = h('div', { class: 'summary' });
  const tbody = h('tbody');
  const more = h('p', { class: 'muted' });
  root.append(
    h('div', { class: 'toolbar' }, h('h1', null, 'Fleet'), summary,
      ctx.can('admin', 'technician') ? h('a', { class: 'button', href: '#/devices/new' }, 'Provision a device') : null),
    h('form', { class: 'filters', onsubmit: (e: Event) => e.preventDefault() },
      field('Kind', kind), field('Unit', unit), field('Connection', sup), field('Search', q)),
    h('div', { class: 'table-wrap' }, h('table', { class: 'fleet' },
      h('thead', null, h('tr', null, ...['Device', 'Kind', 'State', 'Resident', 'Unit', 'Connection', 'Battery', 'Signal', 'Last seen'].map((c) => h('th', null, c)))),
      tbody)),
    more,
  );
  for (const [el, key] of [[kind, 'kind'], [unit, 'unitId'], [sup, 'supervision'], [q, 'q']] as const) {
    const v = params.get(key);
    if (v) (el as HTMLInputElement | HTMLSelectElement).dataset.want = v;
  }

  ctx.api.get<{ kind: string; title: string }[]>('/api/device-kinds').then((kinds) => {
    for (const k of kinds) kind.append(h('option', { value: k.kind }, k.title ?? k.kind));
    if (kind.dataset.want) kind.value = kind.dataset.want;
  }, () => undefined);
  const fillUnits = () => {
    const units = ctx.units.peek('all') ?? [];
    const cur = unit.value || unit.dataset.want || '';
    unit.replaceChildren(h('option', { value: '' }, 'all my units'), ...units.filter((u) => u.tier === 'grid').map((u) => h('option', { value: u.id }, u.name)));
    unit.value = cur;
  };
  ctx.units.get('all');
  fillUnits();
  const offUnits = ctx.units.onChange(() => { fillUnits(); void load(); });
  if (sup.dataset.want) sup.value = sup.dataset.want;
  if (q.dataset.want) q.value = q.dataset.want;

  let seq = 0;
  const load = async () => {
    const mine = ++seq;
    const p = new URLSearchParams({ limit: '500' });
    if (kind.value) p.set('kind', kind.value);
    if (unit.value) p.set('unitId', unit.value);
    if (sup.value) p.set('supervision', sup.value);
    if (q.value.trim()) p.set('q', q.value.trim());
    history.replaceState(null, '', `#/fleet?${p.toString().replace(/(^|&)limit=500/, '')}`);
    try {
      const out = await ctx.api.get<{ items: Device[]; total: number }>(`/api/devices?${p}`);
      if (mine !== seq) return;
      draw(out.items, out.total);
    } catch (err) {
      ctx.fail(err, 'loading the fleet failed');
    }
  };
  const draw = (items: Device[], total: number) => {
    clear(tbody);
    const counts: Record<string, number> = {};
    for (const d of items) {
      counts[d.live.supervision] = (counts[d.live.supervision] ?? 0) + 1;
      // get, not peek: loads the name when it is not known yet (the cell is filled in when it arrives)
      const resident = d.residentId ? ctx.residents.get(d.residentId) : undefined;
      tbody.append(h('tr', { 'data-device': d.id, class: `sup-${d.live.supervision}` },
        h('td', null, h('a', { href: `#/device/${encodeURIComponent(d.id)}` }, d.serial), h('div', { class: 'mono muted' }, d.id)),
        h('td', null, d.kind),
        h('td', { 'data-state': d.state }, STATE_LABEL[d.state] ?? d.state),
        h('td', { 'data-resident': d.residentId ?? '' }, resident?.name ?? d.residentId ?? '—'),
        h('td', null, d.unitId ? ctx.unitName(d.unitId) : '—'),
        h('td', null, h('span', { class: `sup ${d.live.supervision}` }, SUPERVISION_LABEL[d.live.supervision] ?? d.live.supervision),
          d.live.unreadableCount
            ? h('span', { class: 'badge unreadable', 'data-unreadable': String(d.live.unreadableCount), title: `last: ${d.live.lastUnreadableReason ?? '—'}` },
              `${d.live.unreadableCount} unreadable`)
            : null),
        h('td', { class: 'num' }, d.live.battery !== null ? `${d.live.battery}%` : '—'),
        h('td', { class: 'num' }, d.live.signal !== null ? String(d.live.signal) : '—'),
        h('td', null, fmtAgo(d.live.lastSeen)),
      ));
    }
    clear(summary);
    for (const [k, label] of Object.entries(SUPERVISION_LABEL)) {
      if (counts[k]) summary.append(h('span', { class: `sup ${k}` }, `${label}: ${counts[k]}`));
    }
    more.textContent = total > items.length ? `showing ${items.length} of ${total}: narrow the filters` : `${total} device(s)`;
  };
  for (const el of [kind, unit, sup]) el.addEventListener('change', () => void load());
  let typing: number | undefined;
  q.addEventListener('input', () => { window.clearTimeout(typing); typing = window.setTimeout(() => void load(), 300); });
  const offResidents = ctx.residents.onChange((rid, r) => {
    for (const td of tbody.querySelectorAll<HTMLElement>('td[data-resident]')) if (td.dataset.resident === rid) td.textContent = r.name;
  });
  const timer = setInterval(() => void load(), 10_000);
  void load();
  return () => { clearInterval(timer); offUnits(); offResidents(); };
}
