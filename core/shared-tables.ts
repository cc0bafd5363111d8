// Cluster mode's shared tables: the registry (devices, residents, device imports, the device-secret hashing key), the
// network (units, staff) and the accounts are the same on every node, so a device provisioned through one node
// connects through any other, and a user created on one logs in on all.
//
// How. Each node keeps these tables in its own SQLite file, exactly as one node does: every read (the auth backend's
// per-connection check, the API's lists, a console's scope, the rules' bindings) stays synchronous and local, and the
// code that changes them (devices/registry.ts, core/users.ts, response/network.ts) is the one-node code, unchanged.
// PostgreSQL holds the authority: every row of these tables as JSON (`shared_rows`), each with the seq of its last
// change, and one head row (`shared_head`) whose seq orders the changes.
// - A change is made under the cluster's lock: a session takes the head row FOR UPDATE (serialized across nodes),
//   brings this node's copy up to the head, then the change runs here as on one node — its checks (a serial already
//   provisioned, a username taken, the last admin) see every other node's changes, and the file's own unique keys
//   hold across the cluster. Triggers note every row it touched (`shared_pending`, in the changing transaction, so a
//   crash cannot lose the note); the session writes their images at head + 1 and commits. The answer goes out after
//   that commit (server/app.ts), so what a person was told is done is in PostgreSQL.
// - If the push fails (PostgreSQL gone mid-session), the rows are put back as PostgreSQL holds them, here and in
//   memory (`onApplied`), and the person gets an error: a change that was refused was not made.
// - Every node LISTENs for commits and applies what has a seq above its head (its head and the rows in one SQLite
//   transaction per page), then tells its parts (`onApplied`: the registry reloads those devices and residents, the
//   network its tree). A notification missed is made up by a poll.
// - A row changed here outside a session (a device put in service by its first message, a terminal's registration)
//   is pushed by the next flush, within `flushMs`. Should another node have changed the same row meanwhile, theirs
//   wins and this one is dropped, logged: nothing such a change touches is unique, and the next message repeats it.
// Why not a PostgreSQL store per area: the registry's 700 lines of synchronous reads and checks would become async on
// the hot path (the auth backend answers from memory, microseconds), and every one-node behaviour would need a second
// implementation and a contract suite. Changes to these tables are people's actions, a few a second at most: one lock
// for all of them costs nothing, and keeps one implementation.
import type Database from 'better-sqlite3';
import type pg from 'pg';
import { ConfigError, EldergateError } from './errors.js';
import type { Logger } from './logger.js';
import { followLog, type LogFollower } from '../response/store/pg.js';

export interface SharedTable {
  table: string;
  key: string;
  /** only rows for which this holds are shared (an SQL condition over NEW or OLD) */
  only?: (row: 'NEW' | 'OLD') => string;
  /** run before a row of this table is deleted by another node's change (its local dependents), `?` is the key */
  beforeDelete?: string;
  /** run after a row of this table arrives from another node (what one node's own insert writes beside it), `?` is the key */
  afterUpsert?: string;
}

/** In an order that keeps references valid (foreign keys are checked at commit all the same). */
export const SHARED_TABLES: readonly SharedTable[] = [
  // the device-secret hashing key: a device's secret hashed on one node verifies on all (core/secrets.ts); the
  // node's other secrets (which database its replica of the log follows) are its own
  { table: 'secrets', key: 'name', only: (r) => `${r}.name = 'device-secret-key'` },
  { table: 'users', key: 'id' },
  { table: 'units', key: 'id' },
  { table: 'staff', key: 'id' },
  { table: 'residents', key: 'id' },
  { table: 'device_imports', key: 'id' },
  {
    table: 'devices', key: 'id',
    beforeDelete: 'DELETE FROM device_state WHERE device_id = ?',
    afterUpsert: 'INSERT OR IGNORE INTO device_state (device_id, updated_at) VALUES (?, unixepoch(\'subsec\') * 1000)',
  },
];

export const SHARED_CHANNEL = 'shared_rows';
const APPLYING = 'shared_applying';
/** rows read or written per statement and per SQLite transaction: an import's 50,000 devices never hold the loop long */
const PAGE = 2000;
/**
 * Rows applied per SQLite transaction in a catch-up, with the reload of what memory holds of them: a slice holds the
 * event loop (2,000 devices, each read back by the registry, held it ~100 ms on this project's 2-vCPU machine).
 */
const APPLY_SLICE = 500;

/**
 * pending states: noted; failed (to be put back as PostgreSQL holds it); in flight (its image is being pushed); changed
 * again while in flight (noted once the push commits, put back if it fails: the change it travels with was refused)
 */
const NOTED = 0;
const FAILED = 1;
const IN_FLIGHT = 2;
const AGAIN = 3;

/** table → keys that changed here because of another node (or were put back) */
export type SharedChanges = ReadonlyMap<string, ReadonlySet<string>>;

export interface SharedSession {
  /**
   * Push what changed since the session began and commit; rejects if that failed (the rows are put back as PostgreSQL
   * holds them). A second call does nothing.
   */
  end(): Promise<void>;
}

export interface SharedTables {
  /** a session: the cluster's lock held, this node's copy current; `end()` pushes and releases */
  begin(): Promise<SharedSession>;
  /** `fn` in a session: what it changed is in PostgreSQL once this resolves (its own error is thrown after the push) */
  write<T>(fn: () => T | Promise<T>): Promise<T>;
  /** apply what other nodes committed up to now (tests; a node after an action elsewhere) */
  sync(): Promise<void>;
  /** the seq this node's copy has applied */
  head(): number;
  close(): Promise<void>;
}

export interface SharedTablesOptions {
  sqlite: Database.Database;
  pool: pg.Pool;
  /** a connection of its own for LISTEN */
  connect: () => pg.Client;
  log: Logger;
  /** rows that changed here because of another node (or were put back): reload what memory holds of them */
  onApplied: (changes: SharedChanges) => void;
  /**
   * Awaited between the slices of a catch-up, after a turn of the event loop: until what `onApplied` handed on for
   * the last slice has been taken (eldergate.ts: the writer thread's copy of the registry), so that another node's
   * 50,000-device import reaches this node's writer a slice at a time, not as a backlog an alarm would queue behind.
   */
  betweenSlices?: () => Promise<void>;
  /** how often rows changed outside a session are pushed (default 250 ms) */
  flushMs?: number;
  /** how often the head is read without a notification (default 1000 ms) */
  pollMs?: number;
  /** a session not ended by then is ended (default 50 s: under the pool's idle-in-transaction limit of 60 s; an import of 50,000 devices takes a few) */
  maxSessionMs?: number;
}

/** A change could not be stored in the shared database: it was not made. */
export class SharedStoreError extends EldergateError {
  constructor(cause: unknown) {
    super('SHARED_STORE_UNAVAILABLE',
      `the change could not be stored in the cluster's shared database (${(cause as Error)?.message ?? String(cause)}); it was not made: try again, and if it keeps failing check PostgreSQL (docs/scale-out.md)`,
      { status: 503, cause });
  }
}

interface Image { tbl: string; key: string; row: Record<string, unknown> | null }

export async function openSharedTables(opts: SharedTablesOptions): Promise<SharedTables> {
  const { sqlite, pool, log } = opts;
  const maxSessionMs = opts.maxSessionMs ?? 50_000;
  const tables = new Map(SHARED_TABLES.map((t) => [t.table, t] as const));
  installTriggers(sqlite);
  const columns = new Map(SHARED_TABLES.map((t) => [t.table,
    new Set((sqlite.prepare(`PRAGMA table_info("${t.table}")`).all() as { name: string }[]).map((c) => c.name))] as const));
  const imageStmt = new Map(SHARED_TABLES.map((t) => [t.table, sqlite.prepare(`SELECT * FROM "${t.table}" WHERE "${t.key}" = ?`)] as const));
  const deleteStmt = new Map(SHARED_TABLES.map((t) => [t.table, sqlite.prepare(`DELETE FROM "${t.table}" WHERE "${t.key}" = ?`)] as const));
  const beforeDelete = new Map(SHARED_TABLES.filter((t) => t.beforeDelete).map((t) => [t.table, sqlite.prepare(t.beforeDelete!)] as const));
  const afterUpsert = new Map(SHARED_TABLES.filter((t) => t.afterUpsert).map((t) => [t.table, sqlite.prepare(t.afterUpsert!)] as const));
  const upserts = new Map<string, Database.Statement>();
  const readSync = sqlite.prepare<[], { cluster: string; head: number }>('SELECT cluster, head FROM shared_sync WHERE id = 1');
  const setHead = sqlite.prepare<[number]>('UPDATE shared_sync SET head = ? WHERE id = 1');
  /** a session is open: what it changes here is noted as its own (a crash before its push puts it back at start) */
  const setSession = sqlite.prepare<[number]>('UPDATE shared_sync SET session = ? WHERE id = 1');
  const readSession = sqlite.prepare('SELECT session FROM shared_sync WHERE id = 1').pluck();
  const pendingOf = sqlite.prepare<[string, string], { failed: number }>('SELECT failed FROM shared_pending WHERE tbl = ? AND key = ?');
  const dropPending = sqlite.prepare<[string, string]>('DELETE FROM shared_pending WHERE tbl = ? AND key = ?');
  const anyPending = sqlite.prepare('SELECT 1 FROM shared_pending LIMIT 1').pluck();

  const upsertFor = (table: string, cols: string[]): Database.Statement => {
    const sig = `${table}\u0000${cols.join(',')}`;
    let s = upserts.get(sig);
    if (!s) {
      const key = tables.get(table)!.key;
      const quoted = cols.map((c) => `"${c}"`);
      const set = cols.filter((c) => c !== key).map((c) => `"${c}" = excluded."${c}"`);
      s = sqlite.prepare(`INSERT INTO "${table}" (${quoted.join(', ')}) VALUES (${cols.map(() => '?').join(', ')})
        ON CONFLICT ("${key}") DO ${set.length ? `UPDATE SET ${set.join(', ')}` : 'NOTHING'}`);
      upserts.set(sig, s);
    }
    return s;
  };

  const applyOne = (img: Image): void => {
    const t = tables.get(img.tbl);
    if (!t) throw new Error(`the shared database holds rows of a table this node does not share (${img.tbl}): run the same eldergate version on every node`);
    if (img.row === null) {
      beforeDelete.get(img.tbl)?.run(img.key);
      deleteStmt.get(img.tbl)!.run(img.key);
      return;
    }
    // columns this node's schema has (a node of another version may send more or fewer: rolling upgrades)
    const known = columns.get(img.tbl)!;
    const cols = Object.keys(img.row).filter((c) => known.has(c));
    upsertFor(img.tbl, cols).run(...cols.map((c) => img.row![c]));
    afterUpsert.get(img.tbl)?.run(img.key);
  };

  /** local rows holding the unique key `img` needs ("UNIQUE constraint failed: devices.serial"), other than itself */
  const holdersOf = (img: Image, err: unknown): string[] => {
    const m = /UNIQUE constraint failed: (.+)$/.exec((err as Error).message ?? '');
    if (!m || !img.row) return [];
    const cols = m[1]!.split(',').map((c) => c.trim().split('.')).filter(([t]) => t === img.tbl).map(([, c]) => c!);
    if (!cols.length || cols.some((c) => !(c in img.row!))) return [];
    const key = tables.get(img.tbl)!.key;
    return (sqlite.prepare(`SELECT "${key}" AS k FROM "${img.tbl}" WHERE ${cols.map((c) => `"${c}" IS ?`).join(' AND ')} AND "${key}" <> ?`)
      .all(...cols.map((c) => img.row![c]), img.key) as { k: string }[]).map((r) => String(r.k));
  };

  /**
   * Rows as the shared database holds them, into this file in one transaction, with the head if given. A row this node
   * changed and had not pushed yet is overtaken (the other node's change is the one the cluster holds). A row whose
   * unique key a local row still holds: that row's own image from `ahead` (the same catch-up: a swap) goes first; a
   * local row the cluster never had (a change a crash or a failure kept from PostgreSQL) is dropped.
   */
  const applyRows = sqlite.transaction((images: readonly Image[], head: number | null, ahead: Map<string, Image>): { changes: Map<string, Set<string>>; overtaken: string[] } => {
    sqlite.prepare(`INSERT INTO temp.${APPLYING} VALUES (1)`).run();
    sqlite.pragma('defer_foreign_keys = ON');
    const changes = new Map<string, Set<string>>();
    const overtaken: string[] = [];
    const changed = (tbl: string, key: string) => {
      if (!changes.has(tbl)) changes.set(tbl, new Set());
      changes.get(tbl)!.add(key);
    };
    const applied = (img: Image) => {
      ahead.delete(`${img.tbl}\u0000${img.key}`);
      const p = pendingOf.get(img.tbl, img.key);
      if (p) {
        if (p.failed !== FAILED) overtaken.push(`${img.tbl}/${img.key}`);
        dropPending.run(img.tbl, img.key);
      }
      changed(img.tbl, img.key);
    };
    let rest = images.filter((img) => ahead.has(`${img.tbl}\u0000${img.key}`) || !ahead.size);
    for (;;) {
      const retry: { img: Image; err: unknown }[] = [];
      for (const img of rest) {
        try {
          applyOne(img);
          applied(img);
        } catch (err) {
          if ((err as { code?: string }).code !== 'SQLITE_CONSTRAINT_UNIQUE') throw err;
          retry.push({ img, err });
        }
      }
      if (!retry.length) break;
      if (retry.length === rest.length) {
        // no progress: free the keys the local rows hold
        let freed = false;
        for (const { img, err } of retry) {
          for (const holder of holdersOf(img, err)) {
            const next = ahead.get(`${img.tbl}\u0000${holder}`);
            if (next) {
              // the holder changes in this catch-up too: its image first (it may hold another key, freed in turn)
              try {
                applyOne(next);
                applied(next);
                freed = true;
              } catch {
                // still held: tried again in the next round
              }
            } else if (pendingOf.get(img.tbl, holder)) {
              beforeDelete.get(img.tbl)?.run(holder);
              deleteStmt.get(img.tbl)!.run(holder);
              dropPending.run(img.tbl, holder);
              overtaken.push(`${img.tbl}/${holder} (dropped: never in the shared database)`);
              changed(img.tbl, holder);
              freed = true;
            }
          }
        }
        if (!freed) throw retry[0]!.err;
      }
      rest = retry.map((r) => r.img);
    }
    if (head !== null) setHead.run(head);
    sqlite.prepare(`DELETE FROM temp.${APPLYING}`).run();
    return { changes, overtaken };
  });

  const apply = (images: readonly Image[], head: number | null, ahead = new Map<string, Image>()): void => {
    const { changes, overtaken } = applyRows.immediate(images, head, ahead);
    if (overtaken.length) {
      log.warn({ rows: overtaken.slice(0, 20), count: overtaken.length },
        'rows changed on this node outside a session were changed on another node too (or pushed before a restart): the shared database\'s version is kept');
    }
    if (changes.size) {
      try {
        opts.onApplied(changes);
      } catch (err) {
        log.error({ err }, 'reloading what another node changed failed; this node serves the rows as its file holds them');
      }
    }
  };

  /**
   * What follows this node's head, read in one snapshot (under the session's lock it is one; otherwise a repeatable-read
   * transaction), then applied a slice per SQLite transaction in an order that keeps references valid across slices:
   * upserts parents first (SHARED_TABLES' order), then deletions children first. The head moves with the last slice:
   * a node cut off half-way reads the rest again (upserts: idempotent). `locked`: the head, read under the lock.
   */
  const catchUp = async (locked: { client: pg.PoolClient; head: number } | null): Promise<void> => {
    const from = readSync.get()!.head;
    if (locked && locked.head <= from) return;
    const own = locked ? null : await pool.connect();
    const q = locked ? locked.client : own!;
    const images: (Image & { seq: number })[] = [];
    let target: number;
    try {
      if (own) await own.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      target = locked ? locked.head : Number((await q.query<{ seq: string }>('SELECT seq FROM shared_head WHERE id = 1')).rows[0]!.seq);
      if (target <= from) {
        if (own) await own.query('COMMIT');
        return;
      }
      let after: [number, string, string] = [from, '', ''];
      for (;;) {
        const { rows } = await q.query<{ tbl: string; key: string; seq: string; row: Record<string, unknown> | null }>(
          `SELECT tbl, key, seq, row FROM shared_rows WHERE seq > $4 AND seq <= $5 AND (seq, tbl, key) > ($1::bigint, $2, $3)
           ORDER BY seq, tbl, key LIMIT ${PAGE}`, [...after, from, target]);
        for (const r of rows) images.push({ tbl: r.tbl, key: r.key, row: r.row, seq: Number(r.seq) });
        if (rows.length < PAGE) break;
        const last = rows.at(-1)!;
        after = [Number(last.seq), last.tbl, last.key];
      }
      if (own) await own.query('COMMIT');
    } catch (err) {
      if (own) await own.query('ROLLBACK').catch(() => {});
      throw err;
    } finally {
      own?.release();
    }
    const order = new Map(SHARED_TABLES.map((t, i) => [t.table, i] as const));
    const rank = (i: Image) => order.get(i.tbl) ?? SHARED_TABLES.length;
    const upserts = images.filter((i) => i.row !== null).sort((x, y) => rank(x) - rank(y));
    const deletes = images.filter((i) => i.row === null).sort((x, y) => rank(y) - rank(x));
    const all = [...upserts, ...deletes];
    const ahead = new Map(all.map((i) => [`${i.tbl}\u0000${i.key}`, i] as const));
    if (!all.length) {
      setHead.run(target);
      return;
    }
    for (let i = 0; i < all.length; i += APPLY_SLICE) {
      const last = i + APPLY_SLICE >= all.length;
      apply(all.slice(i, i + APPLY_SLICE), last ? target : null, ahead);
      if (!last) {
        await new Promise((r) => setImmediate(r));
        await opts.betweenSlices?.();
      }
    }
  };

  /** rows whose push failed, put back as the shared database holds them (absent there: deleted here) */
  const repair = async (q: pg.Pool | pg.PoolClient): Promise<void> => {
    const failed = sqlite.prepare<[], { tbl: string; key: string }>(`SELECT tbl, key FROM shared_pending WHERE failed = ${FAILED}`).all();
    for (let i = 0; i < failed.length; i += PAGE) {
      const slice = failed.slice(i, i + PAGE);
      const { rows } = await q.query<{ tbl: string; key: string; row: Record<string, unknown> | null }>(
        `SELECT s.tbl, s.key, s.row FROM shared_rows s JOIN json_to_recordset($1::json) AS k(tbl text, key text) USING (tbl, key)`,
        [JSON.stringify(slice)]);
      const held = new Map(rows.map((r) => [`${r.tbl}\u0000${r.key}`, r.row]));
      apply(slice.map((f) => ({ tbl: f.tbl, key: f.key, row: held.get(`${f.tbl}\u0000${f.key}`) ?? null })), null);
      log.warn({ rows: slice.slice(0, 20).map((f) => `${f.tbl}/${f.key}`), count: slice.length }, 'rows whose change could not be stored in the shared database were put back as it holds them');
    }
  };

  /** the images of what changed here (marked in flight in the same step: a change made while they travel is noted again) */
  const takePending = sqlite.transaction((): Image[] => {
    sqlite.prepare(`UPDATE shared_pending SET failed = ${IN_FLIGHT} WHERE failed = ${NOTED}`).run();
    const keys = sqlite.prepare<[], { tbl: string; key: string }>(`SELECT tbl, key FROM shared_pending WHERE failed = ${IN_FLIGHT}`).all();
    return keys.map(({ tbl, key }) => {
      const row = (imageStmt.get(tbl)!.get(key) as Record<string, unknown> | undefined) ?? null;
      if (row) for (const [c, v] of Object.entries(row)) {
        if (typeof v === 'bigint' || Buffer.isBuffer(v)) throw new Error(`${tbl}.${c} holds a value JSON cannot carry; it cannot be shared`);
      }
      return { tbl, key, row };
    });
  });
  const pushed = sqlite.transaction((head: number) => {
    sqlite.prepare(`DELETE FROM shared_pending WHERE failed = ${IN_FLIGHT}`).run();
    sqlite.prepare(`UPDATE shared_pending SET failed = ${NOTED} WHERE failed = ${AGAIN}`).run();
    setSession.run(0);
    setHead.run(head);
  });
  /** the push failed: what travelled with it (and what changed again meanwhile) is put back */
  const failedPush = sqlite.transaction(() => {
    sqlite.prepare(`UPDATE shared_pending SET failed = ${FAILED} WHERE failed IN (${IN_FLIGHT}, ${AGAIN})`).run();
    setSession.run(0);
  });

  const push = async (client: pg.PoolClient, head: number, images: readonly Image[]): Promise<number> => {
    if (!images.length) return head;
    const next = head + 1;
    for (let i = 0; i < images.length; i += PAGE) {
      await client.query(
        `INSERT INTO shared_rows (tbl, key, seq, row)
         SELECT x->>'tbl', x->>'key', $1::bigint, CASE WHEN json_typeof(x->'row') = 'null' THEN NULL ELSE x->'row' END
         FROM json_array_elements($2::json) AS x
         ON CONFLICT (tbl, key) DO UPDATE SET seq = excluded.seq, row = excluded.row`,
        [next, JSON.stringify(images.slice(i, i + PAGE))]);
    }
    await client.query('UPDATE shared_head SET seq = $1 WHERE id = 1', [next]);
    await client.query('SELECT pg_notify($1, $2)', [SHARED_CHANNEL, String(next)]);
    return next;
  };

  /**
   * COMMIT, and when its answer is lost (the connection dropped on the way back), ask PostgreSQL on another connection
   * whether this transaction committed (txid_status, which is there for exactly this): a change made must not be
   * answered "not made, try again" — the person would try again and meet their own change as a conflict, and a device's
   * secret handed out nowhere. `xid`: the transaction's id, read before the COMMIT (null: nothing was pushed). Resolves
   * true when the connection is still good, false when it was lost (committed all the same).
   */
  const commit = async (client: pg.PoolClient, xid: string | null): Promise<boolean> => {
    try {
      await client.query('COMMIT');
      return true;
    } catch (err) {
      if (xid === null) throw err;
      // a COMMIT being finished by a backend whose client went away is 'in progress' for a moment
      for (let attempt = 0; attempt < 20; attempt++) {
        let status: string | null;
        try {
          status = (await pool.query<{ s: string | null }>('SELECT txid_status($1::bigint) AS s', [xid])).rows[0]?.s ?? null;
        } catch {
          throw err;
        }
        if (status === 'committed') {
          log.warn({ err, xid }, 'the answer to a change\'s COMMIT was lost, but PostgreSQL committed it: it is made');
          return false;
        }
        if (status !== 'in progress') throw err;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw err;
    }
  };

  // one thing at a time on this node: a session, a catch-up, a flush
  let chain: Promise<unknown> = Promise.resolve();
  const exclusive = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = chain.then(fn, fn);
    chain = run.catch(() => {});
    return run;
  };

  /** the head row locked on `client` (in its transaction): the cluster's id and the head */
  const lockHead = async (client: pg.PoolClient): Promise<{ cluster: string; head: number }> => {
    const { rows } = await client.query<{ cluster: string; seq: string }>('SELECT cluster, seq FROM shared_head WHERE id = 1 FOR UPDATE');
    return { cluster: rows[0]!.cluster, head: Number(rows[0]!.seq) };
  };

  /**
   * With the lock held: what a crash left is sorted out, this copy brought up to the head, rows whose push failed put
   * back (after the catch-up: a put-back row may refer to rows it brings). `session`: what changes from here is a
   * session's own.
   */
  const prepare = async (client: pg.PoolClient, head: number, session: boolean): Promise<void> => {
    sqlite.transaction(() => {
      if (readSession.get()) {
        // a session's changes that never reached PostgreSQL (the process died before its commit): its person got no
        // answer, so they are put back — a secret rotated and never handed to anyone must not reach the cluster
        sqlite.prepare(`UPDATE shared_pending SET failed = ${FAILED}`).run();
        setSession.run(0);
      } else {
        // a flush cut short is pushed again (had it committed, catching up shows it: theirs is ours)
        sqlite.prepare(`UPDATE shared_pending SET failed = ${NOTED} WHERE failed IN (${IN_FLIGHT}, ${AGAIN})`).run();
      }
    }).immediate();
    await catchUp({ client, head });
    await repair(client);
    if (session) setSession.run(1);
  };

  /** the lock taken and this copy current: returns the locked head and the connection holding it */
  const open = async (session: boolean): Promise<{ client: pg.PoolClient; head: number }> => {
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      const { head } = await lockHead(client);
      await prepare(client, head, session);
      return { client, head };
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      client.release(true);
      throw err;
    }
  };

  /** what changed pushed and committed (`refuse`: put back instead, the session having run out of time) */
  const close = async (client: pg.PoolClient, head: number, refuse = false): Promise<void> => {
    try {
      if (refuse) throw new Error(`the change took longer than ${maxSessionMs} ms`);
      const next = await push(client, head, takePending());
      const xid = next > head ? String((await client.query<{ x: string }>('SELECT txid_current()::text AS x')).rows[0]!.x) : null;
      const usable = await commit(client, xid);
      try {
        pushed(next);
      } catch (err) {
        // committed: it is done; this file's notes are put right at the next session (its rows come back as the cluster's)
        log.error({ err }, 'a change is in the shared database, but this node could not note it in its file');
      }
      client.release(usable ? undefined : true);
    } catch (err) {
      try {
        failedPush();
      } catch (e) {
        log.error({ err: e }, 'could not note a failed push in this node\'s file; the next session puts its rows back');
      }
      await client.query('ROLLBACK').catch(() => {});
      client.release(true);
      // put back now if PostgreSQL answers; else the next session or flush does it
      await repair(pool).catch((e: unknown) => log.warn({ err: e }, 'putting back rows whose change failed waits for the shared database'));
      throw err instanceof SharedStoreError ? err : new SharedStoreError(err);
    }
  };

  let closed = false;
  const begin = (): Promise<SharedSession> => {
    if (closed) return Promise.reject(new Error('the shared tables are closed'));
    return new Promise<SharedSession>((resolveSession, rejectSession) => {
      void exclusive(async () => {
        let opened: { client: pg.PoolClient; head: number };
        try {
          opened = await open(true);
        } catch (err) {
          rejectSession(new SharedStoreError(err));
          return;
        }
        // the chain waits for this session's end; one not ended in time is refused and put back, so neither this node
        // nor the cluster waits on it for ever (what its handler still changes is a change outside a session)
        await new Promise<void>((release) => {
          let ended: Promise<void> | null = null;
          const finish = (refuse: boolean) => (ended ??= close(opened.client, opened.head, refuse).finally(() => {
            clearTimeout(limit);
            release();
          }));
          const limit = setTimeout(() => {
            log.error({ maxSessionMs }, 'a session on the shared tables was not ended in time: refused, its rows put back');
            finish(true).catch(() => {});
          }, maxSessionMs);
          limit.unref();
          resolveSession({ end: () => finish(false) });
        });
      });
    });
  };

  const write = async <T>(fn: () => T | Promise<T>): Promise<T> => {
    const session = await begin();
    let out: T;
    try {
      out = await fn();
    } catch (err) {
      // what it committed here before failing is pushed all the same
      await session.end();
      throw err;
    }
    await session.end();
    return out;
  };

  /**
   * Catch up without the lock (reads only), or in a session when rows changed here wait to be pushed. At most one
   * waits behind the one running: a flush and a notification asking at once are one sync.
   */
  let queued: Promise<void> | null = null;
  const sync = (): Promise<void> => (queued ??= exclusive(async () => {
    queued = null;
    if (closed) return;
    if (anyPending.get()) {
      const { client, head } = await open(false);
      await close(client, head);
    } else {
      await catchUp(null);
    }
  }));

  // start: which shared database this file follows, or its first contact with it — in one locked transaction, so two
  // first nodes starting at once cannot both bring their rows
  await exclusive(async () => {
    const client = await pool.connect();
    let head: number;
    try {
      await client.query('BEGIN');
      const locked = await lockHead(client);
      head = locked.head;
      const local = readSync.get();
      if (!local) {
        const held = countShared(sqlite);
        if (head > 0 && held > 0) {
          throw new ConfigError([`postgres.url: this node's data directory holds ${held} devices, residents, units, staff or accounts of its own, and the cluster's shared database holds others; a node joins a cluster with an empty data directory (its registry and accounts come from the cluster), or the first node brings its own (docs/scale-out.md)`]);
        }
        sqlite.transaction(() => {
          sqlite.prepare('INSERT INTO shared_sync (id, cluster, head, session) VALUES (1, ?, 0, 0)').run(locked.cluster);
          // the first node brings its registry, network and accounts
          for (const t of SHARED_TABLES) {
            sqlite.prepare(`INSERT OR IGNORE INTO shared_pending (tbl, key) SELECT '${t.table}', "${t.key}" FROM "${t.table}"${t.only ? ` AS NEW WHERE ${t.only('NEW')}` : ''}`).run();
          }
        }).immediate();
      } else if (local.cluster !== locked.cluster) {
        throw new ConfigError([`postgres.url: this node's data directory follows another cluster's shared database (${local.cluster}, this one is ${locked.cluster}); start the node on a new data directory, or point postgres.url at its own cluster`]);
      }
      await prepare(client, head, false);
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      client.release(true);
      throw err;
    }
    await close(client, head);
  });
  log.info({ head: readSync.get()!.head }, 'shared tables: this node\'s registry, network and accounts are current with the cluster');

  const follower: LogFollower = followLog({
    connect: opts.connect,
    channel: SHARED_CHANNEL,
    what: 'the shared tables',
    readHead: async () => Number((await pool.query<{ seq: string }>('SELECT seq FROM shared_head WHERE id = 1')).rows[0]!.seq),
    onHead: (seq) => {
      if (seq > readSync.get()!.head) void sync().catch((err: unknown) => log.warn({ err }, 'applying the shared tables\' changes failed; retried'));
    },
    log,
    pollMs: opts.pollMs ?? 1000,
  });
  // rows changed outside a session are pushed; and a catch-up that failed (PostgreSQL away a moment) is tried again
  // until this copy holds what the cluster's head says, not only when the next change is notified
  const flusher = setInterval(() => {
    if (anyPending.get() || follower.head() > readSync.get()!.head) {
      void sync().catch((err: unknown) => log.warn({ err }, 'bringing this node\'s shared tables up to the cluster failed; tried again'));
    }
  }, opts.flushMs ?? 250);
  flusher.unref();

  return {
    begin,
    write,
    sync,
    head: () => readSync.get()?.head ?? 0,
    async close() {
      closed = true;
      clearInterval(flusher);
      await follower.close();
      await chain;
    },
  };
}

/** Triggers noting every change to a shared row, on this connection (TEMP: a file without cluster mode has none). */
function installTriggers(sqlite: Database.Database): void {
  sqlite.exec(`CREATE TEMP TABLE IF NOT EXISTS ${APPLYING} (x INTEGER)`);
  for (const t of SHARED_TABLES) {
    // a row in flight and changed again is AGAIN (noted once the push commits, put back if it fails); one whose push
    // failed stays FAILED (put back)
    const note = (r: 'NEW' | 'OLD') => `INSERT INTO main.shared_pending (tbl, key, failed) VALUES ('${t.table}', ${r}."${t.key}", ${NOTED})
      ON CONFLICT (tbl, key) DO UPDATE SET failed = CASE WHEN failed = ${IN_FLIGHT} THEN ${AGAIN} ELSE failed END;`;
    const when = (r: 'NEW' | 'OLD') => `WHEN NOT EXISTS (SELECT 1 FROM temp.${APPLYING})${t.only ? ` AND ${t.only(r)}` : ''}`;
    sqlite.exec(`
      CREATE TEMP TRIGGER IF NOT EXISTS shared_${t.table}_ins AFTER INSERT ON "${t.table}" ${when('NEW')} BEGIN ${note('NEW')} END;
      CREATE TEMP TRIGGER IF NOT EXISTS shared_${t.table}_upd AFTER UPDATE ON "${t.table}" ${when('NEW')} BEGIN ${note('OLD')} ${note('NEW')} END;
      CREATE TEMP TRIGGER IF NOT EXISTS shared_${t.table}_del AFTER DELETE ON "${t.table}" ${when('OLD')} BEGIN ${note('OLD')} END;`);
  }
}

/** rows of the shared tables this file holds */
function countShared(sqlite: Database.Database): number {
  let n = 0;
  for (const t of SHARED_TABLES) {
    n += sqlite.prepare(`SELECT count(*) FROM "${t.table}"${t.only ? ` AS NEW WHERE ${t.only('NEW')}` : ''}`).pluck().get() as number;
  }
  return n;
}
