// WriterThread.caughtUp(): what bulk work on the main thread (an import handing its devices to the writer's registry)
// waits for between slices, so that an alarm posted meanwhile is not queued behind all of it. It resolves once the
// writer has taken everything posted before the call, not before; and after its bound whatever the writer has taken.
// A real writer thread, held busy by a person's write that waits inside SQLite for a lock held elsewhere; what waits on
// its port meanwhile is shown in eldergate_ingest_queue{queue="port"}.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { holdWriteLock } from '../helpers/write-lock.js';

/** eldergate_ingest_queue{queue="port"} as GET /metrics gives it (set when scraped) */
async function portGauge(t: TestGateway): Promise<number> {
  const text = await fetch(`${t.http}/metrics`).then((r) => r.text());
  const line = text.split('\n').find((l) => l.startsWith('eldergate_ingest_queue{queue="port"} '));
  if (!line) throw new Error('eldergate_ingest_queue{queue="port"} is not on /metrics');
  return Number(line.split(' ')[1]);
}

describe('waiting for the writer thread to take what it was sent', () => {
  let t: TestGateway;
  beforeAll(async () => { t = await startTestGateway(); });
  afterAll(async () => t.stop());

  it('resolves once the writer has taken what was posted before, and not while the writer is busy', async () => {
    const { id, secret } = await t.provision('call-phone');
    const c = await t.connectDevice(id, secret);
    await c.publishAsync(`devices/${id}/events`, JSON.stringify({ ts: Date.now(), seq: 1, type: 'sos' }), { qos: 1 });
    c.end(true);
    const incidentId = await waitFor(() => (t.gw.store.sqlite.prepare('select id from incidents where device_id = ?').get(id) as { id: string } | undefined)?.id, 'the SOS incident');
    // nothing in flight: at once
    let t0 = performance.now();
    await t.gw.writer.caughtUp(5_000);
    expect(performance.now() - t0).toBeLessThan(1_000);

    const lock = holdWriteLock(t.dataDir);
    let note: Promise<unknown> | undefined;
    try {
      // the writer takes the note and waits inside SQLite for the lock (busy_timeout); what is posted after it stays
      // on its port
      note = t.gw.writer.incident({ method: 'record', incidentId, type: 'note', data: { text: 'while the lock is held' }, actor: null }, () => []);
      await new Promise((r) => setTimeout(r, 200));
      t.gw.writer.states.clearFlags(id);
      let settled = false;
      t0 = performance.now();
      const waited = t.gw.writer.caughtUp(20_000).then(() => { settled = true; return performance.now() - t0; });
      await new Promise((r) => setTimeout(r, 1_000));
      expect(settled, 'caughtUp() resolved while the writer was held and had not taken the later message').toBe(false);
      // what an operator sees meanwhile: a message on the writer's port
      expect(await portGauge(t)).toBeGreaterThanOrEqual(1);
      lock.release();
      // the note commits, the writer takes the message after it, and the wait ends: well before its bound
      expect(await waited).toBeLessThan(15_000);
    } finally {
      lock.release();
      lock.close();
    }
    await note;
    await waitFor(async () => ((await portGauge(t)) === 0 || undefined), 'the port empty again');
  }, 60_000);
});
