// The console: login, then the live board and the other pages under one header. Hash routes (#/board,
// #/incident/<id>, #/fleet, #/devices/new, #/device/<id>, #/network) keep the server to one page.
import type { Incident } from './api.js';
import { Ctx, type Settings } from './context.js';
import { clear, h } from './dom.js';
import { AlarmStreamClient, type StreamStatus } from './stream.js';
import { beepP1, soundLog, soundReady, unlockSound } from './sound.js';
import { boardView, typeLabel } from './board.js';
import { fmtClock, fmtTime } from './dom.js';
import { incidentView } from './incident.js';
import { fleetView } from './fleet.js';
import { deviceView, provisionView } from './devices.js';
import { networkView } from './network.js';
import { residentView, residentsView } from './admin-residents.js';
import { importView } from './admin-import.js';
import { kpisView } from './kpis.js';
import { adminUsersView } from './admin-users.js';
import { notAllowedView, notFoundView } from './notfound.js';

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
  /** what the board knows of one incident (status and the last seq folded into it), or null */
  incident(id: string) {
    const i = ctx.store.incidents.get(id);
    return i ? { status: i.status, lastSeq: i.lastSeq, count: i.count } : null;
  },
};

/** why the last session ended, shown on the login page (a wall board must never log out without a word) */
let logoutReason: string | null = sessionStorage.getItem('eldergate.logoutReason');

function loginView(): void {
  cleanup?.();
  cleanup = null;
  clear(app);
  const why = logoutReason
    ? h('p', { class: 'notice error', role: 'alert', 'data-logout-reason': '' }, `You were logged out: ${logoutReason}. Log in again to see the alarms.`)
    : null;
  const username = h('input', { name: 'username', autocomplete: 'username', required: true, autofocus: true });
  const password = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const error = h('p', { class: 'error', role: 'alert' });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Log in');
  const form = h('form', { class: 'login' },
    h('h1', null, 'eldergate'), h('p', { class: 'muted' }, 'Emergency response console'), why,
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
      logoutReason = null;
      sessionStorage.removeItem('eldergate.logoutReason');
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

/** End the session; `reason` (when the person did not ask for it) is shown on the login page. */
function logout(reason?: string): void {
  logoutReason = reason ?? null;
  if (reason) sessionStorage.setItem('eldergate.logoutReason', reason);
  else sessionStorage.removeItem('eldergate.logoutReason');
  session.stop();
  ctx.stream?.stop();
  ctx.stream = null;
  ctx.api.logout(!reason);
  ctx.store.reset();
  loginView();
}

const shell = {
  status: h('span', { class: 'conn offline', 'data-conn': 'offline', title: 'alarm stream' }, 'offline'),
  nav: h('nav'),
  main: h('main', { id: 'view' }),
  sound: h('button', { type: 'button', class: 'sound' }, 'enable sound'),
  warning: h('div', { class: 'session-warning', role: 'alert', hidden: true }),
};

// ---- the session: renewed while the console is open, a warning before it could end, a reason when it ends -----

const RENEW_AT = 0.5; // renew when half of the token's life is gone
const WARN_MS = 5 * 60_000; // warn this long before expiry (or at a quarter of a short life)

const session = {
  timer: undefined as number | undefined,
  inflight: false,
  failures: 0,
  nextTry: 0,
  lastError: '',
  start(): void {
    this.stop();
    this.timer = window.setInterval(() => void this.check(), 1000);
    void this.check();
  },
  stop(): void {
    window.clearInterval(this.timer);
    this.timer = undefined;
    this.failures = 0;
    this.nextTry = 0;
    shell.warning.hidden = true;
  },
  async check(): Promise<void> {
    const s = ctx.api.session;
    if (!s || !ctx.api.token) return;
    const now = Date.now();
    const left = s.expiresAt - now;
    if (left <= 0) return logout(`your session expired at ${fmtTime(s.expiresAt)}${this.lastError ? ` and could not be renewed (${this.lastError})` : ''}`);
    const warnAt = Math.min(WARN_MS, s.ttlMs / 4);
    if (left < warnAt) {
      shell.warning.hidden = false;
      shell.warning.dataset.sessionWarning = String(Math.ceil(left / 1000));
      shell.warning.textContent = `Your session ends in ${fmtClock(left)} and could not be renewed${this.lastError ? ` (${this.lastError})` : ''}: ` +
        'check the network; if it ends, log in again at once to keep receiving alarms.';
    } else {
      shell.warning.hidden = true;
    }
    if (left > s.ttlMs * (1 - RENEW_AT) || this.inflight || now < this.nextTry) return;
    this.inflight = true;
    try {
      await ctx.api.renew();
      this.failures = 0;
      this.lastError = '';
      shell.warning.hidden = true;
      // the open socket was authorised with the old token, which the server will refuse at expiry: move to a new
      // one now; it resumes after the last seq processed, so nothing is missed
      ctx.stream?.reconnectNow();
    } catch (err) {
      this.lastError = (err as Error).message;
      this.nextTry = Date.now() + Math.min(60_000, 2000 * 2 ** this.failures++);
    } finally {
      this.inflight = false;
    }
  },
};


let offWho: (() => void) | undefined;
function drawShell(): void {
  clear(app);
  const user = ctx.api.user!;
  const links: [string, string, boolean][] = [
    ['#/board', 'Board', true],
    ['#/fleet', 'Fleet', true],
    ['#/devices/new', 'Provision', ctx.can('admin', 'technician')],
    ['#/network', 'Network', true],
    ['#/residents', 'Residents', true],
    ['#/kpis', 'KPIs', ctx.can('admin', 'operator', 'steward')],
    ['#/admin/import', 'Import', ctx.can('admin', 'technician')],
    ['#/admin/users', 'Users', ctx.can('admin')],
  ];
  shell.nav.replaceChildren(...links.filter(([, , ok]) => ok).map(([href, label]) => h('a', { href }, label)));
  // the unit by its name once the units are loaded (the id until then)
  const who = h('span', { class: 'who' });
  const drawWho = () => { who.textContent = `${user.displayName ?? user.username} · ${user.role}${user.unitId ? ' · ' + ctx.unitName(user.unitId) : ''}`; };
  drawWho();
  offWho?.(); // one listener, however often the shell is drawn (a log out and in again)
  offWho = ctx.units.onChange(drawWho);
  const out = h('button', { type: 'button', class: 'link' }, 'log out');
  out.addEventListener('click', () => logout());
  shell.sound.addEventListener('click', () => { unlockSound(); setTimeout(drawSound, 100); });
  const toasts = h('div', { class: 'toasts', 'aria-live': 'assertive' });
  ctx.mountToasts(toasts);
  app.append(
    h('header', { class: 'top' },
      h('a', { class: 'brand', href: '#/board' }, 'eldergate'),
      shell.nav,
      shell.status,
      shell.sound,
      who,
      out),
    shell.warning,
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
  for (const a of shell.nav.querySelectorAll('a')) a.classList.toggle('active', a.getAttribute('href') === `#/${page}` || a.getAttribute('href') === `#/${hash}` || (page === 'devices' && a.getAttribute('href') === '#/devices/new'));
  switch (page) {
    case 'incident': cleanup = incidentView(ctx, shell.main, arg ?? ''); break;
    case 'fleet': cleanup = fleetView(ctx, shell.main); break;
    case 'devices': cleanup = provisionView(ctx, shell.main); break;
    case 'device': cleanup = deviceView(ctx, shell.main, arg ?? ''); break;
    case 'network': cleanup = networkView(ctx, shell.main); break;
    case 'residents': cleanup = residentsView(ctx, shell.main); break;
    case 'resident': cleanup = residentView(ctx, shell.main, arg ?? ''); break;
    case 'kpis': cleanup = kpisView(ctx, shell.main); break;
    case 'admin':
      // the CSV import is for technicians too (server/routes/devices.ts); the view says so to anyone else
      if (arg === 'import') { cleanup = importView(ctx, shell.main); break; }
      // admin pages: a role that may not use one is told so (the server refuses its API calls anyway)
      if (!ctx.can('admin')) { cleanup = notAllowedView(shell.main, 'This page', `${ctx.api.user!.username} (${ctx.api.user!.role})`); break; }
      if (arg === 'users') { cleanup = adminUsersView(ctx, shell.main); break; }
      cleanup = notFoundView(shell.main, location.hash); break;
    case '': case 'board': case 'login': cleanup = boardView(ctx, shell.main); break;
    default: cleanup = notFoundView(shell.main, location.hash);
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
    onUnauthorized: (reason) => logout(`the gateway ended the session: ${reason}`),
    onReset: () => ctx.store.reset(),
    checkToken: () => ctx.api.get('/api/auth/me').then(() => true, (err: { status?: number }) => err.status !== 401),
  });
  ctx.stream = stream;
  stream.start();
  session.start();
  route();
}

// A new P1 (not a test) sounds once, also when it arrived while we were reconnecting. A repeated press on an open
// incident is a new cry for help: the tone again and a toast that links to it. While any P1 waits for its
// acknowledgement, the tone repeats.
const REMIND_MS = 10_000;
const sounded = new Set<string>();
let lastTone = 0;
const tone = (incidentId: string, reason: 'new' | 'repeat' | 'reminder') => {
  lastTone = Date.now();
  soundLog.push({ at: lastTone, incidentId, reason });
  if (soundLog.length > 1000) soundLog.splice(0, 100);
  beepP1();
};
ctx.store.on((inc, e) => {
  if (!e || inc.test) return;
  // a P1 that arrives on this board (opened, or moved here with its resident from another unit: the store announces a
  // move only where the card was not shown before) sounds once
  if ((e.type === 'opened' || (e.type === 'moved' && inc.status === 'open')) && inc.priority === 'P1' && !sounded.has(inc.id)) {
    sounded.add(inc.id);
    if (sounded.size > 10_000) sounded.delete(sounded.values().next().value!);
    tone(inc.id, 'new');
    if (!soundReady()) ctx.toast('New P1 alarm — click "enable sound" to hear the next one', 'error');
    return;
  }
  // nobody on site within the reach budget: whoever sees it is told again, whoever took it may have gone
  if (e.type === 'overdue' && inc.priority !== 'P3' && (inc.status === 'acknowledged' || inc.status === 'dispatched')) {
    if (inc.priority === 'P1') tone(inc.id, 'reminder');
    const known = whoShort(inc);
    ctx.toast(`${typeLabel(inc.type)}${known ? ` — ${known}` : ''}: nobody on site yet (${inc.status})`, 'alarm', {
      href: `#/incident/${encodeURIComponent(inc.id)}`, linkText: 'open the incident', incidentId: inc.id,
    });
    return;
  }
  if (e.type === 'joined' && inc.priority !== 'P3' && (inc.status === 'open' || inc.status === 'acknowledged' || inc.status === 'dispatched' || inc.status === 'on-site')) {
    if (inc.priority === 'P1') tone(inc.id, 'repeat');
    const say = (who: string | undefined) => `${typeLabel(inc.type)} pressed again (×${inc.count})${who ? ` — ${who}` : ''}: ${inc.status}`;
    const rid = inc.residentId;
    const known = whoShort(inc);
    const rewrite = ctx.toast(say(known), 'alarm', {
      href: `#/incident/${encodeURIComponent(inc.id)}`, linkText: 'open the incident', incidentId: inc.id,
    });
    if (rid && !known) {
      // the toast is not held back for a name: it gets the elder's name as soon as her card is loaded (the cache tries
      // a failed load again by itself)
      const off = ctx.residents.onChange((id, r) => { if (id === rid) { off(); rewrite(say(r.name)); } });
      setTimeout(off, 60_000);
    }
  }
});
/** A toast's "who": the elder's name once her record is loaded, an unregistered panel's account, or nothing yet. */
function whoShort(inc: Incident): string | undefined {
  if (inc.residentId) return ctx.residents.get(inc.residentId, inc.priority === 'P1')?.name;
  return inc.account ? `account ${inc.account}` : undefined;
}
window.setInterval(() => {
  if (!ctx.api.token || Date.now() - lastTone < REMIND_MS - 500) return;
  const waiting = ctx.store.active().filter((i) => i.priority === 'P1' && i.status === 'open' && !i.test);
  if (!waiting.length) return;
  waiting.sort((a, b) => b.openedAt - a.openedAt);
  tone(waiting[0]!.id, 'reminder');
}, 1000);
// staff names on cards: dispatches change who is where
ctx.store.on((_inc, e) => { if (e?.type === 'dispatched') ctx.staff.get('all'); });

ctx.api.onUnauthorized = (reason) => { if (ctx.api.token) logout(`the gateway refused the session: ${reason}`); };
window.addEventListener('hashchange', () => { if (ctx.api.token) route(); });
if (ctx.api.token) startSession();
else loginView();
