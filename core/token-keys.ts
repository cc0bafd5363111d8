// The token-signing key, kept outside the database: a copy of the database (a backup, a support bundle) must not be
// enough to mint an admin token. The key comes from ELDERGATE_AUTH_SIGNING_KEY, or from a key file (JSON, 0600, in a
// 0700 directory beside the data directory, or auth.keyFile). A key found in the database (gateways before this
// change) is moved to the key file on first start and deleted from the database, so sessions carry on.
//
// Rotation (`npm run rotate-token-key`, docs/security.md): a new key signs from then on; the previous one still
// verifies for one token lifetime (http.tokenTtlS, ≤ 24 h), by which time every token it signed has expired anyway,
// so no console is logged out by a rotation (consoles renew their token and get one signed with the new key).
// `--now` drops the previous keys at once (the key leaked): everyone logs in again. A running gateway picks up the
// rotated file within a second.
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname, join, resolve } from 'node:path';
import { eq } from 'drizzle-orm';
import type { Config } from './config.js';
import type { Db } from './db.js';
import { ConfigError } from './errors.js';
import type { Logger } from './logger.js';
import { secrets } from './schema.js';

/** What signs and verifies tokens: one key signs, the keys still in their grace period verify too. */
export interface TokenKeyring {
  signing(): Buffer;
  verifying(): Buffer[];
}

interface StoredKey {
  key: string;
  createdAt: number;
  /** when it stopped signing; it verifies until retiredAt + grace */
  retiredAt?: number;
}
interface KeyFile {
  version: 1;
  keys: StoredKey[];
}

/** The database's old name for the token key (core/secrets.ts, before keys left the database). */
export const DB_TOKEN_KEY = 'token-key';
const RELOAD_EVERY_MS = 1000;

export function tokenKeyFile(config: Pick<Config, 'dataDir' | 'auth'>): string {
  return config.auth.keyFile ? resolve(config.auth.keyFile) : join(`${resolve(config.dataDir)}-keys`, 'token-signing-key.json');
}

const decode = (k: StoredKey) => Buffer.from(k.key, 'base64');

function readKeyFile(file: string): KeyFile {
  let parsed: KeyFile;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8')) as KeyFile;
  } catch (err) {
    throw new ConfigError([`${file} (auth.keyFile, ELDERGATE_AUTH_KEY_FILE): cannot read the token-signing key (${(err as Error).message}); restore it from your key backup, or remove it to start with a new key (everyone logs in again)`]);
  }
  if (parsed?.version !== 1 || !Array.isArray(parsed.keys) || !parsed.keys[0] || parsed.keys.some((k) => typeof k?.key !== 'string' || decode(k).length < 32)) {
    throw new ConfigError([`${file} (auth.keyFile, ELDERGATE_AUTH_KEY_FILE): not a token-signing key file (expected {"version":1,"keys":[{"key":"<base64, ≥ 32 bytes>",...}]}); restore it from your key backup, or remove it to start with a new key`]);
  }
  return parsed;
}

/** Write atomically (temporary file, fsync, rename, fsync the directory), readable by the owner only. */
function writeKeyFile(file: string, content: KeyFile): void {
  const dir = dirname(file);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeSync(fd, JSON.stringify(content, null, 2) + '\n');
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    renameSync(tmp, file);
  } catch (err) {
    unlinkSync(tmp);
    throw err;
  }
  const dfd = openSync(dir, 'r');
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}

const newKey = (now: number): StoredKey => ({ key: randomBytes(32).toString('base64'), createdAt: now });

/** Keys in a file: the first signs; retired ones verify until their grace ends. Re-read when the file changes. */
class FileKeyring implements TokenKeyring {
  private keys: StoredKey[];
  private stamp: string;
  private checkedAt = 0;

  constructor(
    private readonly file: string,
    private readonly graceMs: number,
    private readonly log: Logger,
  ) {
    this.keys = readKeyFile(file).keys;
    this.stamp = this.fileStamp();
  }

  private fileStamp(): string {
    const s = statSync(this.file);
    return `${s.ino}:${s.mtimeMs}:${s.size}`;
  }

  /** A rotation by the command replaces the file (new inode): pick it up, at most one stat a second. */
  private refresh(): void {
    const now = Date.now();
    if (now - this.checkedAt < RELOAD_EVERY_MS) return;
    this.checkedAt = now;
    try {
      const stamp = this.fileStamp();
      if (stamp === this.stamp) return;
      this.keys = readKeyFile(this.file).keys;
      this.stamp = stamp;
      this.log.info({ file: this.file, keys: this.keys.length }, 'token-signing key file changed: keys reloaded');
    } catch (err) {
      // keep signing with the keys in memory: a broken file must not log every console out
      this.log.error({ file: this.file, err: (err as Error).message }, 'token-signing key file unreadable: still using the keys loaded before');
    }
  }

  signing(): Buffer {
    this.refresh();
    return decode(this.keys[0]!);
  }

  verifying(): Buffer[] {
    this.refresh();
    const now = Date.now();
    return this.keys.filter((k, i) => i === 0 || (k.retiredAt !== undefined && k.retiredAt + this.graceMs > now)).map(decode);
  }
}

/**
 * The keyring of a starting gateway. Moves a database-held key out (to the key file, then deletes it from the
 * database), or creates the key file on first start.
 */
export function openTokenKeys(opts: { config: Pick<Config, 'dataDir' | 'auth' | 'http'>; db: Db; log: Logger }): TokenKeyring {
  const { config, db, log } = opts;
  const graceMs = config.http.tokenTtlS * 1000;
  const inDb = db.select().from(secrets).where(eq(secrets.name, DB_TOKEN_KEY)).get();
  const dropFromDb = () => db.delete(secrets).where(eq(secrets.name, DB_TOKEN_KEY)).run();

  if (config.auth.signingKey) {
    const current = Buffer.from(config.auth.signingKey, 'utf8');
    const previous = config.auth.previousSigningKey ? [Buffer.from(config.auth.previousSigningKey, 'utf8')] : [];
    if (inDb) {
      // tokens signed with the database's key verify until they expire (this process only), then it is gone
      const old = Buffer.from(inDb.value, 'base64');
      const until = Date.now() + graceMs;
      dropFromDb();
      log.warn('token-signing key: ELDERGATE_AUTH_SIGNING_KEY is set; the key the database held was deleted from it (sessions it signed stay valid until they expire or this process restarts)');
      return { signing: () => current, verifying: () => [current, ...previous, ...(Date.now() < until ? [old] : [])] };
    }
    return { signing: () => current, verifying: () => [current, ...previous] };
  }

  const file = tokenKeyFile(config);
  let exists = true;
  try {
    statSync(file);
  } catch {
    exists = false;
  }
  if (!exists) {
    const now = Date.now();
    // the database's key moves out as is, so the sessions it signed carry on
    const first: StoredKey = inDb ? { key: inDb.value, createdAt: inDb.createdAt } : newKey(now);
    try {
      writeKeyFile(file, { version: 1, keys: [first] });
    } catch (err) {
      throw new ConfigError([`${file} (auth.keyFile, ELDERGATE_AUTH_KEY_FILE): cannot create the token-signing key file (${(err as Error).message}); make its directory writable by the gateway, or set ELDERGATE_AUTH_KEY_FILE or ELDERGATE_AUTH_SIGNING_KEY`]);
    }
    log.info({ file, movedFromDatabase: Boolean(inDb) }, inDb ? 'token-signing key moved out of the database into the key file' : 'token-signing key file created');
  }
  // only once the file is durable does the database forget the key (a file written from a restored backup wins too)
  if (inDb) {
    dropFromDb();
    if (exists) log.warn({ file }, 'the database held a token-signing key (a restored backup?): deleted; the key file is used');
  }
  const mode = statSync(file).mode & 0o777;
  if (mode & 0o077) {
    // a warning, not a refusal: the gateway answering alarms matters more than the mode of a file
    log.warn({ file, mode: mode.toString(8) }, `the token-signing key file is readable by others: chmod 600 ${file}`);
  }
  return new FileKeyring(file, graceMs, log);
}

/**
 * `npm run rotate-token-key [-- --now]`: a new signing key; the previous one verifies for one token lifetime
 * (or not at all with `now`). Keys past their grace are dropped.
 */
export function rotateTokenKey(config: Pick<Config, 'dataDir' | 'auth' | 'http'>, opts: { now?: boolean } = {}): { file: string; previousValidUntil: number | null; kept: number } {
  if (config.auth.signingKey) {
    throw new ConfigError([
      'ELDERGATE_AUTH_SIGNING_KEY is set, so there is no key file to rotate: set ELDERGATE_AUTH_PREVIOUS_SIGNING_KEY to the current value and ELDERGATE_AUTH_SIGNING_KEY to a new one (openssl rand -base64 48), restart, and remove the previous one after http.tokenTtlS',
    ]);
  }
  const file = tokenKeyFile(config);
  try {
    statSync(file);
  } catch {
    throw new ConfigError([`${file}: no token-signing key file to rotate (start the gateway once to create it, or set ELDERGATE_AUTH_KEY_FILE / ELDERGATE_DATA_DIR as the gateway has them)`]);
  }
  const graceMs = config.http.tokenTtlS * 1000;
  const now = Date.now();
  const old = readKeyFile(file).keys;
  const retired = opts.now ? [] : old.map((k, i) => (i === 0 ? { ...k, retiredAt: now } : k)).filter((k) => k.retiredAt !== undefined && k.retiredAt + graceMs > now);
  writeKeyFile(file, { version: 1, keys: [newKey(now), ...retired] });
  return { file, previousValidUntil: retired.length ? now + graceMs : null, kept: retired.length };
}
