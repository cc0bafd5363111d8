// Users of the console and API: operators, stewards, technicians, admins. Passwords hashed with scrypt; tokens are
// HMAC-signed, expire, and are checked against the live user (a disabled user's tokens stop working at once).
import { createHmac, randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { eq } from 'drizzle-orm';
import type { Db } from './db.js';
import { users } from './schema.js';
import type { Role } from './contracts.js';
import { ConflictError, UnauthorizedError, ValidationError } from './errors.js';
import { newId } from '../devices/credentials.js';

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

export function checkPasswordStrength(password: string): string | undefined {
  if (password.length < 12) return 'password must be at least 12 characters';
  if (password.length > 256) return 'password must be at most 256 characters';
  return undefined;
}

export class Users {
  /** a dummy hash so that an unknown username costs the same as a wrong password */
  private dummy: Promise<string> = hashPassword(randomBytes(16).toString('hex'));

  constructor(
    private readonly db: Db,
    private readonly tokenKey: Buffer,
    private readonly tokenTtlS: number,
  ) {}

  count(): number {
    return this.db.select({ id: users.id }).from(users).limit(1).all().length;
  }

  async create(input: { username: string; password: string; role: Role; unitId?: string | null; displayName?: string | null }): Promise<AuthUser> {
    const weak = checkPasswordStrength(input.password);
    if (weak) throw new ValidationError(`password: ${weak}`, { field: 'password' });
    if (!/^[a-zA-Z0-9._@-]{3,64}$/.test(input.username)) {
      throw new ValidationError('username: 3–64 characters of letters, digits and . _ @ -', { field: 'username' });
    }
    const existing = this.db.select({ id: users.id }).from(users).where(eq(users.username, input.username)).get();
    if (existing) throw new ConflictError(`a user named "${input.username}" already exists`);
    const row = {
      id: newId('u'),
      username: input.username,
      passwordHash: await hashPassword(input.password),
      role: input.role,
      unitId: input.unitId ?? null,
      displayName: input.displayName ?? null,
      disabled: null,
      createdAt: Date.now(),
    };
    this.db.insert(users).values(row).run();
    return toAuthUser(row);
  }

  list(): AuthUser[] {
    return this.db.select().from(users).all().map(toAuthUser);
  }

  get(id: string): AuthUser | undefined {
    const row = this.db.select().from(users).where(eq(users.id, id)).get();
    return row && !row.disabled ? toAuthUser(row) : undefined;
  }

  async login(username: string, password: string): Promise<{ token: string; expiresAt: number; user: AuthUser }> {
    const row = this.db.select().from(users).where(eq(users.username, username)).get();
    const ok = row ? await verifyPassword(password, row.passwordHash) : (await verifyPassword(password, await this.dummy), false);
    if (!row || !ok || row.disabled) throw new UnauthorizedError('wrong username or password');
    return this.issue(toAuthUser(row));
  }

  /**
   * A fresh token for a user whose current token was just verified (sliding renewal: a console in use renews
   * before its token expires, so a 24/7 board never logs itself out). A disabled user fails the verification
   * before getting here, so renewal can never outlive a disabled account.
   */
  issue(user: AuthUser): { token: string; expiresAt: number; user: AuthUser } {
    const expiresAt = Date.now() + this.tokenTtlS * 1000;
    return { token: this.sign({ sub: user.id, exp: expiresAt }), expiresAt, user };
  }

  get ttlMs(): number {
    return this.tokenTtlS * 1000;
  }

  private sign(claims: { sub: string; exp: number }): string {
    const body = Buffer.from(JSON.stringify(claims)).toString('base64url');
    const sig = createHmac('sha256', this.tokenKey).update(body).digest('base64url');
    return `${body}.${sig}`;
  }

  /** The user a token stands for; throws UnauthorizedError saying why it is refused. */
  verify(token: string | undefined): AuthUser {
    if (!token) throw new UnauthorizedError();
    const [body, sig] = token.split('.');
    if (!body || !sig) throw new UnauthorizedError('malformed token: log in again');
    const expected = Buffer.from(createHmac('sha256', this.tokenKey).update(body).digest('base64url'));
    const given = Buffer.from(sig);
    if (expected.length !== given.length || !timingSafeEqual(expected, given)) {
      throw new UnauthorizedError('invalid token signature: log in again');
    }
    let claims: { sub?: string; exp?: number };
    try {
      claims = JSON.parse(Buffer.from(body, 'base64url').toString('utf8'));
    } catch {
      throw new UnauthorizedError('malformed token: log in again');
    }
    if (typeof claims.exp !== 'number' || claims.exp < Date.now()) throw new UnauthorizedError('token expired: log in again');
    const user = claims.sub ? this.get(claims.sub) : undefined;
    if (!user) throw new UnauthorizedError('the user of this token no longer exists or is disabled');
    return user;
  }
}

function toAuthUser(row: typeof users.$inferSelect): AuthUser {
  return { id: row.id, username: row.username, role: row.role, unitId: row.unitId, displayName: row.displayName };
}

/**
 * First start: create the admin with the password from ELDERGATE_ADMIN_PASSWORD, or a random one returned to be
 * printed once. There is no default password anywhere.
 */
export async function bootstrapAdmin(u: Users, password: string | undefined): Promise<{ username: string; password: string; generated: boolean } | undefined> {
  if (u.count() > 0) return undefined;
  const generated = password === undefined;
  const pw = password ?? randomBytes(18).toString('base64url');
  await u.create({ username: 'admin', password: pw, role: 'admin' });
  return { username: 'admin', password: pw, generated };
}
