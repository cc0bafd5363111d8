// What the machine is and what a process costs, read the same way for every process (Node or Mosquitto).
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { createServer } from 'node:net';
import os from 'node:os';

const TICKS_PER_S = 100; // getconf CLK_TCK on Linux x86_64

/**
 * CPU seconds (user + system) a process has used so far, from /proc/<pid>/stat; 0 when it is gone. A thread is
 * `"<pid>/task/<tid>"` (/proc/<tid>/stat would give its whole process).
 */
export function cpuSeconds(pid: number | string): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // fields after the command name (which may contain spaces) — utime is field 14, stime 15
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(rest[11]) + Number(rest[12])) / TICKS_PER_S;
  } catch {
    return 0;
  }
}

/** resident set size in bytes, from /proc/<pid>/status */
export function rssBytes(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** CPU use of several processes over an interval, in % of one core */
export class CpuMeter {
  private readonly start: Map<number | string, number>;
  private readonly at = performance.now();
  /** processes by pid, threads as "<pid>/task/<tid>" */
  constructor(private readonly pids: Record<string, (number | string)[]>) {
    this.start = new Map(Object.values(pids).flat().map((p) => [p, cpuSeconds(p)]));
  }
  read(): Record<string, number> {
    const wall = (performance.now() - this.at) / 1000;
    const out: Record<string, number> = {};
    for (const [name, list] of Object.entries(this.pids)) {
      let s = 0;
      for (const p of list) s += cpuSeconds(p) - (this.start.get(p) ?? 0);
      out[name] = wall > 0 ? (100 * s) / wall : 0;
    }
    return out;
  }
}

export interface MachineInfo {
  date: string;
  cpu: string;
  cores: number;
  ramGiB: number;
  node: string;
  os: string;
  commit: string;
  dirty: boolean;
  loadavg: number[];
  fdLimit: string;
  mosquitto: string;
}

export function machineInfo(root: string): MachineInfo {
  const sh = (cmd: string, args: string[]) => {
    try {
      return execFileSync(cmd, args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
    } catch {
      return '';
    }
  };
  const cpus = os.cpus();
  let mosquitto = sh('/usr/sbin/mosquitto', ['-h']).split('\n')[0] ?? '';
  if (!mosquitto) {
    // `mosquitto -h` exits non-zero; read its first line from the error output
    try {
      execFileSync('/usr/sbin/mosquitto', ['-h'], { stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (err) {
      mosquitto = String((err as { stdout?: Buffer }).stdout ?? '').split('\n')[0] ?? '';
    }
  }
  return {
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    ramGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    os: `${os.type()} ${os.release()}`,
    commit: sh('git', ['rev-parse', '--short=12', 'HEAD']) || 'unknown',
    // the benchmarks' own output (the pages, their pictures, the results) does not make the measured code another
    // code: a second run after a first one still measures the commit
    dirty: sh('git', ['status', '--porcelain', '--untracked-files=no', '--', '.', ':!docs/bench*', ':!bench/results']).length > 0,
    loadavg: os.loadavg().map((x) => Math.round(x * 100) / 100),
    fdLimit: sh('sh', ['-c', 'ulimit -Sn; ulimit -Hn']).replace('\n', ' soft / ') + ' hard',
    mosquitto: mosquitto.trim(),
  };
}

/** an ephemeral port the kernel hands out now (closed again for the child to bind; loopback only) */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** poll `check` until it is true or `timeoutMs` passes (bounded like every loop in the bench) */
export async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs: number, everyMs = 50): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (await check()) return;
    await sleep(everyMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** `--name=N` from a bench's arguments, a positive number (default `def`); anything else is refused, naming it */
export function numberOption(args: readonly string[], name: string, def: number): number {
  const a = args.find((x) => x.startsWith(`--${name}=`));
  const v = a ? Number(a.slice(name.length + 3)) : def;
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name} takes a positive number (got "${a}")`);
  return v;
}
