// Push and delivery receipts (response/receipts.ts): queued in memory, written in batches (one transaction, not one
// fsync per receipt), at most one push per incident and one delivery per user, the first of each the incident's
// stamp; a failed batch is dropped and logged (best-effort), never thrown at the console that acknowledged.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { pino } from 'pino';
import { createReceipts } from '../../response/receipts.js';
import { ingest, log, openHarness, source, sos, type Harness } from './helpers.js';

describe('receipts', () => {
  let h: Harness;
  beforeEach(() => {
    h = openHarness();
  });
  afterEach(async () => {
    await h.close();
  });

  const rows = (id: string) => h.store.sqlite.prepare('SELECT count(*) FROM incident_receipts WHERE incident_id = ?').pluck().get(id) as number;
  const written = (id: string, n: number) => vi.waitFor(() => { if (rows(id) !== n) throw new Error(`${rows(id)} of ${n} written`); }, { timeout: 10_000 });

  it('queues a hundred deliveries without writing any, then writes them in one batch; repeats are not recorded', async () => {
    const receipts = createReceipts({ store: h.store, log, flushMs: 30 });
    const [o] = ingest(h, sos(), source({}, h.clock.now()));
    const id = o!.incidentId;
    const at = h.clock.now();
    expect(receipts.pushed(id, o!.seq, at)).toBe(true);
    expect(receipts.pushed(id, o!.seq, at + 1)).toBe(false);
    for (let i = 0; i < 100; i++) expect(receipts.delivered(id, o!.seq, at + 10 + i, `u${i}`, `user ${i}`)).toBe(true);
    expect(receipts.delivered(id, o!.seq, at + 500, 'u7', 'user 7')).toBe(false);
    // nothing written in the callers' turn: a receipt costs no transaction of its own
    expect(rows(id)).toBe(0);
    expect(receipts.of(id)).toHaveLength(101);
    await written(id, 101);
    expect(h.response.incidents.get(id)!.stamps).toMatchObject({ pushed: at, delivered: at + 10 });
    // even past the memory's dedup (a restart), the table keeps one per user
    const again = createReceipts({ store: h.store, log });
    expect(again.delivered(id, o!.seq, at + 900, 'u3', 'user 3')).toBe(true);
    expect(again.flush()).toBe(0);
    expect(rows(id)).toBe(101);
    expect(h.response.incidents.get(id)!.stamps.delivered).toBe(at + 10);
    receipts.close();
    again.close();
  });

  it('a full batch is written at once; close() writes what is queued', () => {
    const receipts = createReceipts({ store: h.store, log, flushMs: 60_000, maxBatch: 50 });
    const [o] = ingest(h, sos(), source({}, h.clock.now()));
    const id = o!.incidentId;
    for (let i = 0; i < 20; i++) receipts.delivered(id, o!.seq, 1000 + i, `u${i}`);
    expect(rows(id)).toBe(0);
    receipts.close();
    expect(rows(id)).toBe(20);
    expect(receipts.delivered(id, o!.seq, 2000, 'late')).toBe(true); // accepted but never written after close
    expect(receipts.flush()).toBe(0);
  });

  it('a batch that cannot be written (the storage fails) is dropped and logged; the next one is written', async () => {
    const lines: { level: number; msg: string }[] = [];
    const captured = pino({ level: 'info' }, { write: (line: string) => { lines.push(JSON.parse(line) as { level: number; msg: string }); } });
    const errors = () => lines.filter((l) => l.level >= 50);
    const receipts = createReceipts({ store: h.store, log: captured, flushMs: 10 });
    const [o] = ingest(h, sos(), source({}, h.clock.now()));
    const id = o!.incidentId;
    h.store.sqlite.exec(`CREATE TEMP TRIGGER receipts_fail BEFORE INSERT ON incident_receipts BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END`);
    receipts.pushed(id, o!.seq, 5);
    receipts.delivered(id, o!.seq, 6, 'ada');
    expect(() => receipts.flush()).not.toThrow();
    expect(errors().map((l) => l.msg)).toEqual(['could not write push/delivery receipts; dropped (best-effort)']);
    expect(rows(id)).toBe(0);
    h.store.sqlite.exec('DROP TRIGGER receipts_fail');
    receipts.delivered(id, o!.seq, 7, 'bo');
    await written(id, 1);
    expect(lines.at(-1)!.msg).toBe('receipts are written again');
    expect(h.response.incidents.get(id)!.stamps).toMatchObject({ delivered: 7 });
    expect(h.response.incidents.get(id)!.stamps.pushed).toBeUndefined();
    receipts.close();
  });
});
