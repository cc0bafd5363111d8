// What the one-machine cluster's parts share: running a command, waiting for a port, and stopping processes by pid
// without ever signalling a stranger. Pids come back from cluster.json after the CLI that wrote them is gone, and a
// pid can be reused by then, so every signal is preceded by a check that the process still mentions this cluster.
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/** Each stream of a command's output is kept up to this many characters (the tail: the error is at the end). */
const MAX_OUTPUT_CHARS = 64 * 1024;

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run a command to its end; never rejects on a non-zero exit (the caller says what it means). */
export function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { env: opts.env, timeout: opts.timeoutMs ?? 60_000, maxBuffer: 4 * MAX_OUTPUT_CHARS, killSignal: 'SIGKILL' },
      (err, stdout, stderr) => {
        const code = !err ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as unknown as { code: number }).code : 1;
        resolve({ code, stdout: String(stdout).slice(-MAX_OUTPUT_CHARS), stderr: String(stderr).slice(-MAX_OUTPUT_CHARS) });
      });
    // a password goes through stdin, never argv (argv is readable by every user in ps)
    child.stdin?.end(opts.input ?? '');
  });
}

export function isAlive(pid: number | undefined): pid is number {
  if (!pid || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  // a zombie (exited, not yet reaped by its parent) is gone for our purposes
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Does the process's command line or environment contain `needle` (this cluster's directory, its epmd port)? */
export function processMentions(pid: number, needle: string): boolean {
  for (const f of ['cmdline', 'environ']) {
    try {
      if (readFileSync(`/proc/${pid}/${f}`).toString('utf8').replace(/\0/g, ' ').includes(needle)) return true;
    } catch {
      // gone, or not ours to read: not ours to signal either
    }
  }
  return false;
}

/** Pids of processes whose command line mentions `needle` (`pgrep -f`, without a pattern language to escape). */
export function pidsMentioning(needle: string): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const pid = Number(e);
    if (pid === process.pid) continue;
    try {
      if (readFileSync(`/proc/${pid}/cmdline`).toString('utf8').replace(/\0/g, ' ').includes(needle) && isAlive(pid)) out.push(pid);
    } catch {
      // exited while we looked
    }
  }
  return out;
}

/**
 * SIGTERM each process, wait up to graceMs for all to exit, SIGKILL what is left. A pid is signalled only while it
 * still mentions `needle` (pid reuse). Resolves once none of them is alive.
 */
export async function terminate(pids: (number | undefined)[], needle: string, graceMs: number): Promise<void> {
  const ours = pids.filter((p): p is number => isAlive(p) && processMentions(p, needle));
  for (const pid of ours) signal(pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (ours.some(isAlive) && Date.now() < deadline) await sleep(100);
  for (const pid of ours) if (isAlive(pid)) signal(pid, 'SIGKILL');
  const killDeadline = Date.now() + 5_000;
  while (ours.some(isAlive) && Date.now() < killDeadline) await sleep(50);
}

export function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/** Can we listen on 127.0.0.1:port right now? */
export function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen({ port, host: '127.0.0.1', exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

export function portOpen(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ port, host });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(1_000, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

/** Wait until `check` holds; `alive` false ends the wait early (the process died). */
export async function waitUntil(check: () => Promise<boolean>, timeoutMs: number, alive: () => boolean = () => true, everyMs = 100): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    if (!alive()) return false;
    await sleep(everyMs);
  }
  return false;
}

/** Wait until something accepts connections on the port; `alive` false ends the wait early (the process died). */
export function waitPort(port: number, timeoutMs: number, alive: () => boolean = () => true): Promise<boolean> {
  return waitUntil(() => portOpen(port), timeoutMs, alive);
}

/** The last lines of a log file, for an error message (never the whole file). */
export function tail(file: string, lines = 15): string {
  try {
    const text = readFileSync(file, 'utf8');
    return text.slice(-8_000).split('\n').slice(-lines).join('\n').trim();
  } catch {
    return '(no log)';
  }
}
