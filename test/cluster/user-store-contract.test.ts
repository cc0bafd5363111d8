// One contract, two engines: the users area's storage (core/user-store.ts) on a real SQLite file with the committed
// migrations and on a real PostgreSQL 15 (Debian's, started by this file on a private port and data directory, with
// drizzle-pg/'s migrations). Then what only PostgreSQL has to prove, since there admins on several nodes manage the
// same accounts: a username is taken once, and the last two admins demoted at once leave one.
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { createSqliteUserStore, type UserRow, type UserStore } from '../../core/user-store.js';
import { createPgUserStore } from '../../core/user-store-pg.js';
import type { StoreMode } from '../../response/store/types.js';
import { useStoreEngines } from '../helpers/postgres.js';

// band 15: no other test file's (grep `band:` and `BAND =` under test/)
const BAND = 15;
const env = useStoreEngines({ name: 'user-store', band: BAND });

const T = 1_796_000_000_000;
let n = 0;
const user = (username: string, o: Partial<UserRow> = {}): UserRow => ({
  id: `u-${username}`, username, passwordHash: `scrypt$16384$8$1$salt$${username}`, role: 'operator', unitId: 'g1',
  displayName: `${username} 王`, disabled: null, createdAt: T + ++n, tokenGeneration: 0, ...o,
});

const engines: { name: string; open(): Promise<UserStore<StoreMode>> }[] = [
  {
    name: 'SQLite',
    async open() {
      env.sqlite().sqlite.exec('DELETE FROM users');
      return createSqliteUserStore(env.sqlite().sqlite);
    },
  },
  { name: 'PostgreSQL', open: async () => createPgUserStore((await env.pgs().fresh('users', 4)).pool) },
];

for (const engine of engines) {
  describe(`user store contract: ${engine.name}`, () => {
    it('keeps an account as written; a username is one account; lists them oldest first', async () => {
      const s = await engine.open();
      expect(await s.count()).toBe(0);
      const ana = user('ana', { role: 'admin', unitId: null, displayName: null });
      expect(await s.insert(ana)).toBe(true);
      expect(await s.insert(user('bo'))).toBe(true);
      expect(await s.byId(ana.id)).toEqual(ana);
      expect(await s.byUsername('bo')).toEqual(user('bo', { createdAt: T + n }));
      expect(await s.byUsername('nobody')).toBeUndefined();
      expect(await s.byId('u-nobody')).toBeUndefined();
      // the name taken: nothing stored, whatever else differs
      expect(await s.insert(user('ana', { id: 'u-other', role: 'steward' }))).toBe(false);
      expect(await s.byId('u-other')).toBeUndefined();
      expect(await s.count()).toBe(2);
      expect((await s.all()).map((u) => u.username)).toEqual(['ana', 'bo']);
    });

    it('a new password and a revocation each move the token generation by one; an unknown user is said so', async () => {
      const s = await engine.open();
      await s.insert(user('cy'));
      expect(await s.revoke('u-cy')).toBe(true);
      expect(await s.setPassword('u-cy', 'scrypt$new')).toBe(true);
      expect(await s.byId('u-cy')).toMatchObject({ passwordHash: 'scrypt$new', tokenGeneration: 2 });
      expect(await s.revoke('u-nobody')).toBe(false);
      expect(await s.setPassword('u-nobody', 'x')).toBe(false);
    });

    it('changes an account, revoking its tokens when asked; never leaves no enabled admin', async () => {
      const s = await engine.open();
      await s.insert(user('ada', { role: 'admin', unitId: null }));
      await s.insert(user('dee'));
      expect(await s.update('u-dee', { displayName: 'Dee', unitId: null }, { revoke: false })).toBe('updated');
      expect(await s.byId('u-dee')).toMatchObject({ displayName: 'Dee', unitId: null, tokenGeneration: 0 });
      expect(await s.update('u-dee', { role: 'admin' }, { revoke: true })).toBe('updated');
      expect(await s.byId('u-dee')).toMatchObject({ role: 'admin', tokenGeneration: 1 });
      // two enabled admins: one may go
      expect(await s.update('u-dee', { disabled: T + 100 }, { revoke: true })).toBe('updated');
      expect(await s.byId('u-dee')).toMatchObject({ disabled: T + 100, tokenGeneration: 2 });
      // the last enabled one may not: nothing changed (whether the caller thought so or not)
      expect(await s.update('u-ada', { role: 'operator' }, { revoke: true })).toBe('last-admin');
      expect(await s.update('u-ada', { disabled: T + 5 }, { revoke: true })).toBe('last-admin');
      expect(await s.update('u-ada', { role: 'admin', disabled: T + 5 }, { revoke: true })).toBe('last-admin');
      // a disabled admin demoted, or the last admin renamed: nothing lost
      expect(await s.update('u-dee', { role: 'operator' }, { revoke: true })).toBe('updated');
      expect(await s.update('u-ada', { displayName: 'Ada' }, { revoke: false })).toBe('updated');
      expect(await s.byId('u-ada')).toMatchObject({ role: 'admin', disabled: null, tokenGeneration: 0 });
      expect(await s.update('u-nobody', { role: 'operator' }, { revoke: true })).toBe('missing');
      expect(await s.update('u-nobody', { displayName: 'x' }, { revoke: false })).toBe('missing');
      // enabled again (disabled: null)
      expect(await s.update('u-dee', { disabled: null }, { revoke: true })).toBe('updated');
      expect(await s.byId('u-dee')).toMatchObject({ disabled: null, role: 'operator', tokenGeneration: 4 });
    });
  });
}

describe('user store, PostgreSQL only: several nodes', () => {
  it('two nodes creating one username at once, 20 times: one account each time', async () => {
    const { pool, url } = await env.pgs().fresh('users_nodes', 4);
    const [a, b] = [createPgUserStore(pool), createPgUserStore(env.pgs().track(new pg.Pool({ connectionString: url, max: 4 })))];
    for (let i = 0; i < 20; i++) {
      const name = `twin${i}`;
      const wins = await Promise.all([a.insert(user(name, { id: `u-a${i}` })), b.insert(user(name, { id: `u-b${i}` }))]);
      expect(wins.filter(Boolean)).toHaveLength(1);
    }
    expect(await a.count()).toBe(20);
  });

  it('two nodes demoting the last two admins at once, 20 times: one succeeds, an enabled admin is left', async () => {
    const { pool, url } = await env.pgs().fresh('users_admins', 4);
    const [a, b] = [createPgUserStore(pool), createPgUserStore(env.pgs().track(new pg.Pool({ connectionString: url, max: 4 })))];
    for (let i = 0; i < 20; i++) {
      await pool.query('DELETE FROM users');
      await a.insert(user(`adm${i}x`, { id: 'u-x', role: 'admin' }));
      await a.insert(user(`adm${i}y`, { id: 'u-y', role: 'admin' }));
      const outcomes = await Promise.all([
        a.update('u-x', { role: 'operator' }, { revoke: true }),
        b.update('u-y', { disabled: T }, { revoke: true }),
      ]);
      expect(outcomes.sort()).toEqual(['last-admin', 'updated']);
      const left = (await a.all()).filter((u) => u.role === 'admin' && u.disabled === null);
      expect(left).toHaveLength(1);
    }
  });
});
