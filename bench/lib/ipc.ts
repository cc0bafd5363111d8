// Parent ↔ child process plumbing for the bench: every load generator and baseline runs in its own process
// (they must not share the measured event loop) and answers commands over Node's IPC channel.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { coresFor, pinned, type Role } from './sched.js';
import { probeModuleUrl } from './compiled.js';

export const ROOT = resolve(import.meta.dirname, '..', '..');
const PROBE = pathToFileURL(resolve(import.meta.dirname, 'probe.ts')).href;

interface Reply {
  id: number;
  ok: boolean;
  result?: unknown;
  error?: string;
}

export interface SpawnOptions {
  /** name used in error messages */
  name: string;
  /** extra node flags before the script (--cpu-prof, --max-old-space-size …) */
  nodeArgs?: string[];
  args?: string[];
  env?: Record<string, string>;
  cwd?: string;
  /** the script calls serve() (bench workers); false for the gateway itself, which only has the probe */
  serves?: boolean;
  /** the system under test gets its own core; everything else (default) shares the load cores (bench/lib/sched.ts) */
  role?: Role;
  /** run ahead of the rest of the load when the plan allows it (the P1 probe: its clock must not wait behind the load) */
  first?: boolean;
  /** `script` is compiled JavaScript (eldergate's dist/main.js): node runs it with the transpiled probe, no tsx */
  compiled?: boolean;
}

/** A child node process running a TypeScript file with the probe loaded, answering `call(cmd, args)`. */
export class Child {
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  readonly logs: string[] = [];
  private exited: string | null = null;
  /** messages sent before the worker's serve() listens would be lost: calls wait for its hello */
  private readonly ready: Promise<void>;
  private markReady!: () => void;
  /** rejects when the process exits: one listener for all calls */
  private readonly gone: Promise<never>;

  private constructor(readonly name: string, readonly proc: ChildProcess, serves: boolean) {
    this.ready = new Promise((r) => (this.markReady = r));
    if (!serves) this.markReady();
    this.gone = new Promise<never>((_, reject) => proc.once('exit', () => reject(new Error('exited'))));
    this.gone.catch(() => undefined);
    const keep = (line: string) => {
      this.logs.push(line);
      if (this.logs.length > 400) this.logs.splice(0, 200);
    };
    createInterface({ input: proc.stdout! }).on('line', keep);
    createInterface({ input: proc.stderr! }).on('line', keep);
    proc.on('message', (m: Reply & { hello?: boolean }) => {
      if (m.hello) return this.markReady();
      const w = this.waiting.get(m.id);
      if (!w) return;
      this.waiting.delete(m.id);
      if (m.ok) w.resolve(m.result);
      else w.reject(new Error(`${this.name}: ${m.error}`));
    });
    proc.once('exit', (code, signal) => {
      this.exited = `${code ?? signal}`;
      for (const w of this.waiting.values()) w.reject(new Error(`${this.name} exited (${this.exited}) during a call:\n${this.tail()}`));
      this.waiting.clear();
    });
  }

  static spawn(script: string, o: SpawnOptions): Child {
    const loaders = o.compiled ? ['--import', probeModuleUrl()] : ['--import', 'tsx', '--import', PROBE];
    const [cmd, args] = pinned(coresFor(o.role ?? 'load'), process.execPath, [...(o.nodeArgs ?? []), ...loaders, script, ...(o.args ?? [])], o.first);
    // taskset execs node in place: the pid and the IPC channel are node's
    const proc = spawn(cmd, args, {
      cwd: o.cwd ?? ROOT,
      env: { ...process.env, ...o.env },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    return new Child(o.name, proc, o.serves ?? true);
  }

  get pid(): number {
    return this.proc.pid!;
  }

  get alive(): boolean {
    return this.exited === null;
  }

  tail(n = 20): string {
    return this.logs.slice(-n).join('\n');
  }

  /** send a command; bounded in time like every wait in the bench */
  call<T>(cmd: string, args: Record<string, unknown> = {}, timeoutMs = 120_000): Promise<T> {
    if (this.exited !== null) return Promise.reject(new Error(`${this.name} has exited (${this.exited}):\n${this.tail()}`));
    const id = this.nextId++;
    return new Promise<T>((resolvePromise, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`${this.name}: "${cmd}" did not answer in ${timeoutMs} ms:\n${this.tail()}`));
      }, timeoutMs);
      this.waiting.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolvePromise(v as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      Promise.race([this.ready, this.gone]).then(() => this.proc.send({ id, cmd, args }), () => undefined);
    });
  }

  /** SIGTERM, then SIGKILL after `graceMs` */
  stop(graceMs = 10_000, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    return new Promise((r) => {
      if (this.exited !== null) return r();
      const force = setTimeout(() => this.proc.kill('SIGKILL'), graceMs);
      this.proc.once('exit', () => {
        clearTimeout(force);
        r();
      });
      this.proc.kill(signal);
    });
  }
}

type Handler = (args: any) => unknown | Promise<unknown>;

/** Node flags from an environment variable ("--flag --other=1"), for trying V8 settings on one kind of process. */
export function nodeArgsFromEnv(name: string): string[] {
  return (process.env[name] ?? '').split(' ').filter(Boolean);
}

/** Child side: answer the parent's commands; exit when the parent goes away. Commands `probe.*` belong to probe.ts. */
export function serve(handlers: Record<string, Handler>): void {
  if (!process.send) throw new Error('this file is a bench worker: start it through bench/lib/ipc.ts (it needs an IPC channel)');
  process.on('message', async (m: { id: number; cmd: string; args: unknown }) => {
    if (!m || typeof m.cmd !== 'string' || m.cmd.startsWith('probe.')) return;
    const h = m.cmd === 'ping' ? () => 'pong' : handlers[m.cmd];
    try {
      if (!h) throw new Error(`unknown command ${m.cmd}`);
      const result = await h(m.args);
      process.send!({ id: m.id, ok: true, result });
    } catch (err) {
      process.send!({ id: m.id, ok: false, error: (err as Error).stack ?? String(err) });
    }
  });
  process.on('disconnect', () => process.exit(0));
  // a clean exit on SIGTERM (Child.stop), so that node's --cpu-prof writes its profile
  process.on('SIGTERM', () => process.exit(0));
  process.send({ hello: true });
}
