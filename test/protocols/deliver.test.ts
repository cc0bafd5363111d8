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
  let counted = 0;
  let i = 0;
  return {
    submitted, counted: () => counted,
    services: {
      sink: {
        // the order of the calls is the order the writer takes them in (it keeps a device's observations in order)
        submit(o: Observation): Promise<IngestResult> {
          const n = i++;
          submitted.push(o);
          return new Promise((resolve, reject) => setImmediate(() =>
            n === failOn ? reject(new Error('disk full (test)')) : resolve({ status: 'stored', observationId: n + 1 })));
        },
      },
      metrics: { replied: () => undefined, ignored: () => undefined, storeFailed: () => { counted++; } },
    },
  };
}

describe('deliver', () => {
  it('hands every observation to the writer at once, in the order given (an SOS is not held behind its frame\'s telemetry), and is true once all are durable', async () => {
    const s = sink();
    const stored: number[] = [];
    const list = [obs('position', 1), obs('sos', 2), obs('heartbeat', 3)];
    const p = deliver(s.services, list, { stored: (o) => stored.push(o.receivedAt), failed: () => { throw new Error('no failure expected'); } });
    // all three submitted before the first is durable
    expect(s.submitted).toEqual(list);
    expect(stored).toEqual([]);
    expect(await p).toBe(true);
    expect(stored).toEqual([1, 2, 3]);
    expect(s.counted()).toBe(0);
  });

  it('false when one could not be stored: counted once for the frame, the caller told which', async () => {
    const s = sink(1);
    const failed: Observation[] = [];
    const list = [obs('sos', 1), obs('position', 2), obs('heartbeat', 3)];
    expect(await deliver(s.services, list, { failed: (_err, o) => failed.push(o) })).toBe(false);
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
