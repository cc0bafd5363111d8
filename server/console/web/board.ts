// The live alarm board: every active incident of the user's units, P1 first, with the time left in its budget
// counting down, the resident, the device and where it is, and the buttons to move it.
import type { Incident } from './api.js';
import type { Ctx } from './context.js';
import { clear, fmtClock, fmtTime, h } from './dom.js';
import { incidentActions } from './actions.js';

const PRIO_RANK: Record<string, number> = { P1: 0, P2: 1, P3: 2 };
const STATUS_RANK: Record<string, number> = { open: 0, acknowledged: 1, dispatched: 2, 'on-site': 3 };

export function compareIncidents(a: Incident, b: Incident): number {
  return (PRIO_RANK[a.priority]! - PRIO_RANK[b.priority]!) ||
    (Number(a.test) - Number(b.test)) ||
    (STATUS_RANK[a.status]! - STATUS_RANK[b.status]!) ||
    (a.openedAt - b.openedAt);
}

export const TYPE_LABEL: Record<string, string> = {
  sos: 'SOS', fall: 'Fall', 'no-movement': 'No movement', 'bed-exit': 'Bed exit', 'pull-cord': 'Pull cord', fire: 'Fire',
  smoke: 'Smoke', gas: 'Gas', panic: 'Panic', medical: 'Medical', 'call-request': 'Call request', removed: 'Watch removed',
  'safe-zone-exit': 'Left safe zone', offline: 'Device offline', 'battery-low': 'Battery low', 'power-lost': 'Mains power lost',
  tamper: 'Tamper', test: 'Test alarm', 'check-in-missed': 'Missed check-in',
};
export const typeLabel = (t: string) => TYPE_LABEL[t] ?? t;

/** The budget line of a card: time left to acknowledge (escalation), then to reach the resident. */
export function countdown(ctx: Ctx, inc: Incident, now = Date.now()): { text: string; late: boolean; kind: string } {
  if (inc.status === 'open' && inc.deadlineAt !== null) {
    const left = inc.deadlineAt - now;
    return left >= 0
      ? { text: `acknowledge in ${fmtClock(left)}`, late: false, kind: 'ack' }
      : { text: `acknowledge overdue ${fmtClock(-left)}`, late: true, kind: 'ack' };
  }
  if (inc.status === 'open') return { text: 'waiting for acknowledgement', late: false, kind: 'ack' };
  if (inc.status === 'on-site') return { text: `on site since ${fmtTime(inc.stamps.onSite)}`, late: false, kind: 'done' };
  const reachBy = inc.openedAt + ctx.settings.budgets[inc.priority].reachMs;
  const left = reachBy - now;
  return left >= 0
    ? { text: `reach resident in ${fmtClock(left)}`, late: false, kind: 'reach' }
    : { text: `reach overdue ${fmtClock(-left)}`, late: true, kind: 'reach' };
}

export function positionText(inc: Incident): string | null {
  const p = inc.position;
  if (!p) return null;
  return `${p.lat.toFixed(5)}, ${p.lon.toFixed(5)}${p.accuracy ? ` ±${Math.round(p.accuracy)} m` : ''}${p.stale ? ' (last known)' : ''}`;
}

function card(ctx: Ctx, inc: Incident): HTMLElement {
  const resident = inc.residentId ? ctx.residents.get(inc.residentId) : undefined;
  const device = ctx.devices.get(inc.deviceId);
  const cd = countdown(ctx, inc);
  const pos = positionText(inc);
  const assignee = ctx.staffName(inc.assignee);
  const el = h('article', {
    class: `card prio-${inc.priority} status-${inc.status}${inc.test ? ' test' : ''}`,
    'data-id': inc.id, 'data-priority': inc.priority, 'data-status': inc.status, 'data-device': inc.deviceId,
  },
    h('header', null,
      h('span', { class: `badge prio ${inc.priority}` }, inc.priority),
      inc.test ? h('span', { class: 'badge test' }, 'TEST') : null,
      h('strong', { class: 'type' }, typeLabel(inc.type)),
      inc.count > 1 ? h('span', { class: 'badge count', title: 'alarms joined into this incident' }, `×${inc.count}`) : null,
      inc.escalationLevel > 0 ? h('span', { class: 'badge esc', title: 'escalated to a higher tier' }, `escalated ×${inc.escalationLevel}`) : null,
      h('span', { class: `status ${inc.status}` }, inc.status),
    ),
    h('div', { class: `countdown ${cd.late ? 'late' : ''}`, 'data-countdown': inc.id }, cd.text),
    h('dl', null,
      h('dt', null, 'Resident'),
      h('dd', { class: 'resident' }, resident ? `${resident.name}${resident.address ? ' — ' + resident.address : ''}` : (inc.residentId ?? 'not bound to a resident')),
      h('dt', null, 'Device'),
      h('dd', null, device ? `${device.kind} ${device.serial}${device.live.battery !== null ? ` · battery ${device.live.battery}%` : ''}` : inc.deviceId),
      h('dt', null, 'Where'),
      h('dd', null, pos ?? 'no position'),
      h('dt', null, 'Opened'),
      h('dd', null, `${fmtTime(inc.openedAt)} · ${ctx.unitName(inc.unitId)}`),
      assignee ? h('dt', null, 'Dispatched') : null,
      assignee ? h('dd', null, assignee) : null,
    ),
    incidentActions(ctx, inc),
    h('a', { class: 'details', href: `#/incident/${encodeURIComponent(inc.id)}` }, 'details →'),
  );
  return el;
}

/** A redrawn card keeps what the operator was typing (a note, an outcome) and where the cursor was. */
export function carryInputs(from: HTMLElement, to: HTMLElement): void {
  const active = document.activeElement;
  for (const old of from.querySelectorAll<HTMLInputElement | HTMLSelectElement>('input[aria-label], select[aria-label]')) {
    const label = old.getAttribute('aria-label')!;
    const twin = to.querySelector<HTMLInputElement | HTMLSelectElement>(`[aria-label="${CSS.escape(label)}"]`);
    if (!twin) continue;
    if (old.value) twin.value = old.value;
    if (old === active) queueMicrotask(() => twin.focus());
  }
}

export function boardView(ctx: Ctx, root: HTMLElement): () => void {
  const summary = h('div', { class: 'summary' });
  const showTests = h('input', { type: 'checkbox', id: 'show-tests' });
  showTests.checked = localStorage.getItem('eldergate.showTests') !== 'false';
  const list = h('section', { class: 'board', 'aria-live': 'polite' });
  const empty = h('p', { class: 'empty' }, 'No open incidents. New alarms appear here at once.');
  root.append(
    h('div', { class: 'toolbar' }, h('h1', null, 'Alarm board'), summary,
      h('label', { class: 'check' }, showTests, ' show test alarms')),
    list,
  );
  const cards = new Map<string, HTMLElement>();

  const render = () => {
    const items = ctx.store.active().filter((i) => showTests.checked || !i.test).sort(compareIncidents);
    const counts = { P1: 0, P2: 0, P3: 0 };
    for (const i of items) counts[i.priority]++;
    clear(summary);
    for (const p of ['P1', 'P2', 'P3'] as const) summary.append(h('span', { class: `badge prio ${p}` }, `${p}: ${counts[p]}`));
    const keep = new Set(items.map((i) => i.id));
    for (const [id, el] of cards) if (!keep.has(id)) { el.remove(); cards.delete(id); }
    let prev: Element | null = null;
    for (const inc of items) {
      let el = cards.get(inc.id);
      if (!el || el.dataset.seq !== String(inc.lastSeq) || el.dataset.stale === '1') {
        const next = card(ctx, inc);
        next.dataset.seq = String(inc.lastSeq);
        if (el) {
          carryInputs(el, next);
          el.replaceWith(next);
        }
        el = next;
        cards.set(inc.id, el);
      }
      // keep DOM order = sort order, moving only what moved (a focused input elsewhere keeps its focus)
      const want: Element | null = prev ? prev.nextElementSibling : list.firstElementChild;
      if (want !== el) list.insertBefore(el, want);
      prev = el;
    }
    if (!items.length) list.append(empty);
    else empty.remove();
  };

  /** residents, devices and staff arrive after the cards: redraw the cards that show them */
  const invalidate = (match: (inc: Incident) => boolean) => {
    for (const [id, el] of cards) {
      const inc = ctx.store.incidents.get(id);
      if (inc && match(inc)) el.dataset.stale = '1';
    }
    schedule();
  };
  let pending = false;
  const schedule = () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; render(); });
  };

  const offs = [
    ctx.store.on(() => schedule()),
    ctx.store.onReset(() => schedule()),
    ctx.residents.onChange((id) => invalidate((i) => i.residentId === id)),
    ctx.devices.onChange((id) => invalidate((i) => i.deviceId === id)),
    ctx.staff.onChange(() => invalidate((i) => i.assignee !== null || i.status === 'acknowledged' || i.status === 'dispatched')),
    ctx.units.onChange(() => invalidate(() => true)),
  ];
  showTests.addEventListener('change', () => {
    localStorage.setItem('eldergate.showTests', String(showTests.checked));
    render();
  });
  const tick = setInterval(() => {
    const now = Date.now();
    for (const [id, el] of cards) {
      const inc = ctx.store.incidents.get(id);
      const line = el.querySelector<HTMLElement>('[data-countdown]');
      if (!inc || !line) continue;
      const cd = countdown(ctx, inc, now);
      line.textContent = cd.text;
      line.classList.toggle('late', cd.late);
    }
  }, 1000);
  render();
  return () => {
    clearInterval(tick);
    for (const off of offs) off();
  };
}
