// TCP keepalive for every connection a listener accepts, set once on the listening socket. Half-open connections (a
// phone that lost its network, a panel whose router rebooted) are then found by the kernel instead of being held for
// ever.
//
// Linux copies a listening socket's SO_KEEPALIVE and TCP_KEEPIDLE to each socket accept() returns, so setting them
// once saves a setsockopt round per connection: 16 µs of the ~430 µs a reconnect storm's connect cost the broker
// (docs/benchmarks.md, the storm's profile). Node has no public call for a listening socket's options; the listening
// handle is the same libuv TCP handle as an accepted socket's and has the same setKeepAlive (uv_tcp_keepalive).
// Where that is not there or the platform is not Linux, each accepted socket gets keepalive of its own, as before.
import type { Server, Socket } from 'node:net';

/** idle time before the kernel's first keepalive probe */
export const KEEPALIVE_IDLE_MS = 60_000;

/** keepalive on one accepted socket: what a listener whose sockets do not inherit it does for each */
export const keepAliveEach = (socket: Socket): void => {
  socket.setKeepAlive(true, KEEPALIVE_IDLE_MS);
};

const inherited = (): void => {};

/**
 * Call once the server listens. Returns what to do for each socket it accepts: nothing when they inherit keepalive
 * from the listening socket, keepAliveEach otherwise.
 */
export function keepAliveOnListener(server: Server): (socket: Socket) => void {
  if (process.platform !== 'linux') return keepAliveEach;
  const handle = (server as unknown as { _handle?: { setKeepAlive?: (on: boolean, delayS: number) => number } })._handle;
  if (typeof handle?.setKeepAlive !== 'function') return keepAliveEach;
  return handle.setKeepAlive(true, KEEPALIVE_IDLE_MS / 1000) === 0 ? inherited : keepAliveEach;
}
