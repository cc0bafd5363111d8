// The adapter against a simulated receiver over a real pseudo-terminal pair (socat): ACK only once durable,
// NAK what cannot be read or stored, strict order, unknown codes and accounts kept.
import { describe, it, expect, afterEach } from 'vitest';
import { HeldSink, memoryLogger, sleep, startPtyPair, waitFor } from './helpers.js';
import { startRig, ACCOUNTS, type Rig } from './rig.js';
import { startSerialReceivers } from '../../gateway/adapters/serial/index.js';
import { ReceiverSim } from '../../firmware-sim/serial/receiver-sim.js';

let rig: Rig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

describe('serial receiver adapter over a pty', () => {
  it('ACKs an event only after the sink has resolved, never before', async () => {
    const sink = new HeldSink();
    rig = await startRig(sink);
    const sending = rig.sim.sendEvent({ account: '1234', qualifier: 'E', code: 101, group: 1, zone: 7 });

    const held = await sink.next();
    expect(held.obs).toMatchObject({ type: 'sos', deviceId: 'phone-1234', source: 'serial' });
    expect(held.obs.detail).toMatchObject({ code: '101', qualifier: 'E', group: '01', zone: '007', account: '1234', receiver: '01', line: '1' });
    // the frame has reached the adapter and is waiting on the sink: no ACK may have left (well under the 4 s timeout)
    await sleep(400);
    expect(rig.sim.answers).toEqual([]);
    expect(rig.rx.stats().acks).toBe(0);

    const releasedAt = Date.now();
    held.release();
    const out = await sending;
    expect(out.delivered).toBe(true);
    expect(out.answers).toHaveLength(1);
    expect(out.answers[0]).toMatchObject({ answer: 'ACK', attempt: 1, kind: 'event' });
    expect(out.answers[0]!.at).toBeGreaterThanOrEqual(releasedAt);
    expect(out.answers[0]!.delayMs).toBeGreaterThanOrEqual(400);
  });

  it('NAKs corrupt and truncated frames and stores nothing from them', async () => {
    const sink = new HeldSink(true);
    rig = await startRig(sink);
    const corrupt = await rig.sim.sendRaw('5011 181234X10101015\x14');
    expect(corrupt.answers.map((a) => a.answer)).toEqual(['NAK']);
    const truncated = await rig.sim.sendRaw('5011 181234E1010\x14');
    expect(truncated.answers.map((a) => a.answer)).toEqual(['NAK']);
    const noise = await rig.sim.sendRaw(Buffer.from([0x35, 0xff, 0x00, 0x7f, 0x14]));
    expect(noise.answers.map((a) => a.answer)).toEqual(['NAK']);
    const badHeartbeat = await rig.sim.sendRaw('1011    @\x14');
    expect(badHeartbeat.answers.map((a) => a.answer)).toEqual(['NAK']);
    expect(sink.submitted.filter((o) => o.type !== 'heartbeat')).toEqual([]);
    expect(rig.rx.stats()).toMatchObject({ naks: 4, acks: 0, unreadable: 4 });
    expect(rig.lines.some((l) => /unreadable frame; NAK/.test(String(l.msg)) && /qualifier "X"/.test(String(l.reason)))).toBe(true);
  });

  it('a frame cut off mid-way is NAKed with what follows it, and the receiver resend goes through', async () => {
    const sink = new HeldSink(true);
    rig = await startRig(sink);
    // the line drops the end of a frame (no DC4): its bytes run into the next frame
    await rig.sim.sendRaw('5011 1812', { awaitAnswer: false });
    const out = await rig.sim.sendEvent({ account: '1234', code: 110 });
    expect(out.answers.map((a) => a.answer)).toEqual(['NAK', 'ACK']);
    expect(sink.submitted.map((o) => o.type)).toEqual(['fire']);
  });

  it('stores the same unreadable frame as unknown after 3 NAKs, so it cannot block the line', async () => {
    const sink = new HeldSink(true);
    rig = await startRig(sink);
    const out = await rig.sim.sendRaw('5011 411234E10101015\x14', { retries: 3 });
    expect(out.answers.map((a) => a.answer)).toEqual(['NAK', 'NAK', 'NAK', 'ACK']);
    const [obs] = sink.submitted;
    expect(obs).toMatchObject({ type: 'unknown', code: 'unreadable', deviceId: 'receiver-1', flags: ['unreadable-frame'] });
    expect(obs!.detail).toMatchObject({ raw: '5011 411234E10101015', naks: 3 });
    expect(String(obs!.detail!.reason)).toMatch(/message type "41"/);
  });

  it('NAKs when the sink rejects, then ACKs the receiver resend once it is stored', async () => {
    const sink = new HeldSink();
    rig = await startRig(sink);
    const sending = rig.sim.sendEvent({ account: '1234', code: 100 });
    (await sink.next()).fail(new Error('database is locked'));
    const resend = await sink.next();
    expect(resend.obs.type).toBe('medical');
    resend.release();
    const out = await sending;
    expect(out.answers.map((a) => a.answer)).toEqual(['NAK', 'ACK']);
    expect(rig.rx.stats()).toMatchObject({ submitFailures: 1, acks: 1, naks: 1 });
  });

  it('processes frames strictly in order, one at a time', async () => {
    const sink = new HeldSink();
    rig = await startRig(sink);
    const unsolicited: string[] = [];
    rig.sim.on('unsolicited', (a) => unsolicited.push(a));
    // three frames in one write, as a receiver flushing its buffer might
    const frames = ['5011 181234E10101001\x14', '5011 181234E11001002\x14', '5011 181234E12001003\x14'].join('');
    await rig.sim.sendRaw(frames, { awaitAnswer: false });

    const codes: string[] = [];
    for (let i = 0; i < 3; i++) {
      const h = await sink.next();
      codes.push(String(h.obs.detail!.code));
      // while one is held, the next must not even be submitted
      await sleep(150);
      expect(sink.pending).toHaveLength(0);
      expect(rig.rx.stats().acks).toBe(i);
      h.release();
      await waitFor(`ACK ${i + 1}`, () => unsolicited.length === i + 1);
    }
    expect(codes).toEqual(['101', '110', '120']);
    expect(sink.maxInFlight).toBe(1);
    expect(unsolicited).toEqual(['ACK', 'ACK', 'ACK']);
  });

  it('keeps an unknown code as an unknown observation and ACKs it', async () => {
    const sink = new HeldSink(true);
    rig = await startRig(sink);
    const out = await rig.sim.sendEvent({ account: '1234', code: 987, zone: 3 });
    expect(out.delivered).toBe(true);
    expect(sink.submitted[0]).toMatchObject({ type: 'unknown', code: '987', deviceId: 'phone-1234' });
    expect(rig.rx.stats().unknownCodes).toBe(1);
  });

  it('an event from an unknown account lands on the receiver, flagged, never dropped', async () => {
    const sink = new HeldSink(true);
    rig = await startRig(sink);
    const out = await rig.sim.sendEvent({ account: 'BEEF', code: 101 });
    expect(out.delivered).toBe(true);
    expect(sink.submitted[0]).toMatchObject({ type: 'sos', deviceId: 'receiver-1', flags: ['unknown-account'] });
    expect(sink.submitted[0]!.detail).toMatchObject({ account: 'BEEF', code: '101' });
    expect(rig.rx.stats().unknownAccounts).toBe(1);
  });

  it('reads System II/III frames, 10-digit accounts, restores and SIA', async () => {
    const sink = new HeldSink(true);
    rig = await startRig(sink, { sim: { format: 'system3', receiver: '12', line: '003' } });
    expect((await rig.sim.sendEvent({ account: '0042', code: 301, qualifier: 'R' })).delivered).toBe(true);
    expect((await rig.sim.sendEvent({ account: '0012345678', code: 120 })).delivered).toBe(true);
    expect((await rig.sim.sendRaw('S12003[#1234|Nri01/MA001/YT00]\x14')).answers.map((a) => a.answer)).toEqual(['ACK']);
    expect((await rig.sim.sendHeartbeat()).delivered).toBe(true);
    await waitFor('the heartbeat observation', () => sink.of('heartbeat').length === 1);
    expect(sink.submitted.map((o) => [o.type, o.deviceId, o.restore])).toEqual([
      ['power-restored', 'phone-0042', true],
      ['panic', 'phone-10d', undefined],
      ['medical', 'phone-1234', undefined],
      ['battery', 'phone-1234', undefined],
      ['heartbeat', 'receiver-1', undefined],
    ]);
    expect(sink.submitted[0]!.detail).toMatchObject({ format: 'system3', receiver: '12', line: '003' });
    expect(sink.submitted[1]!.detail).toMatchObject({ format: 'account10', messageType: '58', account: '0012345678' });
    expect(sink.submitted[2]!.detail).toMatchObject({ protocol: 'sia', code: 'MA', zone: '001', group: '01' });
  });

  it('reads a SIA ti time in the configured zone: the entry\'s panelUtcOffsetMinutes, else the gateway\'s (ruleSettings), not the host\'s', async () => {
    // 10:30:05 in Beijing (+480); the process runs in whatever zone the machine has (UTC here, New York elsewhere)
    const at = Date.UTC(2026, 4, 17, 2, 30, 5);
    const pty = await startPtyPair();
    const pty2 = await startPtyPair();
    const sink = new HeldSink(true);
    const { log } = memoryLogger();
    const rx = await startSerialReceivers([
      { path: pty.a, receiverDeviceId: 'receiver-1' }, // the gateway's zone (deps)
      { path: pty2.a, receiverDeviceId: 'receiver-2', panelUtcOffsetMinutes: -420 }, // its own: Los Angeles in May
    ], { sink, log, now: () => at, resolveAccount: (a) => ACCOUNTS[a], timeZoneOffsetMinutes: 480 });
    const sims: ReceiverSim[] = [];
    try {
      await waitFor('both ports open', () => rx.receivers.every((r) => r.stats().open));
      sims.push(await ReceiverSim.open({ path: pty.b }), await ReceiverSim.open({ path: pty2.b }));
      expect((await sims[0]!.sendRaw('S011[#1234|Nti10:23/ri01/MA001]\x14')).answers.map((a) => a.answer)).toEqual(['ACK']);
      expect((await sims[1]!.sendRaw('S011[#0042|Nti19:20/ri01/MA001]\x14')).answers.map((a) => a.answer)).toEqual(['ACK']);
      expect(sink.submitted.map((o) => [o.deviceId, o.deviceTs])).toEqual([
        ['phone-1234', Date.UTC(2026, 4, 17, 2, 23, 0)], // 10:23 in Beijing
        ['phone-0042', Date.UTC(2026, 4, 17, 2, 20, 0)], // 19:20 the day before in Los Angeles
      ]);
    } finally {
      for (const sim of sims) await sim.close();
      await rx.close();
      await pty.close();
      await pty2.close();
    }
  });

  it('applies the code table from configuration per model', async () => {
    const sink = new HeldSink(true);
    rig = await startRig(sink, {
      adapter: {
        resolveModel: (id) => (id === 'phone-1234' ? 'vendor-x' : undefined),
        codeTable: { byModel: { 'vendor-x': { '102': { type: 'fall', label: 'fall detected' } } } },
      },
    });
    await rig.sim.sendEvent({ account: '1234', code: 102 });
    await rig.sim.sendEvent({ account: '0042', code: 102 });
    expect(sink.submitted.map((o) => [o.deviceId, o.type])).toEqual([
      ['phone-1234', 'fall'],
      ['phone-0042', 'supervision'],
    ]);
  });
});
