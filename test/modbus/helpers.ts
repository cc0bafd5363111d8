// Real parts for the Modbus tests: the simulator in its own process, socat pseudo-terminals, pymodbus, and a sink
// that records what the poller hands over.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { join, resolve } from 'node:path';
import { createLogger } from '../../core/logger.js';
import type { IngestResult, Observation, ObservationSink } from '../../core/contracts.js';

export const log = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');

const REPO_ROOT = resolve(import.meta.dirname, '..', '..');

export async function waitFor<T>(what: string, probe: () => T | undefined | false, timeoutMs = 20_000, everyMs = 25): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Fails (never skips) when a Debian package the test needs is missing. */
export function requireTool(cmd: string[], pkg: string): void {
  const r = spawnSync(cmd[0]!, cmd.slice(1), { stdio: 'ignore' });
  if (r.error || r.status !== 0) {
    throw new Error(`this test needs "${cmd.join(' ')}" to work: install it with  apt-get install -y ${pkg}`);
  }
}

/** Records observations; `delayMs` makes each submission slow (durability takes time), `failNext` refuses some. */
export class RecordingSink implements ObservationSink {
  readonly observations: Observation[] = [];
  inFlight = 0;
  maxInFlight = 0;
  failNext = 0;
  /** devices whose observations the store refuses (an unregistered device, say) */
  readonly refuse = new Set<string>();
  constructor(private readonly delayMs = 0) {}
  async submit(obs: Observation): Promise<IngestResult> {
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      if (this.delayMs) await new Promise((r) => setTimeout(r, this.delayMs));
      if (this.refuse.has(obs.deviceId)) throw new Error(`unknown device ${obs.deviceId} (test)`);
      if (this.failNext > 0) {
        this.failNext--;
        throw new Error('store unavailable (test)');
      }
      this.observations.push(obs);
      return { status: 'stored', observationId: this.observations.length };
    } finally {
      this.inFlight--;
    }
  }
  of(type: string, deviceId?: string): Observation[] {
    return this.observations.filter((o) => o.type === type && (deviceId === undefined || o.deviceId === deviceId));
  }
  waitFor(what: string, pred: (o: Observation) => boolean, count = 1, timeoutMs = 20_000): Promise<Observation[]> {
    return waitFor(what, () => {
      const found = this.observations.filter(pred);
      return found.length >= count ? found : undefined;
    }, timeoutMs);
  }
}

type Line = Record<string, unknown> & { event: string };

/** A child process that speaks JSON lines on stdout and takes commands on stdin. */
export class LineProcess {
  readonly lines: Line[] = [];
  readonly stderr: string[] = [];
  readonly exited: Promise<number | null>;
  private listeners: ((l: Line) => void)[] = [];
  constructor(readonly child: ChildProcess) {
    createInterface({ input: child.stdout! }).on('line', (text) => {
      let line: Line;
      try {
        line = JSON.parse(text) as Line;
      } catch {
        line = { event: 'text', text };
      }
      this.lines.push(line);
      for (const l of this.listeners) l(line);
    });
    child.stderr!.on('data', (d: Buffer) => this.stderr.push(d.toString()));
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }
  next(pred: (l: Line) => boolean, timeoutMs = 30_000, what = 'a line'): Promise<Line> {
    const found = this.lines.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.listeners = this.listeners.filter((l) => l !== listener);
        reject(new Error(`timed out waiting for ${what}; stderr: ${this.stderr.join('').slice(-2000)}`));
      }, timeoutMs);
      const listener = (l: Line) => {
        if (!pred(l)) return;
        clearTimeout(timer);
        this.listeners = this.listeners.filter((x) => x !== listener);
        resolve(l);
      };
      this.listeners.push(listener);
      void this.exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`process exited (${code}) while waiting for ${what}; stderr: ${this.stderr.join('').slice(-2000)}`));
      });
    });
  }
  /** Send one command and wait for its answer line (`event` ok/value/state); an `error` answer rejects. */
  async send(cmd: string): Promise<Line> {
    const seen = this.lines.length;
    this.child.stdin!.write(cmd + '\n');
    const answer = await this.next((l) => this.lines.indexOf(l) >= seen && l.cmd === cmd, 15_000, `the answer to "${cmd}"`);
    if (answer.event === 'error') throw new Error(`"${cmd}" failed: ${String(answer.message)}`);
    return answer;
  }
  /** Kill the whole process group: nothing of it may keep the port. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    try {
      process.kill(-this.child.pid!, signal);
    } catch {
      /* already gone */
    }
    await this.exited;
  }
}

const started: LineProcess[] = [];
export async function killAll(): Promise<void> {
  await Promise.all(started.splice(0).map((p) => p.kill()));
  await Promise.all(socats.splice(0).map((k) => k()));
}

/** A JSON-lines child in its own process group; resolves once it printed its ready line. */
export async function startLineProcess(cmd: string, args: string[], what: string): Promise<{ proc: LineProcess; ready: Line }> {
  const child = spawn(cmd, args, { cwd: process.cwd(), stdio: ['pipe', 'pipe', 'pipe'], detached: true });
  const proc = new LineProcess(child);
  started.push(proc);
  const ready = await proc.next((l) => l.event === 'ready' || l.event === 'fatal', 60_000, `${what} to be ready`);
  if (ready.event !== 'ready') throw new Error(`${what} failed: ${String(ready.message)}`);
  return { proc, ready };
}

/** the simulated device, in another process: firmware-sim/modbus/main.ts compiled (test/global-setup.ts builds dist/) */
export const startSim = (args: string[]) =>
  startLineProcess(process.execPath, [join(REPO_ROOT, 'dist', 'firmware-sim', 'modbus', 'main.js'), ...args], 'the simulator');

/** A linked pair of pseudo-terminals from socat; killing it cuts the line. */
export async function socatPair(): Promise<{ a: string; b: string; kill(): Promise<void> }> {
  requireTool(['socat', '-V'], 'socat');
  const child = spawn('socat', ['-d', '-d', 'pty,raw,echo=0', 'pty,raw,echo=0'], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const paths: string[] = [];
  let said = '';
  // socat -d -d reports "N PTY is /dev/pts/X" for each end
  child.stderr!.on('data', (d: Buffer) => {
    said += d.toString();
    for (const m of d.toString().matchAll(/PTY is (\S+)/g)) paths.push(m[1]!);
  });
  const kill = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    process.kill(-child.pid!, 'SIGKILL');
    await exited;
  };
  socats.push(kill);
  await waitFor('socat to open two pseudo-terminals', () => paths.length >= 2 || undefined, 15_000).catch((e: Error) => {
    throw new Error(`${e.message}; socat said: ${said}`);
  });
  return { a: paths[0]!, b: paths[1]!, kill };
}
const socats: (() => Promise<void>)[] = [];
