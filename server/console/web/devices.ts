// Technician pages: provision a device (its secret shown once), bind it to a resident, rotate its secret, suspend
// or resume it, and the commissioning test — send `test-alarm`, and watch the device's test alarm come back through
// the whole path (device → broker → rules → incident → this console) with its latency.
import type { Command, Credentials, Device, Incident, Resident } from './api.js';
import type { Ctx } from './context.js';
import { clear, fmtAgo, fmtDateTime, fmtLatency, fmtTime, field, h } from './dom.js';
import { PositionPanel } from './map.js';

/** The lifecycle (docs/design.md §2) as a technician reads it: bound is not commissioned until the test passed. */
export const STATE_LABEL: Record<string, string> = {
  provisioned: 'provisioned (not tested)',
  commissioned: 'commissioned (tested)',
  'in-service': 'in service',
  suspended: 'suspended',
  decommissioned: 'decommissioned',
};

function secretBox(c: Credentials, onDone: () => void): HTMLElement {
  if (c.terminal) return terminalBox(c, c.terminal, onDone);
  const mqtt = c.mqtt!;
  const box = h('section', { class: 'panel secret', role: 'alert' },
    h('h2', null, 'Store the secret in the device now'),
    h('p', null, 'It is shown only this once and is not kept by the gateway (only a keyed hash is). If it is lost, rotate it.'),
    h('dl', null,
      h('dt', null, 'Device id (MQTT client id and username)'), h('dd', { class: 'mono', 'data-device-id': c.id }, c.id),
      h('dt', null, 'Secret (MQTT password)'), h('dd', { class: 'mono big', 'data-secret': c.secret }, c.secret),
      h('dt', null, 'Broker'), h('dd', { class: 'mono' }, `${mqtt.host}:${mqtt.port}${mqtt.tlsPort ? ` (TLS ${mqtt.tlsPort})` : ''}, keepalive ${mqtt.keepaliveS} s`),
      h('dt', null, 'Topics'), h('dd', { class: 'mono' }, Object.values(mqtt.topics).join('  ')),
    ),
  );
  const copy = h('button', { type: 'button' }, 'Copy secret');
  copy.addEventListener('click', () => void navigator.clipboard?.writeText(c.secret).then(() => { copy.textContent = 'Copied'; }, () => undefined));
  const done = h('button', { type: 'button', class: 'primary', 'data-action': 'secret-stored' }, 'I have stored it');
  done.addEventListener('click', () => { box.remove(); onDone(); });
  box.append(h('div', { class: 'actions' }, copy, done));
  return box;
}

/** A terminal that speaks its own protocol: what to set on it (no MQTT secret to store). */
function terminalBox(c: Credentials, t: NonNullable<Credentials['terminal']>, onDone: () => void): HTMLElement {
  const done = h('button', { type: 'button', class: 'primary', 'data-action': 'secret-stored' }, 'Done');
  const box = h('section', { class: 'panel secret', role: 'status', 'data-terminal': t.protocol },
    h('h2', null, 'Set up the terminal'),
    h('dl', null,
      h('dt', null, 'Device id'), h('dd', { class: 'mono', 'data-device-id': c.id }, c.id),
      h('dt', null, 'Terminal identifier'), h('dd', { class: 'mono big' }, t.identifier),
      h('dt', null, `Server (${t.transport})`), h('dd', { class: 'mono' }, t.port === null ? `${t.host} — the ${t.protocol} listener is off` : `${t.host}:${t.port}`),
      h('dt', null, 'On the terminal'), h('dd', { 'data-setup': '' }, t.setup),
      h('dt', null, 'Secret'), h('dd', { class: 'muted' }, t.secret),
    ),
    h('div', { class: 'actions' }, done));
  done.addEventListener('click', () => { box.remove(); onDone(); });
  return box;
}

export function provisionView(ctx: Ctx, root: HTMLElement): () => void {
  const kind = h('select', { name: 'kind', required: true });
  const serial = h('input', { name: 'serial', required: true, minlength: 3, maxlength: 64, pattern: '[A-Za-z0-9][A-Za-z0-9._:\\-]*', placeholder: 'serial or IMEI' });
  const model = h('input', { name: 'model', maxlength: 64 });
  const firmware = h('input', { name: 'firmware', maxlength: 64 });
  const power = h('select', { name: 'power' }, h('option', { value: '' }, 'kind default'), h('option', { value: 'battery' }, 'battery'), h('option', { value: 'mains' }, 'mains'));
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Provision');
  const out = h('div');
  const form = h('form', { class: 'form' },
    field('Kind', kind), field('Serial', serial), field('Model', model), field('Firmware', firmware), field('Power', power), submit);
  root.append(h('h1', null, 'Provision a device'), form, out);
  ctx.api.get<{ kind: string; title: string }[]>('/api/device-kinds').then((kinds) => {
    for (const k of kinds) kind.append(h('option', { value: k.kind }, k.title ?? k.kind));
  }, (err) => ctx.fail(err, 'loading device kinds failed'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    submit.disabled = true;
    try {
      const body: Record<string, string> = { kind: kind.value, serial: serial.value.trim() };
      if (model.value.trim()) body.model = model.value.trim();
      if (firmware.value.trim()) body.firmware = firmware.value.trim();
      if (power.value) body.power = power.value;
      const c = await ctx.api.post<Credentials>('/api/devices', body);
      form.reset();
      clear(out);
      out.append(secretBox(c, () => { location.hash = `#/device/${encodeURIComponent(c.id)}`; }));
    } catch (err) {
      ctx.fail(err, 'provisioning failed');
    } finally {
      submit.disabled = false;
    }
  });
  return () => clear(out); // the secret leaves the page with the view
}

interface TestRun {
  command: Command & { queued?: boolean; reason?: string };
  sentLocal: number;
  acked?: number;
  incident?: Incident;
  /** the test incident's stamps as the API has them: `pushed` is a receipt, never on the stream */
  serverStamps?: Record<string, number>;
  arrivedLocal?: number;
}

export function deviceView(ctx: Ctx, root: HTMLElement, id: string): () => void {
  const info = h('div', null, h('p', null, 'loading…'));
  const manage = h('div');
  let managed = '';
  const secretOut = h('div');
  const test = h('section', { class: 'panel commissioning' }, h('h2', null, 'Commissioning test'));
  const cmds = h('section', { class: 'panel' }, h('h2', null, 'Recent commands'));
  // where the device is: its last fix, the bound resident's home and safe zone, the path of the last hour
  const position = new PositionPanel(ctx);
  position.el.hidden = true;
  root.append(h('p', null, h('a', { href: '#/fleet' }, '← fleet')), info, position.el, manage, secretOut, test, cmds);
  const writer = ctx.can('admin', 'technician');
  let alive = true;
  let run: TestRun | null = null;
  const testStatus = h('ol', { class: 'steps' });
  const testResult = h('p', { class: 'result', 'data-test-result': '' });

  const load = async () => {
    try {
      const d = await ctx.api.get<Device>(`/api/devices/${encodeURIComponent(id)}`);
      if (!alive) return;
      ctx.devices.set(d.id, d);
      drawInfo(d);
      const c = await ctx.api.get<{ items: Command[] }>(`/api/devices/${encodeURIComponent(id)}/commands`);
      if (!alive) return;
      drawCommands(c.items);
      if (run && !run.acked) {
        const mine = c.items.find((x) => x.id === run!.command.id);
        if (mine?.ackedAt) { run.acked = mine.ackedAt; drawTest(); }
      }
      const inc = run?.incident;
      if (inc && run?.serverStamps?.pushed === undefined) {
        const full = await ctx.api.get<Incident>(`/api/incidents/${encodeURIComponent(inc.id)}`).catch(() => null);
        if (alive && full && run?.incident?.id === full.id) { run.serverStamps = full.stamps; drawTest(); }
      }
    } catch (err) {
      if (!alive) return;
      clear(info);
      info.append(h('p', { class: 'error' }, `cannot show device ${id}: ${(err as Error).message}`));
    }
  };

  const drawInfo = (d: Device) => {
    clear(info);
    const l = d.live;
    const resident = d.residentId ? ctx.residents.get(d.residentId) : undefined;
    info.append(
      h('div', { class: 'toolbar' }, h('h1', null, `${d.kind} ${d.serial}`), h('span', { class: `status ${d.state}`, 'data-state': d.state }, STATE_LABEL[d.state] ?? d.state)),
      h('section', { class: 'panel' }, h('dl', null,
        h('dt', null, 'Id'), h('dd', { class: 'mono' }, d.id),
        h('dt', null, 'Model / firmware'), h('dd', null, `${d.model ?? '—'} / ${d.firmware ?? '—'}`),
        h('dt', null, 'Resident'), h('dd', { 'data-resident': d.residentId ?? '' }, resident?.name ?? d.residentId ?? 'not bound'),
        h('dt', null, 'Unit'), h('dd', null, d.unitId ? ctx.unitName(d.unitId) : '—'),
        h('dt', null, 'Connection'), h('dd', { class: `sup ${l.supervision}` }, `${l.online ? 'online' : 'offline'} · ${l.supervision}`),
        h('dt', null, 'Last seen'), h('dd', null, `${fmtDateTime(l.lastSeen)} (${fmtAgo(l.lastSeen)})`),
        h('dt', null, 'Battery / signal'), h('dd', { 'data-battery': l.battery ?? '' }, `${l.battery !== null ? `${l.battery}%` : '—'} / ${l.signal ?? '—'}`),
        h('dt', null, 'Secret rotated'), h('dd', null, fmtDateTime(d.secretRotatedAt)),
        l.flags.length ? h('dt', null, 'Flags') : null, l.flags.length ? h('dd', { 'data-flags': '' }, l.flags.join(', ')) : null,
        l.unreadableCount ? h('dt', null, 'Unreadable messages') : null,
        l.unreadableCount ? h('dd', { 'data-unreadable': String(l.unreadableCount) }, `${l.unreadableCount} refused; last: ${l.lastUnreadableReason ?? '—'}`) : null,
      )),
    );
    // shown once there is something to place: a fix, or the home of the resident it is bound to
    const home = resident?.home ?? null;
    position.el.hidden = !l.position && !home;
    if (!position.el.hidden) {
      position.show({ home, zone: resident?.safeZone ?? null, points: l.position ? [{ role: 'device', pos: l.position }] : [] }, d.id, String(l.position?.at ?? ''));
    }
    // the manage panel is redrawn only when what it shows changed (not on every refresh: a half-picked resident stays)
    const key = `${d.state}|${d.residentId}`;
    if (!writer || key === managed) return;
    managed = key;
    clear(manage);
    const residentSel = h('select', { name: 'residentId', 'aria-label': 'resident' }, h('option', { value: '' }, 'loading residents…'));
    ctx.api.get<{ items: Resident[] }>('/api/residents?limit=1000').then((r) => {
      residentSel.replaceChildren(h('option', { value: '' }, '— not bound —'), ...r.items.map((x) => h('option', { value: x.id }, `${x.name}${x.address ? ' — ' + x.address : ''}`)));
      residentSel.value = d.residentId ?? '';
    }, (err) => ctx.fail(err, 'loading residents failed'));
    const bind = h('button', { type: 'button', 'data-action': 'bind' }, 'Bind');
    bind.addEventListener('click', () => act(bind, 'bind', { residentId: residentSel.value || null }, 'bound'));
    const rotate = h('button', { type: 'button', 'data-action': 'rotate' }, 'Rotate secret');
    rotate.addEventListener('click', async () => {
      if (!confirm('Rotate the secret? The device is disconnected at once and needs the new secret.')) return;
      rotate.disabled = true;
      try {
        const c = await ctx.api.post<Credentials>(`/api/devices/${encodeURIComponent(id)}/rotate-secret`);
        clear(secretOut);
        secretOut.append(secretBox(c, () => clear(secretOut)));
      } catch (err) { ctx.fail(err, 'rotate failed'); } finally { rotate.disabled = false; }
    });
    const state = d.state === 'suspended'
      ? h('button', { type: 'button', 'data-action': 'resume' }, 'Resume')
      : h('button', { type: 'button', 'data-action': 'suspend', class: 'danger' }, 'Suspend');
    state.addEventListener('click', () => {
      const a = d.state === 'suspended' ? 'resume' : 'suspend';
      if (a === 'suspend' && !confirm('Suspend this device? It is disconnected and its alarms are refused until resumed.')) return;
      void act(state, a, undefined, a === 'suspend' ? 'suspended' : 'resumed');
    });
    manage.append(h('section', { class: 'panel' }, h('h2', null, 'Manage'),
      h('div', { class: 'actions' }, h('span', { class: 'group' }, residentSel, bind), rotate, state)));
  };

  const act = async (btn: HTMLButtonElement, action: string, body: unknown, done: string) => {
    btn.disabled = true;
    try {
      const d = await ctx.api.post<Device>(`/api/devices/${encodeURIComponent(id)}/${action}`, body);
      ctx.devices.set(d.id, d);
      ctx.toast(`device ${done}`, 'ok');
      drawInfo(d);
    } catch (err) {
      ctx.fail(err, `${action} failed`);
    } finally {
      btn.disabled = false;
    }
  };

  const drawCommands = (items: Command[]) => {
    clear(cmds);
    cmds.append(h('h2', null, 'Recent commands'));
    if (!items.length) return void cmds.append(h('p', { class: 'muted' }, 'none'));
    cmds.append(h('table', null, h('tbody', null, ...items.slice(0, 10).map((c) => h('tr', { 'data-command': c.id },
      h('td', null, c.type), h('td', null, c.status), h('td', null, fmtTime(c.createdAt)),
      h('td', null, c.ackedAt ? `acked after ${fmtLatency(c.ackedAt - c.createdAt)}` : c.error ?? ''))))));
  };

  const drawTest = () => {
    clear(testStatus);
    if (!run) return;
    const inc = run.incident;
    const st = { ...(run.serverStamps ?? {}), ...(inc?.stamps ?? {}) };
    const step = (done: boolean, text: string) => h('li', { class: done ? 'done' : 'waiting' }, text);
    testStatus.append(
      step(true, `test-alarm command stored at ${fmtTime(run.command.createdAt)}`),
      ...(run.command.queued && !run.acked ? [h('li', { class: 'waiting', 'data-queued': '' }, run.command.reason ?? 'device offline; sent when it reconnects')] : []),
      step(!!run.acked, run.acked ? `device confirmed the command after ${fmtLatency(run.acked - run.command.createdAt)}` : 'waiting for the device to confirm the command…'),
      step(!!inc, inc ? `test alarm received by the gateway at ${fmtTime(st.received ?? inc.openedAt)}${st.deviceTs ? ` (device clock ${fmtTime(st.deviceTs)})` : ''}` : 'waiting for the device\'s test alarm…'),
      step(!!st.durable, st.durable ? `incident durable after ${fmtLatency(st.durable - (st.received ?? inc!.openedAt))}` : 'durable…'),
      step(!!st.pushed, st.pushed ? `pushed to consoles after ${fmtLatency(st.pushed - (st.received ?? inc!.openedAt))}` : 'pushed to consoles…'),
      step(!!run.arrivedLocal, run.arrivedLocal ? `arrived in this console at ${fmtTime(run.arrivedLocal)}` : 'arriving in this console…'),
    );
    if (inc && st.pushed) {
      const total = st.pushed - run.command.createdAt;
      const path = st.pushed - (st.received ?? inc.openedAt);
      testResult.className = 'result ok';
      testResult.dataset.testResult = 'passed';
      testResult.dataset.latencyMs = String(path);
      testResult.textContent = `✔ Test alarm arrived end to end: device → console in ${fmtLatency(path)} (command → test alarm on the console ${fmtLatency(total)}). Incident ${inc.id}.`;
    } else {
      testResult.className = 'result';
      testResult.textContent = '';
    }
  };

  const start = h('button', { type: 'button', class: 'primary', 'data-action': 'commission' }, 'Send test alarm command');
  start.addEventListener('click', async () => {
    start.disabled = true;
    try {
      const command = await ctx.api.post<TestRun['command']>(`/api/devices/${encodeURIComponent(id)}/commands`, { type: 'test-alarm', ttlS: 600 });
      run = { command, sentLocal: Date.now() };
      // said, not silently queued: an offline device gets it when it reconnects, or never if it expires first
      if (command.queued) ctx.toast(`test-alarm queued: ${command.reason ?? 'device offline'}`, 'info', { ms: 10_000 });
      drawTest();
      void load();
    } catch (err) {
      ctx.fail(err, 'sending the test command failed');
    } finally {
      start.disabled = false;
    }
  });
  test.append(
    h('p', null, 'Sends the test-alarm command; the device answers with a test alarm, recorded as a P3 test incident (never an emergency). A test alarm from the device\'s own test button is shown here too. Once it is recorded, the test incident closes itself as "test passed", and a device bound to a resident becomes commissioned.'),
    ...(ctx.can('admin', 'technician', 'operator') ? [start] : []), testStatus, testResult);

  // the test incident comes through the same stream as every alarm
  const off = ctx.store.on((inc, e) => {
    if (inc.deviceId !== id || !inc.test) return;
    if (!run) run = { command: { id: '', type: 'test-alarm', status: 'device', createdAt: inc.openedAt, sentAt: null, ackedAt: null, error: null }, sentLocal: Date.now() };
    if (inc.openedAt < run.command.createdAt - 5000) return; // an older test
    run.incident = inc;
    if (e?.type === 'opened' || !run.arrivedLocal) run.arrivedLocal ??= Date.now();
    drawTest();
  });
  const timer = setInterval(() => void load(), 2000);
  void load();
  return () => { alive = false; off(); clearInterval(timer); clear(secretOut); position.destroy(); };
}
