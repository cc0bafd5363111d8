// startSerialReceivers: configuration in, adapters running (or one ConfigError listing every problem).
import { describe, it, expect, afterEach } from 'vitest';
import { ConfigError } from '../../core/errors.js';
import { startSerialReceivers, type SerialReceivers } from '../../gateway/adapters/serial/index.js';
import { ReceiverSim } from '../../firmware-sim/serial/receiver-sim.js';
import { HeldSink, memoryLogger, startPtyPair, waitFor, type PtyPair } from './helpers.js';

let running: SerialReceivers | undefined;
let pty: PtyPair | undefined;
let sim: ReceiverSim | undefined;
afterEach(async () => {
  await sim?.close();
  await running?.close();
  await pty?.close();
  running = undefined;
  pty = undefined;
  sim = undefined;
});

describe('startSerialReceivers', () => {
  it('refuses a bad configuration with one ConfigError naming every field', async () => {
    const { log } = memoryLogger();
    const err = await startSerialReceivers(
      [{ path: '/dev/ttyUSB0' }, { path: '/dev/ttyUSB1', receiverDeviceId: 'r', parity: 'yes' }],
      { sink: new HeldSink(true), log, resolveAccount: () => undefined },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).problems).toEqual([
      'serial[0].receiverDeviceId: expected required property',
      'serial[1].parity: must be one of "none", "even", "odd", "mark", "space" (got "yes")',
    ]);
  });

  it('starts one adapter per entry from plain JSON and reports unreadable frames to onUnreadable', async () => {
    pty = await startPtyPair();
    const { log } = memoryLogger();
    const sink = new HeldSink(true);
    const unreadable: string[] = [];
    running = await startSerialReceivers(
      JSON.parse(JSON.stringify([{ path: pty.a, receiverDeviceId: 'rcv-9', baudRate: 9600, dataBits: 8, parity: 'none' }])) as unknown[],
      {
        sink,
        log,
        resolveAccount: (a) => (a === '1234' ? 'phone-1' : undefined),
        onUnreadable: (u) => unreadable.push(u.reason),
      },
    );
    await waitFor('open', () => running!.receivers[0]!.stats().open);
    sim = await ReceiverSim.open({ path: pty.b, baudRate: 9600, dataBits: 8, parity: 'none' });
    expect((await sim.sendEvent({ account: '1234', code: 101 })).delivered).toBe(true);
    expect((await sim.sendRaw('5011 18\x14')).answers[0]!.answer).toBe('NAK');
    expect(sink.submitted[0]).toMatchObject({ deviceId: 'phone-1', type: 'sos' });
    expect(unreadable).toHaveLength(1);
    expect(unreadable[0]).toMatch(/truncated/);
  });
});
