// One private PostgreSQL server, for cluster mode's store: Debian's postgresql-15 binaries run straight from
// /usr/lib/postgresql/15/bin (else the newest version there), not through pg_ctlcluster, which manages the system's
// clusters under /etc/postgresql. Its data, Unix socket, log and passwords live under one directory, TCP is on
// 127.0.0.1 only, on a port the caller chooses. Nothing here touches the system's PostgreSQL (/var/lib/postgresql,
// /var/run/postgresql, port 5432).
//
// <dir>/data               the data directory (initdb; a restart keeps it and its data)
// <dir>/postgres.log       the server's stderr (logging_collector off)
// <dir>/postgres.password  the superuser's (postgres) password, 0600 — read by initdb, so it belongs to the server user
// <dir>/<user>.password    the application role's password, 0600, the caller's
// <dir>/.s.PGSQL.<port>    the Unix socket (password required there too)
//
// PostgreSQL refuses to run as root: as root, every server program runs as Debian's `postgres` system user and the
// directory is handed to it; as anybody else, as the caller.
import { execFile } from 'node:child_process';
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import { chownSync, existsSync, mkdirSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import pg from 'pg';
import { isAlive, portFree, processMentions, signal, tail, terminate, waitUntil, type RunResult } from './processes.js';

const PG_ROOT = '/usr/lib/postgresql';
const PREFERRED_VERSION = '15';

/** The binaries' directory: PostgreSQL 15's, or else the newest version installed under /usr/lib/postgresql. */
export const PG_BIN = findPgBin();
const INITDB = join(PG_BIN, 'initdb');
const PG_CTL = join(PG_BIN, 'pg_ctl');
const POSTGRES = join(PG_BIN, 'postgres');
const PG_ISREADY = join(PG_BIN, 'pg_isready');

/** The superuser initdb creates; its password is in <dir>/postgres.password. */
const SUPERUSER = 'postgres';
/** Linux's limit for a Unix socket's path (sun_path is 108 bytes with its terminating NUL). */
const MAX_SOCKET_PATH = 107;

function findPgBin(): string {
  const preferred = join(PG_ROOT, PREFERRED_VERSION, 'bin');
  if (existsSync(join(preferred, 'initdb'))) return preferred;
  let versions: string[] = [];
  try {
    versions = readdirSync(PG_ROOT).filter((v) => /^\d+$/.test(v) && existsSync(join(PG_ROOT, v, 'bin', 'initdb')));
  } catch {
    // no PostgreSQL at all: missingPostgresPackages() says what to install
  }
  versions.sort((a, b) => Number(b) - Number(a));
  return versions[0] ? join(PG_ROOT, versions[0], 'bin') : preferred;
}

/** What is missing to run a server here, as Debian packages (empty: nothing). */
export function missingPostgresPackages(): string[] {
  if ([INITDB, PG_CTL, POSTGRES, PG_ISREADY].every((f) => existsSync(f))) return [];
  // Debian 12 ships PostgreSQL 15 (what this is tested with); elsewhere the distribution's default version
  let debian12 = false;
  try {
    const release = readFileSync('/etc/os-release', 'utf8');
    debian12 = /^ID=debian$/m.test(release) && /^VERSION_ID="?12"?$/m.test(release);
  } catch {
    // no os-release: the generic name
  }
  return [debian12 ? `postgresql-${PREFERRED_VERSION}` : 'postgresql'];
}

export interface PostgresOptions {
  /** the server's directory (created if missing; see the file's header for what it holds) */
  dir: string;
  /** the TCP port on 127.0.0.1 (also names the Unix socket) */
  port: number;
  /** the application's database, owned by `user`; default 'eldergate' */
  database?: string;
  /** the application's role (LOGIN, no other privilege); default 'eldergate' */
  user?: string;
  /** false only for tests that do not test durability: a crash of the machine may then corrupt the data; default true */
  fsync?: boolean;
  /** how long the server may take to accept connections, in seconds; default 60 */
  startTimeoutS?: number;
}

export interface PostgresServer {
  /** the postmaster's pid (first line of <dataDir>/postmaster.pid) */
  pid: number;
  port: number;
  dir: string;
  dataDir: string;
  log: string;
  database: string;
  user: string;
  /** holds user's password (mode 0600) */
  passwordFile: string;
  /** postgres://user:password@127.0.0.1:port/database — holds the password: never log it */
  url: string;
  /** the superuser's URL, to the `postgres` database — holds the superuser's password: never log it */
  superuserUrl: string;
  /** `pg_ctl stop -m fast` (open transactions are rolled back, nothing committed is lost), SIGTERM/SIGKILL if that fails */
  stop(opts?: { graceMs?: number }): Promise<void>;
  /**
   * SIGKILL the postmaster and every process of it at once: a crash, no shutdown checkpoint, postmaster.pid left
   * behind. The next start on the directory recovers from the write-ahead log. Returns once they are gone (blocks
   * for the few milliseconds that takes).
   */
  kill9(): void;
}

/** Whom the server programs run as: undefined is the caller itself. */
interface ServerUser {
  name: string;
  uid: number;
  gid: number;
}

function serverUser(): ServerUser | undefined {
  if (process.getuid?.() !== 0) return undefined;
  let passwd = '';
  try {
    passwd = readFileSync('/etc/passwd', 'utf8');
  } catch {
    // said below
  }
  const line = passwd.split('\n').find((l) => l.startsWith(`${SUPERUSER}:`));
  const [, , uid, gid] = line?.split(':') ?? [];
  if (!line || !/^\d+$/.test(uid ?? '') || !/^\d+$/.test(gid ?? '')) {
    throw new Error(`PostgreSQL refuses to run as root, and there is no "${SUPERUSER}" system user in /etc/passwd to run it as: apt-get install ${missingPostgresPackages()[0] ?? 'postgresql-15'} creates it — or run this as an ordinary user`);
  }
  return { name: SUPERUSER, uid: Number(uid), gid: Number(gid) };
}

/** The environment of every server program: nothing inherited from the caller's PG* (PGDATA, PGPORT… of another server). */
function serverEnv(home: string): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('PG')));
  // English messages in the log and in initdb's output (an error is matched and quoted from them); C.UTF-8 is built
  // into Debian 12's glibc, so no locale package is needed
  return { ...env, HOME: home, LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8' };
}

/** `run` from processes.ts, as the server user and in the server's directory (PostgreSQL refuses root). */
function runAs(who: ServerUser | undefined, cmd: string, args: string[], cwd: string, timeoutMs: number): Promise<RunResult> {
  return new Promise((resolvePromise) => {
    execFile(cmd, args, { cwd, env: serverEnv(cwd), timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 1024 * 1024, ...(who ? { uid: who.uid, gid: who.gid } : {}) },
      (err, stdout, stderr) => {
        const code = !err ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as unknown as { code: number }).code : 1;
        resolvePromise({ code, stdout: String(stdout).slice(-16_000), stderr: String(stderr).slice(-16_000) });
      }).stdin?.end();
  });
}

function lastLines(r: RunResult, lines = 12): string {
  return `${r.stdout}\n${r.stderr}`.trim().split('\n').slice(-lines).join('\n');
}

/** postmaster.pid: pid on line 1, port on line 4 (PostgreSQL's own lock file). */
function readPostmasterPid(dataDir: string): { pid: number; port: number | undefined } | undefined {
  try {
    const lines = readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n');
    const pid = Number(lines[0]);
    const port = Number(lines[3]);
    return Number.isInteger(pid) && pid > 0 ? { pid, port: Number.isInteger(port) && port > 0 ? port : undefined } : undefined;
  } catch {
    return undefined;
  }
}

/** Is pid a postmaster of this data directory? It runs with `-D <dataDir>` and chdir's into it (pid reuse: check both). */
function isPostmasterOf(pid: number, dataDir: string): boolean {
  if (!isAlive(pid)) return false;
  if (processMentions(pid, `-D ${dataDir} `)) return true;
  try {
    return readlinkSync(`/proc/${pid}/cwd`) === dataDir;
  } catch {
    return false;
  }
}

/** The running postmaster of dataDir, from its lock file; undefined when none runs. */
function runningPostmaster(dataDir: string): { pid: number; port: number | undefined } | undefined {
  const lock = readPostmasterPid(dataDir);
  return lock && isPostmasterOf(lock.pid, dataDir) ? lock : undefined;
}

/** Does a process (also a zombie: exited, not yet reaped) hold this pid? What PostgreSQL's lock-file check asks. */
function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Live processes whose working directory is dir: a postmaster and every backend of it run in their data directory. */
function processesIn(dir: string): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (readlinkSync(`/proc/${e}/cwd`) === dir && isAlive(Number(e))) out.push(Number(e));
    } catch {
      // exited while we looked, or not ours to read (then not the server's either: it runs as us, or we are root)
    }
  }
  return out;
}

/** A postmaster and its processes (backends and helpers): what a bench pins to the system-under-test core. */
export function serverPids(postmaster: number): number[] {
  return [postmaster, ...childrenOf(postmaster)];
}

/** The pids whose parent is pid (a postmaster's backends and helpers). */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      // fields after the command name (which may hold spaces and parentheses): state, ppid, …
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) out.push(Number(e));
    } catch {
      // exited while we looked
    }
  }
  return out;
}

/**
 * Stop the postmaster `pid` of dataDir: `pg_ctl stop -m fast` as the data directory's owner, then SIGTERM/SIGKILL
 * for what is left. Throws when it still runs afterwards.
 */
async function stopServer(dataDir: string, pid: number, graceMs: number): Promise<void> {
  if (!isPostmasterOf(pid, dataDir)) return;
  // pg_ctl refuses root too: as root, run it as whoever owns the data directory (the server runs as that user)
  let who: ServerUser | undefined;
  if (process.getuid?.() === 0) {
    const st = statSync(dataDir);
    who = { name: String(st.uid), uid: st.uid, gid: st.gid };
  }
  const seconds = Math.max(1, Math.ceil(graceMs / 1000));
  const r = await runAs(who, PG_CTL, ['stop', '-D', dataDir, '-m', 'fast', '-w', '-t', String(seconds)], dirname(dataDir), graceMs + 10_000);
  // `pg_ctl -w` returns once postmaster.pid is gone, and the postmaster removes it just before it exits: on a loaded
  // machine the process can still be tearing down (its command line already empty) when pg_ctl returns
  const gone = async (): Promise<boolean> => !isPostmasterOf(pid, dataDir);
  if (!(await waitUntil(gone, r.code === 0 ? 10_000 : 1_000))) {
    // pg_ctl failed or timed out (a backend that ignores the signal): SIGTERM is a smart shutdown, then SIGKILL
    const children = childrenOf(pid);
    await terminate([pid], `-D ${dataDir} `, 2_000);
    for (const c of children) if (isAlive(c)) signal(c, 'SIGKILL');
    if (!(await waitUntil(async () => !isAlive(pid), 5_000))) throw new Error(`PostgreSQL of ${dataDir} (pid ${pid}) still runs after \`pg_ctl stop\` (${lastLines(r, 3) || `exit ${r.code}`}) and SIGKILL: is it another user's process?`);
  }
}

/** Stop the server started earlier from dir, if one runs (for `npm run cluster -- stop`: only the directory is known). */
export async function stopPostgres(dir: string, graceMs = 30_000): Promise<void> {
  const dataDir = join(resolve(dir), 'data');
  const running = runningPostmaster(dataDir);
  if (running) await stopServer(dataDir, running.pid, graceMs);
}

/** The SCRAM-SHA-256 verifier of a password, as PostgreSQL stores it (RFC 5802, 7677; PostgreSQL's scram-common.c). */
function scramVerifier(password: string): string {
  // our passwords are base64url (ASCII), for which SASLprep changes nothing
  const iterations = 4096;
  const salt = randomBytes(16);
  const salted = pbkdf2Sync(password, salt, iterations, 32, 'sha256');
  const storedKey = createHash('sha256').update(createHmac('sha256', salted).update('Client Key').digest()).digest();
  const serverKey = createHmac('sha256', salted).update('Server Key').digest();
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}

function ident(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** A password file: created with a fresh random password if missing, kept (and made 0600) if present. */
function passwordIn(file: string): string {
  if (!existsSync(file)) writeFileSync(file, randomBytes(24).toString('base64url') + '\n', { mode: 0o600, flag: 'wx' });
  const st = statSync(file);
  if ((st.mode & 0o077) !== 0) throw new Error(`${file} is readable by others (mode ${(st.mode & 0o777).toString(8)}): a password file must be 0600 — chmod 600 ${file}, and change the password if others may have read it`);
  const password = readFileSync(file, 'utf8').trim();
  if (password.length < 16) throw new Error(`${file} holds no usable password (fewer than 16 characters): remove it to have a new one generated (and its role altered to it)`);
  return password;
}

/** Can `who` reach path, i.e. search every directory above it? (for the clear error before initdb's obscure one) */
function unreachableParent(path: string, who: ServerUser): string | undefined {
  for (let p = dirname(path); ; p = dirname(p)) {
    const st = statSync(p);
    const bit = st.uid === who.uid ? 0o100 : st.gid === who.gid ? 0o010 : 0o001;
    if (!(st.mode & bit)) return `${p} (mode ${(st.mode & 0o777).toString(8)}, owner uid ${st.uid})`;
    if (p === dirname(p)) return undefined;
  }
}

function validName(what: string, name: string): string {
  // a plain lower-case SQL identifier: no quoting surprises in URLs, psql or pg_hba
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) throw new Error(`${what}: "${name}" is not a plain name (lower-case letters, digits and '_', starting with a letter or '_', at most 63)`);
  if (name === SUPERUSER || name.startsWith('pg_')) throw new Error(`${what}: "${name}" is PostgreSQL's own (the superuser's, or reserved): choose another, e.g. eldergate`);
  return name;
}

export async function startPostgres(opts: PostgresOptions): Promise<PostgresServer> {
  const missing = missingPostgresPackages();
  if (missing.length) throw new Error(`PostgreSQL is not installed (${INITDB} missing): apt-get install -y --no-install-recommends ${missing.join(' ')}`);
  const { port } = opts;
  if (!Number.isInteger(port) || port < 1024 || port > 65535) throw new Error(`port: ${port} is not a port from 1024 to 65535`);
  const database = validName('database', opts.database ?? 'eldergate');
  const user = validName('user', opts.user ?? 'eldergate');
  const fsync = opts.fsync ?? true;
  const timeoutS = opts.startTimeoutS ?? 60;

  const dir = resolve(opts.dir);
  const dataDir = join(dir, 'data');
  const log = join(dir, 'postgres.log');
  const superPasswordFile = join(dir, 'postgres.password');
  const passwordFile = join(dir, `${user}.password`);
  const socket = join(dir, `.s.PGSQL.${port}`);
  if (Buffer.byteLength(socket) > MAX_SOCKET_PATH) {
    throw new Error(`${dir} is too long a path for PostgreSQL's Unix socket there (${socket} is ${Buffer.byteLength(socket)} bytes; Linux allows ${MAX_SOCKET_PATH}): choose a shorter directory`);
  }

  // before anything is written: is this directory's server already up, and is the port free?
  const running = runningPostmaster(dataDir);
  if (running) {
    throw new Error(`PostgreSQL already runs from ${dataDir} (pid ${running.pid}${running.port ? `, port ${running.port}` : ''}): use it, or stop it first — \`npm run cluster -- stop\` for the cluster's, stopPostgres('${dir}') in code, or \`${PG_CTL} stop -D ${dataDir}\` as the user that owns ${dataDir}`);
  }
  if (!(await portFree(port))) {
    throw new Error(`port ${port} is already in use on 127.0.0.1: pass another port (\`npm run cluster\`: another --base-port), or stop what holds it (\`ss -ltnp 'sport = :${port}'\` shows it)`);
  }

  const who = serverUser();
  const serverUid = who?.uid ?? process.getuid!();
  mkdirSync(dirname(dir), { recursive: true });
  if (who) {
    const blocked = unreachableParent(dir, who);
    if (blocked) throw new Error(`PostgreSQL runs as the ${who.name} user here (it refuses root), and that user cannot reach ${dir}: ${blocked} is not searchable by it. Choose a directory it can reach (e.g. under /tmp), or chmod o+x that directory`);
  }
  if (!existsSync(dir)) mkdirSync(dir, { mode: 0o700 });
  const dirOwner = statSync(dir).uid;
  if (dirOwner !== serverUid && !(who && dirOwner === 0)) {
    throw new Error(`${dir} belongs to uid ${dirOwner}, not to ${who ? `the ${who.name} user (uid ${who.uid}) PostgreSQL runs as` : `you (uid ${serverUid})`}: it is someone else's — choose another directory`);
  }
  if (existsSync(dataDir) && statSync(dataDir).uid !== serverUid) {
    throw new Error(`${dataDir} belongs to uid ${statSync(dataDir).uid}, not to ${who ? `the ${who.name} user (uid ${who.uid}) PostgreSQL runs as` : `you (uid ${serverUid})`}: it is someone else's database — choose another directory (or, if it is yours: chown -R ${serverUid} ${dataDir})`);
  }
  /** everything the server reads or writes is the server user's (root only: as anybody else it is ours already) */
  const handOver = (path: string) => {
    if (who) chownSync(path, who.uid, who.gid);
  };
  handOver(dir);

  // the superuser's password is written before initdb reads it (--pwfile) and stays the one way in for setup
  const initialised = existsSync(join(dataDir, 'PG_VERSION'));
  if (initialised && !existsSync(superPasswordFile)) {
    throw new Error(`${dataDir} is initialised but ${superPasswordFile} is missing: without the superuser's password its roles cannot be set up. Restore that file, or remove ${dir} for a new (empty) server`);
  }
  const superPassword = passwordIn(superPasswordFile);
  handOver(superPasswordFile);
  if (!initialised) {
    const r = await runAs(who, INITDB, [
      '-D', dataDir, '-U', SUPERUSER, `--pwfile=${superPasswordFile}`,
      // a password on every connection, over TCP and the Unix socket alike (no `trust`, no `peer`)
      '--auth-host=scram-sha-256', '--auth-local=scram-sha-256',
      '-E', 'UTF8', '--locale=C.UTF-8',
      // page checksums: a torn or rotted page of the incidents store is reported, not read as data
      '--data-checksums',
      ...(fsync ? [] : ['--no-sync']),
    ], dir, 120_000);
    if (r.code !== 0) {
      // nothing to clean up: initdb removes a data directory it created, and empties again one it found empty
      throw new Error(`initdb of ${dataDir} failed (exit ${r.code}):\n${lastLines(r)}`);
    }
  }

  // our settings, rewritten at every start (the port may change); postgresql.conf includes them last, so they win
  const conf = join(dataDir, 'eldergate.conf');
  const quote = (s: string) => `'${s.replace(/'/g, "''")}'`;
  writeFileSync(conf, [
    '# written by ops/cluster/postgres.ts at every start; included at the end of postgresql.conf',
    "listen_addresses = '127.0.0.1'",
    `port = ${port}`,
    // our own socket directory: /var/run/postgresql is the system's, and not ours to write as anybody but postgres
    `unix_socket_directories = ${quote(dir)}`,
    'unix_socket_permissions = 0700',
    `fsync = ${fsync ? 'on' : 'off'}`,
    // an incident is acknowledged once it is on disk, not later
    'synchronous_commit = on',
    'full_page_writes = on',
    'max_connections = 200',
    // stderr, which pg_ctl -l sends to <dir>/postgres.log (no collector process, no log directory in the data)
    'logging_collector = off',
    "log_destination = 'stderr'",
    "log_line_prefix = '%m [%p] %q%u@%d '",
    "lc_messages = 'C'",
    // never 'ddl' or 'all': every CREATE/ALTER ROLE … PASSWORD would be written to the log (ours carry a SCRAM
    // verifier, not the password; someone's ALTER ROLE by hand in psql may not)
    "log_statement = 'none'",
    "password_encryption = 'scram-sha-256'",
    // every process of the server names its directory in ps (pgrep -af <dir> finds them all)
    `cluster_name = ${quote(`eldergate ${dir}`)}`,
    '',
  ].join('\n'), { mode: 0o600 });
  handOver(conf);
  const mainConf = join(dataDir, 'postgresql.conf');
  const include = "include = 'eldergate.conf'";
  const mainText = readFileSync(mainConf, 'utf8');
  if (!mainText.split('\n').includes(include)) writeFileSync(mainConf, `${mainText.replace(/\n?$/, '\n')}\n# ops/cluster/postgres.ts: its settings, last so that they win\n${include}\n`);

  // A postmaster.pid left by a server that is gone: PostgreSQL ignores it when its pid no longer exists, but refuses
  // to start ("lock file already exists") while the pid does — a killed postmaster not yet reaped by init (seen here
  // right after kill9), or the pid reused by an unrelated process. The pid is not a postmaster of this directory
  // (checked above); once no process works in the directory any more (each backend's cwd is it: an orphaned one
  // would still be attached to the old shared memory), the file is stale and goes.
  const lock = readPostmasterPid(dataDir);
  if (lock && pidExists(lock.pid) && !(await waitUntil(async () => !pidExists(lock.pid), 3_000))) {
    const left = processesIn(dataDir);
    if (left.length) {
      throw new Error(`processes of an earlier PostgreSQL of ${dataDir} still run (pids ${left.join(', ')}; its postmaster ${lock.pid} is gone): wait for them to exit, or end them (kill ${left.join(' ')}), then start again`);
    }
    rmSync(join(dataDir, 'postmaster.pid'), { force: true });
  }

  if (!existsSync(log)) writeFileSync(log, '', { mode: 0o600 });
  handOver(log);
  // pg_ctl starts the postmaster in a session of its own, its output to the log: it outlives this process
  // (`npm run cluster` exits, the server stays) and a Ctrl-C meant for the caller does not reach it
  const started = await runAs(who, PG_CTL, ['start', '-D', dataDir, '-w', '-t', String(timeoutS), '-l', log], dir, (timeoutS + 30) * 1000);
  const up = runningPostmaster(dataDir);
  if (started.code !== 0 || !up) {
    if (up) await stopServer(dataDir, up.pid, 5_000).catch(() => undefined);
    const logTail = tail(log, 15);
    if (/could not bind .*Address already in use/i.test(logTail)) {
      throw new Error(`port ${port} is already in use on 127.0.0.1 (PostgreSQL could not bind it): pass another port (\`npm run cluster\`: another --base-port), or stop what holds it`);
    }
    throw new Error(`PostgreSQL did not start from ${dataDir} (pg_ctl: ${lastLines(started, 3) || `exit ${started.code}`}). Its log (${log}):\n${logTail}`);
  }
  const pid = up.pid;

  const password = passwordIn(passwordFile);
  const enc = encodeURIComponent;
  const superuserUrl = `postgres://${SUPERUSER}:${enc(superPassword)}@127.0.0.1:${port}/postgres`;
  const url = `postgres://${user}:${enc(password)}@127.0.0.1:${port}/${database}`;
  try {
    await setUpRole(superuserUrl, user, password, database, pid, dataDir);
  } catch (err) {
    await stopServer(dataDir, pid, 5_000).catch(() => undefined);
    throw err;
  }

  return {
    pid,
    port,
    dir,
    dataDir,
    log,
    database,
    user,
    passwordFile,
    url,
    superuserUrl,
    // only the server this call started: a later server of the same directory is its starter's to stop
    stop: ({ graceMs = 30_000 } = {}) => stopServer(dataDir, pid, graceMs),
    kill9() {
      if (!isPostmasterOf(pid, dataDir)) return;
      const children = childrenOf(pid);
      // the postmaster first, so that it cannot restart a backend it sees die
      signal(pid, 'SIGKILL');
      for (const c of children) signal(c, 'SIGKILL');
      // a SIGKILLed process takes a moment to die: wait (a few ms) so that a start right after this sees it gone
      const deadline = Date.now() + 5_000;
      while ([pid, ...children].some(isAlive) && Date.now() < deadline) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
    },
  };
}

/**
 * The application's role and database, idempotently. The role's password is set at every start (the file and the
 * role always agree, also for a directory reused from an earlier run), sent as a SCRAM verifier computed here: the
 * password itself never reaches the server, so no log or statistics view can show it.
 */
async function setUpRole(superuserUrl: string, user: string, password: string, database: string, pid: number, dataDir: string): Promise<void> {
  let client: pg.Client | undefined;
  let last: Error | undefined;
  let refused = false;
  // pg_ctl -w returned once the server said "ready"; the wait only covers a server busy with crash recovery
  const connected = await waitUntil(async () => {
    const c = new pg.Client({ connectionString: superuserUrl, connectionTimeoutMillis: 5_000 });
    c.on('error', () => undefined);
    try {
      await c.connect();
      client = c;
      return true;
    } catch (err) {
      last = err as Error;
      await c.end().catch(() => undefined);
      // a wrong password does not get right by waiting
      refused = (err as { code?: string }).code === '28P01';
      return refused;
    }
  }, 30_000, () => isAlive(pid), 250);
  if (refused) {
    throw new Error(`PostgreSQL of ${dataDir} refused the superuser's password from ${join(dirname(dataDir), 'postgres.password')} (was the file replaced?): restore the file it was initialised with, or remove ${dirname(dataDir)} for a new server`);
  }
  if (!connected || !client) throw new Error(`PostgreSQL of ${dataDir} runs (pid ${pid}) but does not accept the superuser's connection on 127.0.0.1: ${last?.message ?? 'it exited'}`);
  try {
    const verifier = scramVerifier(password);
    const role = await client.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [user]);
    // utility statements take no parameters: the verifier is base64 and '$:', the name was checked (validName).
    // A new role gets no privilege beyond logging in; an existing one keeps what was granted to it since
    if (!role.rowCount) await client.query(`CREATE ROLE ${ident(user)} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD '${verifier}'`);
    else await client.query(`ALTER ROLE ${ident(user)} LOGIN PASSWORD '${verifier}'`);
    const db = await client.query<{ owner: string }>('SELECT pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = $1', [database]);
    if (!db.rowCount) await client.query(`CREATE DATABASE ${ident(database)} OWNER ${ident(user)}`);
    else if (db.rows[0]!.owner !== user) await client.query(`ALTER DATABASE ${ident(database)} OWNER TO ${ident(user)}`);
  } finally {
    await client.end().catch(() => undefined);
  }
}
