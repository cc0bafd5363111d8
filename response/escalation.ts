// Escalation: an incident not acknowledged within its tier's budget goes to the parent unit of the tier now
// responsible; at the top tier (district) the same unit is told again each budget period. Once acknowledged it is
// followed up: if nobody is on site within the priority's reach budget (whoever took it may have gone: an account
// disabled, a shift ended), its people and the unit responsible are told again (`overdue`), every reach budget, until
// someone is on site or it is closed.
//
// Two clocks, two jobs. Deadlines are stored as wall-clock `deadlineAt` (they survive a restart and are what a
// person reads); how long to wait and how many tiers are due is decided on the monotonic clock, from the time
// elapsed since the tier was told. A wall-clock step (NTP, an operator fixing the date) therefore neither fires
// several tiers at once nor holds one back. Across a restart there is no monotonic reference, so a stored deadline
// is re-armed from the wall clock, clamped: a wait is never longer than the tier's budget (a clock stepped back
// cannot postpone an escalation). A timer only acts if the incident still waits on exactly the deadline it was
// armed for, so stale timers are harmless.
import type { Logger } from 'pino';
import type { Bus, BusEvents } from '../core/bus.js';
import type { Config } from '../core/config.js';
import { PRIORITIES, type IncidentStatus, type Priority } from '../core/contracts.js';
import type { Clock, ClockTimer } from './clock.js';
import type { Network } from './network.js';
import { deadlineBudgetMs, type CommittedOf, type EscalationStep, type IncidentApi, type IncidentRow } from './incidents.js';
import { settle } from '../core/maybe.js';

export interface EscalationStats {
  /** incidents with an armed deadline */
  scheduled: number;
  /** budget breaches (escalation steps written) since start, per priority */
  breaches: Record<Priority, number>;
}

export interface Escalation {
  /** escalate at once what fell overdue while the gateway was down, arm every pending deadline, follow the bus */
  start(): void;
  stop(): void;
  stats(): EscalationStats;
  /** the deadline armed for an incident (tests, diagnostics) */
  armed(incidentId: string): number | undefined;
}

export interface EscalationDeps {
  incidents: IncidentApi;
  network: Network;
  bus: Bus;
  config: Pick<Config, 'budgets'>;
  log: Logger;
  clock: Clock;
  /** after a failed escalation write (database busy, disk full), try again after this long */
  retryMs?: number;
}

/**
 * The steps due for an incident: one per tier whose budget has run out (several only when that much time really
 * passed, e.g. while the gateway was down), each written at `now`. At the top tier missed periods collapse into one
 * renotification.
 *
 * `overdueMs` is how long ago the stored deadline ran out, measured on the monotonic clock by the timer that fired
 * (so a wall-clock step in between counts for nothing). Without it (start-up: no monotonic reference survives a
 * restart) it is taken from the wall clock, `now - deadlineAt`.
 */
export function planEscalation(
  row: Pick<IncidentRow, 'tierUnitId' | 'deadlineAt' | 'priority'>,
  now: number,
  network: Pick<Network, 'parentOf' | 'getUnit'>,
  budgetMs: number,
  opts: { catchUp?: boolean; overdueMs?: number } = {},
): EscalationStep[] {
  const steps: EscalationStep[] = [];
  if (row.deadlineAt === null) return steps;
  const overdueMs = opts.overdueMs ?? now - row.deadlineAt;
  if (overdueMs < 0) return steps;
  const catchUp = Boolean(opts.catchUp);
  let tier = row.tierUnitId;
  let due = row.deadlineAt;
  let late = overdueMs;
  for (let guard = 0; guard < 64; guard++) {
    const parent = tier ? network.parentOf(tier) : undefined;
    const to = parent ? parent.id : tier;
    const renotify = !parent;
    // the next tier is due too only if a whole further budget has elapsed
    const more = !renotify && late - budgetMs >= 0;
    steps.push({
      dueAt: due,
      fromUnitId: tier,
      toUnitId: to,
      toTier: to ? (network.getUnit(to)?.tier ?? null) : null,
      renotify,
      // the tier reached last is told only now, so it gets a full budget from now
      deadlineAt: more ? due + budgetMs : now + budgetMs,
      at: now,
      lateMs: late,
      ...(catchUp ? { catchUp: true } : {}),
    });
    if (!more) break;
    tier = to;
    due += budgetMs;
    late -= budgetMs;
  }
  return steps;
}

/**
 * How long to wait for a stored deadline, ms: what the wall clock says is left, but never less than nothing and
 * never more than the tier's budget, whatever the wall clock did since the deadline was written.
 */
export function waitForDeadline(deadlineAt: number, now: number, budgetMs: number): number {
  return Math.min(budgetMs, Math.max(0, deadlineAt - now));
}

export function createEscalation(deps: EscalationDeps): Escalation {
  const { incidents, network, bus, clock, config } = deps;
  const log = deps.log.child({ module: 'escalation' });
  const retryMs = deps.retryMs ?? 1000;
  /** `monoDue`: when the deadline runs out on the monotonic clock; null for a catch-up (no reference) */
  const armedTimers = new Map<string, { dueAt: number; monoDue: number | null; timer: ClockTimer }>();
  const breaches = Object.fromEntries(PRIORITIES.map((p) => [p, 0])) as Record<Priority, number>;
  let running = false;

  const budgetOf = (priority: Priority) => config.budgets[priority].ackMs;


  function disarm(incidentId: string) {
    armedTimers.get(incidentId)?.timer.cancel();
    armedTimers.delete(incidentId);
  }

  function arm(incidentId: string, dueAt: number, priority: Priority, status: IncidentStatus = 'open') {
    const cur = armedTimers.get(incidentId);
    if (cur?.dueAt === dueAt) return;
    cur?.timer.cancel();
    // the wall clock is read once, to turn the stored deadline into a wait; from here on only monotonic time counts
    const waitMs = waitForDeadline(dueAt, clock.now(), deadlineBudgetMs(config.budgets, priority, status));
    const monoDue = clock.monotonic() + waitMs;
    const timer = clock.setTimer(() => fire(incidentId, dueAt, monoDue, false), waitMs);
    armedTimers.set(incidentId, { dueAt, monoDue, timer });
  }

  function fire(incidentId: string, dueAt: number, monoDue: number | null, catchUp: boolean) {
    if (armedTimers.get(incidentId)?.dueAt === dueAt) armedTimers.delete(incidentId);
    if (!running) return;
    let row: IncidentRow | undefined;
    // the escalation is written by the log's writer (at once on one thread; handed to the writer thread in the
    // gateway): what follows runs when it is committed, synchronously or not
    settle(() => {
      row = incidents.get(incidentId);
      if (!row || row.deadlineAt !== dueAt) return [] as CommittedOf<'escalated'>[];
      if (row.status === 'acknowledged' || row.status === 'dispatched') return incidents.followUp(incidentId, dueAt, catchUp ? { catchUp } : {});
      if (row.status !== 'open') return [] as CommittedOf<'escalated'>[];
      const steps = planEscalation(row, clock.now(), network, budgetOf(row.priority), {
        catchUp,
        ...(monoDue !== null ? { overdueMs: Math.max(0, clock.monotonic() - monoDue) } : {}),
      });
      return incidents.escalate(incidentId, steps);
    }, (written: (CommittedOf<'escalated'> | CommittedOf<'overdue'>)[]) => {
      if (!row || !written.length) return;
      const followed = written.filter((e): e is CommittedOf<'overdue'> => e.type === 'overdue');
      if (followed.length) {
        // the bus listener re-arms from the event; arm directly too in case no event came through
        const next = followed[followed.length - 1]!;
        arm(incidentId, next.data.deadlineAt, row.priority, next.data.status);
        return;
      }
      const events = written as CommittedOf<'escalated'>[];
      breaches[row.priority] += events.length;
      for (const e of events) {
        log.warn(
          {
            incidentId, priority: row.priority, from: e.data.fromUnitId, to: e.data.toUnitId, escalationLevel: e.data.level,
            lateMs: e.data.lateMs, renotify: e.data.renotify, catchUp,
          },
          'acknowledgement budget breached: incident escalated',
        );
      }
      // the bus listener re-arms from the escalated event; arm directly too in case no event came through
      const last = events[events.length - 1];
      if (last && typeof last.data.deadlineAt === 'number') arm(incidentId, last.data.deadlineAt, row.priority);
    }, (err) => {
      // an escalation must not be lost to a transient write failure (nor to a writer thread being restarted)
      log.error({ err, incidentId }, 'escalation failed; retrying');
      if (!running) return;
      const cur = armedTimers.get(incidentId);
      // a newer deadline armed meanwhile supersedes this one; the same one armed again is replaced by the retry
      if (cur && cur.dueAt !== dueAt) return;
      cur?.timer.cancel();
      const timer = clock.setTimer(() => fire(incidentId, dueAt, monoDue, catchUp), retryMs);
      armedTimers.set(incidentId, { dueAt, monoDue, timer });
    });
  }

  const onEvent = (e: BusEvents['incident-event'][0]) => {
    switch (e.type) {
      case 'opened':
      case 'escalated': {
        const dueAt = e.data.deadlineAt;
        if (typeof dueAt !== 'number') break;
        const priority = e.type === 'opened' ? (e.data.priority as Priority | undefined) : incidents.get(e.incidentId)?.priority;
        if (priority) arm(e.incidentId, dueAt, priority);
        break;
      }
      case 'acknowledged': {
        // followed up if nobody is on site within the reach budget (a test incident has no follow-up)
        const priority = incidents.get(e.incidentId)?.priority;
        if (typeof e.data.followUpAt === 'number' && priority) arm(e.incidentId, e.data.followUpAt, priority, 'acknowledged');
        else disarm(e.incidentId);
        break;
      }
      case 'overdue': {
        const priority = incidents.get(e.incidentId)?.priority;
        if (priority) arm(e.incidentId, e.data.deadlineAt, priority, e.data.status);
        break;
      }
      case 'joined': {
        // a more urgent repeat brought the deadline forward
        if (typeof e.data.raised?.deadlineAt !== 'number') break;
        const row = incidents.get(e.incidentId);
        if (row) arm(e.incidentId, e.data.raised.deadlineAt, e.data.priority, row.status);
        break;
      }
      case 'on-site':
      case 'resolved':
      case 'cleared':
      case 'cancelled':
        disarm(e.incidentId);
        break;
      default:
        break;
    }
  };

  return {
    start() {
      if (running) return;
      running = true;
      bus.on('incident-event', onEvent);
      const now = clock.now();
      let overdue = 0;
      for (const row of incidents.pendingDeadlines()) {
        if (row.deadlineAt! <= now) {
          overdue++;
          fire(row.id, row.deadlineAt!, null, true);
        } else {
          // a wall clock stepped back since the deadline was written must not stretch the wait past one budget
          arm(row.id, row.deadlineAt!, row.priority, row.status);
        }
      }
      log.info({ armed: armedTimers.size, overdue }, 'escalation started');
    },
    stop() {
      running = false;
      bus.off('incident-event', onEvent);
      for (const { timer } of armedTimers.values()) timer.cancel();
      armedTimers.clear();
    },
    stats: () => ({ scheduled: armedTimers.size, breaches: { ...breaches } }),
    armed: (id) => armedTimers.get(id)?.dueAt,
  };
}
