// What the main thread does when its writer thread fails:
// - a writer thread that cannot build its domain (here: the write lock held past busy_timeout while it starts) is
//   ended, not left running beside the next one with its own SQLite connection; the gateway recovers once the cause is
//   gone;
// - a message from the writer that the main thread cannot handle does not take the rest of its batch with it;
// - the stall watch (ingest.writerStallMs) does not take a main thread that was itself held up, nor a writer slowed by
//   a lock held elsewhere, for a stalled writer (a writer stalled for real: writer-stall/writer-stall.test.ts).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Worker } from 'node:worker_threads';
import { metricValue, startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { holdWriteLock } from '../helpers/write-lock.js';
import { WRITE_WAIT_MS } from '../../core/db.js';

describe('a writer thread that fails to start', () => {
  let t: TestGateway;
  beforeAll(async () => { t = await startTestGateway({ ingest: { writerRestartHoldMs: 60_000 } }); });
  afterAll(async () => t.stop());

  it('is ended, and only the writer that runs is left once the lock is free', async () => {
    const { id, secret } = await t.provision('call-phone');
    const writer = t.gw.writer as unknown as { worker: Worker; spawned: number; running: boolean };
    // every thread the gateway starts from now on, and whether it has ended
    const seen = new Map<Worker, { exited: boolean }>();
    const watch = (w: Worker) => {
      if (seen.has(w)) return;
      const s = { exited: false };
      seen.set(w, s);
      w.once('exit', () => { s.exited = true; });
    };
    const first = writer.worker;
    watch(first);
    const poll = setInterval(() => watch(writer.worker), 10);
    const lock = holdWriteLock(t.dataDir);
    try {
      const spawnedBefore = writer.spawned;
      first.postMessage(null); // the writer dies (a message it cannot handle kills it: writer-thread.test.ts)
      // its replacement starts at once and waits busy_timeout (5 s) for the lock its registry replica needs, then fails
      await waitFor(() => (writer.spawned > spawnedBefore && writer.worker !== first ? true : undefined), 'a replacement thread', 5_000);
      const failing = writer.worker;
      watch(failing);
      await waitFor(() => (seen.get(failing)!.exited ? true : undefined), 'the thread that failed to start to end', 12_000);
      expect(writer.running).toBe(false);
    } finally {
      lock.release();
      lock.close();
    }
    // the next attempt (after the back-off) starts on a free database, and an SOS sent meanwhile is stored
    const c = await t.connectDevice(id, secret);
    const acked = c.publishAsync(`devices/${id}/events`, JSON.stringify({ ts: Date.now(), seq: 1, type: 'sos' }), { qos: 1 });
    await waitFor(() => (writer.running ? true : undefined), 'a writer thread that runs', 20_000);
    await acked;
    clearInterval(poll);
    watch(writer.worker);
    const alive = [...seen].filter(([, s]) => !s.exited).map(([w]) => w);
    expect(alive).toEqual([writer.worker]);
    c.end(true);
  }, 60_000);

  it('a message of the writer that cannot be handled does not stop the rest of its batch', async () => {
    const writer = t.gw.writer as unknown as { worker: Worker; queueDepth(): { urgent: number; telemetry: number; waiting: number } };
    await waitFor(() => (t.gw.writer.running ? true : undefined), 'a writer thread that runs', 20_000);
    // a storage report without its error cannot be read (fromWire throws); the stats after it in the same batch must
    // still be taken, as an alarm's answer would be
    const stats = { urgent: 7, telemetry: 3, waiting: 1 };
    expect(() => writer.worker.emit('message', [
      { op: 'storage', ok: false, writer: 'test', error: null, at: Date.now() },
      { op: 'stats', stats },
    ])).not.toThrow();
    expect(writer.queueDepth()).toEqual(stats);
  });

  it('a failure while finishing a start is a failed start: the thread is ended, the next one runs and answers what was held', async () => {
    const { id, secret } = await t.provision('call-phone');
    await waitFor(() => (t.gw.writer.running ? true : undefined), 'a writer thread that runs', 20_000);
    const writer = t.gw.writer as unknown as { worker: Worker; spawned: number; handOnHeld(): void };
    const handOn = writer.handOnHeld;
    let failOnce = true;
    // the next start fails where it hands what was held to the new thread (once)
    writer.handOnHeld = function () {
      if (failOnce) { failOnce = false; throw new Error('a test: finishing the start fails'); }
      handOn.call(this);
    };
    try {
      const c = await t.connectDevice(id, secret);
      const spawnedBefore = writer.spawned;
      const first = writer.worker;
      const ended = new Promise((r) => first.once('exit', r));
      first.postMessage(null); // the writer dies
      await ended;
      // sent while no writer runs: held, and answered by the thread that finally runs
      const acked = c.publishAsync(`devices/${id}/events`, JSON.stringify({ ts: Date.now(), seq: 1, type: 'sos' }), { qos: 1 });
      await waitFor(() => (!failOnce && t.gw.writer.running ? true : undefined), 'a writer thread that runs after the failed start', 30_000);
      await acked;
      expect(writer.spawned - spawnedBefore).toBe(2);
      expect((t.gw.store.sqlite.prepare("select count(*) n from observations where device_id = ? and type = 'sos'").get(id) as { n: number }).n).toBe(1);
      c.end(true);
    } finally {
      writer.handOnHeld = handOn;
    }
  }, 60_000);
});

describe('the writer stall watch', () => {
  let t: TestGateway;
  beforeAll(async () => { t = await startTestGateway({ ingest: { writerStallMs: 3000 } }); });
  afterAll(async () => t.stop());

  it('does not end a writer that spoke while the main thread was held up', async () => {
    const writer = t.gw.writer as unknown as { worker: Worker; spawned: number };
    const before = { worker: writer.worker, spawned: writer.spawned };
    // the main thread busy for 5 s, longer than the watch's 3 s: the writer's reports wait on its port, behind the
    // watch's own timer
    const until = performance.now() + 5000;
    while (performance.now() < until) { /* held up */ }
    await new Promise((r) => setTimeout(r, 4000));
    expect(writer.worker).toBe(before.worker);
    expect(writer.spawned).toBe(before.spawned);
    expect(t.gw.writer.running).toBe(true);
    expect(await metricValue(t.gw, 'eldergate_internal_errors_total', { where: 'writer-stalled' })).toBe(0);
  });
});

// the writer handles each message of the main thread in one turn of its loop; one message can carry several people's
// writes, each waiting up to the lock's busy timeout, during which its 250 ms reports wait too
describe('the writer stall watch, with a lock held elsewhere', () => {
  let t: TestGateway;
  beforeAll(async () => { t = await startTestGateway({ ingest: { writerStallMs: WRITE_WAIT_MS + 2000 } }); });
  afterAll(async () => t.stop());

  it('does not end a writer that works through writes each waiting for the lock', async () => {
    const { id, secret } = await t.provision('call-phone');
    const c = await t.connectDevice(id, secret);
    await c.publishAsync(`devices/${id}/events`, JSON.stringify({ ts: Date.now(), seq: 1, type: 'sos' }), { qos: 1 });
    c.end(true);
    const incidentId = await waitFor(() => (t.gw.store.sqlite.prepare('select id from incidents where device_id = ?').get(id) as { id: string } | undefined)?.id, 'the SOS incident');
    const writer = t.gw.writer as unknown as { worker: Worker; spawned: number };
    const before = { worker: writer.worker, spawned: writer.spawned };
    const lock = holdWriteLock(t.dataDir);
    let answers: PromiseSettledResult<unknown>[];
    try {
      // three notes in one turn: one message to the writer, three transactions each waiting WRITE_WAIT_MS for the lock
      const note = (n: number) => t.gw.writer.incident({ method: 'record', incidentId, type: 'note', data: { text: `note ${n}` }, actor: null }, () => []);
      answers = await Promise.allSettled([note(1), note(2), note(3)]);
    } finally {
      lock.release();
      lock.close();
    }
    // each was answered (refused: the lock was never free), by the same thread, which was not taken as stalled
    expect(answers.map((a) => a.status)).toEqual(['rejected', 'rejected', 'rejected']);
    expect(writer.worker).toBe(before.worker);
    expect(writer.spawned).toBe(before.spawned);
    expect(await metricValue(t.gw, 'eldergate_internal_errors_total', { where: 'writer-stalled' })).toBe(0);
  }, 40_000);
});

