// The buttons that move an incident: acknowledge, dispatch (to on-duty staff), on site, resolve, note. Each
// button carries an Idempotency-Key made when it was drawn: a double click or a retry after a network error
// sends the same key, and the server answers the first result again instead of acting twice.
import { ApiError, type Incident } from './api.js';
import type { Ctx } from './context.js';
import { h, randomKey } from './dom.js';

const OUTCOMES = ['help given at home', 'taken to hospital', 'false alarm', 'resident fine, no help needed', 'cancelled by resident'];

/** `compact`: only the acknowledge button (list rows, the attention strip); the card and the detail get all. */
export function incidentActions(ctx: Ctx, inc: Incident, opts: { compact?: boolean } = {}): HTMLElement {
  const box = h('div', { class: opts.compact ? 'actions compact' : 'actions' });
  if (!ctx.can('admin', 'operator', 'steward')) return box;
  const path = (a: string) => `/api/incidents/${encodeURIComponent(inc.id)}/${a}`;

  const run = (btn: HTMLButtonElement, action: string, body: () => Record<string, unknown> | null) => {
    btn.addEventListener('click', async () => {
      if (btn.disabled) return;
      const b = body();
      if (b === null) return;
      btn.disabled = true;
      btn.classList.add('busy');
      try {
        await ctx.api.post(path(action), b, btn.dataset.key);
        btn.classList.remove('busy');
        btn.classList.add('done');
        // the card is redrawn when the stream brings the event; the button stays disabled until then
      } catch (err) {
        btn.disabled = false;
        btn.classList.remove('busy');
        ctx.fail(err, `${action} failed`);
        // a network error leaves the key as is: the retry is the same request; any other answer is final
        if (!(err instanceof ApiError && err.status === 0)) btn.dataset.key = randomKey();
      }
    });
  };
  const button = (label: string, action: string, cls: string, body: () => Record<string, unknown> | null = () => ({})) => {
    const btn = h('button', { type: 'button', class: cls, 'data-action': action }, label);
    btn.dataset.key = randomKey();
    run(btn, action, body);
    return btn;
  };

  const s = inc.status;
  if (s === 'open') box.append(button('Acknowledge', 'acknowledge', 'primary'));
  if (opts.compact) return box;
  if (s === 'acknowledged' || s === 'dispatched') {
    const select = h('select', { 'aria-label': 'staff to dispatch', class: 'staff-select' });
    const fill = () => {
      const all = ctx.staff.get('all') ?? [];
      const prev = select.value;
      select.replaceChildren(h('option', { value: '' }, all.length ? 'dispatch to…' : 'no staff on duty'));
      // on-duty staff of the incident's own unit first
      const onDuty = all.filter((x) => x.onDuty).sort((a, b) => Number(b.unitId === inc.unitId) - Number(a.unitId === inc.unitId));
      for (const x of onDuty) select.append(h('option', { value: x.id }, `${x.name} (${x.role}, ${ctx.unitName(x.unitId)})`));
      select.value = prev;
    };
    fill();
    if (!ctx.staff.peek('all')) {
      const off = ctx.staff.onChange(() => { off(); fill(); });
    }
    const btn = button('Dispatch', 'dispatch', '', () => {
      if (!select.value) { ctx.toast('pick the staff member to dispatch', 'error'); return null; }
      return { staffId: select.value };
    });
    box.append(h('span', { class: 'group' }, select, btn));
    box.append(button('On site', 'on-site', ''));
  }
  if (s === 'acknowledged' || s === 'dispatched' || s === 'on-site') {
    const listId = `outcomes-${inc.id}`;
    const input = h('input', { type: 'text', list: listId, placeholder: 'outcome', 'aria-label': 'outcome', maxlength: 2000 });
    const dl = h('datalist', { id: listId }, ...OUTCOMES.map((o) => h('option', { value: o })));
    const btn = button('Resolve', 'resolve', '', () => {
      if (!input.value.trim()) { ctx.toast('say how it ended: type or pick an outcome', 'error'); return null; }
      return { outcome: input.value.trim() };
    });
    box.append(h('span', { class: 'group' }, input, dl, btn));
  }
  if (s !== 'resolved' && s !== 'cancelled') {
    const input = h('input', { type: 'text', placeholder: 'note', 'aria-label': 'note', maxlength: 2000 });
    const btn = button('Note', 'note', '', () => {
      if (!input.value.trim()) { ctx.toast('the note is empty', 'error'); return null; }
      return { text: input.value.trim() };
    });
    btn.addEventListener('click', () => setTimeout(() => { if (btn.classList.contains('done')) input.value = ''; }, 500));
    box.append(h('span', { class: 'group' }, input, btn));
  }
  return box;
}
