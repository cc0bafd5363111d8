// One contract, two engines: the device-state area's storage (gateway/state-store.ts) on a real SQLite file with the
// committed migrations and on a real PostgreSQL 15 (Debian's, started by this file on a private port and data
// directory, with drizzle-pg/'s migrations). What a restart reads back must be what was written, field for field —
// nulls, a battery reading with a fraction, a position with its accuracy, flags — and a batch is whole or absent.
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { blankState, DeviceStates, type LiveState } from '../../gateway/device-state.js';
import { createSqliteDeviceStateStore, type DeviceStateStore, type StoredState } from '../../gateway/state-store.js';
import { createPgDeviceStateStore, type PgDeviceStateStore } from '../../gateway/state-store-pg.js';
import type { StoreMode } from '../../response/store/types.js';
import { useStoreEngines } from '../helpers/postgres.js';

// band 28 (PostgreSQL only: the bands below the kernel's ephemeral ports are for the files that start RabbitMQ): no other test file's (grep `band:` and freeBasePort under test/)
const BAND = 28;
const DEVICES = Array.from({ length: 5000 }, (_, i) => `dev-${i}`);
const env = useStoreEngines({
  name: 'state-store', band: BAND,
  setupSqlite(store) {
    // SQLite's device_state rows refer to their devices (PostgreSQL's do not yet: the registry is SQLite only)
    const add = store.sqlite.prepare(`insert into devices (id, kind, serial, state, secret_hash, secret_rotated_at, power,
      config, created_at, updated_at) values (?, 'call-phone', ?, 'in-service', 'unused', 0, 'battery', '{}', 0, 0)`);
    store.sqlite.transaction(() => { for (const id of DEVICES) add.run(id, `SN-${id}`); })();
  },
});

/** a state with every field set to something a round trip could get wrong */
function full(i: number): LiveState {
  return {
    online: i % 2 === 0,
    lastSeen: 1_796_000_000_000 + i,
    connectedAt: i % 3 === 0 ? null : 1_795_999_000_000 + i,
    battery: 87.5,
    signal: -97,
    mains: i % 2 === 1,
    position: { lat: 30.5928, lon: 114.3055, accuracy: 12.5, at: 1_796_000_000_000 },
    supervision: 'late',
    unreadableCount: 3,
    lastUnreadableAt: 1_796_000_001_000,
    lastUnreadableReason: '"battery" is invalid for heartbeat: 电量 must be 0–100',
    flags: ['mains-lost', 'possible-replay'],
  };
}

/** the PostgreSQL engine's newest database, for writes behind the store's back */
let lastPool: pg.Pool;

const byId = (rows: StoredState[]) => new Map(rows.map((r) => [r.deviceId, r]));

interface Engine {
  name: string;
  open(): Promise<DeviceStateStore<StoreMode>>;
  /** write `rows` in a transaction that then fails */
  writeAndFail(store: DeviceStateStore<StoreMode>, rows: StoredState[]): Promise<void>;
  /** a row written behind the store's back, with a supervision value this version does not know */
  writeUnknownSupervision(store: DeviceStateStore<StoreMode>, deviceId: string): Promise<void>;
}

const engines: Engine[] = [
  {
    name: 'SQLite',
    async open() {
      env.sqlite().sqlite.exec('DELETE FROM device_state');
      return createSqliteDeviceStateStore(env.sqlite().sqlite);
    },
    async writeAndFail(store, rows) {
      expect(() => env.sqlite().sqlite.transaction(() => {
        store.write(rows);
        throw new Error('the batch failed after its states were written');
      })()).toThrow(/the batch failed/);
    },
    async writeUnknownSupervision(_store, deviceId) {
      env.sqlite().sqlite.prepare(`INSERT INTO device_state (device_id, supervision, updated_at) VALUES (?, 'asleep', 1)`).run(deviceId);
    },
  },
  {
    name: 'PostgreSQL',
    async open() {
      lastPool = (await env.pgs().fresh('state', 4)).pool;
      return createPgDeviceStateStore(lastPool);
    },
    async writeAndFail(store, rows) {
      const s = store as PgDeviceStateStore;
      await expect(s.transaction(async (tx) => {
        await tx.write(rows);
        throw new Error('the batch failed after its states were written');
      })).rejects.toThrow(/the batch failed/);
    },
    async writeUnknownSupervision(_store, deviceId) {
      await lastPool.query(`INSERT INTO device_state (device_id, supervision, updated_at) VALUES ($1, 'asleep', 1)`, [deviceId]);
    },
  },
];

for (const engine of engines) {
  describe(`device-state store contract: ${engine.name}`, () => {
    it('reads back exactly what was written: every field, nulls as nulls, a fraction as a fraction', async () => {
      const store = await engine.open();
      expect(await store.loadAll()).toEqual([]);
      const rows: StoredState[] = [
        { deviceId: 'dev-0', state: full(0), updatedAt: 1_796_000_002_000 },
        { deviceId: 'dev-1', state: full(1), updatedAt: 1_796_000_002_001 },
        { deviceId: 'dev-2', state: blankState(), updatedAt: 5 },
      ];
      await store.write(rows);
      const back = byId(await store.loadAll());
      expect(back.size).toBe(3);
      for (const r of rows) expect(back.get(r.deviceId)).toEqual(r);
    });

    it('a later write replaces the row; in one batch the last row of a device counts', async () => {
      const store = await engine.open();
      await store.write([{ deviceId: 'dev-3', state: full(3), updatedAt: 1 }]);
      const later = { ...blankState(), supervision: 'offline' as const, battery: 12, lastSeen: 99 };
      const last = { ...later, battery: 11 };
      await store.write([
        { deviceId: 'dev-3', state: later, updatedAt: 2 },
        { deviceId: 'dev-4', state: full(4), updatedAt: 2 },
        { deviceId: 'dev-3', state: last, updatedAt: 3 },
      ]);
      const back = byId(await store.loadAll());
      expect(back.get('dev-3')).toEqual({ deviceId: 'dev-3', state: last, updatedAt: 3 });
      expect(back.get('dev-4')?.state).toEqual(full(4));
    });

    it('a batch in a transaction that fails leaves nothing of it; a batch of 5,000 is stored whole', async () => {
      const store = await engine.open();
      await store.write([{ deviceId: 'dev-5', state: full(5), updatedAt: 1 }]);
      await engine.writeAndFail(store, [
        { deviceId: 'dev-5', state: blankState(), updatedAt: 2 },
        { deviceId: 'dev-6', state: full(6), updatedAt: 2 },
      ]);
      let back = byId(await store.loadAll());
      expect(back.get('dev-5')).toEqual({ deviceId: 'dev-5', state: full(5), updatedAt: 1 });
      expect(back.has('dev-6')).toBe(false);

      const many = DEVICES.map((deviceId, i) => ({ deviceId, state: { ...full(i), battery: i % 101 }, updatedAt: 10 }));
      if (store.mode === 'sync') env.sqlite().sqlite.transaction(() => store.write(many))();
      else await store.write(many);
      back = byId(await store.loadAll());
      expect(back.size).toBe(DEVICES.length);
      expect(back.get('dev-4999')?.state.battery).toBe(4999 % 101);
    });

    it('an unreadable message\'s reason quoting a NUL the device sent is kept, the NUL shown as ␀', async () => {
      const store = await engine.open();
      // what the parser's message says of such a payload (devices/frames.ts quotes it in the reason)
      const state = { ...full(8), lastUnreadableReason: 'malformed JSON: Unexpected token \'\u0000\', "{\u0000" is not valid JSON' };
      await store.write([{ deviceId: 'dev-8', state, updatedAt: 1 }]);
      const [row] = await store.loadAll();
      expect(row!.state.lastUnreadableReason).toBe('malformed JSON: Unexpected token \'␀\', "{␀" is not valid JSON');
    });

    it('a supervision value it does not know reads as never-seen, not as a state the rules would trust', async () => {
      const store = await engine.open();
      await engine.writeUnknownSupervision(store, 'dev-7');
      const [row] = await store.loadAll();
      expect(row).toMatchObject({ deviceId: 'dev-7', state: { supervision: 'never-seen', flags: [], online: false } });
    });
  });
}

describe('DeviceStates on the store', () => {
  it('after a restart every device reads back offline and not connected, the rest as it was written', async () => {
    env.sqlite().sqlite.exec('DELETE FROM device_state');
    const store = createSqliteDeviceStateStore(env.sqlite().sqlite);
    const first = new DeviceStates(store);
    first.begin();
    env.sqlite().sqlite.transaction(() => {
      first.apply({ deviceId: 'dev-8', type: 'heartbeat', receivedAt: 1_796_000_000_000, source: 'mqtt', battery: 40 } as never);
      first.flushDirty(1_796_000_000_001);
    })();
    first.commit();
    const written = first.get('dev-8');
    const again = new DeviceStates(store);
    expect(again.get('dev-8')).toEqual({ ...written, online: false, connectedAt: null });
    expect(again.get('dev-8').battery).toBe(40);
  });

  it('writes what it owes in chunks: a limit of 20 of 40 changed devices writes 20, the next flush the rest', async () => {
    env.sqlite().sqlite.exec('DELETE FROM device_state');
    const states = new DeviceStates(createSqliteDeviceStateStore(env.sqlite().sqlite));
    for (let i = 100; i < 140; i++) {
      states.apply({ deviceId: `dev-${i}`, type: 'heartbeat', receivedAt: 1_796_000_000_000 + i, source: 'mqtt', battery: i % 100 } as never);
    }
    const stored = () => (env.sqlite().sqlite.prepare('SELECT count(*) AS n FROM device_state').get() as { n: number }).n;
    env.sqlite().sqlite.transaction(() => states.flushDirty(1, 20))();
    expect(stored()).toBe(20);
    expect(states.dirtyCount()).toBe(20);
    env.sqlite().sqlite.transaction(() => states.flushDirty(2))();
    expect(stored()).toBe(40);
    expect(states.dirtyCount()).toBe(0);
    expect(new DeviceStates(createSqliteDeviceStateStore(env.sqlite().sqlite)).get('dev-139').battery).toBe(39);
  });
});
