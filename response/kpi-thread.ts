// The KPI reports' thread (response/kpi-reports.ts): a year of a city's incidents is hundreds of thousands of rows,
// seconds of reading and counting that must not hold the main thread (its sockets carry the alarms). It reads the
// gateway's SQLite file on a read-only connection of its own (WAL: readers and the writer do not wait for each other)
// and answers one report at a time.
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import type { Config } from '../core/config.js';
import { createSqliteKpiStore } from './kpi-store.js';
import { computeKpis, type KpiQuery, type KpiReport } from './kpis.js';

export interface KpiThreadInit {
  file: string;
  budgets: Config['budgets'];
}
export type KpiThreadAsk = { id: number; query: KpiQuery };
export type KpiThreadAnswer = { id: number; ok: true; report: KpiReport } | { id: number; ok: false; error: { name: string; message: string; code?: string; details?: unknown } };

const init = workerData as KpiThreadInit;
const db = new Database(init.file, { readonly: true, fileMustExist: true });
db.pragma('busy_timeout = 5000');
const store = createSqliteKpiStore(db);
parentPort!.on('message', ({ id, query }: KpiThreadAsk) => {
  let answer: KpiThreadAnswer;
  try {
    answer = { id, ok: true, report: computeKpis(store, init.budgets, query) };
  } catch (err) {
    const e = err as Error & { code?: string; details?: unknown };
    answer = { id, ok: false, error: { name: e.name, message: e.message, ...(e.code ? { code: e.code } : {}), ...(e.details !== undefined ? { details: e.details } : {}) } };
  }
  parentPort!.postMessage(answer);
});
