// Residents: find one by name or address (the server searches), and read or change her file: address, unit, notes,
// contacts (each with the name of a notification channel, never a URL), home position, safe zone, no-movement and
// check-in settings. Who may change what is the server's rule (admin, technician, operator within their units);
// a steward reads. Every refusal is shown beside the field it is about.
import { ApiError, type Device, type LatLon, type Resident, type Unit } from './api.js';
import type { Ctx } from './context.js';
import { clear, fmtDateTime, h } from './dom.js';

/** What the server stores beyond the console's Resident type. */
interface ResidentFull extends Resident {
  noMovementSeconds: number | null;
  checkInBy: string | null;
  createdAt: number;
  updatedAt: number;
}
type Contact = Resident['contacts'][number];

/** the roles the server lets write residents (server/routes/residents.ts); the server checks the unit as well */
const canEdit = (ctx: Ctx) => ctx.can('admin', 'technician', 'operator');

const PAGE = 100;

// ---- the list ----------------------------------------------------------------------------------------------------

export function residentsView(ctx: Ctx, root: HTMLElement): () => void {
  const initial = new URLSearchParams(location.hash.split('?')[1] ?? '').get('q') ?? '';
  const search = h('input', { type: 'search', name: 'q', placeholder: 'name or address', 'aria-label': 'search residents by name or address', value: initial });
  const count = h('span', { class: 'muted', 'data-count': '' });
  const body = h('div', { class: 'table-wrap' });
  root.append(
    h('div', { class: 'toolbar' }, h('h1', null, 'Residents'), search, count,
      canEdit(ctx) ? h('a', { class: 'button primary', href: '#/resident/new' }, 'New resident') : null),
    body);

  let units: Unit[] = ctx.units.peek('all') ?? [];
  let devices = new Map<string, Device[]>();
  /** the user has more devices than one page: "none" could be wrong, so it is not said */
  let partial = false;
  let devicesLoaded = false;
  let generation = 0;

  const load = async () => {
    const mine = ++generation;
    const q = search.value.trim();
    try {
      const [list] = await Promise.all([
        ctx.api.get<{ items: ResidentFull[]; total: number }>(`/api/residents?limit=${PAGE}${q ? `&q=${encodeURIComponent(q)}` : ''}`),
        units.length ? null : ctx.api.get<{ items: Unit[] }>('/api/units').then((r) => { units = r.items; ctx.units.set('all', units); }),
      ]);
      if (mine !== generation) return; // a newer search answered first
      draw(list.items, list.total);
    } catch (err) {
      if (mine === generation) ctx.fail(err, 'loading residents failed');
    }
  };

  // the devices of the residents shown: one page of the user's devices, grouped (a resident has one to three)
  const loadDevices = async () => {
    try {
      const r = await ctx.api.get<{ items: Device[]; total: number }>('/api/devices?limit=1000');
      partial = r.total > r.items.length;
      devicesLoaded = true;
      devices = new Map();
      for (const d of r.items) if (d.residentId) devices.set(d.residentId, [...(devices.get(d.residentId) ?? []), d]);
      for (const cell of body.querySelectorAll<HTMLElement>('td[data-devices]')) fillDevices(cell, cell.dataset.devices!);
    } catch {
      // the list still works without them; the resident page loads hers
      partial = devicesLoaded = true;
      for (const cell of body.querySelectorAll<HTMLElement>('td[data-devices]')) fillDevices(cell, cell.dataset.devices!);
    }
  };
  const fillDevices = (cell: HTMLElement, residentId: string) => {
    const mine = devices.get(residentId) ?? [];
    cell.replaceChildren(...(mine.length
      ? mine.flatMap((d, i) => [i ? ', ' : '', h('a', { href: `#/device/${encodeURIComponent(d.id)}` }, `${d.kind} ${d.serial}`)])
      : [h('span', { class: 'muted' }, !devicesLoaded ? '…' : partial ? 'on her page' : 'none')]));
  };

  const unitName = (id: string | null) => (id ? units.find((u) => u.id === id)?.name ?? ctx.unitName(id) : '(no unit)');

  const draw = (items: ResidentFull[], total: number) => {
    count.textContent = total > items.length ? `${items.length} of ${total}: narrow the search` : `${total} resident${total === 1 ? '' : 's'}`;
    clear(body);
    if (!items.length) {
      body.append(h('p', { class: 'muted', 'data-empty': '' }, search.value.trim() ? `nobody matches "${search.value.trim()}"` : 'no residents yet'));
      return;
    }
    body.append(h('table', { class: 'fleet residents' },
      h('thead', null, h('tr', null, h('th', null, 'Name'), h('th', null, 'Address'), h('th', null, 'Unit'), h('th', null, 'Devices'), h('th', null, 'Contacts'))),
      h('tbody', null, ...items.map((r) => {
        const cell = h('td', { 'data-devices': r.id });
        fillDevices(cell, r.id);
        return h('tr', { 'data-resident': r.id },
          h('td', null, h('a', { href: `#/resident/${encodeURIComponent(r.id)}` }, r.name)),
          h('td', null, r.address ?? '—'),
          h('td', { 'data-unit': r.unitId ?? '' }, unitName(r.unitId)),
          cell,
          h('td', null, String(r.contacts.length)));
      }))));
  };

  let timer: number | undefined;
  search.addEventListener('input', () => {
    window.clearTimeout(timer);
    timer = window.setTimeout(() => {
      // remember the search in the address (back from a resident returns to it) without re-rendering the page
      const q = search.value.trim();
      history.replaceState(null, '', q ? `#/residents?q=${encodeURIComponent(q)}` : '#/residents');
      void load();
    }, 250);
  });
  void load();
  void loadDevices();
  search.focus();
  return () => window.clearTimeout(timer);
}

// ---- one resident --------------------------------------------------------------------------------------------------

/** Where a refusal is shown: `data-error-for` slots, found by the longest matching prefix of the field's path. */
class FieldErrors {
  constructor(private readonly form: HTMLElement, private readonly general: HTMLElement) {}

  slot(key: string): HTMLElement {
    return h('span', { class: 'field-error', role: 'alert', 'data-error-for': key });
  }

  clear(): void {
    for (const el of this.form.querySelectorAll<HTMLElement>('[data-error-for]')) el.textContent = '';
    this.general.textContent = '';
  }

  /** Show `message` beside `key` (e.g. "home.lat", "contacts.0.webhook") or the nearest field above it. */
  set(key: string | null, message: string): HTMLElement {
    const parts = key ? key.split('.').filter(Boolean) : [];
    for (let n = parts.length; n > 0; n--) {
      const el = this.form.querySelector<HTMLElement>(`[data-error-for="${CSS.escape(parts.slice(0, n).join('.'))}"]`);
      if (el) {
        el.textContent = message;
        return el;
      }
    }
    this.general.textContent = message;
    return this.general;
  }
}

/** "/home/lat" (ajv), "contacts[0].webhook" (handlers), "body field \"x.y\": …" (the message) → "home.lat" etc. */
export function fieldOf(err: ApiError): string | null {
  const d = err.details as { field?: string } | { field?: string }[] | undefined;
  const raw = Array.isArray(d) ? d[0]?.field : d?.field;
  const fromMessage = /field "([^"]+)"/.exec(err.message)?.[1];
  const f = raw ?? fromMessage;
  return f ? f.replace(/^\//, '').replace(/\//g, '.').replace(/\[(\d+)\]/g, '.$1') : null;
}

const num = (attrs: Record<string, string> = {}) => h('input', { type: 'number', step: 'any', inputmode: 'decimal', ...attrs });

export function residentView(ctx: Ctx, root: HTMLElement, id: string): () => void {
  const isNew = id === 'new';
  const editable = canEdit(ctx);
  if (isNew && !editable) {
    root.append(h('p', { class: 'notice error' }, `A ${ctx.api.user?.role ?? 'user'} cannot register residents: ask an operator or an admin.`));
    return () => undefined;
  }
  const general = h('p', { class: 'error', role: 'alert', 'data-form-error': '' });
  const form = h('form', { class: 'resident-form', novalidate: true });
  const errors = new FieldErrors(form, general);
  const title = h('h1', null, isNew ? 'New resident' : 'Resident');
  const meta = h('span', { class: 'muted' });
  const devicesBox = h('section', { class: 'panel', 'data-resident-devices': '' }, h('h2', null, 'Devices'));
  root.append(h('div', { class: 'toolbar' }, h('a', { href: '#/residents' }, '← Residents'), title, meta), form);
  if (!isNew) root.append(devicesBox);

  // ---- controls -----------------------------------------------------------------------------------------------
  const name = h('input', { name: 'name', required: true, maxlength: 200, autocomplete: 'off' });
  const address = h('input', { name: 'address', maxlength: 500, autocomplete: 'off' });
  const unit = h('select', { name: 'unitId' });
  const notes = h('textarea', { name: 'notes', rows: 3, maxlength: 5000 });
  const homeLat = num({ name: 'home.lat', placeholder: 'e.g. 52.5200' });
  const homeLon = num({ name: 'home.lon', placeholder: 'e.g. 13.4050' });
  const zoneType = h('select', { name: 'safeZone.type' },
    h('option', { value: '' }, 'none'), h('option', { value: 'circle' }, 'circle'), h('option', { value: 'polygon' }, 'polygon'));
  const cLat = num({ name: 'safeZone.center.lat' });
  const cLon = num({ name: 'safeZone.center.lon' });
  const radius = h('input', { type: 'number', name: 'safeZone.radiusM', min: 10, max: 100000, step: 1, inputmode: 'numeric', placeholder: '10–100000' });
  const fromHome = h('button', { type: 'button' }, 'centre on home');
  const points = h('ol', { class: 'points' });
  const addPoint = h('button', { type: 'button', 'data-add-point': '' }, 'add point');
  const noMove = h('input', { type: 'number', name: 'noMovementSeconds', min: 60, max: 604800, step: 1, inputmode: 'numeric', placeholder: 'rule default' });
  const checkIn = h('input', { type: 'time', name: 'checkInBy' });
  const contacts = h('div', { class: 'contacts-edit' });
  const addContact = h('button', { type: 'button', 'data-add-contact': '' }, 'add contact');
  const save = h('button', { type: 'submit', class: 'primary' }, isNew ? 'Register resident' : 'Save changes');

  const f = (label: string, control: HTMLElement, key: string, hint?: string) =>
    h('label', { class: 'field' }, h('span', null, label), control, hint ? h('small', { class: 'muted' }, hint) : null, errors.slot(key));

  const circleBox = h('div', { class: 'form', 'data-zone': 'circle' },
    f('centre latitude', cLat, 'safeZone.center.lat'), f('centre longitude', cLon, 'safeZone.center.lon'),
    f('radius (m)', radius, 'safeZone.radiusM'), editable ? fromHome : null);
  const polygonBox = h('div', { 'data-zone': 'polygon' }, points, editable ? addPoint : null, errors.slot('safeZone.points'));
  const showZone = () => {
    circleBox.hidden = zoneType.value !== 'circle';
    polygonBox.hidden = zoneType.value !== 'polygon';
  };

  form.append(
    h('section', { class: 'panel' }, h('h2', null, 'Person'),
      h('div', { class: 'form' }, f('name', name, 'name'), f('address', address, 'address'), f('unit', unit, 'unitId')),
      f('notes', notes, 'notes', 'what a responder should know: health, keys, pets, access')),
    h('section', { class: 'panel' }, h('h2', null, 'Contacts'),
      h('p', { class: 'muted' }, 'Notifications go to a channel an admin configured (its name, e.g. "family-app"), never to a URL.'),
      contacts, editable ? addContact : null, errors.slot('contacts')),
    h('section', { class: 'panel' }, h('h2', null, 'Home and safe zone'),
      h('div', { class: 'form' }, f('home latitude', homeLat, 'home.lat'), f('home longitude', homeLon, 'home.lon'), errors.slot('home')),
      h('div', { class: 'form' }, f('safe zone', zoneType, 'safeZone')),
      circleBox, polygonBox),
    h('section', { class: 'panel' }, h('h2', null, 'Care settings'),
      h('div', { class: 'form' },
        f('no movement alarm after (s)', noMove, 'noMovementSeconds', '60 to 604800; empty: the rule default'),
        f('check in by (local time)', checkIn, 'checkInBy', 'empty: no daily check-in'))),
    general,
    editable ? h('div', { class: 'actions' }, save) : h('p', { class: 'muted', 'data-read-only': '' }, `Read only: a ${ctx.api.user?.role} cannot change residents.`),
  );

  // ---- dynamic rows: contacts and polygon points ---------------------------------------------------------------
  /** each row's redraw (its index moves when a row above goes) and its values as typed */
  const rowOf = new WeakMap<Element, { redraw(): void; value(): Record<string, string | undefined> }>();
  const contactRow = (c: Partial<Contact> = {}) => {
    const row = h('fieldset', { class: 'contact-row', 'data-contact': '' });
    const draw = () => {
      const i = [...contacts.children].indexOf(row);
      const input = (k: keyof Contact, label: string, attrs: Record<string, string | number> = {}) => {
        const el = h('input', { name: `contacts.${k}`, 'data-key': k, autocomplete: 'off', ...attrs });
        el.value = c[k] ?? '';
        el.addEventListener('input', () => { c[k] = el.value; });
        return f(label, el, `contacts.${i}.${k}`);
      };
      const remove = h('button', { type: 'button', class: 'danger', 'data-remove-contact': '' }, 'remove');
      remove.addEventListener('click', () => { row.remove(); redrawRows(contacts); });
      row.replaceChildren(h('legend', null, `contact ${i + 1}`),
        input('name', 'name', { maxlength: 100 }), input('relation', 'relation', { maxlength: 50 }),
        input('phone', 'phone', { type: 'tel', maxlength: 30 }),
        input('webhook', 'notification channel', { maxlength: 500, placeholder: 'channel name' }),
        input('recipient', 'id at the channel', { maxlength: 100 }),
        ...(editable ? [remove] : []));
    };
    rowOf.set(row, { redraw: draw, value: () => c });
    return row;
  };
  const pointRow = (p: Partial<Record<'lat' | 'lon', string>> = {}) => {
    const row = h('li', { 'data-point': '' });
    const draw = () => {
      const i = [...points.children].indexOf(row);
      const input = (k: 'lat' | 'lon') => {
        const el = num({ name: `point.${k}`, 'data-key': k, 'aria-label': `point ${i + 1} ${k === 'lat' ? 'latitude' : 'longitude'}` });
        el.value = p[k] ?? '';
        el.addEventListener('input', () => { p[k] = el.value; });
        return f(k === 'lat' ? 'latitude' : 'longitude', el, `safeZone.points.${i}.${k}`);
      };
      const remove = h('button', { type: 'button', class: 'danger' }, 'remove');
      remove.addEventListener('click', () => { row.remove(); redrawRows(points); });
      row.replaceChildren(h('div', { class: 'form' }, input('lat'), input('lon'), editable ? remove : null));
    };
    rowOf.set(row, { redraw: draw, value: () => p });
    return row;
  };
  const redrawRows = (list: HTMLElement) => {
    for (const el of list.children) rowOf.get(el)?.redraw();
    disableIfReadOnly();
  };
  addContact.addEventListener('click', () => {
    contacts.append(contactRow());
    redrawRows(contacts);
    contacts.querySelector<HTMLInputElement>('[data-contact]:last-child input')?.focus();
  });
  addPoint.addEventListener('click', () => { points.append(pointRow()); redrawRows(points); });
  zoneType.addEventListener('change', () => {
    showZone();
    if (zoneType.value === 'polygon' && points.children.length === 0) {
      for (let i = 0; i < 3; i++) points.append(pointRow());
      redrawRows(points);
    }
  });
  fromHome.addEventListener('click', () => { cLat.value = homeLat.value; cLon.value = homeLon.value; });
  const disableIfReadOnly = () => {
    if (editable) return;
    for (const el of form.querySelectorAll<HTMLInputElement>('input, select, textarea')) el.disabled = true;
  };

  // ---- load --------------------------------------------------------------------------------------------------------
  let loaded: ResidentFull | null = null;
  const fill = (r: ResidentFull | null) => {
    name.value = r?.name ?? '';
    address.value = r?.address ?? '';
    notes.value = r?.notes ?? '';
    homeLat.value = r?.home ? String(r.home.lat) : '';
    homeLon.value = r?.home ? String(r.home.lon) : '';
    const z = r?.safeZone ?? null;
    zoneType.value = z?.type ?? '';
    cLat.value = z?.type === 'circle' ? String(z.center.lat) : '';
    cLon.value = z?.type === 'circle' ? String(z.center.lon) : '';
    radius.value = z?.type === 'circle' ? String(z.radiusM) : '';
    points.replaceChildren(...(z?.type === 'polygon' ? z.points.map((p) => pointRow({ lat: String(p.lat), lon: String(p.lon) })) : []));
    contacts.replaceChildren(...(r?.contacts ?? []).map((c) => contactRow({ ...c })));
    noMove.value = r?.noMovementSeconds != null ? String(r.noMovementSeconds) : '';
    checkIn.value = r?.checkInBy ?? '';
    if (r) unit.value = r.unitId ?? ''; // a new one keeps the default: the user's own unit
    redrawRows(contacts);
    redrawRows(points);
    showZone();
    if (r) {
      title.textContent = r.name;
      meta.textContent = `· ${ctx.unitName(r.unitId)} · changed ${fmtDateTime(r.updatedAt)}`;
    }
  };
  const fillUnits = (units: Unit[]) => {
    const keep = unit.value || loaded?.unitId || ctx.api.user?.unitId || '';
    unit.replaceChildren(h('option', { value: '' }, '(no unit)'),
      ...[...units].sort((a, b) => a.name.localeCompare(b.name)).map((u) => h('option', { value: u.id }, `${u.name} (${u.tier})`)));
    // a resident in a unit this user cannot list still shows where she is
    if (keep && !units.some((u) => u.id === keep)) unit.append(h('option', { value: keep }, ctx.unitName(keep)));
    unit.value = keep;
  };
  const loadDevices = async () => {
    try {
      const r = await ctx.api.get<{ items: Device[] }>(`/api/devices?residentId=${encodeURIComponent(id)}`);
      devicesBox.replaceChildren(h('h2', null, 'Devices'), r.items.length
        ? h('ul', null, ...r.items.map((d) => h('li', { 'data-device': d.id },
          h('a', { href: `#/device/${encodeURIComponent(d.id)}` }, `${d.kind} ${d.serial}`),
          h('span', { class: 'muted' }, ` · ${d.state} · ${d.live.online ? 'online' : 'offline'}`))))
        : h('p', { class: 'muted' }, 'No device is bound to her: bind one from its device page.'));
    } catch (err) {
      devicesBox.append(h('p', { class: 'error' }, `devices could not be loaded: ${(err as Error).message}`));
    }
  };
  void (async () => {
    try {
      const [units, r] = await Promise.all([
        ctx.api.get<{ items: Unit[] }>('/api/units').then((x) => x.items),
        isNew ? null : ctx.api.get<ResidentFull>(`/api/residents/${encodeURIComponent(id)}`),
      ]);
      ctx.units.set('all', units);
      loaded = r;
      fillUnits(units);
      fill(r);
      if (isNew) name.focus();
      else void loadDevices();
    } catch (err) {
      root.replaceChildren(h('p', { class: 'notice error', role: 'alert' },
        `This resident cannot be shown: ${(err as Error).message}.`), h('p', null, h('a', { href: '#/residents' }, 'Back to the residents')));
    }
  })();
  fill(null);

  // ---- check and send ------------------------------------------------------------------------------------------
  /** The body from the form, or null after showing every problem beside its field. */
  const collect = (): Record<string, unknown> | null => {
    errors.clear();
    let ok = true;
    const bad = (key: string, msg: string) => { errors.set(key, msg); ok = false; };
    const coordinate = (el: HTMLInputElement, key: string, what: 'lat' | 'lon'): number | null => {
      const t = el.value.trim();
      const limit = what === 'lat' ? 90 : 180;
      const n = Number(t);
      if (t === '' || !Number.isFinite(n)) { bad(key, `${what === 'lat' ? 'latitude' : 'longitude'}: give a number in degrees, e.g. ${what === 'lat' ? '52.52' : '13.405'}`); return null; }
      if (Math.abs(n) > limit) { bad(key, `${what === 'lat' ? 'latitude' : 'longitude'} must be between -${limit} and ${limit}`); return null; }
      return n;
    };
    const position = (lat: HTMLInputElement, lon: HTMLInputElement, key: string, optional: boolean): LatLon | null => {
      if (optional && lat.value.trim() === '' && lon.value.trim() === '') return null;
      const a = coordinate(lat, `${key}.lat`, 'lat');
      const b = coordinate(lon, `${key}.lon`, 'lon');
      return a !== null && b !== null ? { lat: a, lon: b } : null;
    };

    const body: Record<string, unknown> = {};
    body.name = name.value.trim();
    if (!body.name) bad('name', 'give the resident\'s name');
    body.address = address.value.trim() || null;
    body.unitId = unit.value || null;
    body.notes = notes.value.trim() || null;
    body.home = position(homeLat, homeLon, 'home', true);

    if (zoneType.value === 'circle') {
      const center = position(cLat, cLon, 'safeZone.center', false);
      const r = Number(radius.value);
      if (radius.value.trim() === '' || !Number.isFinite(r) || r < 10 || r > 100000) bad('safeZone.radiusM', 'radius: a number of metres from 10 to 100000');
      body.safeZone = center ? { type: 'circle', center, radiusM: r } : null;
    } else if (zoneType.value === 'polygon') {
      const rows = [...points.children];
      if (rows.length < 3) bad('safeZone.points', 'a polygon needs at least 3 points');
      if (rows.length > 200) bad('safeZone.points', 'a polygon has at most 200 points');
      const pts = rows.map((row, i) => position(
        row.querySelector<HTMLInputElement>('input[data-key=lat]')!, row.querySelector<HTMLInputElement>('input[data-key=lon]')!, `safeZone.points.${i}`, false));
      body.safeZone = { type: 'polygon', points: pts };
    } else {
      body.safeZone = null;
    }

    const nm = noMove.value.trim();
    if (nm === '') body.noMovementSeconds = null;
    else {
      const n = Number(nm);
      if (!Number.isInteger(n) || n < 60 || n > 604800) bad('noMovementSeconds', 'whole seconds from 60 (a minute) to 604800 (a week), or empty for the rule default');
      body.noMovementSeconds = n;
    }
    const ci = checkIn.value.trim();
    if (ci && !/^([01]\d|2[0-3]):[0-5]\d$/.test(ci)) bad('checkInBy', 'a time HH:MM, e.g. 10:00');
    body.checkInBy = ci || null;

    body.contacts = [...contacts.children].map((row, i) => {
      const c = (rowOf.get(row)?.value() ?? {}) as Partial<Contact>;
      const out: Contact = { name: (c.name ?? '').trim() };
      if (!out.name) bad(`contacts.${i}.name`, 'give the contact\'s name (or remove the contact)');
      for (const k of ['relation', 'phone', 'webhook', 'recipient'] as const) {
        const v = (c[k] ?? '').trim();
        if (v) out[k] = v;
      }
      if (out.webhook && /^[a-z][a-z0-9+.-]*:\/\//i.test(out.webhook)) bad(`contacts.${i}.webhook`, 'a channel\'s name, not a URL: an admin configures where each channel sends');
      return out;
    });
    return ok ? body : null;
  };

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!editable) return;
    const body = collect();
    if (!body) {
      form.querySelector<HTMLElement>('.field-error:not(:empty)')?.scrollIntoView({ block: 'center' });
      return;
    }
    // a change sends only what changed: the audit log then says which fields a person touched
    const changes = isNew ? body : Object.fromEntries(Object.entries(body).filter(([k, v]) =>
      JSON.stringify(v) !== JSON.stringify((loaded as unknown as Record<string, unknown>)[k] ?? null)));
    if (!isNew && Object.keys(changes).length === 0) {
      ctx.toast('nothing changed', 'info');
      return;
    }
    save.disabled = true;
    try {
      const r = isNew
        ? await ctx.api.post<ResidentFull>('/api/residents', changes)
        : await ctx.api.request<ResidentFull>('PATCH', `/api/residents/${encodeURIComponent(id)}`, changes);
      ctx.residents.set(r.id, r);
      ctx.toast(isNew ? `${r.name} registered` : `${r.name}: saved`, 'ok');
      if (isNew) location.hash = `#/resident/${encodeURIComponent(r.id)}`;
      else { loaded = r; fill(r); }
    } catch (err) {
      if (err instanceof ApiError && err.status === 400) {
        errors.set(fieldOf(err), err.message).scrollIntoView({ block: 'center' });
      } else {
        general.textContent = `${isNew ? 'Registering' : 'Saving'} failed: ${(err as Error).message}`;
      }
    } finally {
      save.disabled = false;
    }
  });
  return () => undefined;
}
