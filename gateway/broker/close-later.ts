// A connection its device ended or reset is closed in the close slices (gateway/broker/slices.ts), not in the turn
// that read its end (issue 10, "cheaper connects").
//
// Why. When the network under a fleet drops, every connection's FIN or reset is read in one poll phase. aedes closes
// a client where it learns of the end: its teardown (subscriptions, the client table, the Will) and the socket's
// (Node's destroy, the descriptor's close, which on loopback also runs the peer's side) cost ~0.1 ms each. Measured
// in figure 4 of the benchmarks (14,000 connections ended at once), that turn took 1.0–2.3 s, and an alarm from a
// device that stayed connected waited for it twice: to be read, then for its committed answer to reach the consoles
// (up to 1.6 s in all). Closed in 4 ms slices, the turn that reads the ends only queues them.
//
// How. The listeners run with allowHalfOpen, so Node does not end and destroy a socket whose peer sent FIN. The
// three ways aedes closes a client on its own are taken over, right after `aedes.handle(socket)`:
// - `conn.on('end', close)`: taken off; the end is queued;
// - `finished(conn, close)` (its `_eos` cleanup): taken off; a socket destroyed any way (a reset, the connection
//   guard, the descriptor gate) is queued on its 'close';
// - its 'error' listener (`_onError`, which destroys the socket and closes): kept for an error on a live connection
//   (a malformed packet, a keepalive timeout: cut at once, as before); for a socket Node has already destroyed (a
//   reset), queued.
// One close is queued per connection, the first of these to come. Queued work runs in the device's order, before
// anything newer from that device (the broker's `settle`). This reaches into aedes (1.2): `handleClosingLater`
// throws at the first connection if an upgrade moves what it takes over (the broker then drops that connection,
// counted as an internal error), and test/gateway/broker-storm.test.ts fails if the closes come back into one turn.
import type { Socket } from 'node:net';
import type { Aedes, Client } from 'aedes';

type AedesClient = Client & { _onError?: (err: Error) => void; _eos?: () => void; closed?: boolean };

const noop = () => undefined;

export interface CloseLater {
  /** queue `run` after the device's earlier queued work (the close slices) */
  later(client: Client, run: () => void): void;
  /** the device ended the connection (FIN) or it was reset: now (its Will and disconnect are dated then) */
  ended(client: Client): void;
}

/**
 * `aedes.handle(socket)`, with the client's close on the device's end or reset queued in the close slices. One close
 * is queued per connection, and none for a connection aedes closed itself (a DISCONNECT, a takeover).
 */
export function handleClosingLater(aedes: Aedes, socket: Socket, o: CloseLater): Client {
  const before = new Set(socket.listeners('end'));
  const client = aedes.handle(socket);
  const c = client as AedesClient;
  const onError = c._onError;
  const eos = c._eos;
  if (typeof onError !== 'function' || typeof eos !== 'function' || !client.listeners('error').includes(onError)) {
    throw new Error('aedes client has no _onError error listener or _eos: gateway/broker/close-later.ts must be updated for this aedes version');
  }
  let queued = false;
  const queue = (run: () => void) => {
    if (queued || c.closed) return;
    queued = true;
    o.ended(client);
    o.later(client, run);
  };
  // the peer's FIN: aedes' own 'end' listener (the one it added) off
  for (const l of socket.listeners('end')) if (!before.has(l)) socket.removeListener('end', l as () => void);
  socket.once('end', () => queue(() => client.close()));
  // aedes' `finished` listener closes at once on an error or a premature close: off (aedes' close calls `_eos`)
  eos();
  c._eos = noop;
  // a reset: Node has destroyed the socket; aedes' teardown later. An error on a live connection: at once
  client.removeListener('error', onError);
  client.on('error', (err: Error) => {
    if (!socket.destroyed) return onError.call(c, err);
    queue(() => onError.call(c, err));
  });
  // destroyed any other way (the guard, the descriptor gate, a failed TLS session): closed later too
  socket.once('close', () => queue(() => client.close()));
  return client;
}
