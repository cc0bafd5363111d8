// Cluster mode's PostgreSQL (ops/cluster/postgres.ts): a real PostgreSQL 15 from Debian's packages, started on a
// private port and data directory, talked to with `pg`. What the store will stand on: the application's role can
// write and read, passwords are its own files (0600) and reach neither the log nor a command line, a wrong password is
// refused, nothing listens beyond 127.0.0.1, a restart keeps the data, a crash (kill -9 of every server process)
// recovers with every committed row, and a second server on a running directory is refused with its pid.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { startPostgres, stopPostgres, type PostgresServer } from '../../ops/cluster/postgres.js';
import { isAlive, pidsMentioning, portFree } from '../../ops/cluster/processes.js';
import { startTestPostgres } from '../helpers/postgres.js';

// band 27 (PostgreSQL only: the bands below the kernel's ephemeral ports are for the files that start RabbitMQ): no other test file's (grep `band:` and freeBasePort under test/)
const BAND = 27;

/** a connected client; its 'error' event (the server killed under it) is expected here, not a crash of the test */
async function connect(url: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

async function query<T extends pg.QueryResultRow>(url: string, sql: string, params: unknown[] = []): Promise<T[]> {
  const c = await connect(url);
  try {
    return (await c.query<T>(sql, params)).rows;
  } finally {
    await c.end().catch(() => undefined);
  }
}

/** TCP sockets listening on port, from /proc/net/tcp{,6}: [address in hex as the kernel writes it, family] */
function listeners(port: number): string[] {
  const found: string[] = [];
  for (const f of ['tcp', 'tcp6']) {
    for (const line of readFileSync(`/proc/net/${f}`, 'utf8').split('\n').slice(1)) {
      const [, local, , state] = line.trim().split(/\s+/);
      if (!local || state !== '0A') continue;
      const [addr, hexPort] = local.split(':');
      if (parseInt(hexPort!, 16) === port) found.push(`${f} ${addr}`);
    }
  }
  return found;
}

describe('cluster mode\'s PostgreSQL: private port and data directory', () => {
  let dir: string;
  let server: PostgresServer;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'eldergate-pg-'));
    server = await startTestPostgres({ dir: join(dir, 'pg'), band: BAND });
  }, 60_000);

  afterAll(async () => {
    if (dir) {
      await stopPostgres(join(dir, 'pg'), 10_000);
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);

  it('the application role writes and reads a table in its own database, and is no superuser', async () => {
    expect(server.url).toMatch(/^postgres:\/\/eldergate:[^@]+@127\.0\.0\.1:\d+\/eldergate$/);
    const c = await connect(server.url);
    try {
      await c.query('CREATE TABLE probe (id integer PRIMARY KEY, note text NOT NULL)');
      await c.query('INSERT INTO probe VALUES ($1, $2), ($3, $4)', [1, 'first', 2, 'zweite ü']);
      expect((await c.query('SELECT id, note FROM probe ORDER BY id')).rows).toEqual([{ id: 1, note: 'first' }, { id: 2, note: 'zweite ü' }]);
      const who = (await c.query('SELECT current_user AS u, current_database() AS d, r.rolsuper, r.rolcreaterole, r.rolcreatedb, pg_get_userbyid(db.datdba) AS owner, pg_encoding_to_char(db.encoding) AS enc FROM pg_roles r, pg_database db WHERE r.rolname = current_user AND db.datname = current_database()')).rows[0];
      expect(who).toEqual({ u: 'eldergate', d: 'eldergate', rolsuper: false, rolcreaterole: false, rolcreatedb: false, owner: 'eldergate', enc: 'UTF8' });
    } finally {
      await c.end();
    }
  });

  it('its settings: 127.0.0.1 only, its own socket directory, fsync and synchronous commit on, 200 connections', async () => {
    const rows = await query<{ name: string; setting: string }>(server.superuserUrl, "SELECT name, setting FROM pg_settings WHERE name IN ('listen_addresses', 'port', 'unix_socket_directories', 'fsync', 'synchronous_commit', 'max_connections', 'data_checksums', 'password_encryption')");
    expect(Object.fromEntries(rows.map((r) => [r.name, r.setting]))).toEqual({
      listen_addresses: '127.0.0.1',
      port: String(server.port),
      unix_socket_directories: server.dir,
      fsync: 'on',
      synchronous_commit: 'on',
      max_connections: '200',
      data_checksums: 'on',
      password_encryption: 'scram-sha-256',
    });
    // the kernel's view: one listening socket on the port, 127.0.0.1 (0100007F), no IPv6, no wildcard
    expect(listeners(server.port)).toEqual(['tcp 0100007F']);
    expect(existsSync(join(server.dir, `.s.PGSQL.${server.port}`))).toBe(true);
    expect(existsSync(`/var/run/postgresql/.s.PGSQL.${server.port}`)).toBe(false);
  });

  it('passwords: two files, 0600, different, random; neither in the log nor on the server\'s command line', async () => {
    const superFile = join(server.dir, 'postgres.password');
    for (const f of [superFile, server.passwordFile]) expect(statSync(f).mode & 0o777, f).toBe(0o600);
    const superPassword = readFileSync(superFile, 'utf8').trim();
    const password = readFileSync(server.passwordFile, 'utf8').trim();
    expect(password).not.toBe(superPassword);
    for (const p of [password, superPassword]) expect(p.length).toBeGreaterThanOrEqual(24);
    // the role was set up through the log's writer: still nothing of either password in it
    const log = readFileSync(server.log, 'utf8');
    expect(log).toContain('database system is ready to accept connections');
    for (const p of [password, superPassword]) {
      expect(log.includes(p), 'a password in postgres.log').toBe(false);
      expect(readFileSync(`/proc/${server.pid}/cmdline`, 'utf8').includes(p), 'a password on the command line').toBe(false);
      expect(readFileSync(join(server.dataDir, 'postmaster.opts'), 'utf8').includes(p)).toBe(false);
    }
    // the role holds a SCRAM verifier, never the password
    const [role] = await query<{ rolpassword: string }>(server.superuserUrl, 'SELECT rolpassword FROM pg_authid WHERE rolname = $1', [server.user]);
    expect(role!.rolpassword).toMatch(/^SCRAM-SHA-256\$4096:/);
    expect(role!.rolpassword).not.toContain(password);
  });

  it('a wrong password is refused, over TCP and over the Unix socket; so is the app\'s password for the superuser', async () => {
    const password = readFileSync(server.passwordFile, 'utf8').trim();
    const refused = async (config: pg.ClientConfig) => {
      const c = new pg.Client({ ...config, connectionTimeoutMillis: 5_000 });
      c.on('error', () => undefined);
      const err = await c.connect().then(() => undefined, (e: unknown) => e as { code?: string });
      await c.end().catch(() => undefined);
      return err?.code;
    };
    expect(await refused({ connectionString: `postgres://eldergate:wrong-${password}@127.0.0.1:${server.port}/eldergate` })).toBe('28P01');
    expect(await refused({ connectionString: `postgres://postgres:${password}@127.0.0.1:${server.port}/postgres` })).toBe('28P01');
    // the socket directory asks for a password too (--auth-local=scram-sha-256: no peer, no trust)
    expect(await refused({ host: server.dir, port: server.port, user: 'eldergate', database: 'eldergate', password: 'wrong' })).toBe('28P01');
    expect(await refused({ host: server.dir, port: server.port, user: 'postgres', database: 'postgres', password: 'wrong' })).toBe('28P01');
  });

  it('a second start on the directory of a running server fails, naming its pid and how to stop it', async () => {
    const err = await startPostgres({ dir: server.dir, port: server.port + 1 }).then(() => undefined, (e: Error) => e);
    expect(err?.message).toContain(`PostgreSQL already runs from ${server.dataDir} (pid ${server.pid}, port ${server.port})`);
    expect(err?.message).toContain('npm run cluster -- stop');
    expect(isAlive(server.pid)).toBe(true);
  });

  it('a port in use is refused before anything is written, naming the port', async () => {
    const holder: Server = createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
    const port = (holder.address() as { port: number }).port;
    const other = join(dir, 'other');
    try {
      const err = await startPostgres({ dir: other, port }).then(() => undefined, (e: Error) => e);
      expect(err?.message).toMatch(new RegExp(`^port ${port} is already in use on 127\\.0\\.0\\.1: pass another port`));
      expect(existsSync(other)).toBe(false);
    } finally {
      await new Promise((r) => holder.close(r));
    }
  });

  it('stop, then start again on the same directory (another port): the data and the passwords are kept', { timeout: 30_000 }, async () => {
    const { pid, port } = server;
    const password = readFileSync(server.passwordFile, 'utf8');
    await server.stop();
    expect(isAlive(pid)).toBe(false);
    expect(existsSync(join(server.dataDir, 'postmaster.pid'))).toBe(false);
    expect(await portFree(port)).toBe(true);

    server = await startTestPostgres({ dir: join(dir, 'pg'), band: BAND });
    expect(server.pid).not.toBe(pid);
    expect(readFileSync(server.passwordFile, 'utf8')).toBe(password);
    expect(await query(server.url, 'SELECT id, note FROM probe ORDER BY id')).toEqual([{ id: 1, note: 'first' }, { id: 2, note: 'zweite ü' }]);
  });

  it('kill -9 of every server process, then a start on the directory: it recovers, with every committed row and none other', { timeout: 30_000 }, async () => {
    const committed = await connect(server.url);
    await committed.query('INSERT INTO probe VALUES (3, $1)', ['committed before the crash']);
    const open = await connect(server.url);
    await open.query('BEGIN');
    await open.query('INSERT INTO probe VALUES (4, $1)', ['never committed']);
    const { pid } = server;
    server.kill9();
    expect(isAlive(pid)).toBe(false);
    // the crash leaves the lock file behind: the next start has to cope with it
    expect(existsSync(join(server.dataDir, 'postmaster.pid'))).toBe(true);
    await committed.end().catch(() => undefined);
    await open.end().catch(() => undefined);

    const logBefore = readFileSync(server.log, 'utf8').length;
    server = await startTestPostgres({ dir: join(dir, 'pg'), band: BAND });
    expect(readFileSync(server.log, 'utf8').slice(logBefore)).toMatch(/database system was interrupted|not properly shut down; automatic recovery in progress/);
    expect(await query(server.url, 'SELECT id, note FROM probe ORDER BY id')).toEqual([
      { id: 1, note: 'first' },
      { id: 2, note: 'zweite ü' },
      { id: 3, note: 'committed before the crash' },
    ]);
  });

  it('stopPostgres(dir), knowing only the directory, leaves no process of it', { timeout: 30_000 }, async () => {
    const { pid } = server;
    // cluster_name names the directory in every server process's title: the postmaster and its helpers are found
    const running = pidsMentioning(server.dir);
    expect(running).toContain(pid);
    expect(running.length).toBeGreaterThan(3);
    await stopPostgres(server.dir);
    expect(isAlive(pid)).toBe(false);
    expect(pidsMentioning(server.dir)).toEqual([]);
    let pgrep = '';
    try {
      pgrep = execFileSync('pgrep', ['-af', server.dir], { encoding: 'utf8' });
    } catch {
      // exit code 1: nothing matched
    }
    expect(pgrep).toBe('');
    // and again: nothing runs, nothing to do
    await stopPostgres(server.dir);
  });
});
