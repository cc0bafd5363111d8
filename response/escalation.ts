// Escalation: an incident not acknowledged within its tier's budget goes to the parent unit of the tier now
// responsible; at the top tier (district) the same unit is told again each budget period. Deadlines are stored as
// wall-clock `deadlineAt` (they survive a restart); timers run on the monotonic clock, and a timer only acts if the
// incident still waits on exactly the deadline it was armed for, so stale timers are harmless.
import type { Logger } from 'pino';
import type { Bus, BusEvents } from '../core/bus.js';
import type { Config } from '../core/config.js';
import { PRIORITIES, type Priority } from '../core/contracts.js';
import type { Clock, ClockTimer } from './clock.js';
import type { Network } from './network.js';
import type { EscalationStep, IncidentRow, IncidentService } from './incidents.js';

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
  incidents: IncidentService;
  network: Network;
  bus: Bus;
  config: Pick<Config, 'budgets'>;
  log: Logger;
  clock: Clock;
  /** after a failed escalation write (database busy, disk full), try again after this long */
  retryMs?: number;
}

/**
 * The steps due for an incident at `now`: one per tier whose deadline has passed (several after downtime), each
 * written with the real time. At the top tier missed periods collapse into one renotification.
 */
export function planEscalation(
  row: Pick<IncidentRow, 'tierUnitId' | 'deadlineAt' | 'priority'>,
  now: number,
  network: Pick<Network, 'parentOf' | 'getUnit'>,
  budgetMs: number,
  opts: { catchUp?: boolean; timerExpired?: boolean } = {},
): EscalationStep[] {
  const steps: EscalationStep[] = [];
  if (row.deadlineAt === null) return steps;
  // a timer that ran out on the monotonic clock is due even if the wall clock was stepped back meanwhile
  const effective = opts.timerExpired ? Math.max(now, row.deadlineAt) : now;
  if (row.deadlineAt > effective) return steps;
  const catchUp = Boolean(opts.catchUp);
  let tier = row.tierUnitId;
  let due = row.deadlineAt;
  for (let guard = 0; guard < 64; guard++) {
    const parent = tier ? network.parentOf(tier) : undefined;
    const to = parent ? parent.id : tier;
    const renotify = !parent;
    const nextDue = due + budgetMs;
    const more = !renotify && nextDue <= effective;
    steps.push({
      dueAt: due,
      fromUnitId: tier,
      toUnitId: to,
      toTier: to ? (network.getUnit(to)?.tier ?? null) : null,
      renotify,
      // the tier reached last is told only now, so it gets a full budget from now
      deadlineAt: more ? nextDue : now + budgetMs,
      at: now,
      ...(catchUp ? { catchUp: true } : {}),
    });
    if (!more) break;
    tier = to;
    due = nextDue;
  }
  return steps;
}

export function createEscalation(deps: EscalationDeps): Escalation {
  const { incidents, network, bus, clock, config } = deps;
  const log = deps.log.child({ module: 'escalation' });
  const retryMs = deps.retryMs ?? 1000;
  const armedTimers = new Map<string, { dueAt: number; timer: ClockTimer }>();
  const breaches = Object.fromEntries(PRIORITIES.map((p) => [p, 0])) as Record<Priority, number>;
  let running = false;

  function disarm(incidentId: string) {
    armedTimers.get(incidentId)?.timer.cancel();
    armedTimers.delete(incidentId);
  }

  function arm(incidentId: string, dueAt: number) {
    const cur = armedTimers.get(incidentId);
    if (cur?.dueAt === dueAt) return;
    cur?.timer.cancel();
    // the wait is measured once against the wall clock, then run on the monotonic clock
    const timer = clock.setTimer(() => fire(incidentId, dueAt, false), Math.max(0, dueAt - clock.now()));
    armedTimers.set(incidentId, { dueAt, timer });
  }

  function fire(incidentId: string, dueAt: number, catchUp: boolean) {
    if (armedTimers.get(incidentId)?.dueAt === dueAt) armedTimers.delete(incidentId);
    if (!running) return;
    try {
      const row = incidents.get(incidentId);
      if (!row || row.status !== 'open' || row.deadlineAt !== dueAt) return;
      const steps = planEscalation(row, clock.now(), network, config.budgets[row.priority].ackMs, {
        catchUp,
        timerExpired: !catchUp,
      });
      const events = incidents.escalate(incidentId, steps);
      breaches[row.priority] += events.length;
      for (const e of events) {
        log.warn(
          {
            incidentId, priority: row.priority, from: e.data.fromUnitId, to: e.data.toUnitId, level: e.data.level,
            lateMs: e.data.lateMs, renotify: e.data.renotify, catchUp,
          },
          'acknowledgement budget breached: incident escalated',
        );
      }
      // the bus listener re-arms from the escalated event; arm directly too in case no event came through
      const last = events[events.length - 1];
      if (last && typeof last.data.deadlineAt === 'number') arm(incidentId, last.data.deadlineAt);
    } catch (err) {
      // an escalation must not be lost to a transient write failure
      log.error({ err, incidentId }, 'escalation failed; retrying');
      const timer = clock.setTimer(() => fire(incidentId, dueAt, catchUp), retryMs);
      armedTimers.set(incidentId, { dueAt, timer });
    }
  }

  const onEvent = (e: BusEvents['incident-event'][0]) => {
    switch (e.type) {
      case 'opened':
      case 'escalated': {
        const dueAt = e.data.deadlineAt;
        if (typeof dueAt === 'number') arm(e.incidentId, dueAt);
        break;
      }
      case 'acknowledged':
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
          fire(row.id, row.deadlineAt!, true);
        } else {
          arm(row.id, row.deadlineAt!);
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
