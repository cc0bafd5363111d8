// The console: login, then the live board and the other pages under one header. Hash routes (#/board,
// #/incident/<id>, #/fleet, #/devices/new, #/device/<id>, #/network) keep the server to one page.
import { Ctx, type Settings } from './context.js';
import { clear, h } from './dom.js';
import { AlarmStreamClient, type StreamStatus } from './stream.js';
import { beepP1, soundLog, soundReady, unlockSound } from './sound.js';
import { boardView } from './board.js';
import { incidentView } from './incident.js';
import { fleetView } from './fleet.js';
import { deviceView, provisionView } from './devices.js';
import { networkView } from './network.js';

const ctx = new Ctx();
const app = document.getElementById('app')!;
let cleanup: (() => void) | null = null;

/** the last seqs folded into the board, in the order they were folded (bounded) */
const applied: number[] = [];

// exposed for the browser tests and for a curious operator: read-only facts, no secrets
(window as unknown as { eldergate: unknown }).eldergate = {
  get lastSeq() { return ctx.stream?.lastSeq ?? null; },
  get status() { return ctx.stream?.status ?? 'offline'; },
  applied,
  sounds: soundLog,
};

function loginView(): void {
  cleanup?.();
  cleanup = null;
  clear(app);
  const username = h('input', { name: 'username', autocomplete: 'username', required: true, autofocus: true });
  const password = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const error = h('p', { class: 'error', role: 'alert' });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Log in');
  const form = h('form', { class: 'login' },
    h('h1', null, 'eldergate'), h('p', { class: 'muted' }, 'Emergency response console'),
    h('label', { class: 'field' }, h('span', null, 'Username'), username),
    h('label', { class: 'field' }, h('span', null, 'Password'), password),
    submit, error);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    submit.disabled = true;
    error.textContent = '';
    unlockSound(); // the click is the gesture that lets the P1 sound play later
    try {
      await ctx.api.login(username.value.trim(), password.value);
      if (!location.hash || location.hash === '#/login') location.hash = '#/board';
      startSession();
    } catch (err) {
      error.textContent = (err as Error).message;
      password.value = '';
      password.focus();
    } finally {
      submit.disabled = false;
    }
  });
  app.append(form);
  username.focus();
}

function logout(): void {
  ctx.stream?.stop();
  ctx.stream = null;
  ctx.api.logout();
  ctx.store.reset();
  loginView();
}

const shell = {
  status: h('span', { class: 'conn offline', 'data-conn': 'offline', title: 'alarm stream' }, 'offline'),
  nav: h('nav'),
  main: h('main', { id: 'view' }),
  sound: h('button', { type: 'button', class: 'sound' }, 'enable sound'),
};

function drawShell(): void {
  clear(app);
  const user = ctx.api.user!;
  const links: [string, string, boolean][] = [
    ['#/board', 'Board', true],
    ['#/fleet', 'Fleet', true],
    ['#/devices/new', 'Provision', ctx.can('admin', 'technician')],
    ['#/network', 'Network', true],
  ];
  shell.nav.replaceChildren(...links.filter(([, , ok]) => ok).map(([href, label]) => h('a', { href }, label)));
  const out = h('button', { type: 'button', class: 'link' }, 'log out');
  out.addEventListener('click', logout);
  shell.sound.addEventListener('click', () => { unlockSound(); setTimeout(drawSound, 100); });
  const toasts = h('div', { class: 'toasts', 'aria-live': 'assertive' });
  ctx.mountToasts(toasts);
  app.append(
    h('header', { class: 'top' },
      h('a', { class: 'brand', href: '#/board' }, 'eldergate'),
      shell.nav,
      shell.status,
      shell.sound,
      h('span', { class: 'who' }, `${user.displayName ?? user.username} · ${user.role}${user.unitId ? ' · ' + user.unitId : ''}`),
      out),
    shell.main,
    toasts,
  );
  drawSound();
}

function drawSound(): void {
  shell.sound.hidden = soundReady();
}

function setStatus(s: StreamStatus, detail?: string): void {
  const label = s === 'live' ? 'live' : s === 'replaying' ? 'catching up…' : s === 'connecting' ? 'connecting…' : `offline${detail ? ': ' + detail : ''} — reconnecting`;
  shell.status.textContent = label;
  shell.status.className = `conn ${s}`;
  shell.status.dataset.conn = s;
}

function route(): void {
  if (!ctx.api.token) return loginView();
  cleanup?.();
  cleanup = null;
  clear(shell.main);
  const hash = location.hash.replace(/^#\/?/, '').split('?')[0]!;
  const [page, arg] = hash.split('/').map(decodeURIComponent);
  for (const a of shell.nav.querySelectorAll('a')) a.classList.toggle('active', a.getAttribute('href') === `#/${page}` || (page === 'devices' && a.getAttribute('href') === '#/devices/new'));
  switch (page) {
    case 'incident': cleanup = incidentView(ctx, shell.main, arg ?? ''); break;
    case 'fleet': cleanup = fleetView(ctx, shell.main); break;
    case 'devices': cleanup = provisionView(ctx, shell.main); break;
    case 'device': cleanup = deviceView(ctx, shell.main, arg ?? ''); break;
    case 'network': cleanup = networkView(ctx, shell.main); break;
    default: cleanup = boardView(ctx, shell.main);
  }
}

function startSession(): void {
  drawShell();
  ctx.api.get<Settings>('/api/console/settings').then((s) => { ctx.settings = s; }, () => undefined);
  ctx.staff.get('all');
  ctx.units.get('all');
  const stream = new AlarmStreamClient({
    token: () => ctx.api.token,
    initialLoad: () => ctx.store.load(),
    onEvent: (e, replay) => {
      applied.push(e.seq);
      if (applied.length > 10_000) applied.splice(0, 1000);
      ctx.store.apply(e, replay);
    },
    onStatus: setStatus,
    onUnauthorized: () => { ctx.toast('your session ended: log in again', 'error'); logout(); },
    onReset: () => ctx.store.reset(),
    checkToken: () => ctx.api.get('/api/auth/me').then(() => true, (err: { status?: number }) => err.status !== 401),
  });
  ctx.stream = stream;
  stream.start();
  route();
}

// a new P1 (not a test) sounds once, also when it arrived while we were reconnecting
const sounded = new Set<string>();
ctx.store.on((inc, e) => {
  if (!e || e.type !== 'opened' || inc.priority !== 'P1' || inc.test || sounded.has(inc.id)) return;
  sounded.add(inc.id);
  soundLog.push({ at: Date.now(), incidentId: inc.id });
  beepP1();
  if (!soundReady()) ctx.toast('New P1 alarm — click "enable sound" to hear the next one', 'error');
});
// staff names on cards: dispatches change who is where
ctx.store.on((_inc, e) => { if (e?.type === 'dispatched') ctx.staff.get('all'); });

ctx.api.onUnauthorized = () => { if (ctx.api.token) logout(); };
window.addEventListener('hashchange', () => { if (ctx.api.token) route(); });
if (ctx.api.token) startSession();
else loginView();
