// Ordered observations (cluster mode's consumer hands a device's waiting events to the writer together, in one batch,
// instead of one commit after another): when one of them is not stored, the device's ordered observations after it
// in the batch are not stored either (EARLIER_NOT_STORED) and are tried again behind it, so that nothing of the device
// lands ahead of what it sent before (a cancel retried after the SOS it preceded would cancel that SOS). Other
// devices, and the device's observations not marked ordered, are not held. A real SQLite file with the migrations.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openStore, type Store } from '../../core/db.js';
import { loadConfig } from '../../core/config.js';
import { createMetrics } from '../../core/metrics.js';
import { createLogger } from '../../core/logger.js';
import { EARLIER_NOT_STORED, type Observation } from '../../core/contracts.js';
import { DeviceStates } from '../../gateway/device-state.js';
import { devices } from '../../devices/schema.js';
import { Ingest } from '../../gateway/ingest.js';

describe('ordered observations in one batch of the writer', () => {
  let store: Store | undefined;
  let dir = '';
  afterEach(() => {
    store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('one not stored holds back the device\'s ordered ones after it, and nothing else; tried again, they land in order', async () => {
    dir = mkdtempSync(join(tmpdir(), 'eg-ordered-'));
    store = openStore(join(dir, 'eldergate.db'));
    const now = Date.now();
    for (const [id, serial] of [['d1', 'ORD-1'], ['d2', 'ORD-2']] as const) {
      store.db.insert(devices).values({ id, kind: 'call-phone', serial, state: 'in-service', secretHash: 'unused', secretRotatedAt: now, createdAt: now, updatedAt: now, power: 'battery' }).run();
    }
    const ingest = new Ingest({
      sqlite: store.sqlite, states: new DeviceStates(store.sqlite), config: loadConfig({}).ingest,
      log: createLogger('silent'), metrics: createMetrics(), onCommitted: () => undefined,
    });
    // the step that raises incidents fails on d1's seq 2 the first time: that alarm is not stored (its savepoint)
    let failing = true;
    ingest.use({
      name: 'fails-once', raisesIncidents: true,
      run(obs) {
        if (failing && obs.deviceId === 'd1' && obs.seq === 2) throw new Error('the rule step failed on this one');
      },
    });
    const obs = (deviceId: string, seq: number, type: string, ordered: boolean): Observation =>
      ({ deviceId, seq, type, deviceTs: now + seq, receivedAt: now, source: 'mqtt', ...(ordered ? { ordered: true } : {}) }) as Observation;
    // handed over in one turn: one batch
    const first = await Promise.allSettled([
      ingest.submit(obs('d1', 1, 'sos', true)),
      ingest.submit(obs('d1', 2, 'fall', true)),
      ingest.submit(obs('d1', 3, 'cancel', true)),
      ingest.submit(obs('d2', 1, 'sos', true)),
      ingest.submit(obs('d1', 4, 'sos', true)),
      // not ordered (the embedded broker's path): not held
      ingest.submit(obs('d1', 5, 'check-in', false)),
    ]);
    expect(first.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'rejected', 'fulfilled', 'rejected', 'fulfilled']);
    const code = (r: PromiseSettledResult<unknown>) => ((r as PromiseRejectedResult).reason as { code?: string }).code;
    expect(code(first[1]!)).not.toBe(EARLIER_NOT_STORED);
    expect([code(first[2]!), code(first[4]!)]).toEqual([EARLIER_NOT_STORED, EARLIER_NOT_STORED]);
    const stored = (deviceId: string) => (store!.sqlite.prepare('select seq from observations where device_id = ? order by id').all(deviceId) as { seq: number }[]).map((r) => r.seq);
    expect(stored('d1')).toEqual([1, 5]);
    expect(stored('d2')).toEqual([1]);

    // tried again behind it, in their order
    failing = false;
    const again = await Promise.allSettled([2, 3, 4].map((seq) => ingest.submit(obs('d1', seq, seq === 3 ? 'cancel' : seq === 2 ? 'fall' : 'sos', true))));
    expect(again.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled']);
    expect(stored('d1')).toEqual([1, 5, 2, 3, 4]);
    await ingest.close?.();
  });
});
