// Closing an amqplib connection or channel, and knowing it is closed, however that happens.
//
// amqplib's close() sends Close and settles when the server's CloseOk comes back. If the socket dies in between (the
// RabbitMQ node behind HAProxy was killed a few milliseconds earlier, so the Close meets a reset), amqplib moves the
// connection or channel to closed and emits 'close', but never calls the pending close's continuation: the promise
// stays pending for good (amqplib 2.3.1, lib/connection.js and lib/channel.js: toClosed does not run it). This node
// awaited such a close between losing its consuming connection and reconnecting, and so stopped consuming its
// partitions for good: messages RabbitMQ had confirmed to devices sat in the quorum queues, and nobody took them
// (test/cluster/amqp-close.test.ts makes that exact sequence happen through a proxy it controls).
import type { Channel, ChannelModel } from 'amqplib';

/** How long a close may take before the object is given up (and a connection's socket destroyed). */
export const AMQP_CLOSE_WAIT_MS = 5_000;

/**
 * Close `x` and resolve once it is closed: when close() settles (either way), when `x` emits 'close', or after `ms`,
 * whichever comes first. Never rejects: a close that fails means the thing is gone. A connection still not closed
 * after `ms` has its socket destroyed, so that nothing of it lingers.
 */
export function closeAmqp(x: ChannelModel | Channel, ms = AMQP_CLOSE_WAIT_MS): Promise<void> {
  return new Promise<void>((resolve) => {
    let timer: NodeJS.Timeout | undefined;
    const done = () => {
      clearTimeout(timer);
      x.removeListener('close', done);
      resolve();
    };
    x.once('close', done);
    timer = setTimeout(() => {
      if ('createChannel' in x) (x.connection as { stream?: { destroy?: () => void } }).stream?.destroy?.();
      done();
    }, ms);
    timer.unref();
    try {
      x.close().then(done, done);
    } catch {
      // closed already, and said so at once
      done();
    }
  });
}
