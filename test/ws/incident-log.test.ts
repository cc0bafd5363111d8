// The log as a console's replay reads it (server/ws/index.ts incidentLog): a scoped read examines a bounded stretch of
// the log and says where it ended and whether that was the log's end, so that the replay can go on from there without
// skipping an event, reading past what is durable, or never ending. Over a log in memory with the store's semantics.
import { describe, expect, it } from 'vitest';
import { incidentLog } from '../../server/ws/index.js';
import { EVENTS_READ_MAX } from '../../response/incidents.js';
import type { StreamEvent } from '../../server/ws/protocol.js';

/** seq 1..n; every `every`-th event is unit "mine", the rest "other" */
function memoryLog(n: number, every: number) {
  const events = Array.from({ length: n }, (_, i) => ({ seq: i + 1, unitId: (i + 1) % every === 0 ? 'mine' : 'other' }) as unknown as StreamEvent);
  const reads: { seq: number; limit: number; upTo: number | undefined }[] = [];
  const incidents = {
    head: () => n,
    eventsAfter(seq: number, opts: { limit?: number; scope?: string | null; upTo?: number } = {}) {
      const limit = Math.min(opts.limit ?? 1000, EVENTS_READ_MAX);
      reads.push({ seq, limit, upTo: opts.upTo });
      return events.filter((e) => e.seq > seq && e.seq <= (opts.upTo ?? Infinity) && (!opts.scope || (e as unknown as { unitId: string }).unitId === opts.scope))
        .slice(0, limit);
    },
  };
  return { events, reads, incidents: incidents as never };
}

/** what a replay does: read, go on from where the read ended, until a short read reached the end */
function replay(log: ReturnType<typeof incidentLog>, since: number, pageSize: number, scope: string | null) {
  const got: number[] = [];
  let cursor = since;
  for (let turns = 0; turns < 10_000; turns++) {
    const { events, scannedTo, atEnd } = log.after(cursor, pageSize, scope);
    for (const e of events) { got.push(e.seq); cursor = e.seq; }
    if (events.length < pageSize) {
      if (atEnd) return { got, turns: turns + 1 };
      cursor = Math.max(cursor, scannedTo);
    }
  }
  throw new Error('the replay never reached the end of the log');
}

describe('incidentLog().after: a replay\'s reads', () => {
  it('a scoped replay over a quiet stretch reads bounded stretches and ends at the log\'s end (no durable cap given)', () => {
    const m = memoryLog(100_000, 25_000);
    const { got, turns } = replay(incidentLog(m.incidents, undefined, 10_000), 0, 500, 'mine');
    expect(got).toEqual([25_000, 50_000, 75_000, 100_000]);
    expect(turns).toBe(10);
    for (const r of m.reads) expect(r.upTo! - r.seq).toBeLessThanOrEqual(10_000);
  });

  it('never reads above what is durable, and ends there', () => {
    const m = memoryLog(100_000, 10);
    const { got } = replay(incidentLog(m.incidents, () => 54_321, 5_000), 50_000, 100, 'mine');
    expect(got).toEqual(Array.from({ length: 432 }, (_, i) => 50_010 + i * 10));
    expect(Math.max(...m.reads.map((r) => r.upTo!))).toBe(54_321);
    const unscoped = replay(incidentLog(memoryLog(100_000, 10).incidents, () => 54_321), 54_000, 100, null);
    expect(unscoped.got).toEqual(Array.from({ length: 321 }, (_, i) => 54_001 + i));
  });

  it('a full page inside a stretch ends the stretch at its last event: the rest of the stretch is read next', () => {
    const m = memoryLog(30_000, 2);
    const log = incidentLog(m.incidents, undefined, 20_000);
    const first = log.after(0, 100, 'mine');
    expect(first.events).toHaveLength(100);
    expect(first.scannedTo).toBe(200);
    expect(first.atEnd).toBe(false);
    expect(replay(log, 0, 100, 'mine').got).toEqual(Array.from({ length: 15_000 }, (_, i) => 2 * (i + 1)));
  });

  it('a page asked larger than one read gives is still full at what one read gives: nothing skipped', () => {
    const m = memoryLog(60_000, 1);
    const log = incidentLog(m.incidents, undefined, 50_000);
    const page = log.after(0, 3 * EVENTS_READ_MAX, 'mine');
    expect(page.events).toHaveLength(EVENTS_READ_MAX);
    expect(page.scannedTo).toBe(EVENTS_READ_MAX);
    expect(page.atEnd).toBe(false);
    expect(replay(log, 0, 3 * EVENTS_READ_MAX, 'mine').got).toHaveLength(60_000);
  });
});
