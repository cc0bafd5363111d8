// Accounts, for admins (#/admin/users): who may log in, with which role and unit. Create, change role/unit/name,
// disable or enable, reset a password (a temporary one, shown once). The server decides every rule (the password
// policy, the last admin, the unit existing): this page shows its answer as it is, next to the form that caused it.
// Units are chosen by name from GET /api/units, never typed as ids.
import { adminApi, ApiError, USER_ROLES, type Role, type UnitRecord, type UserRecord } from './api.js';
import type { Ctx } from './context.js';
import { clear, field, h } from './dom.js';
import { notAllowedView } from './notfound.js';

/** The policy's floor, said up front so nobody types a short one twice (the server checks it and the rest). */
const PASSWORD_HINT = 'at least 12 characters; not the username, one character or a short pattern repeated, a run such as abcd… or 1234…, or a common password. A passphrase of several unrelated words is best.';

/**
 * A temporary password: 4 groups of 4 from letters and digits that cannot be misread on a phone call (no 0/O, 1/l/I),
 * ~79 bits from the browser's CSPRNG, uniform (bytes above the largest multiple of the alphabet size are drawn again).
 */
export function temporaryPassword(): string {
  const alphabet = 'abcdefghijkmnpqrstuvwxyz23456789';
  const out: string[] = [];
  const buf = new Uint8Array(1);
  while (out.length < 16) {
    crypto.getRandomValues(buf);
    if (buf[0]! >= 256 - (256 % alphabet.length)) continue;
    out.push(alphabet[buf[0]! % alphabet.length]!);
  }
  return [0, 4, 8, 12].map((i) => out.slice(i, i + 4).join('')).join('-');
}

/** A select of units by name (tier shown to tell a grid from its community); '' is "no unit: sees everything". */
export function unitSelect(units: UnitRecord[], current: string | null, opts: { name: string; none?: string }): HTMLSelectElement {
  const sel = h('select', { name: opts.name });
  if (opts.none) sel.append(h('option', { value: '' }, opts.none));
  for (const u of [...units].sort((a, b) => a.name.localeCompare(b.name))) sel.append(h('option', { value: u.id }, `${u.name} (${u.tier})`));
  if (current && !units.some((u) => u.id === current)) sel.append(h('option', { value: current }, 'a unit that no longer exists'));
  sel.value = current ?? '';
  return sel;
}

/** Copy to the clipboard; where the browser refuses, the text is selected so that the person can copy it by hand. */
export async function copyText(ctx: Ctx, input: HTMLInputElement): Promise<void> {
  try {
    await navigator.clipboard.writeText(input.value);
    ctx.toast('copied', 'ok');
  } catch {
    input.select();
    ctx.toast('the browser did not allow copying: the text is selected, copy it with Ctrl+C (or long-press)', 'info');
  }
}

/** Two steps for what ends someone's sessions at once: the button, then a confirmation that says what happens. */
function confirmStep(box: HTMLElement, question: string, yes: string, act: () => Promise<void>): void {
  const go = h('button', { type: 'button', class: 'danger', 'data-action': 'confirm' }, yes);
  const no = h('button', { type: 'button', 'data-action': 'cancel' }, 'Cancel');
  const ask = h('div', { class: 'confirm', role: 'alertdialog' }, h('p', null, question), h('div', { class: 'actions' }, go, no));
  clear(box);
  box.append(ask);
  no.addEventListener('click', () => clear(box));
  go.addEventListener('click', async () => {
    go.disabled = no.disabled = true;
    try { await act(); } finally { ask.remove(); }
  });
}

export function adminUsersView(ctx: Ctx, root: HTMLElement): () => void {
  const me = ctx.api.user;
  if (!me || me.role !== 'admin') return notAllowedView(root, 'Managing users', me ? `${me.username} (${me.role})` : 'nobody');
  const api = adminApi(ctx.api);
  let users: UserRecord[] = [];
  let units: UnitRecord[] = [];
  let open: string | null = null; // the user whose editor is open

  const newBtn = h('button', { type: 'button', class: 'primary', 'data-action': 'new-user' }, 'New user');
  const createBox = h('section', { class: 'panel', hidden: true, 'aria-label': 'new user' });
  const listBox = h('section', { class: 'panel' });
  const editBox = h('section', { class: 'panel', hidden: true, 'aria-label': 'manage user' });
  root.append(h('div', { class: 'toolbar' }, h('h1', null, 'Users'), newBtn,
    h('span', { class: 'muted' }, 'Who may log in to the console, with which role, for which unit.')), createBox, editBox, listBox);
  const unitName = (id: string | null) => (id ? units.find((u) => u.id === id)?.name ?? 'a unit that no longer exists' : 'all units');

  // ---- create -------------------------------------------------------------------------------------------------
  const drawCreate = () => {
    clear(createBox);
    const username = h('input', { name: 'username', required: true, minlength: 3, maxlength: 64, autocomplete: 'off', pattern: '[a-zA-Z0-9._@\\-]{3,64}', title: '3–64 letters, digits and . _ @ -' });
    const displayName = h('input', { name: 'displayName', maxlength: 100, autocomplete: 'off' });
    const role = h('select', { name: 'role' }, ...USER_ROLES.map((r) => h('option', { value: r }, r)));
    role.value = 'operator';
    const unit = unitSelect(units, null, { name: 'unitId', none: '— none: sees every unit —' });
    const password = h('input', { name: 'password', type: 'text', required: true, autocomplete: 'new-password', maxlength: 256, spellcheck: false, 'aria-describedby': 'pw-hint' });
    const gen = h('button', { type: 'button', 'data-action': 'generate' }, 'Generate one');
    gen.addEventListener('click', () => { password.value = temporaryPassword(); });
    const error = h('p', { class: 'error', role: 'alert', 'data-error': '' });
    const submit = h('button', { type: 'submit', class: 'primary' }, 'Create user');
    const cancel = h('button', { type: 'button' }, 'Cancel');
    cancel.addEventListener('click', () => { createBox.hidden = true; });
    const form = h('form', { class: 'form admin-form', 'data-form': 'new-user', novalidate: true },
      field('Username', username), field('Display name', displayName), field('Role', role), field('Unit', unit),
      h('label', { class: 'field wide' }, h('span', null, 'Initial password'), h('span', { class: 'inline' }, password, gen),
        h('small', { id: 'pw-hint', class: 'muted' }, PASSWORD_HINT)),
      h('div', { class: 'actions' }, submit, cancel), error);
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      error.textContent = '';
      if (!username.value.trim()) { error.textContent = 'Username: give one (3–64 letters, digits and . _ @ -).'; return username.focus(); }
      if (password.value.length < 12) {
        error.textContent = `Password refused: it must be at least 12 characters long (it has ${password.value.length}). ${PASSWORD_HINT}`;
        return password.focus();
      }
      submit.disabled = true;
      try {
        const u = await api.createUser({
          username: username.value.trim(), password: password.value, role: role.value as Role, unitId: unit.value || null,
          ...(displayName.value.trim() ? { displayName: displayName.value.trim() } : {}),
        });
        ctx.toast(`user ${u.username} created: give them their password in person or by phone`, 'ok', { ms: 8000 });
        createBox.hidden = true;
        await load();
      } catch (err) {
        // the server's sentence names the field and says what to do ("password refused: it is on the list of …")
        error.textContent = sentence(err);
        if (err instanceof ApiError && /password/i.test(err.message)) password.focus();
      } finally {
        submit.disabled = false;
      }
    });
    createBox.append(h('h2', null, 'New user'), form);
    username.focus();
  };
  newBtn.addEventListener('click', () => { createBox.hidden = false; drawCreate(); });

  // ---- the list -----------------------------------------------------------------------------------------------
  const drawList = () => {
    clear(listBox);
    listBox.append(h('h2', null, `Accounts (${users.length})`));
    const rows = [...users].sort((a, b) => Number(a.disabled) - Number(b.disabled) || a.username.localeCompare(b.username));
    listBox.append(h('div', { class: 'table-wrap' }, h('table', { class: 'admin-users' },
      h('thead', null, h('tr', null, ...['Username', 'Name', 'Role', 'Unit', 'Status', ''].map((x) => h('th', null, x)))),
      h('tbody', null, ...rows.map((u) => {
        const manage = h('button', { type: 'button', 'data-action': 'manage' }, 'Manage');
        manage.addEventListener('click', () => { open = u.id; drawEditor(); });
        return h('tr', { 'data-user': u.username, class: u.disabled ? 'disabled' : '' },
          h('td', null, h('strong', null, u.username), u.id === me.id ? h('span', { class: 'muted' }, ' (you)') : null),
          h('td', null, u.displayName ?? '—'),
          h('td', null, u.role),
          h('td', null, unitName(u.unitId)),
          h('td', { 'data-status': u.disabled ? 'disabled' : 'active' }, u.disabled ? h('span', { class: 'badge off' }, 'disabled') : 'active'),
          h('td', null, manage));
      })))),
    h('p', { class: 'muted' }, 'Last login is not recorded by the gateway yet, so it is not shown.'));
  };

  // ---- one user: role, unit, name, disable, reset password -----------------------------------------------------
  const drawEditor = () => {
    clear(editBox);
    const u = users.find((x) => x.id === open);
    editBox.hidden = !u;
    if (!u) return;
    editBox.dataset.editor = u.username;
    const displayName = h('input', { name: 'displayName', maxlength: 100, value: u.displayName ?? '' });
    const role = h('select', { name: 'role' }, ...USER_ROLES.map((r) => h('option', { value: r }, r)));
    role.value = u.role;
    const unit = unitSelect(units, u.unitId, { name: 'unitId', none: '— none: sees every unit —' });
    const error = h('p', { class: 'error', role: 'alert', 'data-error': '' });
    const save = h('button', { type: 'submit', class: 'primary', 'data-action': 'save-user' }, 'Save changes');
    const close = h('button', { type: 'button', 'data-action': 'close' }, 'Close');
    close.addEventListener('click', () => { open = null; drawEditor(); });
    const form = h('form', { class: 'form admin-form', 'data-form': 'edit-user' },
      field('Display name', displayName), field('Role', role), field('Unit', unit), h('div', { class: 'actions' }, save, close));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      error.textContent = '';
      const patch: Parameters<typeof api.patchUser>[1] = {};
      const name = displayName.value.trim() || null;
      if (name !== (u.displayName ?? null)) patch.displayName = name;
      if (role.value !== u.role) patch.role = role.value as Role;
      if ((unit.value || null) !== u.unitId) patch.unitId = unit.value || null;
      if (!Object.keys(patch).length) { error.textContent = 'Nothing changed.'; return; }
      save.disabled = true;
      try {
        await api.patchUser(u.id, patch);
        ctx.toast(`${u.username} changed${patch.role || patch.unitId !== undefined ? ': their open consoles were logged out and must log in again' : ''}`, 'ok', { ms: 8000 });
        await load();
      } catch (err) {
        error.textContent = sentence(err);
      } finally {
        save.disabled = false;
      }
    });

    const step = h('div', { class: 'step' });
    const toggle = h('button', { type: 'button', class: u.disabled ? '' : 'danger', 'data-action': u.disabled ? 'enable' : 'disable', disabled: u.id === me.id && !u.disabled,
      title: u.id === me.id ? 'you cannot disable your own account here: another admin can' : null }, u.disabled ? 'Enable' : 'Disable');
    toggle.addEventListener('click', () => {
      if (!u.disabled) {
        confirmStep(step, `Disable ${u.username}? They are logged out of every console at once and cannot log in until enabled again.`, 'Disable now', async () => {
          await act(() => api.patchUser(u.id, { disabled: true }), `${u.username} disabled`);
        });
      } else {
        void act(() => api.patchUser(u.id, { disabled: false }), `${u.username} enabled: they can log in again`);
      }
    });
    const reset = h('button', { type: 'button', 'data-action': 'reset-password' }, 'Reset password');
    reset.addEventListener('click', () => {
      confirmStep(step, `Reset the password of ${u.username}? Their current password stops working and every console they are logged in to is logged out now.`, 'Reset and show a temporary password', async () => {
        const pw = temporaryPassword();
        try {
          await api.resetPassword(u.id, pw);
        } catch (err) {
          error.textContent = sentence(err);
          return;
        }
        showOnce(step, u.username, pw);
      });
    });
    const act = async (fn: () => Promise<unknown>, done: string) => {
      error.textContent = '';
      try {
        await fn();
        ctx.toast(done, 'ok');
        await load();
      } catch (err) {
        error.textContent = sentence(err);
      }
    };
    editBox.append(
      h('h2', null, `Manage ${u.username}`, u.displayName ? ` — ${u.displayName}` : '', u.disabled ? ' (disabled)' : ''),
      form,
      h('p', { class: 'muted' }, 'A change of role or unit, a disable and a password reset log the person out of every console at once.'),
      h('div', { class: 'actions' }, toggle, reset), step, error);
  };

  /** The temporary password, once: never stored, gone when the page changes. */
  const showOnce = (box: HTMLElement, username: string, pw: string) => {
    clear(box);
    const input = h('input', { readonly: true, value: pw, class: 'mono', 'aria-label': `temporary password for ${username}`, size: pw.length + 2 });
    const copy = h('button', { type: 'button', 'data-action': 'copy' }, 'Copy');
    copy.addEventListener('click', () => void copyText(ctx, input));
    const done = h('button', { type: 'button', 'data-action': 'done' }, 'Done — hide it');
    done.addEventListener('click', () => clear(box));
    box.append(h('div', { class: 'secret temp-password', 'data-temp-password': pw, role: 'status' },
      h('p', null, h('strong', null, `Temporary password for ${username}: `), 'shown only this once.'),
      h('div', { class: 'inline' }, input, copy, done),
      h('p', null, 'Give this to the person yourself (in person or by phone, never by e-mail). ',
        'The gateway cannot force a change at first login yet: ask them to change it as soon as they have logged in.')));
    input.select();
  };

  const load = async () => {
    try {
      [users, units] = await Promise.all([api.users(), api.units()]);
      drawList();
      drawEditor();
    } catch (err) {
      if (err instanceof ApiError && err.status === 403) {
        clear(root);
        notAllowedView(root, 'Managing users', `${me.username} (${me.role})`);
        return;
      }
      ctx.fail(err, 'loading the users failed');
    }
  };
  void load();
  return () => undefined;
}

/** The server's refusal as a sentence the person can act on, with its first letter up. */
export function sentence(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  const s = msg.charAt(0).toUpperCase() + msg.slice(1);
  return /[.!?]$/.test(s) ? s : `${s}.`;
}
