// One incident: its latency stamps against the budgets, the timeline of every event, the resident and their
// contacts, the device's state, and the position around the home (map.ts: a map, or the schematic plot).
import type { Device, IncidentDetail, Resident, StreamEvent } from './api.js';
import type { IncidentReceipt } from '../../../response/events.js';
import type { Ctx } from './context.js';
import { clear, fmtDateTime, fmtLatency, fmtTime, h } from './dom.js';
import { incidentActions } from './actions.js';
import { callBackBox } from './callback.js';
import { carryInputs, countdown, typeLabel } from './board.js';
import { PositionPanel } from './map.js';
import type { ScenePoint } from './plot.js';

/** A receipt as GET /api/incidents/:id answers it: who got the opening, when (not an event: never on the stream). */
type Receipt = Pick<IncidentReceipt, 'kind' | 'seq' | 'at' | 'userId' | 'username'>;
type Detail = IncidentDetail & { receipts?: Receipt[] };

const STAMPS: [key: string, label: string][] = [
  ['deviceTs', 'device time'],
  ['received', 'received by the gateway'],
  ['ruleEvaluated', 'rule evaluated'],
  ['durable', 'durable'],
  ['pushed', 'pushed to consoles'],
  ['delivered', 'delivered to the first console'],
  ['acknowledged', 'acknowledged'],
  ['dispatched', 'dispatched'],
  ['onSite', 'on site'],
  ['resolved', 'resolved'],
  ['cancelled', 'cancelled'],
];

function eventSummary(e: StreamEvent): string {
  const d = e.data as Record<string, unknown>;
  const by = typeof d.username === 'string' ? ` by ${d.username}` : '';
  switch (e.type) {
    case 'opened': return `${String(d.priority)} ${typeLabel(String(d.type))} (rule ${String(d.rule)})${d.test ? ' — test' : ''}`;
    case 'joined': return `repeated alarm, ${String(d.count)} in total`;
    case 'acknowledged': return `acknowledged${by}${typeof d.ackMs === 'number' ? ` after ${fmtLatency(d.ackMs)}` : ''}`;
    case 'dispatched': return `${String(d.staffName ?? d.staffId)} (${String(d.staffRole ?? '')})${by}${d.onDuty === false ? ' — was off duty' : ''}`;
    case 'on-site': return `on site${by}${typeof d.onSiteMs === 'number' ? ` after ${fmtLatency(d.onSiteMs)}` : ''}`;
    case 'resolved': return `${String(d.outcome)}${by}`;
    case 'cancelled': return `${String(d.outcome ?? d.reason ?? '')}${by}`;
    case 'note': return `${String(d.text ?? '')}${by}`;
    case 'escalated': return `to ${String(d.toUnitId ?? 'top tier')} (${String(d.toTier ?? '')}), level ${String(d.level)}${d.renotify ? ', notified again' : ''}${typeof d.lateMs === 'number' && d.lateMs > 1000 ? `, ${fmtLatency(d.lateMs)} late` : ''}`;
    case 'overdue': return `nobody on site within the reach budget (${String(d.status)}${typeof d.lateMs === 'number' && d.lateMs > 1000 ? `, ${fmtLatency(d.lateMs)} late` : ''}): told again`;
    case 'moved': return `moved from ${String(d.fromUnitId ?? 'no unit')} to ${String(d.toUnitId ?? 'no unit')}: ${String(d.reason ?? '')}`;
    case 'cleared': return `condition ended: ${String(d.reason ?? '')}`;
    case 'late-cancel': return `resident cancelled after ${fmtLatency(d.elapsedMs as number)} (outside the cancel window): noted only`;
    case 'command-sent': return `${String(d.command ?? 'command')} sent to the device (${String(d.commandId ?? '')})`;
    case 'command-acked': return `the device confirmed ${String(d.command ?? 'the command')}${d.status && d.status !== 'acked' ? ` (${String(d.status)})` : ''}`;
    case 'notify-attempt': case 'notified': {
      const r = d.recipient as { kind?: string; name?: string; channel?: string } | undefined;
      const who = r ? `${r.name ?? ''} (${r.kind ?? ''}${r.channel ? ` via ${r.channel}` : ''})` : String(d.channel ?? '');
      if (e.type === 'notified') return `${who} notified of ${String(d.event ?? 'the incident')}`;
      return `${who}: attempt ${String(d.attempt ?? '?')} ${d.ok ? 'ok' : `failed${d.error ? ` — ${String(d.error)}` : d.status ? ` — HTTP ${String(d.status)}` : ''}`}`;
    }
    default: {
      const { stamps: _s, ...rest } = d;
      return JSON.stringify(rest).slice(0, 200);
    }
  }
}

function receiptSummary(r: Receipt): string {
  if (r.kind === 'pushed') return `first written to a console (frame ${r.seq})`;
  return `${r.username ? `${r.username}'s console` : `a console (${r.userId ?? '?'})`} confirmed frame ${r.seq}`;
}

/** Events that happen on their own while an incident waits; they do not break a run of escalations (receipts neither). */
const BACKGROUND = new Set<string>(['escalated', 'notify-attempt', 'notified', 'command-sent', 'command-acked']);

/**
 * The timeline with each run of escalations (only system events in between) shown as one line — "escalated ×21,
 * first … last …" — that opens to every step: twenty-one lines of "level n" hide what a person did. The push and
 * delivery receipts (from the incident's API answer, not from the stream) are placed among the events by time.
 */
export function timeline(events: readonly StreamEvent[], receipts: readonly Receipt[] = []): HTMLElement {
  const list = h('ol', { class: 'timeline' });
  const line = (e: StreamEvent) => h('li', { 'data-type': e.type, 'data-seq': e.seq },
    h('time', null, fmtTime(e.at)), h('span', { class: `ev ${e.type}` }, e.type), h('span', null, eventSummary(e)));
  const receiptLine = (r: Receipt) => h('li', { 'data-type': r.kind, 'data-receipt': '' },
    h('time', null, fmtTime(r.at)), h('span', { class: `ev ${r.kind}` }, r.kind), h('span', null, receiptSummary(r)));
  const pending = [...receipts].sort((a, b) => a.at - b.at);
  let run: { li: HTMLElement; steps: StreamEvent[] } | null = null;
  for (const e of events) {
    // receipts before this event in time; they do not break a run of escalations
    while (pending.length && pending[0]!.at < e.at) list.append(receiptLine(pending.shift()!));
    if (!BACKGROUND.has(e.type)) run = null;
    if (e.type !== 'escalated') { list.append(line(e)); continue; }
    if (!run) {
      const li = line(e);
      run = { li, steps: [] };
      list.append(li);
    }
    run.steps.push(e);
    if (run.steps.length > 1) {
      const first = run.steps[0]!;
      const d = e.data as Record<string, unknown>;
      const detail = h('details', null, h('summary', null, `escalated ×${run.steps.length}: first ${fmtTime(first.at)}, last ${fmtTime(e.at)} — now ${String(d.toUnitId ?? 'top tier')} (${String(d.toTier ?? '')}), level ${String(d.level)}`),
        h('ol', { class: 'steps' }, ...run.steps.map((x) => h('li', null, h('time', null, fmtTime(x.at)), ' ', eventSummary(x)))));
      run.li.replaceChildren(h('time', null, fmtTime(first.at)), h('span', { class: 'ev escalated' }, 'escalated'), detail);
      run.li.dataset.count = String(run.steps.length);
    }
  }
  for (const r of pending) list.append(receiptLine(r));
  return list;
}

function stampsTable(inc: Detail): HTMLElement {
  const st = inc.stamps;
  const base = st.received ?? inc.openedAt;
  const rows = STAMPS.filter(([k]) => st[k] !== undefined).map(([k, label]) => {
    const v = st[k]!;
    return h('tr', { 'data-stamp': k }, h('th', null, label), h('td', null, fmtTime(v)), h('td', { class: 'num' }, k === 'received' ? '' : `${v - base >= 0 ? '+' : ''}${fmtLatency(v - base)}`));
  });
  const budget = (label: string, from: number | undefined, to: number | undefined, limit: number) => {
    if (from === undefined) return null;
    const took = to !== undefined ? to - from : Date.now() - from;
    const over = took > limit;
    return h('tr', { class: over ? 'late' : 'ok', 'data-budget': label },
      h('th', null, `${label} (budget ${fmtLatency(limit)})`),
      h('td', null, to !== undefined ? fmtLatency(took) : `${fmtLatency(took)} so far`),
      h('td', null, over ? 'over budget' : 'within'));
  };
  return h('div', { class: 'stamps' },
    h('table', null, h('caption', null, 'Latency stamps'), h('tbody', null, ...rows)),
    h('table', null, h('caption', null, 'Against the budgets'), h('tbody', null,
      budget('push', st.received, st.pushed, inc.budget.pushMs),
      inc.test ? null : budget('acknowledge', inc.openedAt, st.acknowledged, inc.budget.ackMs),
      inc.test ? null : budget('reach the resident', inc.openedAt, st.onSite, inc.budget.reachMs),
    )),
  );
}

function residentBox(r: Resident | null, id: string | null, account: string | null): HTMLElement {
  if (!r && account) {
    return h('section', { class: 'panel resident', 'data-account': account }, h('h2', null, 'Resident'),
      h('p', { class: 'big' }, `unregistered account ${account}`),
      h('p', null, 'The alarm receiver reported this account, and no device holds it: find the home from the installer\'s ' +
        'records, then an administrator gives the panel\'s device this account so that its next alarm shows the resident: ' +
        // a serial receiver's accounts are receiver:line:account; a DC-09 panel's are its hex account alone
        (account.includes(':')
          ? `PATCH /api/devices/:id {"account": "${account}"}.`
          : `PATCH /api/devices/:id {"account": "${account}", "accountScheme": "dc09"} for a DC-09 panel ({"account": "${account}"} behind a serial receiver).`)));
  }
  if (!r) return h('section', { class: 'panel' }, h('h2', null, 'Resident'), h('p', null, id ? `resident ${id}` : 'the device is not bound to a resident'));
  return h('section', { class: 'panel resident' },
    h('h2', null, 'Resident'),
    h('p', { class: 'big' }, r.name),
    r.address ? h('p', null, r.address) : null,
    r.notes ? h('p', { class: 'notes' }, r.notes) : null,
    h('h3', null, 'Contacts'),
    r.contacts.length
      ? h('ul', { class: 'contacts' }, ...r.contacts.map((c) => h('li', null,
          h('strong', null, c.name), c.relation ? ` (${c.relation})` : '',
          c.phone ? h('a', { href: `tel:${c.phone.replace(/[^0-9+]/g, '')}` }, ` ${c.phone}`) : null)))
      : h('p', null, 'no contacts on record'),
  );
}

function deviceBox(d: Device | null, id: string): HTMLElement {
  if (!d) return h('section', { class: 'panel' }, h('h2', null, 'Device'), h('p', null, id));
  const l = d.live;
  return h('section', { class: 'panel device' },
    h('h2', null, 'Device'),
    h('dl', null,
      h('dt', null, 'Device'), h('dd', null, h('a', { href: `#/device/${encodeURIComponent(d.id)}` }, `${d.kind} ${d.serial}`)),
      h('dt', null, 'Connection'), h('dd', { class: `sup ${l.supervision}` }, `${l.online ? 'online' : 'offline'} · ${l.supervision}`),
      h('dt', null, 'Last seen'), h('dd', null, fmtDateTime(l.lastSeen)),
      h('dt', null, 'Battery'), h('dd', null, l.battery !== null ? `${l.battery}%` : '—'),
      h('dt', null, 'Signal'), h('dd', null, l.signal !== null ? String(l.signal) : '—'),
      h('dt', null, 'Power'), h('dd', null, l.mains === false ? 'mains lost' : d.power),
      l.flags.length ? h('dt', null, 'Flags') : null, l.flags.length ? h('dd', null, l.flags.join(', ')) : null,
    ),
  );
}

export function incidentView(ctx: Ctx, root: HTMLElement, id: string): () => void {
  const body = h('div', { class: 'incident' }, h('p', null, 'loading…'));
  root.append(h('p', null, h('a', { href: '#/board' }, '← board')), body);
  let alive = true;
  let lastSeq = -1;
  let receiptsTimer: number | undefined;
  let receiptLooks = 0;
  let resident: Resident | null = null;
  let device: Device | null = null;
  // kept across redraws: the map keeps its view and tiles while events come in
  const position = new PositionPanel(ctx);

  const draw = (inc: Detail) => {
    const view = h('div', { class: 'incident-view' });
    const cd = countdown(ctx, inc);
    // the alarm's position (a fix, the last known fix, or the home address), and where the device is now if elsewhere
    const points: ScenePoint[] = [];
    if (inc.position) points.push({ role: 'alarm', pos: inc.position, at: inc.lastAt });
    const now = device?.live.position;
    if (now && (!inc.position || now.lat !== inc.position.lat || now.lon !== inc.position.lon)) points.push({ role: 'device', pos: now });
    position.show({ home: resident?.home ?? null, zone: resident?.safeZone ?? null, points }, inc.deviceId, String(now?.at ?? ''));
    view.append(
      h('header', { class: `incident-head prio-${inc.priority}`, 'data-id': inc.id, 'data-status': inc.status },
        h('span', { class: `badge prio ${inc.priority}` }, inc.priority),
        inc.test ? h('span', { class: 'badge test' }, 'TEST') : null,
        h('h1', null, typeLabel(inc.type)),
        h('span', { class: `status ${inc.status}` }, inc.status),
        inc.escalationLevel ? h('span', { class: 'badge esc' }, `escalated ×${inc.escalationLevel}`) : null,
        h('span', { class: `countdown ${cd.late ? 'late' : ''}` }, (inc.status === 'resolved' || inc.status === 'cancelled') ? (inc.outcome ?? '') : cd.text),
      ),
      incidentActions(ctx, inc),
      h('div', { class: 'columns' },
        h('div', null,
          stampsTable(inc),
          h('section', { class: 'panel' },
            h('h2', null, 'Timeline'),
            timeline(inc.events, inc.receipts ?? []),
          ),
        ),
        h('div', null,
          position.el,
          residentBox(resident, inc.residentId, inc.account),
          deviceBox(device, inc.deviceId),
          callBackBox(ctx, device, ctx.units.get('all')?.find((u) => u.id === inc.unitId)),
          h('section', { class: 'panel' }, h('h2', null, 'Responsibility'), h('dl', null,
            h('dt', null, 'Grid unit'), h('dd', null, ctx.unitName(inc.unitId)),
            h('dt', null, 'Responsible now'), h('dd', null, ctx.unitName(inc.tierUnitId)),
            h('dt', null, 'Dispatched'), h('dd', null, ctx.staffName(inc.assignee) ?? '—'),
            h('dt', null, 'Incident'), h('dd', { class: 'mono' }, inc.id))),
        ),
      ),
    );
    carryInputs(body, view);
    body.replaceChildren(view);
  };

  const load = async () => {
    try {
      const inc = await ctx.api.get<Detail>(`/api/incidents/${encodeURIComponent(id)}`);
      if (!alive) return;
      lastSeq = inc.lastSeq;
      // receipts are not on the stream: while the first push or delivery is not in, look again a few times
      window.clearTimeout(receiptsTimer);
      if ((inc.stamps.pushed === undefined || inc.stamps.delivered === undefined) && receiptLooks++ < 10) {
        receiptsTimer = window.setTimeout(() => void load(), 1500);
      }
      if (inc.residentId && !resident) resident = await ctx.api.get<Resident>(`/api/residents/${encodeURIComponent(inc.residentId)}`).catch(() => null);
      device = await ctx.api.get<Device>(`/api/devices/${encodeURIComponent(inc.deviceId)}`).catch(() => device);
      if (alive) draw(inc);
    } catch (err) {
      if (!alive) return;
      clear(body);
      body.append(h('p', { class: 'error' }, `cannot show incident ${id}: ${(err as Error).message}`));
    }
  };
  // every event of this incident redraws from the server's answer (the timeline needs the events themselves)
  let timer: number | undefined;
  const off = ctx.store.on((inc) => {
    if (inc.id !== id || inc.lastSeq <= lastSeq) return;
    window.clearTimeout(timer);
    timer = window.setTimeout(() => void load(), 100);
  });
  const tick = setInterval(() => {
    const inc = ctx.store.incidents.get(id);
    const line = body.querySelector<HTMLElement>('.incident-head .countdown');
    if (inc && line && inc.status !== 'resolved' && inc.status !== 'cancelled') {
      const cd = countdown(ctx, inc);
      line.textContent = cd.text;
      line.classList.toggle('late', cd.late);
    }
  }, 1000);
  void load();
  return () => { alive = false; off(); clearInterval(tick); window.clearTimeout(timer); window.clearTimeout(receiptsTimer); position.destroy(); };
}
