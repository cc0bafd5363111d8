// What every terminal protocol does with the observations of one frame before it may answer: hand them all to the writer
// at once, in the order given, and wait until every one is durable. The writer keeps one device's observations in
// order (an urgent one takes the device's pending telemetry into its own transaction first), so a frame's SOS is never
// held behind the telemetry batch its position went to: both are in the SOS's commit. A store that fails is counted
// (eldergate_protocol_store_failures_total) and the caller does not answer the frame (or NAKs it), so the terminal
// sends it again; what of it was stored is recognised or joined when it comes back.
import type { Observation } from '../../core/contracts.js';
import type { ProtocolServices } from './types.js';

export interface DeliverHooks {
  /** one observation is durable (a protocol's own statistics) */
  stored?(o: Observation): void;
  /** the observation that could not be stored and why: the caller logs it (it knows the frame); already counted */
  failed(err: unknown, o: Observation): void;
}

/** True once every observation is durable; false when any could not be stored. */
export async function deliver(services: Pick<ProtocolServices, 'sink' | 'metrics'>, observations: readonly Observation[], hooks: DeliverHooks): Promise<boolean> {
  const results = await Promise.allSettled(observations.map((o) => services.sink.submit(o)));
  let ok = true;
  results.forEach((r, i) => {
    const o = observations[i]!;
    if (r.status === 'fulfilled') {
      hooks.stored?.(o);
      return;
    }
    if (ok) services.metrics?.storeFailed();
    ok = false;
    hooks.failed(r.reason, o);
  });
  return ok;
}
