// HAProxy in front of the one-machine cluster: one address for terminals (MQTT, TCP mode, to the RabbitMQ nodes) and
// one for people and the console (HTTP mode, to eldergate nodes). Debian's haproxy 2.6, run as the calling user in the
// foreground (-db) as a child, its config, pid file and log in the cluster directory.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { isAlive, portFree, run, tail, terminate, waitPort } from './processes.js';

export const HAPROXY = '/usr/sbin/haproxy';

export interface HaproxyBackend {
  host: string;
  port: number;
}

export interface HaproxyListener {
  /** names the frontend and backend in the config and the log: letters, digits, '-', '_' */
  name: string;
  port: number;
  mode: 'tcp' | 'http';
  backends: HaproxyBackend[];
  /** http mode: a server is in rotation only while GET healthPath answers 2xx/3xx (eldergate: /readyz) */
  healthPath?: string;
}

export interface HaproxyOptions {
  dir: string;
  listeners: HaproxyListener[];
  /** connections HAProxy holds in all (each costs two file descriptors) */
  maxconn?: number;
}

export interface Haproxy {
  pid: number;
  /** listener name → port */
  ports: Record<string, number>;
  config: string;
  log: string;
  stop(opts?: { graceMs?: number }): Promise<void>;
}

export function missingHaproxyPackages(): string[] {
  return existsSync(HAPROXY) ? [] : ['haproxy'];
}

/** The configuration text (exported for tests and for `npm run cluster -- status`). */
export function haproxyConfig(listeners: HaproxyListener[], maxconn = 4096): string {
  const names = new Set<string>();
  for (const l of listeners) {
    if (!/^[A-Za-z0-9_-]{1,32}$/.test(l.name)) throw new Error(`listener "${l.name}": a name is 1-32 letters, digits, '-' or '_'`);
    if (names.has(l.name)) throw new Error(`listener "${l.name}" is named twice`);
    names.add(l.name);
    if (!Number.isInteger(l.port) || l.port < 1 || l.port > 65535) throw new Error(`listener "${l.name}": port ${l.port} is not a port number`);
    if (l.mode !== 'tcp' && l.mode !== 'http') throw new Error(`listener "${l.name}": mode "${l.mode}" is neither tcp nor http`);
    if (!l.backends.length) throw new Error(`listener "${l.name}" has no backends`);
    for (const b of l.backends) {
      if (!/^[A-Za-z0-9.:-]+$/.test(b.host) || !Number.isInteger(b.port) || b.port < 1 || b.port > 65535) {
        throw new Error(`listener "${l.name}": backend ${b.host}:${b.port} is not a host and port`);
      }
    }
    if (l.healthPath !== undefined && !/^\/[\x21-\x7e]*$/.test(l.healthPath)) throw new Error(`listener "${l.name}": healthPath "${l.healthPath}" is not a path`);
  }
  const lines = [
    '# written by ops/cluster/haproxy.ts; rewritten at every start',
    'global',
    `  maxconn ${maxconn}`,
    // -db keeps HAProxy in the foreground: its log goes to stdout, which is the log file in the cluster directory
    '  log stdout format raw local0 info',
    '',
    'defaults',
    '  log global',
    '  option dontlognull',
    '  timeout connect 2s',
    // a server that failed its checks is skipped for new connections at once, not after a failed connect
    '  option redispatch',
    '  retries 2',
    '',
  ];
  for (const l of listeners) {
    lines.push(`frontend ${l.name}`, `  mode ${l.mode}`, `  bind 127.0.0.1:${l.port}`, `  default_backend ${l.name}_servers`);
    if (l.mode === 'tcp') {
      // MQTT connections live for days and stay silent for a keepalive period (often 60-300 s): the idle timeouts
      // must be well beyond any terminal's keepalive, or HAProxy itself would cut healthy devices off
      lines.push('  option tcplog', '  timeout client 15m', '');
    } else {
      // websocket (/ws, the console's stream) becomes a tunnel after the upgrade: it gets the tunnel timeout
      lines.push('  option httplog', '  timeout client 60s', '  timeout http-request 10s', '');
    }
    lines.push(`backend ${l.name}_servers`, `  mode ${l.mode}`);
    if (l.mode === 'tcp') {
      // leastconn: after a node's death its devices reconnect all at once; they go to the emptiest live node
      lines.push('  balance leastconn', '  timeout server 15m');
    } else {
      lines.push('  balance roundrobin', '  timeout server 60s', '  timeout tunnel 1h');
      if (l.healthPath) lines.push('  option httpchk', `  http-check send meth GET uri ${l.healthPath}`, '  http-check expect status 200-399');
    }
    // on-marked-down shutdown-sessions: the connections of a node that died are closed by HAProxy when its checks
    // fail, so devices reconnect (to a live node) at once instead of waiting for their keepalive to notice
    lines.push('  default-server check inter 1s fall 2 rise 2 on-marked-down shutdown-sessions');
    l.backends.forEach((b, i) => lines.push(`  server ${l.name}${i + 1} ${b.host}:${b.port}`));
    lines.push('');
  }
  return lines.join('\n');
}

export async function startHaproxy(opts: HaproxyOptions): Promise<Haproxy> {
  const missing = missingHaproxyPackages();
  if (missing.length) throw new Error(`HAProxy is not installed (${HAPROXY} missing): apt-get install ${missing.join(' ')}`);
  const dir = resolve(opts.dir);
  mkdirSync(dir, { recursive: true });
  const text = haproxyConfig(opts.listeners, opts.maxconn);
  const busy: number[] = [];
  for (const l of opts.listeners) if (!(await portFree(l.port))) busy.push(l.port);
  if (busy.length) throw new Error(`HAProxy: port${busy.length > 1 ? 's' : ''} ${busy.join(', ')} already in use on 127.0.0.1: choose other ports, or stop what holds them`);
  const config = join(dir, 'haproxy.cfg');
  const pidFile = join(dir, 'haproxy.pid');
  const log = join(dir, 'haproxy.log');
  writeFileSync(config, text);
  const check = await run(HAPROXY, ['-c', '-q', '-f', config]);
  if (check.code !== 0) throw new Error(`HAProxy refused its configuration ${config}: ${(check.stderr || check.stdout).trim()}`);
  rmSync(pidFile, { force: true });
  const out = openSync(log, 'a');
  // its own process group: a Ctrl-C meant for the caller does not cut every device off
  const child = spawn(HAPROXY, ['-f', config, '-p', pidFile, '-db'], { detached: true, stdio: ['ignore', out, out] });
  closeSync(out);
  child.unref();
  const pid = child.pid!;
  for (const l of opts.listeners) {
    if (!(await waitPort(l.port, 10_000, () => isAlive(pid)))) {
      await terminate([pid], config, 1_000);
      throw new Error(`HAProxy did not start listening on 127.0.0.1:${l.port} (${l.name}). Its log (${log}):\n${tail(log)}`);
    }
  }
  return {
    pid,
    ports: Object.fromEntries(opts.listeners.map((l) => [l.name, l.port])),
    config,
    log,
    async stop({ graceMs = 5_000 } = {}) {
      // SIGTERM: HAProxy stops at once (SIGUSR1 would wait for every MQTT connection to end, i.e. for days)
      await terminate([pid], config, graceMs);
    },
  };
}
