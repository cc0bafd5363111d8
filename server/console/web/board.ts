// The live alarm board: every active incident of the user's units, P1 first, with how long the elder has been
// waiting against the budget, the resident, the device and where it is, and the buttons to move it. On top, always
// in view whatever the filters: the newest P1s still waiting for acknowledgement. Cards or a compact list; filters
// (priority, type, unit, status) and a search (resident name, phone, serial, address).
import type { Device, Incident, Resident } from './api.js';
import type { Ctx } from './context.js';
import { clear, fmtClock, fmtTime, h } from './dom.js';
import { incidentActions } from './actions.js';
import { originLabel } from './plot.js';

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
  'safe-zone-exit': 'Left safe zone', offline: 'Device offline', 'low-battery': 'Battery low', 'power-lost': 'Mains power lost',
  tamper: 'Tamper', test: 'Test alarm', 'missed-check-in': 'Missed check-in', wander: 'Wandering',
  'supervision-failure': 'Supervision failure', 'unknown-event': 'Unknown event from terminal',
  'unreadable-messages': 'Terminal sends unreadable messages', 'comm-lost': 'Communication lost', 'device-fault': 'Device fault',
};
/** `unknown-event:<code>`: one card per unmapped code (technical rule), labelled with its code */
const UNKNOWN_EVENT = 'unknown-event:';
export const typeLabel = (t: string) =>
  TYPE_LABEL[t] ?? (t.startsWith(UNKNOWN_EVENT) ? `Unknown event ${t.slice(UNKNOWN_EVENT.length)}` : t);

/**
 * The budget line: how long the elder has been waiting, and how the acknowledgement stands against its budget —
 * counted from the opening, so an escalation to the next tier never resets it. After acknowledgement: the time
 * left to reach the resident, also from the opening.
 */
export function countdown(ctx: Ctx, inc: Incident, now = Date.now()): { text: string; late: boolean; kind: string } {
  // a test incident has no budget: it is never escalated, and nobody is late for it
  if (inc.test) return { text: `test · open ${fmtClock(Math.max(0, now - inc.openedAt))} · never escalated`, late: false, kind: 'test' };
  if (inc.status === 'open') {
    const waited = Math.max(0, now - inc.openedAt);
    const budget = ctx.settings.budgets[inc.priority].ackMs;
    const over = waited - budget;
    return over <= 0
      ? { text: `waiting ${fmtClock(waited)} · acknowledge in ${fmtClock(-over)}`, late: false, kind: 'ack' }
      : { text: `waiting ${fmtClock(waited)} · acknowledgement ${fmtClock(over)} late (budget ${fmtClock(budget)})`, late: true, kind: 'ack' };
  }
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
  return `${p.lat.toFixed(5)}, ${p.lon.toFixed(5)}${p.accuracy ? ` ±${Math.round(p.accuracy)} m` : ''}${p.stale ? ` (${originLabel(p)})` : ''}`;
}

/**
 * Whose alarm it is: the resident; or, for an alarm receiver's account no device is registered to, that account (the
 * only clue to which home it came from until an administrator registers it); or the resident's id, or `none`.
 */
export function whoText(inc: Pick<Incident, 'residentId' | 'account'>, resident: Resident | undefined, none: string): string {
  if (resident) return `${resident.name}${resident.address ? ' — ' + resident.address : ''}`;
  if (inc.account) return `unregistered account ${inc.account}`;
  return inc.residentId ?? none;
}

function card(ctx: Ctx, inc: Incident): HTMLElement {
  // an open P1's card: someone is waiting for help (a refresh of a known record is never urgent: Cache.get)
  const urgent = inc.priority === 'P1' && inc.status === 'open';
  const resident = inc.residentId ? ctx.residents.get(inc.residentId, urgent) : undefined;
  const device = ctx.devices.get(inc.deviceId, urgent);
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
      h('dd', { class: 'resident' }, whoText(inc, resident, 'not bound to a resident')),
      resident?.contacts?.length ? h('dt', null, 'Contacts') : null,
      resident?.contacts?.length
        ? h('dd', { class: 'contacts' }, ...resident.contacts.slice(0, 3).map((c) =>
          h('span', { class: 'contact' }, `${c.name}${c.relation ? ` (${c.relation})` : ''}`,
            c.phone ? h('a', { href: `tel:${c.phone.replace(/[^+\d]/g, '')}` }, ` ${c.phone}`) : null)))
        : null,
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

// ---- filters, search, modes --------------------------------------------------------------------------------

export interface BoardFilter { priority: string; type: string; unit: string; status: string; q: string }
const FILTER_KEY = 'eldergate.boardFilter';
const MODE_KEY = 'eldergate.boardMode';
const ATTENTION_SHOWN = 5;

const digits = (s: string) => s.replace(/\D/g, '');

/** Does the incident match the search? Resident name, address, contact phones; device serial and id; incident id. */
export function matches(inc: Incident, q: string, resident: Resident | undefined, device: Device | undefined): boolean {
  const needle = q.trim().toLowerCase();
  if (!needle) return true;
  const hay = [inc.id, inc.deviceId, inc.residentId ?? '', inc.account ?? '', resident?.name ?? '', resident?.address ?? '', device?.serial ?? '',
    ...(resident?.contacts ?? []).flatMap((c) => [c.name, c.phone ?? ''])].join('\n').toLowerCase();
  if (hay.includes(needle)) return true;
  // a phone number typed with other spaces or dashes than the record: compare the digits
  const d = digits(needle);
  if (d.length >= 4 && d.length === needle.replace(/[\s()+\-./]/g, '').length) {
    return (resident?.contacts ?? []).some((c) => c.phone && digits(c.phone).includes(d));
  }
  return false;
}

function readFilter(): BoardFilter {
  const blank = { priority: '', type: '', unit: '', status: '', q: '' };
  try {
    return { ...blank, ...(JSON.parse(localStorage.getItem(FILTER_KEY) ?? '{}') as Partial<BoardFilter>) };
  } catch {
    return blank;
  }
}

function row(ctx: Ctx, inc: Incident): HTMLElement {
  // an open P1's card: someone is waiting for help (a refresh of a known record is never urgent: Cache.get)
  const urgent = inc.priority === 'P1' && inc.status === 'open';
  const resident = inc.residentId ? ctx.residents.get(inc.residentId, urgent) : undefined;
  const device = ctx.devices.get(inc.deviceId, urgent);
  const cd = countdown(ctx, inc);
  return h('tr', {
    class: `row prio-${inc.priority} status-${inc.status}${inc.test ? ' test' : ''}`,
    'data-id': inc.id, 'data-priority': inc.priority, 'data-status': inc.status, 'data-device': inc.deviceId,
  },
    h('td', null, h('span', { class: `badge prio ${inc.priority}` }, inc.priority), inc.test ? h('span', { class: 'badge test' }, 'TEST') : null),
    h('td', { class: 'type' }, typeLabel(inc.type), inc.count > 1 ? h('span', { class: 'badge count' }, ` ×${inc.count}`) : null),
    h('td', null, h('span', { class: `status ${inc.status}` }, inc.status)),
    h('td', { class: 'resident' }, whoText(inc, resident, '—')),
    h('td', { class: 'device' }, device ? `${device.kind} ${device.serial}` : inc.deviceId),
    h('td', null, ctx.unitName(inc.unitId)),
    h('td', { class: `countdown ${cd.late ? 'late' : ''}`, 'data-countdown': inc.id }, cd.text),
    h('td', null, incidentActions(ctx, inc, { compact: true })),
    h('td', null, h('a', { class: 'details', href: `#/incident/${encodeURIComponent(inc.id)}` }, 'details →')),
  );
}

/** The newest P1s still waiting for acknowledgement: always on top, whatever the mode and the filters. */
function attentionItem(ctx: Ctx, inc: Incident): HTMLElement {
  const resident = inc.residentId ? ctx.residents.get(inc.residentId, true) : undefined;
  const cd = countdown(ctx, inc);
  return h('li', { class: 'attn-item', 'data-id': inc.id },
    h('span', { class: 'badge prio P1' }, 'P1'),
    h('strong', null, typeLabel(inc.type)), inc.count > 1 ? h('span', { class: 'badge count' }, `×${inc.count}`) : null,
    h('span', { class: 'who' }, resident?.name ?? (inc.account ? `account ${inc.account}` : inc.residentId ?? inc.deviceId)),
    h('span', { class: `countdown ${cd.late ? 'late' : ''}`, 'data-countdown': inc.id }, cd.text),
    incidentActions(ctx, inc, { compact: true }),
    h('a', { class: 'details', href: `#/incident/${encodeURIComponent(inc.id)}` }, 'details →'),
  );
}

export function boardView(ctx: Ctx, root: HTMLElement): () => void {
  const summary = h('div', { class: 'summary' });
  const showTests = h('input', { type: 'checkbox', id: 'show-tests' });
  showTests.checked = localStorage.getItem('eldergate.showTests') !== 'false';
  const filter = readFilter();
  let mode: 'cards' | 'list' = localStorage.getItem(MODE_KEY) === 'list' ? 'list' : 'cards';

  const select = (name: keyof BoardFilter, label: string, options: [string, string][]) => {
    const el = h('select', { name, 'aria-label': label }, h('option', { value: '' }, `${label}: all`),
      ...options.map(([v, l]) => h('option', { value: v }, l)));
    el.value = filter[name];
    el.addEventListener('change', () => { filter[name] = el.value; saveFilter(); });
    return el;
  };
  const prioSel = select('priority', 'priority', [['P1', 'P1'], ['P2', 'P2'], ['P3', 'P3']]);
  const typeSel = select('type', 'type', Object.entries(TYPE_LABEL));
  const statusSel = select('status', 'status', [['open', 'open (not acknowledged)'], ['acknowledged', 'acknowledged'], ['dispatched', 'dispatched'], ['on-site', 'on site']]);
  const unitSel = select('unit', 'unit', []);
  const fillUnits = () => {
    const units = ctx.units.get('all') ?? [];
    unitSel.replaceChildren(h('option', { value: '' }, 'unit: all'), ...units.map((u) => h('option', { value: u.id }, u.name)));
    unitSel.value = filter.unit;
  };
  fillUnits();
  const search = h('input', { type: 'search', name: 'q', 'aria-label': 'search', placeholder: 'search: name, phone, serial, address', maxlength: 200 });
  search.value = filter.q;
  search.addEventListener('input', () => { filter.q = search.value; saveFilter(); });
  const clearBtn = h('button', { type: 'button', class: 'link', 'data-action': 'clear-filters' }, 'clear filters');
  clearBtn.addEventListener('click', () => {
    Object.assign(filter, { priority: '', type: '', unit: '', status: '', q: '' });
    prioSel.value = typeSel.value = statusSel.value = unitSel.value = search.value = '';
    saveFilter();
  });
  const modeBtn = (m: 'cards' | 'list', label: string) => {
    const b = h('button', { type: 'button', class: 'mode', 'data-mode': m, 'aria-pressed': String(mode === m) }, label);
    b.addEventListener('click', () => {
      mode = m;
      localStorage.setItem(MODE_KEY, m);
      for (const x of modes.querySelectorAll('button')) x.setAttribute('aria-pressed', String(x.dataset.mode === m));
      switchMode();
    });
    return b;
  };
  const modes = h('span', { class: 'modes', role: 'group', 'aria-label': 'board layout' }, modeBtn('cards', 'cards'), modeBtn('list', 'list'));

  const attention = h('section', { class: 'attention', 'aria-label': 'P1 waiting for acknowledgement', hidden: true });
  const cardsBox = h('section', { class: 'board', 'aria-live': 'polite' });
  const table = h('table', { class: 'board-list' },
    h('thead', null, h('tr', null, ...['', 'alarm', 'status', 'resident', 'device', 'unit', 'waiting / budget', '', ''].map((x) => h('th', null, x)))));
  const tbody = h('tbody', { 'aria-live': 'polite' });
  table.append(tbody);
  const empty = h('p', { class: 'empty' }, 'No open incidents. New alarms appear here at once.');
  // Test runs (issue 13 §4): incidents of test devices (a test engineer's scenario run) and test alarms are kept out
  // of the board above, in a section of their own below it: never escalated, never notified, not in the KPIs.
  const testCount = h('span', { class: 'count', 'data-test-count': '0' }, '0');
  const testCards = h('div', { class: 'board' });
  const testTable = h('table', { class: 'board-list' },
    h('thead', null, h('tr', null, ...['', 'alarm', 'status', 'resident', 'device', 'unit', 'waiting', '', ''].map((x) => h('th', null, x)))));
  const testBody = h('tbody');
  testTable.append(testBody);
  const testSection = h('section', { class: 'panel test-runs', 'aria-label': 'Test runs', 'data-section': 'test-runs', hidden: true },
    h('h2', null, 'Test runs ', h('span', { class: 'badge test' }, 'TEST'), ' ', testCount),
    h('p', { class: 'muted' }, 'Alarms from test devices (firmware-sim scenario runs) and test alarms: never escalated or notified, not counted in the KPIs. Nobody needs to act on them.'),
    testCards);
  root.append(
    h('div', { class: 'toolbar' }, h('h1', null, 'Alarm board'), summary, modes,
      h('label', { class: 'check' }, showTests, ' show test runs')),
    h('div', { class: 'filters' }, search, prioSel, typeSel, unitSel, statusSel, clearBtn),
    attention,
    cardsBox,
    testSection,
  );
  const items = new Map<string, HTMLElement>();
  const list = () => (mode === 'list' ? tbody : cardsBox);
  const testList = () => (mode === 'list' ? testBody : testCards);
  const switchMode = () => {
    for (const el of items.values()) el.remove();
    items.clear();
    if (mode === 'list') { cardsBox.replaceWith(table); testCards.replaceWith(testTable); }
    else { table.replaceWith(cardsBox); testTable.replaceWith(testCards); }
    render();
  };
  function saveFilter(): void {
    localStorage.setItem(FILTER_KEY, JSON.stringify(filter));
    render();
  }

  const shown = (inc: Incident): boolean => {
    if (filter.priority && inc.priority !== filter.priority) return false;
    // the per-code unknown cards (unknown-event:<code>) are all found by the one 'Unknown event' filter
    if (filter.type && inc.type !== filter.type && !(filter.type === 'unknown-event' && inc.type.startsWith(UNKNOWN_EVENT))) return false;
    if (filter.status && inc.status !== filter.status) return false;
    if (filter.unit && inc.unitId !== filter.unit && inc.tierUnitId !== filter.unit) return false;
    if (filter.q) {
      const r = inc.residentId ? ctx.residents.get(inc.residentId) : undefined;
      return matches(inc, filter.q, r, ctx.devices.get(inc.deviceId));
    }
    return true;
  };

  const renderAttention = () => {
    const waiting = ctx.store.active().filter((i) => i.priority === 'P1' && i.status === 'open' && !i.test)
      .sort((a, b) => b.openedAt - a.openedAt);
    attention.hidden = waiting.length === 0;
    // rebuilt only when what it shows changed: a button under the operator's finger is not replaced by a redraw
    const sig = `${waiting.length}|${waiting.slice(0, ATTENTION_SHOWN).map((i) => `${i.id}@${i.lastSeq}:${i.residentId ? ctx.residents.peek(i.residentId)?.name ?? '' : ''}`).join(',')}`;
    if (sig === attention.dataset.sig) return;
    attention.dataset.sig = sig;
    if (!waiting.length) return clear(attention);
    const more = waiting.length - ATTENTION_SHOWN;
    const showAll = more > 0 ? h('button', { type: 'button', class: 'link', 'data-action': 'show-waiting' }, `and ${more} more — show all waiting P1`) : null;
    showAll?.addEventListener('click', () => {
      Object.assign(filter, { priority: 'P1', status: 'open', type: '', unit: '', q: '' });
      prioSel.value = 'P1'; statusSel.value = 'open'; typeSel.value = unitSel.value = search.value = '';
      saveFilter();
    });
    attention.replaceChildren(
      h('h2', null, `P1 waiting for acknowledgement: ${waiting.length} (newest first)`),
      h('ol', null, ...waiting.slice(0, ATTENTION_SHOWN).map((i) => attentionItem(ctx, i))),
      ...(showAll ? [showAll] : []),
    );
  };

  const render = () => {
    const active = ctx.store.active();
    const matching = active.filter(shown).sort(compareIncidents);
    const visible = matching.filter((i) => !i.test);
    const tests = showTests.checked ? matching.filter((i) => i.test) : [];
    const counts = { P1: 0, P2: 0, P3: 0 };
    for (const i of active) if (!i.test) counts[i.priority]++;
    const testTotal = active.filter((i) => i.test).length;
    testCount.textContent = String(testTotal);
    testCount.dataset.testCount = String(testTotal);
    testSection.hidden = tests.length === 0;
    clear(summary);
    for (const p of ['P1', 'P2', 'P3'] as const) summary.append(h('span', { class: `badge prio ${p}` }, `${p}: ${counts[p]}`));
    const total = counts.P1 + counts.P2 + counts.P3;
    if (visible.length !== total) summary.append(h('span', { class: 'filtered', 'data-shown': visible.length }, `showing ${visible.length} of ${total}`));
    if (ctx.store.retrying) summary.append(h('span', { class: 'late' }, `loading ${ctx.store.retrying} incident(s), retrying…`));
    renderAttention();
    const keep = new Set([...visible, ...tests].map((i) => i.id));
    for (const [id, el] of items) if (!keep.has(id)) { el.remove(); items.delete(id); }
    place(list(), visible);
    place(testList(), tests);
    if (!visible.length) {
      empty.textContent = total ? `No incident matches the filters (${total} open): clear them to see all.` : 'No open incidents. New alarms appear here at once.';
      (mode === 'list' ? table : cardsBox).after(empty);
    } else empty.remove();
  };

  /** the box's children in sort order, redrawing only the incidents that changed */
  const place = (box: HTMLElement, shownHere: Incident[]) => {
    let prev: Element | null = null;
    for (const inc of shownHere) {
      let el = items.get(inc.id);
      if (!el || el.dataset.seq !== String(inc.lastSeq) || el.dataset.stale === '1') {
        const next = mode === 'list' ? row(ctx, inc) : card(ctx, inc);
        next.dataset.seq = String(inc.lastSeq);
        if (el) {
          carryInputs(el, next);
          el.replaceWith(next);
        }
        el = next;
        items.set(inc.id, el);
      }
      // keep DOM order = sort order, moving only what moved (a focused input elsewhere keeps its focus)
      const want: Element | null = prev ? prev.nextElementSibling : box.firstElementChild;
      if (want !== el) box.insertBefore(el, want);
      prev = el;
    }
  };

  /** residents, devices and staff arrive after the cards: redraw the cards that show them */
  const invalidate = (match: (inc: Incident) => boolean) => {
    for (const [id, el] of items) {
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
    ctx.units.onChange(() => { fillUnits(); invalidate(() => true); }),
  ];
  showTests.addEventListener('change', () => {
    localStorage.setItem('eldergate.showTests', String(showTests.checked));
    render();
  });
  const tick = setInterval(() => {
    const now = Date.now();
    for (const line of root.querySelectorAll<HTMLElement>('[data-countdown]')) {
      const inc = ctx.store.incidents.get(line.dataset.countdown!);
      if (!inc) continue;
      const cd = countdown(ctx, inc, now);
      line.textContent = cd.text;
      line.classList.toggle('late', cd.late);
    }
  }, 1000);
  if (mode === 'list') { cardsBox.replaceWith(table); testCards.replaceWith(testTable); }
  render();
  return () => {
    clearInterval(tick);
    for (const off of offs) off();
  };
}
