// The response network the user may see: district → street → community → grid units, and their staff with who is
// on duty now (operators and stewards may start or end a shift; the server checks the unit).
import type { Staff, Unit } from './api.js';
import type { Ctx } from './context.js';
import { clear, h } from './dom.js';

export function networkView(ctx: Ctx, root: HTMLElement): () => void {
  const tree = h('section', { class: 'panel' }, h('h2', null, 'Units'));
  const staffBox = h('section', { class: 'panel' }, h('h2', null, 'Staff'));
  const onlyOnDuty = h('input', { type: 'checkbox' });
  root.append(h('div', { class: 'toolbar' }, h('h1', null, 'Response network'),
    h('label', { class: 'check' }, onlyOnDuty, ' on duty only')), h('div', { class: 'columns' }, tree, staffBox));
  const toggler = ctx.can('admin', 'operator', 'steward');
  let units: Unit[] = [];
  let staff: Staff[] = [];

  const drawTree = () => {
    clear(tree);
    tree.append(h('h2', null, 'Units'));
    const byParent = new Map<string | null, Unit[]>();
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
        return h('li', { 'data-unit': u.id },
          h('span', { class: `tier ${u.tier}` }, u.tier), ' ', h('strong', null, u.name),
          u.phone ? h('a', { href: `tel:${u.phone}` }, ` ${u.phone}`) : null,
          u.tier === 'grid' ? h('span', { class: 'muted' }, ` · ${onDuty} on duty`) : null,
          branch(u.id));
      }));
    };
    tree.append(branch(null) ?? h('p', { class: 'muted' }, 'no units'));
  };

  const drawStaff = () => {
    clear(staffBox);
    staffBox.append(h('h2', null, 'Staff'));
    const list = staff.filter((s) => !onlyOnDuty.checked || s.onDuty).sort((a, b) => a.unitId.localeCompare(b.unitId) || a.name.localeCompare(b.name));
    if (!list.length) return void staffBox.append(h('p', { class: 'muted' }, 'nobody'));
    staffBox.append(h('div', { class: 'table-wrap' }, h('table', null,
      h('thead', null, h('tr', null, h('th', null, 'Name'), h('th', null, 'Role'), h('th', null, 'Unit'), h('th', null, 'Phone'), h('th', null, 'On duty'))),
      h('tbody', null, ...list.map((s) => {
        const box = h('input', { type: 'checkbox', 'aria-label': `${s.name} on duty`, disabled: !toggler });
        box.checked = s.onDuty;
        box.addEventListener('change', async () => {
          box.disabled = true;
          try {
            const next = await ctx.api.post<Staff>(`/api/staff/${encodeURIComponent(s.id)}/on-duty`, { onDuty: box.checked });
            staff = staff.map((x) => (x.id === next.id ? next : x));
            ctx.staff.set('all', staff);
            drawTree();
          } catch (err) {
            box.checked = !box.checked;
            ctx.fail(err, 'changing the shift failed');
          } finally {
            box.disabled = !toggler;
          }
        });
        return h('tr', { 'data-staff': s.id }, h('td', null, s.name), h('td', null, s.role), h('td', null, ctx.unitName(s.unitId)),
          h('td', null, s.phone ? h('a', { href: `tel:${s.phone}` }, s.phone) : '—'), h('td', null, box));
      })))));
  };

  const load = async () => {
    try {
      [units, staff] = await Promise.all([
        ctx.api.get<{ items: Unit[] }>('/api/units').then((r) => r.items),
        ctx.api.get<{ items: Staff[] }>('/api/staff').then((r) => r.items),
      ]);
      ctx.units.set('all', units);
      ctx.staff.set('all', staff);
      drawTree();
      drawStaff();
    } catch (err) {
      ctx.fail(err, 'loading the network failed');
    }
  };
  onlyOnDuty.addEventListener('change', drawStaff);
  const timer = setInterval(() => void load(), 30_000);
  void load();
  return () => clearInterval(timer);
}
