// Framing by the receiver's real terminators and by silence, over a real pseudo-terminal pair (socat): one answer per
// frame the receiver sent, never an ACK that answers nothing, and bad bytes never glued to the next good frame.
import { describe, it, expect, afterEach } from 'vitest';
import { HeldSink, sleep, waitFor } from './helpers.js';
import { startRig, type Rig } from './rig.js';
import { Framer, type FramerOutput } from '../../gateway/adapters/serial/framer.js';
import { accountCandidates } from '../../gateway/adapters/serial/receiver.js';

let rig: Rig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

/** every ACK/NAK the adapter sent that no frame of the simulator was waiting for */
function unsolicited(r: Rig): string[] {
  const got: string[] = [];
  r.sim.on('unsolicited', (a) => got.push(a));
  return got;
}

describe('framing (unit)', () => {
  const run = (terminators: ('DC4' | 'CR' | 'LF')[], chunks: (string | Buffer)[], max = 64) => {
    const out: FramerOutput[] = [];
    const f = new Framer({ terminators, maxFrameBytes: max, interByteTimeoutMs: 60_000, emit: (o) => out.push(o) });
    for (const c of chunks) f.push(typeof c === 'string' ? Buffer.from(c, 'latin1') : c);
    f.reset();
    return out.map((o) => (o.kind === 'frame' ? `${o.end}:${o.bytes.toString('latin1')}` : o.kind === 'empty' ? 'link-test' : `oversized:${o.length}:${o.end}`));
  };

  it('cuts at DC4 only by default; CR and CR LF lines when configured; a DC4 after a CR-ended line is not a link test', () => {
    expect(run(['DC4'], ['5011 18', '1234E10101001\x145011 181234E11001002\x14'])).toEqual([
      'DC4:5011 181234E10101001', 'DC4:5011 181234E11001002',
    ]);
    expect(run(['CR'], ['5011 181234E10101001\r\n5011 181234E11001002\r\n'])).toEqual([
      'CR:5011 181234E10101001', 'CR:\n5011 181234E11001002',
    ]);
    expect(run(['CR', 'LF'], ['5011 181234E10101001\r\n'])).toEqual(['CR:5011 181234E10101001']);
    expect(run(['DC4', 'CR'], ['5011 181234E10101001\r\x14', '\x14'])).toEqual(['CR:5011 181234E10101001', 'link-test']);
  });

  it('a frame longer than maxFrameBytes is one output however long, and memory stays bounded', () => {
    const big = 'X'.repeat(20_000);
    expect(run(['DC4'], [big.slice(0, 7000), big.slice(7000), '\x14', '5011 181234E10101001\x14'])).toEqual([
      'oversized:20000:DC4', 'DC4:5011 181234E10101001',
    ]);
  });
});

describe('framing over a pty', () => {
  it('a 20 kB line without DC4 gets exactly one NAK, no unrequested ACK, and the next frame goes through at once', async () => {
    const sink = new HeldSink(true);
    rig = await startRig(sink);
    const extra = unsolicited(rig);
    // 20 kB of a frame that never ends with DC4: the receiver then waits for its answer (silence ends the frame)
    const out = await rig.sim.sendRaw('5011 18' + '1'.repeat(20_000));
    expect(out.answers.map((a) => a.answer)).toEqual(['NAK']);
    const next = await rig.sim.sendEvent({ account: '1234', code: 101 });
    expect(next.answers.map((a) => a.answer)).toEqual(['ACK']);
    await sleep(700);
    expect(extra).toEqual([]);
    expect(rig.rx.stats()).toMatchObject({ naks: 1, acks: 1, oversized: 1 });
    expect(sink.submitted.map((o) => o.type)).toEqual(['sos']);
  });

  it('a CR-terminated line on a DC4 receiver is answered after the inter-byte silence and does not corrupt the next frame', async () => {
    const sink = new HeldSink(true);
    rig = await startRig(sink, { adapter: { interByteTimeoutMs: 300 } });
    const extra = unsolicited(rig);
    const line = await rig.sim.sendRaw('5011 181234E10101001\r');
    expect(line.answers.map((a) => a.answer)).toEqual(['ACK']);
    const next = await rig.sim.sendEvent({ account: '1234', code: 110 });
    expect(next.answers.map((a) => a.answer)).toEqual(['ACK']);
    await sleep(500);
    expect(extra).toEqual([]);
    expect(sink.submitted.map((o) => o.type)).toEqual(['sos', 'fire']);
    expect(rig.rx.stats().timedOutFrames).toBe(1);
  });

  it('a receiver configured for CR LF lines: events and heartbeats answered at the line end, one answer each', async () => {
    const sink = new HeldSink(true);
    rig = await startRig(sink, { adapter: { terminators: ['CR'], interByteTimeoutMs: 3000 }, sim: { terminator: 'CRLF' } });
    const extra = unsolicited(rig);
    for (const code of [101, 120, 602]) {
      const out = await rig.sim.sendEvent({ account: '1234', code });
      expect(out.answers.map((a) => a.answer)).toEqual(['ACK']);
    }
    expect((await rig.sim.sendHeartbeat()).delivered).toBe(true);
    await sleep(300);
    expect(extra).toEqual([]);
    expect(sink.submitted.filter((o) => o.type !== 'heartbeat').map((o) => o.type)).toEqual(['sos', 'panic', 'test']);
    // every frame was ended by its CR, none by the 3 s of silence
    expect(rig.rx.stats()).toMatchObject({ acks: 4, naks: 0, timedOutFrames: 0 });
  });

  it('a bare DC4 is a link test: ACKed, counted as life, nothing stored', async () => {
    const sink = new HeldSink(true);
    rig = await startRig(sink);
    const extra = unsolicited(rig);
    const out = await rig.sim.sendLinkTest();
    expect(out.answers.map((a) => a.answer)).toEqual(['ACK']);
    await sleep(300);
    expect(extra).toEqual([]);
    expect(rig.rx.stats()).toMatchObject({ linkTests: 1, acks: 1, naks: 0 });
    expect(sink.submitted).toEqual([]);
  });

  it('a frame cut off mid-way is answered NAK on its own once the line goes quiet; the next frame is ACKed first time', async () => {
    const sink = new HeldSink(true);
    rig = await startRig(sink, { adapter: { interByteTimeoutMs: 200 } });
    const extra = unsolicited(rig);
    await rig.sim.sendRaw('5011 1812', { awaitAnswer: false });
    await waitFor('the NAK for the cut-off frame', () => extra.length === 1);
    expect(extra).toEqual(['NAK']);
    const out = await rig.sim.sendEvent({ account: '1234', code: 110 });
    expect(out.answers.map((a) => a.answer)).toEqual(['ACK']);
  });
});

describe('accounts', () => {
  it('candidates: by receiver and line first, then by receiver, then alone; each in any case', () => {
    expect(accountCandidates('A1B2', { receiver: '01', line: '1' })).toEqual([
      '01:1:A1B2', '01:1:a1b2', '01:A1B2', '01:a1b2', 'A1B2', 'a1b2',
    ]);
  });

  it('an account registered in small letters, or per receiver line, finds its device', async () => {
    const sink = new HeldSink(true);
    const registered: Record<string, string> = { a1b2: 'phone-lower', '01:1:1234': 'phone-line-1', '1234': 'phone-plain' };
    rig = await startRig(sink, { adapter: { resolveAccount: (a) => registered[a] } });
    await rig.sim.sendEvent({ account: 'A1B2', code: 101 });
    await rig.sim.sendEvent({ account: '1234', code: 101 });
    await rig.sim.sendEvent({ account: '1234', code: 101, line: '2' });
    await rig.sim.sendRaw('S012[#a1b2|NMA001]\x14');
    expect(sink.submitted.map((o) => [o.deviceId, o.flags])).toEqual([
      ['phone-lower', undefined],
      ['phone-line-1', undefined],
      ['phone-plain', undefined],
      ['phone-lower', undefined],
    ]);
  });
});
