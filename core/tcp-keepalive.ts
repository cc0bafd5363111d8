// TCP keepalive for every connection a listener accepts, set once on the listening socket. Half-open connections (a
// phone that lost its network, a panel whose router rebooted) are then found by the kernel instead of being held for
// ever.
//
// Linux copies a listening socket's SO_KEEPALIVE and TCP_KEEPIDLE to each socket accept() returns, so setting them
// once saves a setsockopt round per connection: 16 µs of the ~430 µs a reconnect storm's connect cost the broker
// (docs/benchmarks.md, the storm's profile). Node has no public call for a listening socket's options; the listening
// handle is the same libuv TCP handle as an accepted socket's and has the same setKeepAlive (uv_tcp_keepalive).
// Where that is not there or the platform is not Linux, the caller sets keepalive on each socket, as before.
import type { Server } from 'node:net';

/** idle time before the kernel's first keepalive probe */
export const KEEPALIVE_IDLE_MS = 60_000;

/** Call after the server listens. true: accepted sockets inherit keepalive; false: set it on each socket yourself. */
export function keepAliveOnListener(server: Server, idleMs = KEEPALIVE_IDLE_MS): boolean {
  if (process.platform !== 'linux') return false;
  const handle = (server as unknown as { _handle?: { setKeepAlive?: (on: boolean, delayS: number) => number } })._handle;
  if (typeof handle?.setKeepAlive !== 'function') return false;
  return handle.setKeepAlive(true, Math.max(1, Math.round(idleMs / 1000))) === 0;
}
