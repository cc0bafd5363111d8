// The ingest's batch over PostgreSQL: one transaction holds a batch's observations, incident events, command answers,
// refusals and device-state rows, and commits or rolls back as one — the promise the SQLite batch keeps, on the shared
// store of cluster mode. The scope's contract is gateway/ingest-scope.ts's.
//
// - The incident log's head row is locked first, before anything is read (response/store/pg.ts `within`): every
//   node's batches take turns, so seqs are gap-free and in commit order, and no two batches wait on each other's rows
//   (a lock taken after another could deadlock). The price: one batch at a time across the cluster, each one commit.
// - Each observation runs in a savepoint (the ingest asks for it: `perObservationSavepoint`): a failed statement
//   aborts a PostgreSQL transaction, so a savepoint is what lets one observation fail and the batch go on, as a failing
//   step does in SQLite. A savepoint rolled back gives its seqs back. A statement that fails outside any savepoint
//   makes the batch unusable (`usable()`), and the ingest fails it whole.
import type pg from 'pg';
import { sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import type { PgExecutor } from '../core/pg-bind.js';
import type { OpenOfDeviceRow, PgIncidentStore } from '../response/store/pg.js';
import { runAsync, type Step } from '../response/store/run.js';
import { openKey } from './open-incidents-pg.js';
import type { OpenIncidentView } from './rules/types.js';
import type { BoundDevice, IngestScope } from './ingest-scope.js';
import { observationStoreOn } from './observation-store-pg.js';
import { commandStoreOn } from './command-store-pg.js';
import { createPgDeviceStateStore, deviceStateStoreOn } from './state-store-pg.js';
import type { StoredState } from './state-store.js';

/** The scope of one PostgreSQL batch, and what only the batch's end writes. */
export interface PgBatchScope extends IngestScope<'async'> {
  writeStates(rows: readonly StoredState[]): Promise<void>;
  /** read these devices' open incidents in one query (the batch's devices, before its first observation) */
  prefetchOpenIncidents(deviceIds: readonly string[]): Promise<void>;
}

export interface PgIngestBatches {
  /** `fn` in one transaction, committed when it returns (rolled back if it throws or left the batch unusable) */
  batch<T>(fn: (s: PgBatchScope) => Promise<T>): Promise<T>;
  /** every device's stored state (start-up) */
  loadStates(): Promise<StoredState[]>;
}

/**
 * `isTestDevice`: the device's test mark, as the incident service reads it (this node's registry): the rules see only
 * the open incidents its alarms would join (gateway/ingest-scope.ts, sqliteOpenIncidents).
 */
export function createPgIngestBatches(opts: { pool: pg.Pool; incidents: PgIncidentStore; isTestDevice: (deviceId: string) => boolean }): PgIngestBatches {
  const db = drizzle(opts.pool);
  const states = createPgDeviceStateStore(opts.pool);
  return {
    loadStates: () => states.loadAll(),
    batch: (fn) => db.transaction(async (tx) => {
      const t = tx as unknown as PgExecutor;
      const inc = await opts.incidents.within(t);
      /** savepoints open now; a statement failing with none open aborts the whole transaction */
      let depth = 0;
      let broken: unknown;
      /**
       * per savepoint level: the statement that failed in it. PostgreSQL refuses every statement after it until the
       * savepoint is rolled back, even where the code went on (a step whose failure is only logged): the savepoint is
       * then rolled back and its observation fails alone, as if it had thrown.
       */
      const failedAt: unknown[] = [];
      // every statement of the scope passes here: one that fails outside a savepoint breaks the batch
      const watched = <A extends unknown[], R>(f: (...a: A) => Promise<R>) => (...a: A): Promise<R> =>
        f(...a).catch((err: unknown) => {
          if (depth === 0) broken ??= err;
          else failedAt[depth] ??= err;
          throw err;
        });
      const watchAll = <O extends object>(o: O): O => Object.fromEntries(Object.entries(o).map(([k, v]) =>
        [k, typeof v === 'function' ? watched(v.bind(o) as (...a: unknown[]) => Promise<unknown>) : v])) as O;

      const savepoint = async <R>(body: () => Step<R>): Promise<R> => {
        const mark = inc.mark();
        await watched(() => tx.execute(sql`SAVEPOINT eg_step`))();
        depth++;
        const level = depth;
        failedAt[level] = undefined;
        let out: R;
        try {
          out = await runAsync(body());
          if (failedAt[level] !== undefined) {
            throw new Error(`a statement of this step failed, and PostgreSQL took nothing after it: the step is rolled back (${failedAt[level] instanceof Error ? (failedAt[level] as Error).message : String(failedAt[level])})`, { cause: failedAt[level] });
          }
        } catch (err) {
          failedAt[level] = undefined;
          depth--;
          // back to before the step: its rows and its seqs (the next append takes them again)
          await watched(() => tx.execute(sql`ROLLBACK TO SAVEPOINT eg_step`))().catch(() => undefined);
          await watched(() => tx.execute(sql`RELEASE SAVEPOINT eg_step`))().catch(() => undefined);
          inc.rewind(mark);
          // what was read of open incidents inside it may be what it wrote (rare: every device's is read again)
          open.clear();
          throw err;
        }
        depth--;
        await watched(() => tx.execute(sql`RELEASE SAVEPOINT eg_step`))();
        return out;
      };
      /**
       * the batch's devices' open incidents, as read in it (under the log's head, which this batch holds: no other
       * writer changes them meanwhile); an incident write changes its device's: that device's are read again
       */
      const open = new Map<string, Map<string, OpenIncidentView>>();
      /** devices whose incidents the write in progress changed (every change of an incident saves its projection) */
      const touched = new Set<string>();
      const watchedTx = watchAll(inc.tx);
      const incidentTx: typeof watchedTx = {
        ...watchedTx,
        saveProjection: (row, created, before) => {
          touched.add(row.deviceId);
          return watchedTx.saveProjection(row, created, before);
        },
      };
      const openOf = (rows: readonly OpenOfDeviceRow[], devices: readonly string[]) => {
        for (const d of devices) if (!open.has(d)) open.set(d, new Map());
        // newest first: the first of each type, kind (real or test), resident and unknown account is the one the rules mean
        for (const r of rows) {
          const m = open.get(r.deviceId)!;
          const key = openKey(r.type, r.test, r.residentId, r.account);
          if (!m.has(key)) m.set(key, { id: r.id, openedAt: r.openedAt, status: r.status });
        }
      };
      const lookup = ({ id, residentId, account }: BoundDevice) => {
        const m = open.get(id)!;
        let test: boolean | undefined;
        // the device's own kind, its mark read when a rule asks (not for every device of the batch), its resident and
        // the receiver's unknown account
        return (type: string) => m.get(openKey(type, (test ??= opts.isTestDevice(id)), residentId, account ?? null));
      };
      const wrote = <R>(p: Promise<R>): Promise<R> => p.finally(() => {
        for (const d of touched) open.delete(d);
        touched.clear();
      });
      const stateRows = deviceStateStoreOn(t, (f) => f(t));
      const scope: PgBatchScope = {
        mode: 'async',
        rows: watchAll(observationStoreOn(t)),
        commands: watchAll(commandStoreOn(t)),
        incidentStatus: watched((id: string) => inc.status(id)),
        openIncidents: watched(async (device: BoundDevice) => {
          if (!open.has(device.id)) openOf((await inc.openOfDevice([device.id])), [device.id]);
          return lookup(device);
        }),
        prefetchOpenIncidents: watched(async (deviceIds: readonly string[]) => {
          const unique = [...new Set(deviceIds)];
          if (unique.length) openOf(await inc.openOfDevice(unique), unique);
        }),
        incidentWrite: (body, joinCaller) => wrote(joinCaller && depth > 0 ? runAsync(body(incidentTx)) : savepoint(() => body(incidentTx))),
        savepoint,
        usable: () => broken === undefined,
        writeStates: watched((rows: readonly StoredState[]) => stateRows.write(rows)),
      };
      const out = await fn(scope);
      if (broken !== undefined) throw broken;
      await inc.finish();
      return out;
    }),
  };
}
