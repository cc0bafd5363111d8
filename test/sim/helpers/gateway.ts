// The real gateway in a child process (node on the compiled dist/main.js, as `npm start` runs it): ephemeral ports, a
// temporary data directory, a random admin password; its ready line tells the ports. It can be killed with SIGKILL
// (its whole process group) and started again on the same data directory and ports.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { GATEWAY_ARGV } from '../../helpers/child-gateway.js';

export const REPO = resolve(import.meta.dirname, '..', '..', '..');

export interface GatewayProcess {
  apiUrl: string;
  mqttUrl: string;
  mqttPort: number;
  httpPort: number;
  dataDir: string;
  password: string;
  /** everything it printed, for the failure message */
  output(): string;
  /** SIGKILL the process group: no shutdown, no flush — a crash */
  kill(): Promise<void>;
  /** SIGSTOP the process group: frozen, sockets open, nothing answered */
  freeze(): void;
  /** SIGTERM and wait */
  stop(): Promise<void>;
}

export interface GatewayOptions {
  dataDir?: string;
  password?: string;
  mqttPort?: number;
  httpPort?: number;
  /** extra environment (e.g. ELDERGATE_CONFIG) */
  env?: Record<string, string>;
  readyTimeoutMs?: number;
}

export async function startGateway(o: GatewayOptions = {}): Promise<GatewayProcess> {
  const dataDir = o.dataDir ?? mkdtempSync(join(tmpdir(), 'eldergate-sim-test-'));
  const password = o.password ?? randomBytes(12).toString('base64url');
  const child: ChildProcess = spawn(GATEWAY_ARGV[0]!, GATEWAY_ARGV.slice(1), {
    cwd: REPO,
    detached: true, // its own process group, so a SIGKILL reaches all of it
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      ELDERGATE_MQTT_PORT: String(o.mqttPort ?? 0),
      ELDERGATE_HTTP_PORT: String(o.httpPort ?? 0),
      ELDERGATE_DATA_DIR: dataDir,
      ELDERGATE_ADMIN_PASSWORD: password,
      ELDERGATE_LOG_LEVEL: 'info',
      ...o.env,
    },
  });
  let out = '';
  let exited: number | null | undefined;
  const ready = new Promise<{ mqttPort: number; httpPort: number }>((resolveReady, reject) => {
    let buf = '';
    const timer = setTimeout(
      () => reject(new Error(`the gateway printed no ready line within ${o.readyTimeoutMs ?? 60_000} ms:\n${out.slice(-3000)}`)),
      o.readyTimeoutMs ?? 60_000,
    );
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (!line.includes('"eldergate ready"')) continue;
        try {
          const j = JSON.parse(line) as { mqttPort: number; httpPort: number };
          clearTimeout(timer);
          resolveReady({ mqttPort: j.mqttPort, httpPort: j.httpPort });
        } catch {
          /* not the JSON line */
        }
      }
    });
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    child.on('exit', (code) => {
      exited = code;
      clearTimeout(timer);
      reject(new Error(`the gateway exited (code ${code}) before it was ready:\n${out.slice(-3000)}`));
    });
  });
  const ports = await ready;
  const waitExit = () =>
    new Promise<void>((r) => {
      if (exited !== undefined) return r();
      child.once('exit', () => r());
    });
  return {
    apiUrl: `http://127.0.0.1:${ports.httpPort}`,
    mqttUrl: `mqtt://127.0.0.1:${ports.mqttPort}`,
    mqttPort: ports.mqttPort,
    httpPort: ports.httpPort,
    dataDir,
    password,
    output: () => out,
    freeze() {
      process.kill(-child.pid!, 'SIGSTOP');
    },
    async kill() {
      if (exited === undefined) {
        try {
          process.kill(-child.pid!, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
      await waitExit();
    },
    async stop() {
      if (exited === undefined) {
        try {
          process.kill(-child.pid!, 'SIGTERM');
        } catch {
          /* already gone */
        }
      }
      const t = setTimeout(() => {
        try {
          process.kill(-child.pid!, 'SIGKILL');
        } catch {
          /* gone */
        }
      }, 10_000);
      await waitExit();
      clearTimeout(t);
    },
  };
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  rmSync(`${dir}-keys`, { recursive: true, force: true }); // the token-signing key beside it (core/token-keys.ts)
}
