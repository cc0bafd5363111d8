// Receiver heartbeat supervision and port reopening, over real pseudo-terminals.
import { describe, it, expect, afterEach } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HeldSink, sleep, startPtyPair, waitFor } from './helpers.js';
import { startRig, type Rig } from './rig.js';
import { ReceiverSim } from '../../firmware-sim/serial/receiver-sim.js';

let rig: Rig | undefined;
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  await rig?.close();
  rig = undefined;
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('receiver supervision', () => {
  it('heartbeats are ACKed at once; silence → one comm-lost, frames again → one comm-restored', async () => {
    const sink = new HeldSink(true);
    rig = await startRig(sink, { adapter: { heartbeatTimeoutMs: 800 } });
    rig.sim.startHeartbeat(100);
    await waitFor('a few heartbeats', () => rig!.rx.stats().heartbeats >= 4);
    expect(rig.sim.answers.filter((a) => a.kind === 'heartbeat').every((a) => a.answer === 'ACK')).toBe(true);
    expect(sink.of('comm-lost')).toEqual([]);

    rig.sim.stopHeartbeat();
    await rig.sim.idle();
    await waitFor('comm-lost', () => sink.of('comm-lost').length === 1);
    expect(sink.of('comm-lost')[0]).toMatchObject({ deviceId: 'receiver-1', source: 'serial' });
    expect(sink.of('comm-lost')[0]!.detail!.silentMs).toBeGreaterThan(800);
    expect(rig.rx.stats().commLost).toBe(true);
    // still silent: reported once, not once per check
    await sleep(1500);
    expect(sink.of('comm-lost')).toHaveLength(1);

    rig.sim.startHeartbeat(100);
    await waitFor('comm-restored', () => sink.of('comm-restored').length === 1);
    await sleep(500);
    expect(sink.of('comm-restored')).toHaveLength(1);
    expect(rig.rx.stats().commLost).toBe(false);
    const order = sink.submitted.filter((o) => o.type.startsWith('comm-')).map((o) => o.type);
    expect(order).toEqual(['comm-lost', 'comm-restored']);
  });

  it('a receiver that never speaks is comm-lost too', async () => {
    const sink = new HeldSink(true);
    rig = await startRig(sink, { adapter: { heartbeatTimeoutMs: 500 } });
    await waitFor('comm-lost', () => sink.of('comm-lost').length === 1);
    // the first event afterwards restores the link before it is itself stored
    await rig.sim.sendEvent({ account: '1234', code: 101 });
    expect(sink.submitted.map((o) => o.type)).toEqual(['comm-lost', 'comm-restored', 'sos']);
  });

  it('reopens the port with back-off when it goes away, and serves the receiver again', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'eldergate-serial-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const links: [string, string] = [join(dir, 'ttyGateway'), join(dir, 'ttyReceiver')];
    const sink = new HeldSink(true);
    rig = await startRig(sink, { links, adapter: { reopenMinMs: 50, reopenMaxMs: 400 } });
    expect((await rig.sim.sendEvent({ account: '1234', code: 101 })).delivered).toBe(true);

    // the cable is pulled: the pty pair disappears
    await rig.sim.close();
    await rig.pty.close();
    await waitFor('the adapter to notice the port closed', () => !rig!.rx.stats().open);
    await sleep(600); // a few failed reopen attempts while the device is absent
    expect(rig.rx.stats().openFailures).toBeGreaterThan(0);

    const pty2 = await startPtyPair(links);
    cleanups.push(() => pty2.close());
    await waitFor('the adapter to reopen', () => rig!.rx.stats().open && rig!.rx.stats().opens === 2);
    const sim2 = await ReceiverSim.open({ path: pty2.b });
    cleanups.push(() => sim2.close());
    const out = await sim2.sendEvent({ account: '1234', code: 110 });
    expect(out.answers.map((a) => a.answer)).toEqual(['ACK']);
    expect(sink.submitted.filter((o) => o.type !== 'heartbeat').map((o) => o.type)).toEqual(['sos', 'fire']);
  });
});
