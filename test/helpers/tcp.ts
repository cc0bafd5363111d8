// What the kernel says of a TCP connection on this machine, read from /proc/net/tcp (IPv4; the tests listen on
// 127.0.0.1).
import { readFileSync } from 'node:fs';

/**
 * The timer the kernel runs on the socket at `localPort` connected to `remotePort` (both on 127.0.0.1): 'keepalive'
 * for an idle socket with SO_KEEPALIVE, 'none' for an idle socket without, 'retransmit' while data is unacknowledged.
 * Throws when there is no such socket.
 */
export function tcpTimerOf(localPort: number, remotePort: number): 'none' | 'retransmit' | 'keepalive' | 'other' {
  const hex = (p: number) => p.toString(16).toUpperCase().padStart(4, '0');
  const want = `:${hex(localPort)}`;
  const peer = `:${hex(remotePort)}`;
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    // sl local rem st tx:rx tr:when …
    if (f.length < 6 || !f[1]!.endsWith(want) || !f[2]!.endsWith(peer)) continue;
    const tr = f[5]!.split(':')[0];
    return tr === '00' ? 'none' : tr === '01' ? 'retransmit' : tr === '02' ? 'keepalive' : 'other';
  }
  throw new Error(`no TCP socket 127.0.0.1:${localPort} <-> :${remotePort} in /proc/net/tcp`);
}
