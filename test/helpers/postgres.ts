// A private PostgreSQL server for a test file (ops/cluster/postgres.ts): its port from the file's band of ports
// (./cluster-ports.ts), another stretch of the band when the port turns out taken. No PostgreSQL installed is a
// failure naming the package to install, never a skipped test: a skipped store test is a store nobody tested.
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve, sep } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll } from 'vitest';
import { openStore, type Store } from '../../core/db.js';
import { missingPostgresPackages, startPostgres, type PostgresServer } from '../../ops/cluster/postgres.js';
import { portFree } from '../../ops/cluster/processes.js';
import { migratePg, PG_MIGRATIONS_DIR } from '../../response/store/pg.js';
import { migrationsBefore } from './migrations.js';
import { BAND, FIRST, checkBand } from './cluster-ports.js';

/**
 * One free port of the file's band (as ./cluster-ports.ts lays the bands out): PostgreSQL needs a
 * single port, not a stretch of 100 — in the bands above 32768 other tests' client sockets leave few such stretches.
 */
async function freePortInBand(band: number): Promise<number> {
  checkBand(band);
  for (let i = 0; i < 200; i++) {
    const port = FIRST + band * BAND + Math.floor(Math.random() * BAND);
    if (await portFree(port)) return port;
  }
  throw new Error(`no free port in ${FIRST + band * BAND}..${FIRST + (band + 1) * BAND} on 127.0.0.1: stop what holds them`);
}

export async function startTestPostgres(o: { dir: string; band: number; fsync?: boolean; database?: string; user?: string }): Promise<PostgresServer> {
  const missing = missingPostgresPackages();
  if (missing.length) throw new Error(`PostgreSQL is needed for these tests: apt-get install -y --no-install-recommends ${missing.join(' ')}`);
  letPostgresThrough(o.dir);
  for (let attempt = 1; ; attempt++) {
    const port = await freePortInBand(o.band);
    try {
      // fsync on unless a test says otherwise: a durability test on a server that does not sync proves nothing
      return await startPostgres({ dir: o.dir, port, fsync: o.fsync ?? true, database: o.database, user: o.user });
    } catch (err) {
      // another process took the port between the check and the bind: another stretch
      if (attempt < 10 && /already in use/.test((err as Error).message)) continue;
      throw err;
    }
  }
}

/**
 * As root (CI), PostgreSQL runs as the `postgres` user, which must be able to reach the test's directory — usually
 * below the test's own mkdtemp directory, mode 0700, root's. Those temporary directories (and only those: below the
 * system's temp directory, ours) get search permission for the postgres group, nothing more (no listing, no reading).
 */
function letPostgresThrough(dir: string): void {
  if (process.getuid?.() !== 0) return;
  const entry = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('postgres:'));
  const gid = Number(entry?.split(':')[3]);
  if (!Number.isInteger(gid)) return; // startPostgres says what is missing
  const tmp = resolve(tmpdir());
  const target = resolve(dir);
  mkdirSync(dirname(target), { recursive: true });
  for (let p = dirname(target); p.startsWith(tmp + sep); p = dirname(p)) {
    const st = statSync(p);
    if (st.uid !== 0 || st.mode & 0o001 || (st.gid === gid && st.mode & 0o010)) continue;
    chownSync(p, st.uid, gid);
    chmodSync(p, (st.mode & 0o777) | 0o010);
  }
}

/** A test server whose app role may create databases: a fresh one per test group, migrated, its pools ended at stop. */
export interface PostgresForStores {
  server: PostgresServer;
  /**
   * a new database named `<prefix>_<random>` with drizzle-pg/'s migrations (`before`: only those before that tag, as
   * an older release left it); its pool is ended by stop()
   */
  fresh(prefix: string, max?: number, o?: { before?: string }): Promise<{ pool: pg.Pool; url: string }>;
  /** keep a pool the test made itself, to be ended by stop() */
  track(pool: pg.Pool): pg.Pool;
  stop(): Promise<void>;
}

export async function startPostgresForStores(o: { dir: string; band: number }): Promise<PostgresForStores> {
  const server = await startTestPostgres(o);
  const su = new pg.Client({ connectionString: server.superuserUrl });
  await su.connect();
  await su.query(`ALTER ROLE ${server.user} CREATEDB`);
  await su.end();
  const pools: pg.Pool[] = [];
  const track = (pool: pg.Pool) => {
    pools.push(pool);
    // pg's Pool.end() closes its idle connections without waiting for the server to see them go: the server's fast
    // shutdown right after can reach one first (57P01, "terminating connection due to administrator command"), which
    // the pool re-emits as 'error', and an 'error' nobody listens to ends the test process (seen once in CI). That one
    // is expected at stop; any other is a fault of the test and is printed.
    pool.on('error', (err: Error & { code?: string }) => {
      if (err.code !== '57P01') console.error('a PostgreSQL connection of a test pool failed:', err);
    });
    // a connection in use that the server ends (a test terminating a backend) errs on its client, whose pool listener
    // is off while it is checked out: the query in progress fails, as the node's own pools have it (core/pg-pool.ts)
    pool.on('connect', (client) => client.on('error', () => undefined));
    return pool;
  };
  return {
    server,
    track,
    async fresh(prefix, max = 10, opts = {}) {
      const name = `${prefix}_${Math.random().toString(36).slice(2, 10)}`;
      const admin = new pg.Client({ connectionString: server.url });
      await admin.connect();
      await admin.query(`CREATE DATABASE ${name}`);
      await admin.end();
      const url = server.url.replace(/\/[^/]+$/, `/${name}`);
      const pool = track(new pg.Pool({ connectionString: url, max }));
      await migratePg(pool, opts.before ? migrationsBefore(PG_MIGRATIONS_DIR, opts.before, o.dir) : undefined);
      return { pool, url };
    },
    async stop() {
      await Promise.all(pools.map((p) => p.end().catch(() => {})));
      await server.stop();
    },
  };
}

/**
 * A contract test file's two engines: a PostgreSQL server for stores (above) and a SQLite file with the committed
 * migrations, both in a temporary directory of the file's own, started before its tests and removed after them.
 */
export function useStoreEngines(o: { name: string; band: number; setupSqlite?: (store: Store) => void }): { pgs(): PostgresForStores; sqlite(): Store; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), `eldergate-${o.name}-`));
  let pgs: PostgresForStores | undefined;
  let sqlite: Store | undefined;
  beforeAll(async () => {
    pgs = await startPostgresForStores({ dir: join(dir, 'pg'), band: o.band });
    sqlite = openStore(join(dir, 'eldergate.db'));
    o.setupSqlite?.(sqlite);
  }, 120_000);
  afterAll(async () => {
    sqlite?.close();
    await pgs?.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  return { pgs: () => pgs!, sqlite: () => sqlite!, dir };
}

/** A call of either engine that must fail (contract tests): the synchronous one throws, the asynchronous one rejects. */
export async function fails(call: () => unknown): Promise<Error> {
  try {
    await call();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected the call to fail');
}
