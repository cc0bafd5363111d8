// Users of the console and API: operators, stewards, technicians, admins. Passwords hashed with scrypt; tokens are
// HMAC-signed with a key kept outside the database (core/token-keys.ts), expire (≤ 24 h), and are checked against the
// live user on every request and on the WebSocket's periodic re-check: a disabled user's tokens stop working at once,
// and so do the tokens issued before the user's token generation moved on (logout, password change or reset, role
// or unit change).
import { createHmac, randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import type Database from 'better-sqlite3';
import type { Db } from './db.js';
import { createSqliteUserStore, type UserChange, type UserRow, type UserStore } from './user-store.js';
import type { Role } from './contracts.js';
import { ConfigError, ConflictError, NotFoundError, UnauthorizedError, ValidationError } from './errors.js';
import { newId } from '../devices/credentials.js';
import { passwordProblem } from './password-policy.js';
import type { TokenKeyring } from './token-keys.js';

const scrypt = (pw: string, salt: Buffer, len: number, opts: ScryptOptions) =>
  new Promise<Buffer>((resolve, reject) =>
    scryptCb(pw, salt, len, opts, (err, key) => (err ? reject(err) : resolve(key))),
  );

const SCRYPT = { N: 16384, r: 8, p: 1, maxmem: 64 * 1024 * 1024 };

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await scrypt(password, salt, 32, SCRYPT);
  return `scrypt$${SCRYPT.N}$${SCRYPT.r}$${SCRYPT.p}$${salt.toString('base64')}$${key.toString('base64')}`;
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [alg, n, r, p, salt, hash] = stored.split('$');
  if (alg !== 'scrypt' || !salt || !hash) return false;
  const expected = Buffer.from(hash, 'base64');
  const key = await scrypt(password, Buffer.from(salt, 'base64'), expected.length, {
    N: Number(n), r: Number(r), p: Number(p), maxmem: SCRYPT.maxmem,
  });
  return timingSafeEqual(key, expected);
}

export interface AuthUser {
  id: string;
  username: string;
  role: Role;
  unitId: string | null;
  displayName: string | null;
}

/** What an admin sees of a user: also whether the account is disabled. */
export interface UserRecord extends AuthUser {
  disabled: boolean;
}

/** The reason a password is refused, as the API says it (400), or undefined. */
export function checkPasswordStrength(password: string, username?: string): string | undefined {
  const problem = passwordProblem(password, username);
  return problem ? `password refused: ${problem}` : undefined;
}

function requireStrong(password: string, username: string, field = 'password'): void {
  const problem = passwordProblem(password, username);
  if (problem) throw new ValidationError(`${field} refused: ${problem}`, { field });
}

/** base64url(JSON claims) "." base64url(HMAC-SHA256) — nothing else (43 characters of signature, no third part). */
const TOKEN_FORMAT = /^[A-Za-z0-9_-]{1,2048}\.[A-Za-z0-9_-]{43}$/;

interface Claims {
  sub?: unknown;
  /** the user's token generation when it was issued (absent in tokens issued before generations: 0) */
  gen?: unknown;
  exp?: unknown;
}

export class Users {
  /** a dummy hash so that an unknown username costs the same as a wrong password */
  private dummy: Promise<string> = hashPassword(randomBytes(16).toString('hex'));

  /** the keys that sign and verify tokens (tests mint expired tokens with `keys.signing()`) */
  readonly keys: TokenKeyring;

  /** where the accounts are kept (core/user-store.ts) */
  private readonly store: UserStore<'sync'>;

  constructor(
    db: Db,
    tokenKey: Buffer | TokenKeyring,
    private readonly tokenTtlS: number,
    /** how a write is made (core/db.ts Store.write: without holding the event loop while the lock is taken) */
    private readonly write: <T>(fn: () => T) => Promise<T> = async (fn) => fn(),
  ) {
    this.keys = Buffer.isBuffer(tokenKey) ? { signing: () => tokenKey, verifying: () => [tokenKey] } : tokenKey;
    this.store = createSqliteUserStore((db as Db & { $client: Database.Database }).$client);
  }

  count(): number {
    return this.store.count();
  }

  /** `check`: run in the insert's own transaction, after the password is hashed (what may have changed meanwhile) */
  async create(input: { username: string; password: string; role: Role; unitId?: string | null; displayName?: string | null }, check?: () => void): Promise<AuthUser> {
    if (!/^[a-zA-Z0-9._@-]{3,64}$/.test(input.username)) {
      throw new ValidationError('username: 3–64 characters of letters, digits and . _ @ -', { field: 'username' });
    }
    requireStrong(input.password, input.username);
    const taken = () => new ConflictError(`a user named "${input.username}" already exists`);
    if (this.store.byUsername(input.username)) throw taken();
    const row: UserRow = {
      id: newId('u'),
      username: input.username,
      passwordHash: await hashPassword(input.password),
      role: input.role,
      unitId: input.unitId ?? null,
      displayName: input.displayName ?? null,
      disabled: null,
      createdAt: Date.now(),
      tokenGeneration: 0,
    };
    await this.write(() => {
      check?.();
      // taken meanwhile (while the password was hashed): refused, not overwritten
      if (!this.store.insert(row)) throw taken();
    });
    return toAuthUser(row);
  }

  list(): UserRecord[] {
    return this.store.all().map(toUserRecord);
  }

  /** Any user, disabled or not (admin views); NotFoundError if there is none with this id. */
  record(id: string): UserRecord {
    const row = this.store.byId(id);
    if (!row) throw new NotFoundError('user', id);
    return toUserRecord(row);
  }

  get(id: string): AuthUser | undefined {
    const row = this.store.byId(id);
    return row && !row.disabled ? toAuthUser(row) : undefined;
  }

  async login(username: string, password: string): Promise<{ token: string; expiresAt: number; user: AuthUser }> {
    const row = this.store.byUsername(username);
    const ok = row ? await verifyPassword(password, row.passwordHash) : (await verifyPassword(password, await this.dummy), false);
    if (!row || !ok || row.disabled) throw new UnauthorizedError('wrong username or password');
    return this.sessionFor(row);
  }

  /** Every token of this user stops working at once (logout, and below). */
  revokeTokens(userId: string): void {
    this.store.revoke(userId);
  }

  /**
   * The user changes their own password, proving the old one. Every token of theirs is revoked (a stolen session
   * ends with the password change); the answer is a fresh session, so the console in hand carries on.
   */
  async changePassword(userId: string, oldPassword: string, newPassword: string): Promise<{ token: string; expiresAt: number; user: AuthUser }> {
    const row = this.store.byId(userId);
    if (!row || row.disabled) throw new UnauthorizedError('the user of this token no longer exists or is disabled');
    if (!(await verifyPassword(oldPassword, row.passwordHash))) {
      throw new ValidationError('oldPassword: this is not your current password; type it again (or ask an admin to reset it)', { field: 'oldPassword' });
    }
    if (oldPassword === newPassword) throw new ValidationError('newPassword: it is the same as the current one; choose a new one', { field: 'newPassword' });
    requireStrong(newPassword, row.username, 'newPassword');
    const hash = await hashPassword(newPassword);
    if (!(await this.write(() => this.store.setPassword(userId, hash)))) throw new UnauthorizedError('the user of this token no longer exists or is disabled');
    return this.sessionFor(this.store.byId(userId)!);
  }

  /** An admin sets a new password for a user (who forgot theirs, or left): every token of that user is revoked. */
  async resetPassword(userId: string, password: string): Promise<UserRecord> {
    const row = this.store.byId(userId);
    if (!row) throw new NotFoundError('user', userId);
    requireStrong(password, row.username);
    const hash = await hashPassword(password);
    if (!(await this.write(() => this.store.setPassword(userId, hash)))) throw new NotFoundError('user', userId);
    return this.record(userId);
  }

  /**
   * An admin changes a user. A change of role, unit or disabled revokes the user's tokens at once (what a token
   * allows must never lag behind what the user may now do); a new display name does not. The last enabled admin
   * cannot be disabled or demoted: nobody could manage the accounts any more.
   */
  update(userId: string, patch: { role?: Role; unitId?: string | null; displayName?: string | null; disabled?: boolean }): { user: UserRecord; changed: string[]; revoked: boolean } {
    const row = this.store.byId(userId);
    if (!row) throw new NotFoundError('user', userId);
    const set: UserChange = {};
    const changed: string[] = [];
    if (patch.role !== undefined && patch.role !== row.role) { set.role = patch.role; changed.push('role'); }
    if (patch.unitId !== undefined && patch.unitId !== row.unitId) { set.unitId = patch.unitId; changed.push('unitId'); }
    if (patch.displayName !== undefined && patch.displayName !== row.displayName) { set.displayName = patch.displayName; changed.push('displayName'); }
    if (patch.disabled !== undefined && patch.disabled !== Boolean(row.disabled)) {
      set.disabled = patch.disabled ? Date.now() : null;
      changed.push('disabled');
    }
    const revoked = changed.some((c) => c !== 'displayName');
    if (changed.length) {
      // the store keeps an enabled admin, judged on the account as it is when the change is written
      const out = this.store.update(userId, set, { revoke: revoked });
      if (out === 'last-admin') throw new ConflictError('this is the last enabled admin: create or enable another admin first');
      if (out === 'missing') throw new NotFoundError('user', userId);
    }
    return { user: this.record(userId), changed, revoked };
  }

  /**
   * A fresh token for a user whose current token was just verified (sliding renewal: a console in use renews
   * before its token expires, so a 24/7 board never logs itself out). A disabled user fails the verification
   * before getting here, so renewal can never outlive a disabled account.
   */
  issue(user: AuthUser): { token: string; expiresAt: number; user: AuthUser } {
    const row = this.store.byId(user.id);
    if (!row || row.disabled) throw new UnauthorizedError('the user of this token no longer exists or is disabled');
    return this.sessionFor(row);
  }

  private sessionFor(row: UserRow): { token: string; expiresAt: number; user: AuthUser } {
    const expiresAt = Date.now() + this.tokenTtlS * 1000;
    return { token: this.sign({ sub: row.id, gen: row.tokenGeneration, exp: expiresAt }), expiresAt, user: toAuthUser(row) };
  }

  get ttlMs(): number {
    return this.tokenTtlS * 1000;
  }

  private sign(claims: { sub: string; gen: number; exp: number }): string {
    const body = Buffer.from(JSON.stringify(claims)).toString('base64url');
    const sig = createHmac('sha256', this.keys.signing()).update(body).digest('base64url');
    return `${body}.${sig}`;
  }

  /** The user a token stands for; throws UnauthorizedError saying why it is refused. */
  verify(token: string | undefined): AuthUser {
    if (!token) throw new UnauthorizedError();
    // the exact format, before anything else: a third segment, padding or stray characters are not "close enough"
    if (!TOKEN_FORMAT.test(token)) throw new UnauthorizedError('malformed token: log in again');
    const dot = token.indexOf('.');
    const body = token.slice(0, dot);
    const given = Buffer.from(token.slice(dot + 1));
    // every key still valid for verification is tried, each compared in constant time
    let valid = false;
    for (const key of this.keys.verifying()) {
      const expected = Buffer.from(createHmac('sha256', key).update(body).digest('base64url'));
      if (expected.length === given.length && timingSafeEqual(expected, given)) valid = true;
    }
    if (!valid) throw new UnauthorizedError('invalid token signature: log in again');
    let claims: Claims;
    try {
      claims = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as Claims;
    } catch {
      throw new UnauthorizedError('malformed token: log in again');
    }
    if (typeof claims !== 'object' || claims === null) throw new UnauthorizedError('malformed token: log in again');
    if (typeof claims.exp !== 'number' || claims.exp < Date.now()) throw new UnauthorizedError('token expired: log in again');
    const row = typeof claims.sub === 'string' ? this.store.byId(claims.sub) : undefined;
    if (!row || row.disabled) throw new UnauthorizedError('the user of this token no longer exists or is disabled');
    const gen = claims.gen === undefined ? 0 : claims.gen;
    if (gen !== row.tokenGeneration) {
      throw new UnauthorizedError('this session was ended (logout, password change or an admin changed the account): log in again');
    }
    return toAuthUser(row);
  }
}

function toAuthUser(row: UserRow): AuthUser {
  return { id: row.id, username: row.username, role: row.role, unitId: row.unitId, displayName: row.displayName };
}

function toUserRecord(row: UserRow): UserRecord {
  return { ...toAuthUser(row), disabled: Boolean(row.disabled) };
}

/**
 * First start: create the admin with the password from ELDERGATE_ADMIN_PASSWORD, or a random one returned to be
 * printed once. There is no default password anywhere.
 */
export async function bootstrapAdmin(u: Users, password: string | undefined): Promise<{ username: string; password: string; generated: boolean } | undefined> {
  if (u.count() > 0) return undefined;
  const generated = password === undefined;
  if (password !== undefined) {
    const problem = passwordProblem(password, 'admin');
    if (problem) throw new ConfigError([`ELDERGATE_ADMIN_PASSWORD (adminPassword): the first admin's password is refused: ${problem}; or leave it unset to have a random one printed once`]);
  }
  const pw = password ?? randomBytes(18).toString('base64url');
  await u.create({ username: 'admin', password: pw, role: 'admin' });
  return { username: 'admin', password: pw, generated };
}
