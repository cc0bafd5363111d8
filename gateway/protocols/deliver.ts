// What every terminal protocol does with the observations of one frame before it may answer: store them one after the
// other, in the order given, each durable before the next is submitted (the sink resolves once durable). A store that
// fails stops there: it is counted (eldergate_protocol_store_failures_total) and the caller does not answer the frame
// (or NAKs it), so the terminal sends it again.
import type { Observation } from '../../core/contracts.js';
import type { ProtocolServices } from './types.js';

export interface DeliverHooks {
  /** one observation is durable (a protocol's own statistics) */
  stored?(o: Observation): void;
  /** the observation that could not be stored and why: the caller logs it (it knows the frame); already counted */
  failed(err: unknown, o: Observation): void;
}

/** True once every observation is durable; false at the first one that could not be stored (the rest not submitted). */
export async function deliver(services: Pick<ProtocolServices, 'sink' | 'metrics'>, observations: readonly Observation[], hooks: DeliverHooks): Promise<boolean> {
  for (const o of observations) {
    try {
      await services.sink.submit(o);
    } catch (err) {
      services.metrics?.storeFailed();
      hooks.failed(err, o);
      return false;
    }
    hooks.stored?.(o);
  }
  return true;
}
