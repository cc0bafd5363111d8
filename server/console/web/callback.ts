// "Call back": a watch or a JT/T 808 terminal dials the number the operator gives (the voice path hand-off a telecare
// console needs: the operator speaks with the resident through the terminal). Sent as a device command: stored,
// sent while the terminal is connected, resent when it reconnects, confirmed when the terminal answers it.
import type { Device, Unit } from './api.js';
import type { Ctx } from './context.js';
import { h } from './dom.js';

const CALLING_KINDS = new Set(['watch', 'jt808']);
const NUMBER = /^\+?[0-9]{3,20}$/;

export function callBackBox(ctx: Ctx, d: Device | null, unit: Unit | undefined): HTMLElement | null {
  if (!d || !CALLING_KINDS.has(d.kind) || !ctx.can('admin', 'technician', 'operator')) return null;
  const input = h('input', {
    type: 'tel', name: 'callback-number', 'aria-label': 'number the terminal dials', placeholder: '+86…', maxlength: 21,
    value: unit?.phone ?? '', autocomplete: 'off',
  });
  const btn = h('button', { type: 'button', class: 'primary', 'data-action': 'call-back' }, 'Call back');
  btn.addEventListener('click', async () => {
    const number = input.value.replace(/[\s-]/g, '');
    if (!NUMBER.test(number)) {
      ctx.toast('give the number the terminal should dial: digits, optionally starting with +', 'error');
      input.focus();
      return;
    }
    btn.disabled = true;
    try {
      const r = await ctx.api.post<{ queued: boolean; reason?: string }>(`/api/devices/${encodeURIComponent(d.id)}/commands`, { type: 'call-back', params: { number } });
      ctx.toast(r.queued ? `call-back queued: ${r.reason ?? 'the terminal is offline'}` : `the terminal is dialling ${number}`, r.queued ? 'error' : 'ok');
    } catch (err) {
      ctx.fail(err, 'call-back failed');
    } finally {
      btn.disabled = false;
    }
  });
  return h('section', { class: 'panel callback' },
    h('h2', null, 'Call back through the terminal'),
    h('p', { class: 'muted' }, 'The terminal dials this number; answer it to speak with the resident.'),
    h('div', { class: 'actions' }, h('span', { class: 'group' }, input, btn)));
}
