// Run the gateway as a separate process, as an operator would (`npm start`: node on the compiled dist/), to kill it for
// real.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { join, resolve } from 'node:path';
import { writeFileSync } from 'node:fs';
import { NODE_FLAGS } from '../../core/node-flags.js';

export interface ChildGateway {
  proc: ChildProcess;
  mqttPort: number;
  httpPort: number;
  logs: string[];
  kill(signal?: NodeJS.Signals): Promise<void>;
}

const ROOT = resolve(import.meta.dirname, '..', '..');

/**
 * The gateway's command line as `npm start` runs it: node on the compiled dist/main.js, which test/global-setup.ts
 * builds before any test (a no-op when dist/ is fresh). A cold start costs 2.9 s of CPU this way, 5.7 s through tsx:
 * the suite starts dozens.
 */
export const GATEWAY_ARGV: readonly string[] = [process.execPath, ...NODE_FLAGS, join(ROOT, 'dist', 'main.js')];

/**
 * `wrap`: run the gateway's command line through another (e.g. `unshare -m sh -c 'mount … && exec "$@"'`); the wrapper
 * must exec the gateway so that the child's pid is the gateway's.
 */
export function startChildGateway(
  // a cold start beside the whole suite on 2 cores took over 30 s once (under tsx; its console bundle alone ~5 s)
  env: Record<string, string>, timeoutMs = 60_000, wrap?: (argv: string[]) => string[],
): Promise<ChildGateway> {
  return new Promise((resolvePromise, reject) => {
    const argv = wrap ? wrap([...GATEWAY_ARGV]) : [...GATEWAY_ARGV];
    const proc = spawn(argv[0]!, argv.slice(1), {
      cwd: ROOT,
      env: { ...process.env, ELDERGATE_MQTT_HOST: '127.0.0.1', ELDERGATE_HTTP_HOST: '127.0.0.1', ELDERGATE_LOG_LEVEL: 'info', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const logs: string[] = [];
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`gateway did not become ready in ${timeoutMs} ms:\n${logs.slice(-20).join('\n')}`));
    }, timeoutMs);
    const onLine = (line: string) => {
      logs.push(line);
      if (logs.length > 2000) logs.splice(0, 1000);
      if (!line.includes('"eldergate ready"')) return;
      const ready = JSON.parse(line) as { mqttPort: number; httpPort: number };
      clearTimeout(timer);
      resolvePromise({
        proc, mqttPort: ready.mqttPort, httpPort: ready.httpPort, logs,
        kill: (signal = 'SIGKILL') => new Promise((r) => {
          if (proc.exitCode !== null || proc.signalCode !== null) return r();
          proc.once('exit', () => r());
          proc.kill(signal);
        }),
      });
    };
    createInterface({ input: proc.stdout! }).on('line', onLine);
    createInterface({ input: proc.stderr! }).on('line', (l) => logs.push(l));
    proc.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`gateway exited (${code ?? signal}) before it was ready:\n${logs.slice(-20).join('\n')}`));
    });
  });
}

/** `wrap` for startChildGateway: in a new mount namespace, a tmpfs of `size` on `dir`, then exec the gateway (same pid) */
export const onSmallTmpfs = (dir: string, size: string) => (argv: string[]) => [
  'unshare', '--mount', '--propagation', 'private',
  'sh', '-c', `mount -t tmpfs -o size=${size} tmpfs "$0" && exec "$@"`, dir, ...argv,
];

/**
 * Fill the child's tmpfs on `dir` to the last block, seen from inside its mount namespace (through /proc/<pid>/root).
 * Returns the filler's path: unlink it to give the room back.
 */
export function fillChildDisk(gw: ChildGateway, dir: string): string {
  const fill = join(`/proc/${gw.proc.pid}/root`, dir, 'fill');
  const chunk = Buffer.alloc(1 << 20);
  try {
    for (let i = 0; i < 64; i++) writeFileSync(fill, chunk, { flag: 'a' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOSPC') return fill;
    throw err;
  }
  throw new Error(`the tmpfs on ${dir} did not fill up with 64 MiB: is it the small one?`);
}

/** Log in as the admin (ELDERGATE_ADMIN_PASSWORD) and provision a call phone over the child's HTTP API. */
export async function provisionCallPhone(gw: ChildGateway, password: string, serial: string): Promise<{ http: string; token: string; id: string; secret: string }> {
  const http = `http://127.0.0.1:${gw.httpPort}`;
  const login = await fetch(`${http}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password }) });
  if (!login.ok) throw new Error(`admin login answered ${login.status}: ${await login.text()}`);
  const { token } = (await login.json()) as { token: string };
  const res = await fetch(`${http}/api/devices`, {
    method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ kind: 'call-phone', serial }),
  });
  if (!res.ok) throw new Error(`provisioning ${serial} answered ${res.status}: ${await res.text()}`);
  const dev = (await res.json()) as { id: string; secret: string };
  return { http, token, id: dev.id, secret: dev.secret };
}
