// StorageHealth (core/storage-health.ts) with a writer that answers later, as the PostgreSQL one does (the writer
// thread writes the storage incident there): every episode gets its incident, opened and resolved once, in order, also
// when the next episode begins and ends while the first one's incident is still being written; the probe is not held
// back by a write in flight; nothing is tried again after close().
import { describe, expect, it } from 'vitest';
import { StorageHealth, type StorageFault } from '../../core/storage-health.js';
import { createLogger } from '../../core/logger.js';
import { createMetrics } from '../../core/metrics.js';

const log = createLogger('silent');
const settle = () => new Promise((r) => setTimeout(r, 10));
const diskFull = () => Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
const pgDown = () => Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });

/** a writer whose every call waits until the test lets it go */
function slowWriter() {
  const calls: { what: string; since: number; release: () => void }[] = [];
  let probeOk = false;
  let ids = 0;
  const wait = (what: string, fault: StorageFault) => new Promise<void>((release) => calls.push({ what, since: fault.since, release }));
  return {
    calls,
    setProbe(ok: boolean) { probeOk = ok; },
    async releaseAll() {
      while (calls.some((c) => c.release !== done)) {
        for (const c of calls) { const r = c.release; c.release = done; r(); }
        await settle();
      }
    },
    writer: {
      async open(fault: StorageFault) { await wait('open', fault); return `inc-${++ids}`; },
      async resolve(_id: string, _note: string, fault: StorageFault) { await wait('resolve', fault); },
      probe() { if (!probeOk) throw new Error('still failing'); },
    },
  };
}
const done = () => {};

/** StorageHealth on a clock the test sets (`at`), attached to a slow writer; `written()` lets every write through */
function attached() {
  let now = 1_000;
  const health = new StorageHealth({ metrics: createMetrics({ defaults: false }), log, retryMs: 20, now: () => now });
  const w = slowWriter();
  health.attach(w.writer);
  return {
    health, w,
    at(ms: number) { now = ms; },
    async written() {
      await w.releaseAll();
      await settle();
      await w.releaseAll();
      return w.calls.map((c) => `${c.what}@${c.since}`);
    },
  };
}

describe('storage incidents written asynchronously', () => {
  it('an episode that begins and ends while the first one\'s incident is being written gets its own incident, after the first', async () => {
    const { health, w, at, written } = attached();
    try {
      health.failed('ingest', pgDown());
      expect(health.status()?.reason).toMatch(/PostgreSQL cannot be written/);
      await settle();
      expect(w.calls.map((c) => c.what)).toEqual(['open']);
      // the first episode ends, a second begins and ends, all while the first one's open is in flight
      at(2_000);
      health.succeeded();
      at(3_000);
      health.failed('ingest', diskFull());
      at(4_000);
      health.succeeded();
      expect(await written()).toEqual(['open@1000', 'resolve@1000', 'open@3000', 'resolve@3000']);
      expect(health.status()).toBeNull();
    } finally {
      health.close();
    }
  });

  it('a third episode while the first is still being written joins the second, from the second\'s start', async () => {
    const { health, at, written } = attached();
    try {
      health.failed('ingest', pgDown());
      await settle();
      for (const ms of [2_000, 3_000, 4_000, 5_000]) {
        at(ms);
        if (ms % 2000 === 0) health.succeeded();
        else health.failed('ingest', pgDown());
      }
      at(6_000);
      health.failed('ingest', pgDown());
      at(7_000);
      health.succeeded();
      expect(await written()).toEqual(['open@1000', 'resolve@1000', 'open@3000', 'resolve@3000']);
    } finally {
      health.close();
    }
  });

  it('the probe says the storage works again while an incident write is still out; after close() nothing is tried again', async () => {
    const health = new StorageHealth({ metrics: createMetrics({ defaults: false }), log, retryMs: 20 });
    const w = slowWriter();
    health.attach(w.writer);
    health.failed('ingest', pgDown());
    await settle();
    expect(w.calls.length).toBe(1);
    // the open waits (PostgreSQL away); the probe's write goes through: healthy, though the open is still out
    w.setProbe(true);
    await new Promise((r) => setTimeout(r, 60));
    expect(health.status()).toBeNull();
    health.close();
    // the write in flight finishes what it began (the open, and the resolve it chains); nothing more is tried
    await w.releaseAll();
    const after = w.calls.length;
    await new Promise((r) => setTimeout(r, 100));
    expect(w.calls.length).toBe(after);
    expect(w.calls.map((c) => c.what)).toEqual(['open', 'resolve']);
  });
});
