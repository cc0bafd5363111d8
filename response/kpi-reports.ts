// KPI reports off the main thread (GET /api/kpis). A year of a city's incidents took the main thread 2.6-5 s to read
// and count (300,000 incidents, 731 shifts: bench/kpi-year.ts), and every socket of the gateway — devices' alarms,
// consoles, the API — waited meanwhile. The report is computed by the same code (response/kpis.ts) in a thread of its
// own (response/kpi-thread.ts) on a read-only connection to the gateway's file. One report at a time; a few wait their
// turn, more are refused with 503 "try again". The thread ends after a while without work, its memory with it.
import type { Worker } from 'node:worker_threads';
import type { Config } from '../core/config.js';
import { EldergateError, ValidationError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { startThread } from '../core/threads.js';
import { checkKpiQuery, type KpiQuery, type KpiReport } from './kpis.js';
import type { KpiThreadAnswer, KpiThreadAsk, KpiThreadInit } from './kpi-thread.js';

/** reports waiting for the one being computed; one more is refused (503) */
export const KPI_REPORTS_WAITING = 8;
/** a thread with no report to compute for this long ends (its heap held the last report's rows) */
const IDLE_MS = 30_000;
/** a report larger than this heap fails with a message saying to narrow the period, and takes nothing else down */
const HEAP_MB = 1024;

export interface KpiReports {
  /** the report of `query`; a ValidationError at once for a query computeKpis would refuse */
  run(query: KpiQuery): Promise<KpiReport>;
  close(): Promise<void>;
}

export function createKpiReports(o: { file: string; budgets: Config['budgets']; log: Logger }): KpiReports {
  let worker: Worker | null = null;
  let nextId = 1;
  const waiting = new Map<number, { resolve: (r: KpiReport) => void; reject: (e: Error) => void }>();
  let idle: NodeJS.Timeout | undefined;
  let closed = false;

  const failAll = (err: Error) => {
    for (const w of waiting.values()) w.reject(err);
    waiting.clear();
  };
  const thread = (): Worker => {
    if (worker) return worker;
    const init: KpiThreadInit = { file: o.file, budgets: o.budgets };
    const w = startThread(import.meta.url, 'kpi-thread', init, { resourceLimits: { maxOldGenerationSizeMb: HEAP_MB } });
    w.unref();
    w.on('message', (a: KpiThreadAnswer) => {
      const p = waiting.get(a.id);
      if (!p) return;
      waiting.delete(a.id);
      if (a.ok) p.resolve(a.report);
      else if (a.error.name === 'ValidationError') p.reject(new ValidationError(a.error.message, a.error.details));
      else p.reject(new EldergateError('KPI_FAILED', `the KPI report failed: ${a.error.message}`, { status: 500 }));
      if (waiting.size === 0) idleSoon();
    });
    w.on('error', (err) => {
      o.log.error({ err }, 'the KPI report thread failed');
      const tooLarge = /heap|memory/i.test(err.message);
      failAll(new EldergateError('KPI_FAILED', tooLarge
        ? `the KPI report did not fit in its ${HEAP_MB} MB: ask for a shorter period (from/to) or fewer units`
        : `the KPI report failed (${err.message}): try again`, { status: tooLarge ? 413 : 500 }));
    });
    w.on('exit', () => {
      if (worker === w) worker = null;
      failAll(new EldergateError('KPI_FAILED', 'the KPI report thread stopped: try again', { status: 503 }));
    });
    worker = w;
    return w;
  };
  const idleSoon = () => {
    clearTimeout(idle);
    idle = setTimeout(() => {
      if (waiting.size === 0 && worker) void worker.terminate();
    }, IDLE_MS);
    idle.unref();
  };

  return {
    run(query) {
      checkKpiQuery(query);
      if (closed) return Promise.reject(new EldergateError('UNAVAILABLE', 'the gateway is stopping: try again in a few seconds', { status: 503 }));
      if (waiting.size > KPI_REPORTS_WAITING) {
        return Promise.reject(new EldergateError('BUSY', `${waiting.size} KPI reports are being computed or waiting: try again in a minute`, { status: 503 }));
      }
      clearTimeout(idle);
      const id = nextId++;
      return new Promise<KpiReport>((resolve, reject) => {
        waiting.set(id, { resolve, reject });
        const ask: KpiThreadAsk = { id, query };
        thread().postMessage(ask);
      });
    },
    async close() {
      closed = true;
      clearTimeout(idle);
      const w = worker;
      worker = null;
      failAll(new EldergateError('UNAVAILABLE', 'the gateway is stopping: try again in a few seconds', { status: 503 }));
      await w?.terminate();
    },
  };
}
