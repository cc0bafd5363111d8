// One contract, two engines: the command area's storage (gateway/command-store.ts) on a real SQLite file with the
// committed migrations and on a real PostgreSQL 15 (Debian's, started by this file on a private port and data
// directory, with drizzle-pg/'s migrations). Then what only PostgreSQL has to prove, since there several nodes may
// take a device's answer or expire commands at once: each command moves once.
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { createSqliteCommandStore, type CommandStore, type NewCommand } from '../../gateway/command-store.js';
import { createPgCommandStore } from '../../gateway/command-store-pg.js';
import type { StoreMode } from '../../response/store/types.js';
import { fails, useStoreEngines } from '../helpers/postgres.js';

// band 12: no other test file's (grep `band:` and freeBasePort under test/)
const BAND = 12;
const env = useStoreEngines({ name: 'command-store', band: BAND });

const T = 1_796_000_000_000;
const cmd = (id: string, o: Partial<NewCommand> = {}): NewCommand => ({
  id, deviceId: 'dev-1', type: 'acknowledge-alarm', params: { text: '救援已出发', volume: 3, nested: { a: [1, 2] } },
  incidentId: 'inc-1', createdAt: T, expiresAt: T + 60_000, ...o,
});

const engines: { name: string; open(): Promise<CommandStore<StoreMode>> }[] = [
  {
    name: 'SQLite',
    async open() {
      env.sqlite().sqlite.exec('DELETE FROM commands');
      return createSqliteCommandStore(env.sqlite().sqlite);
    },
  },
  { name: 'PostgreSQL', open: async () => createPgCommandStore((await env.pgs().fresh('commands', 4)).pool) },
];

for (const engine of engines) {
  describe(`command store contract: ${engine.name}`, () => {
    it('stores a pending command as given; a second one of the same id is refused, or left as it was when stored once', async () => {
      const s = await engine.open();
      await s.insert(cmd('c1'), false);
      expect(await s.get('c1')).toEqual({
        id: 'c1', deviceId: 'dev-1', type: 'acknowledge-alarm', params: { text: '救援已出发', volume: 3, nested: { a: [1, 2] } },
        incidentId: 'inc-1', status: 'pending', attempts: 0, createdAt: T, sentAt: null, ackedAt: null, expiresAt: T + 60_000, error: null,
      });
      expect(await s.get('c-none')).toBeUndefined();
      // (drizzle wraps the driver's error: the engine's own words are on its cause)
      const dup = await fails(() => s.insert(cmd('c1', { type: 'other' }), false));
      expect(`${dup.message} ${(dup.cause as Error | undefined)?.message ?? ''}`).toMatch(/unique|duplicate/i);
      await s.insert(cmd('c1', { type: 'other', params: {} }), true);
      expect(await s.get('c1')).toMatchObject({ type: 'acknowledge-alarm', status: 'pending' });
      await s.insert(cmd('c2', { incidentId: null, params: {} }), true);
      expect(await s.get('c2')).toMatchObject({ incidentId: null, params: {} });
      // what is published to the device is what was written: keys in their order
      await s.insert(cmd('c3', { params: { zone: 2, alpha: 'x', mid: [3, 1] } }), false);
      expect(Object.keys((await s.get('c3'))!.params)).toEqual(['zone', 'alpha', 'mid']);
    });

    it('an answer with a NUL the device sent: its error kept with the NUL shown as ␀; an id holding one matches nothing', async () => {
      const s = await engine.open();
      await s.insert(cmd('c1'), false);
      expect(await s.answer('dev-1', 'c1\u0000', true, T + 1, null)).toBe(0);
      expect(await s.answer('dev-1\u0000', 'c1', true, T + 1, null)).toBe(0);
      expect(await s.answer('dev-1', 'c1', false, T + 2, 'speaker\u0000broken')).toBe(1);
      expect(await s.get('c1')).toMatchObject({ status: 'failed', error: 'speaker␀broken' });
    });

    it('what is still to go: in the order stored (also within one millisecond), not ended, not expired, only the device\'s', async () => {
      const s = await engine.open();
      await s.insert(cmd('b', { createdAt: T + 5 }), false);
      await s.insert(cmd('z', { createdAt: T + 1 }), false);
      await s.insert(cmd('a', { createdAt: T + 1 }), false);
      // z sent, a still pending: an index on (device, status) lists a before z; the order stored must still win
      await s.markSent('z', T + 2);
      await s.insert(cmd('old', { createdAt: T, expiresAt: T + 10 }), false);
      await s.insert(cmd('done', { createdAt: T + 2 }), false);
      await s.insert(cmd('other', { deviceId: 'dev-2' }), false);
      await s.answer('dev-1', 'done', true, T + 3, null);
      expect((await s.pendingFor('dev-1', T + 10)).map((c) => c.id)).toEqual(['z', 'a', 'b']);
      expect((await s.pendingFor('dev-1', T + 9)).map((c) => c.id)).toEqual(['old', 'z', 'a', 'b']);
      expect((await s.list('dev-1', 3)).map((c) => c.id)).toEqual(['b', 'done', 'a']);
    });

    it('moves one way: sent (attempts counted), then answered once, by its own device only; expiry ends what is left', async () => {
      const s = await engine.open();
      await s.insert(cmd('c1'), false);
      await s.insert(cmd('c2'), false);
      await s.insert(cmd('c3', { expiresAt: T + 100 }), false);
      expect(await s.markSent('c1', T + 1)).toBe(1);
      expect(await s.markSent('c1', T + 2)).toBe(1);
      expect(await s.get('c1')).toMatchObject({ status: 'sent', attempts: 2, sentAt: T + 2 });
      expect(await s.answer('dev-2', 'c1', true, T + 3, null)).toBe(0);
      expect(await s.answer('dev-1', 'c1', true, T + 3, null)).toBe(1);
      expect(await s.answer('dev-1', 'c1', false, T + 4, 'too late')).toBe(0);
      expect(await s.get('c1')).toMatchObject({ status: 'acked', ackedAt: T + 3, error: null });
      // sent again after its answer (a resend that crossed it): counted, the answer stands
      expect(await s.markSent('c1', T + 5)).toBe(1);
      expect(await s.get('c1')).toMatchObject({ status: 'acked', attempts: 3 });
      expect(await s.answer('dev-1', 'c2', false, T + 6, 'speaker broken')).toBe(1);
      expect(await s.get('c2')).toMatchObject({ status: 'failed', error: 'speaker broken' });
      expect(await s.expire(T + 99)).toBe(0);
      expect(await s.expire(T + 100)).toBe(1);
      expect(await s.get('c3')).toMatchObject({ status: 'expired' });
      expect(await s.answer('dev-1', 'c3', true, T + 101, null)).toBe(0);
      expect(await s.markSent('nope', T)).toBe(0);
    });
  });
}

describe('command store: several nodes on one PostgreSQL', () => {
  it('what is written through transaction() commits or rolls back with the caller\'s other writes', async () => {
    const s = createPgCommandStore((await env.pgs().fresh('command_tx', 2)).pool);
    await s.insert(cmd('c1'), false);
    await expect(s.transaction(async (tx) => {
      await tx.answer('dev-1', 'c1', true, T + 1, null);
      await tx.insert(cmd('c2'), false);
      throw new Error('the batch failed after its rows were written');
    })).rejects.toThrow(/the batch failed/);
    expect(await s.get('c1')).toMatchObject({ status: 'pending' });
    expect(await s.get('c2')).toBeUndefined();
    await s.transaction(async (tx) => tx.answer('dev-1', 'c1', true, T + 2, null));
    expect(await s.get('c1')).toMatchObject({ status: 'acked', ackedAt: T + 2 });
  });

  it('a device\'s answer taken by two nodes at once moves its command once; so does an expiry run by both', async () => {
    const { url } = await env.pgs().fresh('command_race');
    const nodes = [0, 1].map(() => createPgCommandStore(env.pgs().track(new pg.Pool({ connectionString: url, max: 2 }))));
    for (let i = 0; i < 30; i++) await nodes[0]!.insert(cmd(`c${i}`, { expiresAt: i < 10 ? T + 10 : T + 60_000 }), false);
    for (let i = 10; i < 30; i++) {
      const moved = await Promise.all(nodes.map((n, k) => n.answer('dev-1', `c${i}`, k === 0, T + 20, null)));
      expect(moved.reduce((a, b) => a + b, 0)).toBe(1);
    }
    const expired = await Promise.all(nodes.map((n) => n.expire(T + 10)));
    expect(expired.reduce((a, b) => a + b, 0)).toBe(10);
  });
});
