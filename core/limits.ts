// How many sockets this process may hold, derived from the real file-descriptor limit (issue 14).
//
// Every accepted socket costs one descriptor. When the process runs out, accept() fails with EMFILE and so does
// everything else that opens a file: the database's journal, a log file, /proc/self/stat read by
// process.memoryUsage(). So the listeners stop accepting well before the limit: `limits.fdReserve` descriptors stay
// for the database, logs, serial ports, outbound webhooks and the alarm path, and what is left is split between
// HTTP/WebSocket (`limits.httpFdShare`) and MQTT (the rest). The configured caps only ever lower these figures.
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

/**
 * The most rows one page of a list may ask for (every list's `limit`). The API's row budgets are at least this, so that
 * a page is always charged in full (server/plugins/api-admission.ts).
 */
export const MAX_PAGE_ROWS = 1000;

export interface FdLimit {
  /** the soft RLIMIT_NOFILE, or null when it is unlimited or cannot be read */
  soft: number | null;
  source: '/proc/self/limits' | 'ulimit -n' | 'unknown';
}

/** The soft RLIMIT_NOFILE of this process: /proc/self/limits (Linux), else `ulimit -n` from sh. */
export function readFdLimit(): FdLimit {
  try {
    const text = readFileSync('/proc/self/limits', 'utf8');
    const line = text.split('\n').find((l) => l.startsWith('Max open files'));
    if (line) {
      const soft = line.slice('Max open files'.length).trim().split(/\s+/)[0]!;
      return { soft: parseLimit(soft), source: '/proc/self/limits' };
    }
  } catch {
    /* not Linux: ask the shell */
  }
  try {
    const out = execFileSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8', timeout: 2000 }).trim();
    return { soft: parseLimit(out), source: 'ulimit -n' };
  } catch {
    return { soft: null, source: 'unknown' };
  }
}

function parseLimit(s: string): number | null {
  if (s === 'unlimited') return null;
  const n = Number(s);
  return Number.isSafeInteger(n) && n > 0 ? n : null;
}

export interface ConnectionCaps {
  fdLimit: number | null;
  fdSource: FdLimit['source'];
  reserve: number;
  /** sockets HTTP + WebSocket may hold together */
  http: number;
  /** sockets the MQTT listeners (TCP and TLS) may hold together */
  mqtt: number;
  /** configured caps that the descriptor limit lowered, for a warning at start-up */
  lowered: string[];
}

export interface CapSettings {
  fdReserve: number;
  httpFdShare: number;
  httpMaxConnections: number;
  mqttMaxConnections: number;
}

/**
 * The caps the listeners enforce. The two caps together stay below limit − reserve, so an attacker holding every
 * socket a listener admits still leaves the reserve free; each listener has its own share, so idle HTTP sockets
 * cannot take the devices' places nor the other way round.
 */
export function deriveConnectionCaps(s: CapSettings, fd: FdLimit = readFdLimit()): ConnectionCaps {
  const lowered: string[] = [];
  if (fd.soft === null) {
    return { fdLimit: null, fdSource: fd.source, reserve: s.fdReserve, http: s.httpMaxConnections, mqtt: s.mqttMaxConnections, lowered };
  }
  // a tiny limit still leaves each listener a few sockets (the reserve shrinks first, to half the limit)
  const reserve = Math.min(s.fdReserve, Math.floor(fd.soft / 2));
  const usable = Math.max(2, fd.soft - reserve);
  const httpShare = Math.max(1, Math.floor(usable * s.httpFdShare));
  const http = Math.min(s.httpMaxConnections, httpShare);
  const mqtt = Math.min(s.mqttMaxConnections, Math.max(1, usable - http));
  if (http < s.httpMaxConnections) lowered.push(`http.maxConnections ${s.httpMaxConnections} → ${http}`);
  if (mqtt < s.mqttMaxConnections) lowered.push(`mqtt.maxConnections ${s.mqttMaxConnections} → ${mqtt}`);
  return { fdLimit: fd.soft, fdSource: fd.source, reserve, http, mqtt, lowered };
}

type GateSocket = { destroy(): void; once(ev: 'close', fn: () => void): unknown; remoteAddress?: string | undefined; remotePort?: number | undefined };

/** Why a listener turned a socket away (the `reason` label of eldergate_connections_refused_total). */
export type GateRefusal = 'limit' | 'evicted-idle';

/**
 * Admission to one listener (or one set of listeners sharing a cap). At the cap, the socket that has been idle the
 * longest — an HTTP connection between requests, an MQTT connection that has not completed CONNECT — is closed to
 * make room; only when every socket is busy is the new one refused. So an attacker holding idle sockets cannot lock
 * out a console asking /healthz or a device connecting to send an SOS: it only pushes out its own oldest sockets.
 */
export class SocketGate {
  private count = 0;
  /** admitted sockets by peer address and port (for TLS: the TCP socket under it) */
  private readonly tracked = new Map<string, GateSocket>();
  /** keys of idle sockets, oldest first (a Map keeps insertion order; a socket idle again is re-inserted) */
  private readonly idle = new Map<string, true>();

  constructor(
    readonly cap: number,
    private readonly onRefuse: (reason: GateRefusal) => void,
  ) {}

  get size(): number {
    return this.count;
  }

  /** Admit `socket` (idle until marked busy) or refuse it; true when admitted. */
  admit(socket: GateSocket): boolean {
    if (this.count >= this.cap && !this.evictOldestIdle()) {
      this.onRefuse('limit');
      socket.destroy();
      return false;
    }
    this.count++;
    const key = keyOf(socket);
    this.tracked.set(key, socket);
    this.idle.set(key, true);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      this.count--;
      if (this.tracked.get(key) === socket) {
        this.tracked.delete(key);
        this.idle.delete(key);
      }
    };
    this.releasers.set(socket, release);
    socket.once('close', release);
    return true;
  }

  private readonly releasers = new WeakMap<GateSocket, () => void>();

  /** Destroy every socket still admitted (shutdown: a listener's close waits for its connections to end). */
  destroyAll(): void {
    for (const socket of [...this.tracked.values()]) socket.destroy();
  }

  /** The socket is doing something worth keeping (a request in flight, an upgraded WebSocket, a CONNECTed device). */
  busy(socket: GateSocket): void {
    this.idle.delete(keyOf(socket));
  }

  /** The socket went idle again (its last request answered). */
  markIdle(socket: GateSocket): void {
    const key = keyOf(socket);
    if (!this.tracked.has(key)) return;
    this.idle.delete(key);
    this.idle.set(key, true);
  }

  private evictOldestIdle(): boolean {
    for (const key of this.idle.keys()) {
      this.idle.delete(key);
      const socket = this.tracked.get(key);
      if (!socket) continue;
      // counted free at once: destroy() closes the descriptor now, the 'close' event comes a tick later
      this.releasers.get(socket)?.();
      this.onRefuse('evicted-idle');
      socket.destroy();
      return true;
    }
    return false;
  }
}

/** A TLS socket and the TCP socket under it share the peer's address and port: key both by that. */
function keyOf(s: GateSocket): string {
  return `${s.remoteAddress ?? '?'}|${s.remotePort ?? 0}`;
}

/** The cap settings as the configuration holds them. */
export function connectionCapSettings(config: {
  limits: { fdReserve: number; httpFdShare: number };
  http: { maxConnections: number };
  mqtt: { maxConnections: number };
}): CapSettings {
  return {
    fdReserve: config.limits.fdReserve,
    httpFdShare: config.limits.httpFdShare,
    httpMaxConnections: config.http.maxConnections,
    mqttMaxConnections: config.mqtt.maxConnections,
  };
}
