// The one "store a frame's observations, in order, before answering" of the terminal protocols (gateway/protocols/
// deliver.ts), used by the watch, JT/T 808 and DC-09 handlers (their store-failure paths are tested in their own
// handler tests: not answered / NAKed, counted once).
import { describe, expect, it } from 'vitest';
import type { IngestResult, Observation } from '../../core/contracts.js';
import { deliver } from '../../gateway/protocols/deliver.js';

const obs = (type: 'sos' | 'position' | 'heartbeat', n: number): Observation =>
  ({ type, deviceId: 'dev-1', receivedAt: n, source: 'jt808' }) as Observation;

function sink(failOn?: number) {
  const submitted: Observation[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  let counted = 0;
  return {
    submitted, counted: () => counted, maxInFlight: () => maxInFlight,
    services: {
      sink: {
        async submit(o: Observation): Promise<IngestResult> {
          inFlight++;
          maxInFlight = Math.max(maxInFlight, inFlight);
          await new Promise((r) => setImmediate(r));
          inFlight--;
          if (submitted.length === failOn) throw new Error('disk full (test)');
          submitted.push(o);
          return { status: 'stored', observationId: submitted.length };
        },
      },
      metrics: { replied: () => undefined, ignored: () => undefined, storeFailed: () => { counted++; } },
    },
  };
}

describe('deliver', () => {
  it('stores every observation in the order given, one durable before the next is submitted', async () => {
    const s = sink();
    const stored: number[] = [];
    const list = [obs('sos', 1), obs('position', 2), obs('heartbeat', 3)];
    expect(await deliver(s.services, list, { stored: (o) => stored.push(o.receivedAt), failed: () => { throw new Error('no failure expected'); } })).toBe(true);
    expect(s.submitted).toEqual(list);
    expect(stored).toEqual([1, 2, 3]);
    expect(s.maxInFlight()).toBe(1);
    expect(s.counted()).toBe(0);
  });

  it('stops at the first that could not be stored: false, counted once, the caller told which, the rest not submitted', async () => {
    const s = sink(1);
    const failed: Observation[] = [];
    const list = [obs('sos', 1), obs('position', 2), obs('heartbeat', 3)];
    expect(await deliver(s.services, list, { failed: (_err, o) => failed.push(o) })).toBe(false);
    expect(s.submitted).toEqual([list[0]]);
    expect(failed).toEqual([list[1]]);
    expect(s.counted()).toBe(1);
  });

  it('without metrics (unit tests of a handler) a failure is still reported to the caller', async () => {
    const s = sink(0);
    let why: unknown;
    expect(await deliver({ sink: s.services.sink }, [obs('sos', 1)], { failed: (err) => { why = err; } })).toBe(false);
    expect(String(why)).toMatch(/disk full/);
  });
});
