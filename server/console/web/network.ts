// The response network the user may see (#/network): district → street → community → grid units, their staff, and
// the on-duty rota. "On duty now" comes first: a supervisor sees at a glance a unit with nobody on duty (highlighted,
// listed first), and starts or ends a shift with one tap (operators and stewards too; the server checks the unit).
// Admins also create, rename, move and delete units and manage staff; the server's refusal (a unit that still has
// staff or residents) is shown next to the form with what still hangs on it.
//
// The rota is on/off duty only: the API has no scheduled shifts (who is on from 07:00 to 19:00), so "on duty" is
// what someone set last, not a plan.
import { adminApi, ApiError, STAFF_ROLES, type StaffRecord, type UnitRecord } from './api.js';
import type { Ctx } from './context.js';
import { clear, field, h } from './dom.js';
import { sentence, unitSelect } from './admin-users.js';

const TIERS = ['district', 'street', 'community', 'grid'] as const;

/** What the server listed as still hanging on a unit it would not delete, in words. */
function blockers(details: unknown): string {
  const d = (details ?? {}) as Record<string, unknown>;
  const words: [string, string, string][] = [['units', 'unit below it', 'units below it'], ['staff', 'staff member', 'staff members'],
    ['residents', 'resident', 'residents'], ['users', 'user account', 'user accounts'], ['openIncidents', 'open incident', 'open incidents']];
  const parts = words.filter(([k]) => typeof d[k] === 'number' && (d[k] as number) > 0).map(([k, one, many]) => `${d[k]} ${d[k] === 1 ? one : many}`);
  return parts.length ? `It still has ${parts.join(', ')}: move or remove them first.` : '';
}

export function networkView(ctx: Ctx, root: HTMLElement): () => void {
  const api = adminApi(ctx.api);
  const admin = ctx.can('admin');
  const toggler = ctx.can('admin', 'operator', 'steward');
  let units: UnitRecord[] = [];
  let staff: StaffRecord[] = [];
  let editing: { kind: 'unit' | 'staff'; id: string | null } | null = null;

  const rota = h('section', { class: 'panel rota', 'aria-label': 'on duty now' });
  const tree = h('section', { class: 'panel' });
  const staffBox = h('section', { class: 'panel' });
  const editor = h('section', { class: 'panel editor', hidden: true });
  const onlyOnDuty = h('input', { type: 'checkbox', name: 'only-on-duty' });
  // enabled once the network is loaded: a form opened before would be drawn again by the load, losing what was typed
  // (and its parent list would be empty)
  const newUnit = admin ? h('button', { type: 'button', 'data-action': 'new-unit', disabled: true }, 'New unit') : null;
  const newStaff = admin ? h('button', { type: 'button', 'data-action': 'new-staff', disabled: true }, 'New staff member') : null;
  newUnit?.addEventListener('click', () => openEditor('unit', null));
  newStaff?.addEventListener('click', () => openEditor('staff', null));
  root.append(
    h('div', { class: 'toolbar' }, h('h1', null, 'Response network'), newUnit, newStaff),
    editor, rota, h('div', { class: 'columns' }, tree, staffBox));

  const unitName = (id: string | null) => (id ? units.find((u) => u.id === id)?.name ?? 'a unit you cannot see' : '(no unit)');
  const publish = () => {
    // the board's dispatch list and unit names read these caches
    ctx.units.set('all', units);
    ctx.staff.set('all', staff);
  };

  /** One tap starts or ends a shift; the button says what it will do, the row says what is. */
  const dutyButton = (s: StaffRecord) => {
    const b = h('button', { type: 'button', class: s.onDuty ? 'duty on' : 'duty', 'data-duty': s.id, 'aria-pressed': String(s.onDuty),
      disabled: !toggler, title: toggler ? null : 'your role cannot change shifts' }, s.onDuty ? 'End shift' : 'Start shift');
    b.addEventListener('click', async () => {
      b.disabled = true;
      try {
        const next = await api.setOnDuty(s.id, !s.onDuty);
        staff = staff.map((x) => (x.id === next.id ? { ...x, ...next } : x));
        publish();
        ctx.toast(`${next.name} is ${next.onDuty ? 'on duty' : 'off duty'}`, 'ok');
        draw();
      } catch (err) {
        b.disabled = false;
        ctx.fail(err, 'changing the shift failed');
      }
    });
    return b;
  };

  // ---- on duty now: one tile per unit that answers alarms (grid units, and any unit with staff) -------------------
  const drawRota = () => {
    clear(rota);
    const staffed = new Set(staff.map((s) => s.unitId));
    const shown = units.filter((u) => u.tier === 'grid' || staffed.has(u.id));
    const onDutyIn = (id: string) => staff.filter((s) => s.unitId === id && s.onDuty);
    const empty = shown.filter((u) => onDutyIn(u.id).length === 0);
    rota.append(h('h2', null, 'On duty now'),
      empty.length
        ? h('p', { class: 'rota-alert', role: 'alert', 'data-nobody': empty.length },
          `⚠ Nobody on duty in ${empty.length} unit${empty.length === 1 ? '' : 's'}: ${empty.map((u) => u.name).join(', ')}. The board cannot dispatch anyone there.`)
        : h('p', { class: 'muted' }, shown.length ? 'Every unit has someone on duty.' : ''),
      h('p', { class: 'muted small' }, 'Shifts are on/off only (what was set last); the gateway keeps no planned rota.'));
    if (!shown.length) return void rota.append(h('p', { class: 'muted' }, 'No units yet.'));
    // nobody on duty first: that is what a supervisor must act on
    const order = [...shown].sort((a, b) => Number(onDutyIn(a.id).length > 0) - Number(onDutyIn(b.id).length > 0) || a.name.localeCompare(b.name));
    rota.append(h('div', { class: 'rota-grid' }, ...order.map((u) => {
      const on = onDutyIn(u.id);
      const people = staff.filter((s) => s.unitId === u.id).sort((a, b) => Number(b.onDuty) - Number(a.onDuty) || a.name.localeCompare(b.name));
      return h('article', { class: `duty-unit ${on.length ? '' : 'nobody'}`, 'data-unit': u.id, 'data-on-duty': on.length },
        h('header', null, h('strong', null, u.name), ' ', h('span', { class: `tier ${u.tier}` }, u.tier),
          h('span', { class: on.length ? 'count' : 'count none' }, on.length ? `${on.length} on duty` : 'nobody on duty')),
        people.length
          ? h('ul', { class: 'duty-list' }, ...people.map((s) => h('li', { 'data-staff': s.id, class: s.onDuty ? 'on' : 'off' },
            h('span', { class: 'who' }, h('span', { class: 'name' }, s.name), ' ', h('span', { class: 'muted' }, s.role),
              s.phone ? h('a', { href: `tel:${s.phone.replace(/[^+\d]/g, '')}` }, ` ${s.phone}`) : null),
            h('span', { class: 'state' }, s.onDuty ? 'on duty' : 'off'),
            dutyButton(s))))
          : h('p', { class: 'muted' }, 'no staff in this unit'));
    })));
  };

  // ---- the tree of units --------------------------------------------------------------------------------------
  const drawTree = () => {
    clear(tree);
    tree.append(h('h2', null, 'Units'));
    const byParent = new Map<string | null, UnitRecord[]>();
    const ids = new Set(units.map((u) => u.id));
    for (const u of units) {
      // the top of what this user sees may have a parent outside it
      const p = u.parentId && ids.has(u.parentId) ? u.parentId : null;
      byParent.set(p, [...(byParent.get(p) ?? []), u]);
    }
    const branch = (parent: string | null): HTMLElement | null => {
      const kids = byParent.get(parent);
      if (!kids?.length) return null;
      return h('ul', { class: 'tree' }, ...kids.sort((a, b) => a.name.localeCompare(b.name)).map((u) => {
        const onDuty = staff.filter((s) => s.unitId === u.id && s.onDuty).length;
        const edit = admin ? h('button', { type: 'button', class: 'link', 'data-action': 'edit-unit' }, 'edit') : null;
        edit?.addEventListener('click', () => openEditor('unit', u.id));
        return h('li', { 'data-unit': u.id },
          h('span', { class: `tier ${u.tier}` }, u.tier), ' ', h('strong', null, u.name),
          u.phone ? h('a', { href: `tel:${u.phone.replace(/[^+\d]/g, '')}` }, ` ${u.phone}`) : null,
          u.webhook ? h('span', { class: 'muted' }, ` · notifies ${u.webhook}`) : null,
          u.tier === 'grid' ? h('span', { class: onDuty ? 'muted' : 'error' }, ` · ${onDuty ? `${onDuty} on duty` : 'nobody on duty'}`) : null,
          edit ? ' ' : null, edit,
          branch(u.id));
      }));
    };
    tree.append(branch(null) ?? h('p', { class: 'muted' }, admin ? 'No units yet: start with a district centre ("New unit").' : 'no units'));
  };

  // ---- staff --------------------------------------------------------------------------------------------------
  const drawStaff = () => {
    clear(staffBox);
    staffBox.append(h('div', { class: 'toolbar' }, h('h2', null, 'Staff'), h('label', { class: 'check' }, onlyOnDuty, ' on duty only')));
    const list = staff.filter((s) => !onlyOnDuty.checked || s.onDuty)
      .sort((a, b) => unitName(a.unitId).localeCompare(unitName(b.unitId)) || a.name.localeCompare(b.name));
    if (!list.length) return void staffBox.append(h('p', { class: 'muted' }, 'nobody'));
    staffBox.append(h('div', { class: 'table-wrap' }, h('table', { class: 'staff' },
      h('thead', null, h('tr', null, ...['Name', 'Role', 'Unit', 'Phone', 'On duty', admin ? '' : null].filter((x) => x !== null).map((x) => h('th', null, x)))),
      h('tbody', null, ...list.map((s) => {
        const edit = admin ? h('button', { type: 'button', class: 'link', 'data-action': 'edit-staff' }, 'edit') : null;
        edit?.addEventListener('click', () => openEditor('staff', s.id));
        return h('tr', { 'data-staff': s.id }, h('td', null, s.name), h('td', null, s.role), h('td', null, unitName(s.unitId)),
          h('td', null, s.phone ? h('a', { href: `tel:${s.phone.replace(/[^+\d]/g, '')}` }, s.phone) : '—'),
          h('td', null, s.onDuty ? 'on duty' : 'off'),
          edit ? h('td', null, edit) : null);
      })))));
  };

  // ---- editors (admin) ----------------------------------------------------------------------------------------
  function openEditor(kind: 'unit' | 'staff', id: string | null): void {
    editing = { kind, id };
    drawEditor();
    editor.scrollIntoView({ block: 'nearest' });
  }

  const drawEditor = () => {
    clear(editor);
    editor.hidden = !editing || !admin;
    if (!editing || !admin) return;
    const error = h('p', { class: 'error', role: 'alert', 'data-error': '' });
    const close = h('button', { type: 'button', 'data-action': 'close' }, 'Close');
    close.addEventListener('click', () => { editing = null; drawEditor(); });
    const fail = (err: unknown) => {
      error.textContent = sentence(err) + (err instanceof ApiError && err.status === 409 ? ` ${blockers(err.details)}` : '');
    };
    const saved = async (what: string) => {
      ctx.toast(what, 'ok');
      editing = null;
      await load();
    };

    if (editing.kind === 'unit') {
      const u = editing.id ? units.find((x) => x.id === editing!.id) : undefined;
      if (editing.id && !u) { editing = null; editor.hidden = true; return; }
      editor.dataset.editor = `unit:${u?.id ?? 'new'}`;
      const name = h('input', { name: 'name', required: true, maxlength: 200, value: u?.name ?? '' });
      const tier = h('select', { name: 'tier' }, ...TIERS.map((t) => h('option', { value: t }, t)));
      tier.value = u?.tier ?? (units.length ? 'grid' : 'district');
      // a unit cannot hang under itself or anything below it (the server checks tiers and says which fit)
      const below = new Set<string>();
      if (u) {
        const stack = [u.id];
        while (stack.length) { const c = stack.pop()!; below.add(c); stack.push(...units.filter((x) => x.parentId === c).map((x) => x.id)); }
      }
      const parent = unitSelect(units.filter((x) => !below.has(x.id) && x.tier !== 'grid'), u?.parentId ?? null, { name: 'parentId', none: '— none (a district centre) —' });
      const phone = h('input', { name: 'phone', type: 'tel', maxlength: 30, value: u?.phone ?? '' });
      const webhook = h('input', { name: 'webhook', maxlength: 500, value: u?.webhook ?? '', placeholder: 'e.g. grid-a-pager', autocomplete: 'off' });
      const submit = h('button', { type: 'submit', class: 'primary', 'data-action': 'save-unit' }, u ? 'Save unit' : 'Create unit');
      const del = u ? h('button', { type: 'button', class: 'danger', 'data-action': 'delete-unit' }, 'Delete unit') : null;
      const form = h('form', { class: 'form admin-form', 'data-form': 'unit' },
        field('Name', name), field('Tier', tier), field('Parent', parent), field('Phone', phone),
        h('label', { class: 'field' }, h('span', null, 'Webhook channel'), webhook,
          h('small', { class: 'muted' }, 'the name of a notification channel configured on the gateway, not a URL; empty for none')),
        h('div', { class: 'actions' }, submit, del, close));
      form.addEventListener('submit', async (e) => {
        e.preventDefault();
        error.textContent = '';
        const body = { name: name.value.trim(), tier: tier.value, parentId: parent.value || null, phone: phone.value.trim() || null, webhook: webhook.value.trim() || null };
        if (!body.name) { error.textContent = 'Name: give the unit a name.'; return name.focus(); }
        submit.disabled = true;
        try {
          if (u) {
            const patch = Object.fromEntries(Object.entries(body).filter(([k, v]) => (u as unknown as Record<string, unknown>)[k] !== v));
            if (!Object.keys(patch).length) { error.textContent = 'Nothing changed.'; return; }
            await api.patchUnit(u.id, patch);
            await saved(`unit ${body.name} saved`);
          } else {
            await api.createUnit(body);
            await saved(`unit ${body.name} created`);
          }
        } catch (err) { fail(err); } finally { submit.disabled = false; }
      });
      del?.addEventListener('click', async () => {
        error.textContent = '';
        del.disabled = true;
        try {
          await api.deleteUnit(u!.id);
          await saved(`unit ${u!.name} deleted`);
        } catch (err) { fail(err); } finally { del.disabled = false; }
      });
      editor.append(h('h2', null, u ? `Unit: ${u.name}` : 'New unit'), form, error);
      name.focus();
      return;
    }

    const s = editing.id ? staff.find((x) => x.id === editing!.id) : undefined;
    if (editing.id && !s) { editing = null; editor.hidden = true; return; }
    editor.dataset.editor = `staff:${s?.id ?? 'new'}`;
    const name = h('input', { name: 'name', required: true, maxlength: 200, value: s?.name ?? '' });
    const role = h('select', { name: 'role' }, ...STAFF_ROLES.map((r) => h('option', { value: r }, r)));
    role.value = s?.role ?? 'nurse';
    const unit = unitSelect(units, s?.unitId ?? null, { name: 'unitId', none: '— choose a unit —' });
    const phone = h('input', { name: 'phone', type: 'tel', maxlength: 30, value: s?.phone ?? '' });
    const onDuty = h('input', { type: 'checkbox', name: 'onDuty' });
    const submit = h('button', { type: 'submit', class: 'primary', 'data-action': 'save-staff' }, s ? 'Save' : 'Add staff member');
    const remove = s ? h('button', { type: 'button', class: 'danger', 'data-action': 'remove-staff' }, 'Remove') : null;
    const form = h('form', { class: 'form admin-form', 'data-form': 'staff' },
      field('Name', name), h('label', { class: 'field' }, h('span', null, 'Role in the response chain'), role), field('Unit', unit), field('Phone', phone),
      s ? null : h('label', { class: 'check' }, onDuty, ' on duty now'),
      h('div', { class: 'actions' }, submit, remove, close));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      error.textContent = '';
      const body = { name: name.value.trim(), role: role.value, unitId: unit.value, phone: phone.value.trim() || null };
      if (!body.name) { error.textContent = 'Name: give the staff member a name.'; return name.focus(); }
      if (!body.unitId) { error.textContent = 'Unit: choose the unit this person works for.'; return unit.focus(); }
      submit.disabled = true;
      try {
        if (s) {
          const patch = Object.fromEntries(Object.entries(body).filter(([k, v]) => (s as unknown as Record<string, unknown>)[k] !== v));
          if (!Object.keys(patch).length) { error.textContent = 'Nothing changed.'; return; }
          await api.patchStaff(s.id, patch);
          await saved(`${body.name} saved`);
        } else {
          await api.createStaff({ ...body, onDuty: onDuty.checked });
          await saved(`${body.name} added to ${unitName(body.unitId)}`);
        }
      } catch (err) { fail(err); } finally { submit.disabled = false; }
    });
    remove?.addEventListener('click', async () => {
      // removing someone who is on duty leaves their unit short: say so before, not after
      if (s!.onDuty && remove.dataset.armed !== '1') {
        remove.dataset.armed = '1';
        remove.textContent = `Remove although on duty`;
        error.textContent = `${s!.name} is on duty now: removing them leaves ${unitName(s!.unitId)} with one person fewer. Press again to remove.`;
        return;
      }
      remove.disabled = true;
      try {
        await api.deleteStaff(s!.id);
        await saved(`${s!.name} removed`);
      } catch (err) { fail(err); } finally { remove.disabled = false; }
    });
    editor.append(h('h2', null, s ? `Staff: ${s.name}` : 'New staff member'), form, error);
    name.focus();
  };

  const draw = () => {
    drawRota();
    drawTree();
    drawStaff();
  };

  /** the forms may open once the network is known (by the first load, or the refresh after a failed one) */
  const loaded = () => {
    if (newUnit) newUnit.disabled = false;
    if (newStaff) newStaff.disabled = false;
  };
  const load = async () => {
    try {
      [units, staff] = await Promise.all([api.units(), api.staff()]);
      publish();
      draw();
      drawEditor();
      loaded();
    } catch (err) {
      ctx.fail(err, 'loading the network failed');
    }
  };
  onlyOnDuty.addEventListener('change', drawStaff);
  // someone else may start a shift meanwhile; the open editor is not redrawn by this (it would lose what is typed)
  const timer = setInterval(() => {
    void Promise.all([api.units(), api.staff()]).then(([u, s]) => { units = u; staff = s; publish(); draw(); loaded(); }, () => undefined);
  }, 30_000);
  void load();
  return () => clearInterval(timer);
}
