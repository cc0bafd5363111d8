// Overload never buys a false PUBACK. The telemetry queue is made small (ingest.telemetryQueueLimit 100) and the
// writer stalled for telemetry (its batch never fills and its flush timer is far away), then devices publish QoS 1
// telemetry beyond the queue and the line of those waiting for room (ingest.telemetryWaitersLimit). Those beyond the
// line are refused (OverloadError: no PUBACK, the connection drops, the device resends later); those in the queue
// and in the line are acknowledged only once written. Every PUBACK a device got is a stored row.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MqttClient } from 'mqtt';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';

describe('QoS 1 telemetry under overload', () => {
  let t: TestGateway;
  beforeAll(async () => {
    t = await startTestGateway({
      ingest: { telemetryQueueLimit: 100, telemetryWaitersLimit: 20, telemetryBatchRows: 1000, telemetryFlushMs: 600_000 },
    });
  });
  afterAll(async () => t.stop());

  it('is never acknowledged unless stored: beyond the queue it waits, beyond the line it is refused', async () => {
    const db = t.gw.store.sqlite;
    const clients: { id: string; c: MqttClient; closed: boolean }[] = [];
    for (let i = 0; i < 15; i++) {
      const { id, secret } = await t.provision('locator');
      const c = await t.connectDevice(id, secret);
      const entry = { id, c, closed: false };
      c.on('close', () => { entry.closed = true; });
      clients.push(entry);
    }
    const acked: { id: string; seq: number }[] = [];
    let sent = 0;
    // 15 devices × 10 fixes: 100 fill the queue, 20 wait for room, the rest find the line full
    for (const [i, x] of clients.entries()) {
      for (let seq = 1; seq <= 10; seq++) {
        sent++;
        x.c.publish(`devices/${x.id}/telemetry`, JSON.stringify({ ts: 1_700_000_000_000 + seq, seq, type: 'position', lat: 39.9, lon: 116.4 }),
          { qos: 1 }, (err) => { if (!err) acked.push({ id: x.id, seq }); });
      }
      // one device at a time, so the order in which they reach the writer is known
      await waitFor(() => {
        const q = t.gw.ingest.queueDepth();
        return i < 12 ? q.telemetry + q.waiting === (i + 1) * 10 : x.closed;
      }, `device ${i + 1}'s fixes at the writer`);
    }
    expect(sent).toBe(150);
    // the three devices beyond the line were refused: their connections dropped, nothing acknowledged anywhere
    await waitFor(() => clients.filter((x) => x.closed).length === 3, 'the refused devices disconnected');
    expect(t.gw.ingest.queueDepth()).toMatchObject({ telemetry: 100, waiting: 20 });
    expect(acked).toEqual([]);
    const metrics = await (await fetch(`${t.http}/metrics`)).text();
    expect(metrics).toMatch(/eldergate_refused_total\{stage="ingest",reason="overload"\} [1-9]/);

    // the writer catches up: the queue, then the line, are written — and only then acknowledged
    t.gw.ingest.flushAll();
    await waitFor(() => acked.length === 120 || undefined, '120 PUBACKs');
    const stored = new Set((db.prepare("select device_id || '/' || seq k from observations where type = 'position'").all() as { k: string }[]).map((r) => r.k));
    for (const a of acked) expect(stored.has(`${a.id}/${a.seq}`), `${a.id} seq ${a.seq} acknowledged`).toBe(true);
    expect(stored.size).toBe(120);
    for (const x of clients.filter((x) => x.closed)) expect(acked.some((a) => a.id === x.id)).toBe(false);
    for (const { c } of clients) c.end(true);
  });
});
