// Run the gateway as a separate process, as an operator would (`tsx main.ts`), to kill it for real.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { resolve } from 'node:path';

export interface ChildGateway {
  proc: ChildProcess;
  mqttPort: number;
  httpPort: number;
  logs: string[];
  kill(signal?: NodeJS.Signals): Promise<void>;
}

const ROOT = resolve(import.meta.dirname, '..', '..');

/**
 * `wrap`: run the gateway's command line through another (e.g. `unshare -m sh -c 'mount … && exec "$@"'`); the wrapper
 * must exec the gateway so that the child's pid is the gateway's.
 */
export function startChildGateway(
  env: Record<string, string>, timeoutMs = 30_000, wrap?: (argv: string[]) => string[],
): Promise<ChildGateway> {
  return new Promise((resolvePromise, reject) => {
    const argv = wrap ? wrap([process.execPath, '--import', 'tsx', 'main.ts']) : [process.execPath, '--import', 'tsx', 'main.ts'];
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
