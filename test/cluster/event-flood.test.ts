// Cluster mode: one device floods its events channel (a stuck button, a hostile terminal with valid credentials).
// A partition is one queue, so every device hashed to it waits behind the flood; the consumer hands the device's
// waiting events to the writer together (one batch, one commit), not one commit after another, so another device's
// SOS behind the flood is stored in a fraction of a second, and every one of the flood's events is stored once, in
// the order it was sent. One RabbitMQ node with its MQTT plugin, one partition per lane (every device shares it), an
// eldergate node in this process.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor, type TestGateway } from '../helpers/gateway.js';
import { startRabbitTestGateway, storedSeqs, type RabbitTestGateway } from '../helpers/rabbit-gateway.js';

describe('cluster mode: one device floods its events channel', () => {
  const dir = mkdtempSync(join(tmpdir(), 'eldergate-flood-'));
  let g: RabbitTestGateway;
  let t: TestGateway;

  beforeAll(async () => {
    // band 6: no other test file's (grep `band` and freeBasePort under test/); one partition per lane: every device
    // shares it. Returns are counted as deliveries: room for a fault that lasts a few dozen of them (the second test)
    g = await startRabbitTestGateway({ dir, band: 6, rabbitmq: { partitions: 1, deliveryLimit: 100 } });
    t = g.t;
  }, 120_000);

  afterAll(async () => {
    await g?.stop();
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  const connect = (id: string, secret: string) => g.connect(id, secret);

  it('another device\'s SOS behind 5,000 events of one device is not held for a commit per event; the flood is stored once, in order', { timeout: 120_000 }, async () => {
    const flooder = await t.provision('call-phone', 'FLOOD-1');
    const victim = await t.provision('call-phone', 'FLOOD-VICTIM');
    const fc = await connect(flooder.id, flooder.secret);
    const vc = await connect(victim.id, victim.secret);
    const N = 5_000;
    // the writer's urgent commits (the writer thread's counters are summed into /metrics)
    const urgentCommits = async () => Number(/eldergate_commit_rows_count\{queue="urgent"\} (\d+)/.exec(await (await fetch(`${t.http}/metrics`)).text())?.[1] ?? 0);
    const commits0 = await urgentCommits();
    const t0 = Date.now();
    // SOS presses, each a real write (the first opens an incident, the others join it), sent without waiting
    await Promise.all(Array.from({ length: N }, (_, i) =>
      fc.publishAsync(`devices/${flooder.id}/events`, JSON.stringify({ ts: t0 + i + 1, seq: i + 1, type: 'sos' }), { qos: 1 })));
    // every one of them is in the partition (RabbitMQ PUBACKed it); the victim's SOS queues behind them
    await vc.publishAsync(`devices/${victim.id}/events`, JSON.stringify({ ts: Date.now(), seq: 1, type: 'sos' }), { qos: 1 });
    const sent = Date.now();
    await waitFor(async () => ((await t.api('GET', `/api/incidents?deviceId=${victim.id}`)).body.items as unknown[]).length > 0 || undefined,
      'the victim\'s SOS stored', 60_000, 50);
    const tookMs = Date.now() - sent;
    const commits = (await urgentCommits()) - commits0;
    console.log(`the victim's SOS stored ${tookMs} ms after its PUBACK, behind ${N} events of one device; ${commits} urgent commits`);
    // the measure that does not depend on the machine's speed: a commit per event before (5,000 and more; 8.1 s here),
    // the waiting events together now (1.2–2.1 s here, the flood's own writes)
    expect(commits, 'urgent commits for the flood and the SOS').toBeLessThan(N / 4);
    expect(tookMs, `the victim's SOS was stored ${tookMs} ms after its PUBACK`).toBeLessThan(30_000);

    // the flood: once each, in the order sent (seq ascending in the order stored)
    const seqs = await waitFor(async () => {
      const got = await storedSeqs(async (path) => (await t.api('GET', path)).body, flooder.id);
      return got.length >= N ? got : undefined;
    }, 'the flood stored', 60_000, 250);
    expect(seqs).toEqual(Array.from({ length: N }, (_, i) => i + 1));
    const inc = (await t.api('GET', `/api/incidents?deviceId=${flooder.id}`)).body.items as { count: number }[];
    expect(inc).toHaveLength(1);
    expect(inc[0]!.count).toBe(N);
  });

  /**
   * A fault of the device's seq 1 only, not of the storage, lasting until `lift()` (a trigger on the file); `returned()`
   * waits until the gateway has handed a message back to its queue since `arm`; `order()` the stored seqs, oldest first.
   */
  async function faultOfFirst(deviceId: string, name: string) {
    const db = t.gw.store.sqlite;
    db.exec(`create table ${name}_gate (x); insert into ${name}_gate values (1)`);
    db.exec(`create trigger ${name} before insert on observations when new.device_id = '${deviceId}' and new.seq = 1
      and exists (select 1 from ${name}_gate) begin select raise(abort, 'injected fault of this message'); end`);
    const requeued = async () => Number(/eldergate_rabbitmq_messages_total\{queue="partition",result="requeued"\} (\d+)/.exec(await (await fetch(`${t.http}/metrics`)).text())?.[1] ?? 0);
    const before = await requeued();
    return {
      returned: () => waitFor(async () => (await requeued()) > before || undefined, 'the faulty message returned to its queue', 20_000, 5),
      lift: () => db.exec(`delete from ${name}_gate`),
      order: () => waitFor(async () => {
        const items = (await t.api('GET', `/api/observations?deviceId=${deviceId}&limit=10`)).body.items as { seq: number | null }[];
        return items.length >= 3 ? items.map((o) => o.seq).reverse() : undefined;
      }, 'the three stored', 30_000, 50),
      drop: () => db.exec(`drop trigger if exists ${name}; drop table if exists ${name}_gate`),
    };
  }

  it('a message the writer fails on goes back to its queue with the device\'s messages after it: none of them is stored before it', { timeout: 60_000 }, async () => {
    const dev = await t.provision('call-phone', 'FLOOD-ORDER');
    const c = await connect(dev.id, dev.secret);
    const fault = await faultOfFirst(dev.id, 'test_fault_once');
    try {
      const ts = Date.now();
      // a cancel (for an earlier press), then a fall and an SOS: stored after the fall, the cancel would cancel it
      await Promise.all([
        c.publishAsync(`devices/${dev.id}/events`, JSON.stringify({ ts, seq: 1, type: 'cancel' }), { qos: 1 }),
        c.publishAsync(`devices/${dev.id}/events`, JSON.stringify({ ts: ts + 1, seq: 2, type: 'fall' }), { qos: 1 }),
        c.publishAsync(`devices/${dev.id}/events`, JSON.stringify({ ts: ts + 2, seq: 3, type: 'sos' }), { qos: 1 }),
      ]);
      // the message went back to its queue (and comes again at once, each time counted as a delivery): the fault clears
      await fault.returned();
      fault.lift();
      expect(await fault.order()).toEqual([1, 2, 3]);
      // the fall and the SOS stand (nothing was dead-lettered: that would have raised its own incident)
      const open = ((await t.api('GET', `/api/incidents?deviceId=${dev.id}`)).body.items as { type: string; status: string }[])
        .map((i) => `${i.type} ${i.status}`).sort();
      expect(open).toEqual(['fall open', 'sos open']);
    } finally {
      fault.drop();
    }
  });

  it('the device\'s messages that reach this node after one was handed back wait for it too', { timeout: 60_000 }, async () => {
    // seen in CI with the test above: the fall and the SOS were delivered after the cancel had gone back to its queue
    // (its lane over), and were stored before it came again. Here they are sent only once it has gone back.
    const dev = await t.provision('call-phone', 'FLOOD-LATE');
    const c = await connect(dev.id, dev.secret);
    const fault = await faultOfFirst(dev.id, 'test_fault_late');
    try {
      const ts = Date.now();
      await c.publishAsync(`devices/${dev.id}/events`, JSON.stringify({ ts, seq: 1, type: 'cancel' }), { qos: 1 });
      await fault.returned();
      await c.publishAsync(`devices/${dev.id}/events`, JSON.stringify({ ts: ts + 1, seq: 2, type: 'fall' }), { qos: 1 });
      await c.publishAsync(`devices/${dev.id}/events`, JSON.stringify({ ts: ts + 2, seq: 3, type: 'sos' }), { qos: 1 });
      await new Promise((r) => setTimeout(r, 100));
      fault.lift();
      expect(await fault.order()).toEqual([1, 2, 3]);
    } finally {
      fault.drop();
    }
  });
});
