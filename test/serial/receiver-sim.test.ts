// The simulated receiver behaves like the real one: 4 attempts, then buffer until a heartbeat is ACKed.
import { describe, it, expect, afterEach } from 'vitest';
import { HeldSink, waitFor } from './helpers.js';
import { startRig, type Rig } from './rig.js';
import { encodeContactId, encodeHeartbeat } from '../../firmware-sim/serial/receiver-sim.js';
import { decodeFrame } from '../../gateway/adapters/serial/frames.js';

let rig: Rig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

describe('simulated receiver', () => {
  it('its encoder speaks what the decoder reads (both written independently)', () => {
    const where = { receiver: '01', line: '1' };
    const f = decodeFrame(encodeContactId({ account: '1234', qualifier: 'R', code: 301, group: 2, zone: 15 }, where));
    expect(f).toMatchObject({ ok: true, frame: { kind: 'contact-id', account: '1234', qualifier: 'R', code: '301', group: '02', zone: '015' } });
    expect(decodeFrame(encodeHeartbeat('mlr2', where))).toMatchObject({ ok: true, frame: { kind: 'heartbeat', format: 'mlr2' } });
    expect(decodeFrame(encodeHeartbeat('system3', { receiver: '07', line: '001' }))).toMatchObject({
      ok: true,
      frame: { kind: 'heartbeat', format: 'system3', receiver: '07' },
    });
  });

  it('NAKed 4 times → buffered; events wait behind it; a heartbeat ACK releases them in order', async () => {
    const sink = new HeldSink(true);
    let failing = true;
    const flaky = {
      submitted: [] as string[],
      submit(obs: Parameters<HeldSink['submit']>[0]) {
        if (obs.type === 'heartbeat') return sink.submit(obs);
        if (failing) return Promise.reject(new Error('disk full'));
        this.submitted.push(String(obs.detail?.code));
        return sink.submit(obs);
      },
    };
    rig = await startRig(flaky);
    const first = await rig.sim.sendEvent({ account: '1234', code: 101 });
    expect(first).toMatchObject({ delivered: false, buffered: true });
    expect(first.answers.map((a) => [a.attempt, a.answer])).toEqual([[1, 'NAK'], [2, 'NAK'], [3, 'NAK'], [4, 'NAK']]);
    // the receiver now holds everything until a heartbeat is ACKed
    const second = await rig.sim.sendEvent({ account: '1234', code: 110 });
    expect(second).toMatchObject({ delivered: false, buffered: true, answers: [] });
    expect(rig.sim.buffered).toHaveLength(2);

    failing = false;
    const hb = await rig.sim.sendHeartbeat();
    expect(hb.delivered).toBe(true);
    expect(rig.sim.buffered).toHaveLength(0);
    expect(flaky.submitted).toEqual(['101', '110']);
  });

  it('times out after ackTimeoutMs without an answer, then buffers', async () => {
    const sink = new HeldSink();
    rig = await startRig(sink, { sim: { ackTimeoutMs: 200 } });
    const late: string[] = [];
    rig.sim.on('unsolicited', (a) => late.push(a));
    const out = await rig.sim.sendEvent({ account: '1234', code: 120 });
    expect(out.buffered).toBe(true);
    expect(out.answers.map((a) => a.answer)).toEqual(['timeout', 'timeout', 'timeout', 'timeout']);
    expect(out.answers.every((a) => a.delayMs >= 190)).toBe(true);

    // the gateway was slow, not gone: it stores and ACKs each of the 4 copies late (at-least-once on the wire)
    // (one at a time: the first is held, the 3 re-sends queue behind it and are stored as soon as it is)
    sink.auto = true;
    (await sink.next()).release();
    // wait until they have all reached the receiver, or the heartbeat below would take a late ACK for its own
    await waitFor('the late ACKs', () => late.length === 4);
    expect(late).toEqual(['ACK', 'ACK', 'ACK', 'ACK']);
    const hb = await rig.sim.sendHeartbeat();
    expect(hb.delivered).toBe(true);
    expect(rig.sim.buffered).toHaveLength(0);
    expect(sink.of('panic')).toHaveLength(5);
  });
});
