// The rate bound behind "terminal sends unreadable messages": refusals counted in memory, a report at most once per
// window per device, never an acknowledgement before a report is durable, bounded memory. Fake sink, fake timers.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { IngestResult, Observation, ObservationSink } from '../../core/contracts.js';
import { createLogger } from '../../core/logger.js';
import { createMetrics } from '../../core/metrics.js';
import { createUnreadableReporter } from '../../gateway/broker/unreadable.js';
import { World } from '../rules/harness.js';

const WINDOW = 3000;

/** A sink whose writes settle when the test says so. */
class Sink implements ObservationSink {
  readonly written: Observation[] = [];
  readonly waiting: { obs: Observation; resolve: (r: IngestResult) => void; reject: (e: Error) => void }[] = [];
  submit(obs: Observation): Promise<IngestResult> {
    return new Promise((resolve, reject) => this.waiting.push({ obs, resolve, reject }));
  }
  commit(): void {
    for (const w of this.waiting.splice(0)) {
      this.written.push(w.obs);
      w.resolve({ status: 'stored', observationId: this.written.length });
    }
  }
  fail(): void {
    for (const w of this.waiting.splice(0)) w.reject(new Error('disk full'));
  }
}

const settled = async (p: Promise<void> | undefined) => {
  if (!p) return 'ack now';
  let state = 'pending';
  p.then(() => { state = 'ack'; }, () => { state = 'no ack'; });
  await vi.advanceTimersByTimeAsync(0);
  return state;
};

describe('unreadable reporter', () => {
  let sink: Sink;
  let metrics: ReturnType<typeof createMetrics>;
  const make = (maxDevices = 100) => createUnreadableReporter({
    sink, log: createLogger('silent'), metrics, windowMs: WINDOW, maxDevices, now: () => performance.now(), wallClock: () => Date.now(),
  });
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance', 'Date'] });
    sink = new Sink();
    metrics = createMetrics();
  });
  afterEach(() => vi.useRealTimers());

  it('the first refusal waits for its report; the next ones in the window are acknowledged and counted into one join', async () => {
    const r = make();
    const first = r.refused('cp-1', 'malformed JSON: x', 'devices/cp-1/events');
    expect(first).toBeInstanceOf(Promise);
    // a second refusal while the first report is being written waits for that same report
    const second = r.refused('cp-1', 'malformed JSON: y', 'devices/cp-1/events');
    expect(await settled(first)).toBe('pending');
    expect(sink.waiting.map((w) => w.obs)).toMatchObject([{ deviceId: 'cp-1', type: 'unreadable', count: 1, reason: 'malformed JSON: x', source: 'gateway' }]);
    sink.commit();
    expect(await settled(first)).toBe('ack');
    expect(await settled(second)).toBe('ack');
    for (let i = 0; i < 500; i++) expect(r.refused('cp-1', `unknown events type "z${i}"`, 'devices/cp-1/events')).toBeUndefined();
    expect(sink.waiting).toHaveLength(0); // no write per frame
    await vi.advanceTimersByTimeAsync(WINDOW);
    expect(sink.waiting.map((w) => w.obs)).toMatchObject([{ deviceId: 'cp-1', type: 'unreadable', count: 501, reason: 'unknown events type "z499"' }]);
    sink.commit();
    // quiet for a window: nothing more is written, and the device is forgotten
    await vi.advanceTimersByTimeAsync(3 * WINDOW);
    expect(sink.waiting).toHaveLength(0);
    expect(r.tracked()).toBe(0);
    expect(sink.written.map((o) => (o as { count: number }).count)).toEqual([1, 501]);
    // garbage after that waits for a report of its own again
    expect(r.refused('cp-1', 'again', 't')).toBeInstanceOf(Promise);
    expect(sink.waiting).toHaveLength(1);
  });

  it('a report that cannot be written: no acknowledgement, the count is kept, retried at the end of the window', async () => {
    const r = make();
    const first = r.refused('cp-1', 'bad', 't');
    sink.fail();
    expect(await settled(first)).toBe('no ack');
    // the device resends at once: no write per frame while the disk is failing, and no acknowledgement either
    const resend = r.refused('cp-1', 'bad', 't');
    expect(sink.waiting).toHaveLength(0);
    expect(await settled(resend)).toBe('pending');
    await vi.advanceTimersByTimeAsync(WINDOW);
    expect(sink.waiting.map((w) => (w.obs as { count: number }).count)).toEqual([2]);
    sink.commit();
    expect(await settled(resend)).toBe('ack');
    expect((await metrics.unreadableReports.get()).values.map((v) => [v.labels.result, v.value])).toEqual([['failed', 1], ['written', 1]]);
  });

  it('each device has its own window, and memory is bounded: beyond it a refusal is reported on its own', async () => {
    const r = make(2);
    const a = r.refused('cp-a', 'x', 't');
    const b = r.refused('cp-b', 'x', 't');
    const c = r.refused('cp-c', 'x', 't'); // a third device: not tracked, reported alone
    expect(r.tracked()).toBe(2);
    expect(sink.waiting.map((w) => w.obs.deviceId)).toEqual(['cp-a', 'cp-b', 'cp-c']);
    sink.commit();
    expect([await settled(a), await settled(b), await settled(c)]).toEqual(['ack', 'ack', 'ack']);
    expect((await metrics.unreadableReports.get()).values.find((v) => v.labels.result === 'untracked')?.value).toBe(1);
  });

  it('close writes what is still counted', async () => {
    const r = make();
    r.refused('cp-1', 'x', 't');
    sink.commit();
    await vi.advanceTimersByTimeAsync(0);
    r.refused('cp-1', 'y', 't');
    r.refused('cp-1', 'z', 't');
    const closing = r.close();
    sink.commit();
    await closing;
    expect(sink.written.map((o) => [(o as { count: number }).count, (o as { reason: string }).reason])).toEqual([[1, 'x'], [2, 'z']]);
    expect(r.tracked()).toBe(0);
  });
});

describe('technical rule: unreadable → one P3 "terminal sends unreadable messages" per device', () => {
  it('raises P3 unreadable-messages; later reports join it; another device gets its own', () => {
    const w = new World();
    w.device('cp-1', { kind: 'call-phone' });
    w.device('cp-2', { kind: 'call-phone' });
    const unreadable = (deviceId: string, count: number) =>
      w.send(deviceId, { type: 'unreadable', count, reason: 'malformed JSON: boom', topic: `devices/${deviceId}/events`, source: 'gateway' });
    expect(unreadable('cp-1', 1).alarms).toEqual([{
      action: 'raise', type: 'unreadable-messages', priority: 'P3', rule: 'technical',
      data: { title: 'terminal sends unreadable messages', refused: 1, reason: 'malformed JSON: boom', topic: 'devices/cp-1/events' },
    }]);
    unreadable('cp-1', 40);
    unreadable('cp-2', 1);
    expect(w.incidents.map((i) => [i.deviceId, i.type, i.priority, i.count])).toEqual([
      ['cp-1', 'unreadable-messages', 'P3', 2],
      ['cp-2', 'unreadable-messages', 'P3', 1],
    ]);
  });
});
