// One adapter and one simulated receiver on the two ends of a real socat pseudo-terminal pair.
import type { ObservationSink } from '../../core/contracts.js';
import { startSerialReceiver, type SerialReceiver, type SerialReceiverOptions } from '../../gateway/adapters/serial/receiver.js';
import { ReceiverSim, type ReceiverSimOptions } from '../../firmware-sim/serial/receiver-sim.js';
import { startPtyPair, memoryLogger, waitFor, type PtyPair } from './helpers.js';

export interface Rig {
  pty: PtyPair;
  rx: SerialReceiver;
  sim: ReceiverSim;
  lines: Record<string, unknown>[];
  close(): Promise<void>;
}

export const ACCOUNTS: Record<string, string> = { '1234': 'phone-1234', '0042': 'phone-0042', '0012345678': 'phone-10d' };

export async function startRig(
  sink: ObservationSink,
  opts: {
    adapter?: Partial<Omit<SerialReceiverOptions, 'sink' | 'log'>>;
    sim?: Partial<ReceiverSimOptions>;
    links?: [string, string];
  } = {},
): Promise<Rig> {
  const pty = await startPtyPair(opts.links);
  const { log, lines } = memoryLogger();
  const rx = await startSerialReceiver({
    path: pty.a,
    receiverDeviceId: 'receiver-1',
    heartbeatTimeoutMs: 60_000,
    resolveAccount: (account) => ACCOUNTS[account],
    ...opts.adapter,
    sink,
    log,
  });
  await waitFor('the adapter to open its end', () => rx.stats().open);
  const sim = await ReceiverSim.open({ path: pty.b, ...opts.sim });
  return {
    pty,
    rx,
    sim,
    lines,
    async close() {
      await sim.close();
      await rx.close();
      await pty.close();
    },
  };
}
