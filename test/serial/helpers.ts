// Real pseudo-terminal pairs from socat, sinks that hold their promise until the test lets go, and a tiny
// wait-for-condition helper (no fixed sleeps for what can be awaited).
import { spawn, type ChildProcess } from 'node:child_process';
import { pino } from 'pino';
import type { IngestResult, Observation, ObservationSink } from '../../core/contracts.js';

export const SOCAT_MISSING = 'install socat: apt-get install -y socat';

export interface PtyPair {
  /** the end the adapter opens */
  a: string;
  /** the end the simulated receiver opens */
  b: string;
  proc: ChildProcess;
  close(): Promise<void>;
}

/**
 * `socat -d -d pty,raw,echo=0 pty,raw,echo=0`; the two /dev/pts paths are read from socat's stderr
 * ("N PTY is /dev/pts/3"). With `links`, socat also makes stable symlinks (to restart it under the same names).
 */
export function startPtyPair(links?: [string, string]): Promise<PtyPair> {
  const side = (i: 0 | 1) => `pty,raw,echo=0${links ? `,link=${links[i]}` : ''}`;
  return new Promise((resolve, reject) => {
    let proc: ChildProcess;
    try {
      proc = spawn('socat', ['-d', '-d', side(0), side(1)], { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (err) {
      reject(new Error(`${SOCAT_MISSING} (${(err as Error).message})`));
      return;
    }
    let stderr = '';
    const paths: string[] = [];
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`socat did not report two ptys within 10 s; stderr:\n${stderr}`));
    }, 10_000);
    proc.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(new Error(err.code === 'ENOENT' ? SOCAT_MISSING : `socat failed: ${err.message}`));
    });
    proc.on('exit', (code) => {
      if (paths.length < 2) {
        clearTimeout(timer);
        reject(new Error(`socat exited (${code}) before making two ptys; stderr:\n${stderr}`));
      }
    });
    proc.stderr!.setEncoding('utf8');
    proc.stderr!.on('data', (d: string) => {
      stderr += d;
      for (const m of d.matchAll(/PTY is (\/dev\/pts\/\d+)/g)) paths.push(m[1]!);
      if (paths.length >= 2 && /starting data transfer loop/.test(stderr)) {
        clearTimeout(timer);
        const close = () =>
          new Promise<void>((r) => {
            if (proc.exitCode !== null || proc.signalCode !== null) return r();
            proc.once('exit', () => r());
            proc.kill('SIGTERM');
          });
        resolve({ a: links ? links[0] : paths[0]!, b: links ? links[1] : paths[1]!, proc, close });
      }
    });
  });
}

export async function waitFor<T>(
  what: string,
  probe: () => T | undefined | false | null,
  timeoutMs = 15_000,
  everyMs = 10,
): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined && v !== false && v !== null) return v;
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Logs kept in memory (and checked by tests that care); nothing printed. */
export function memoryLogger() {
  const lines: Record<string, unknown>[] = [];
  const log = pino(
    { level: 'debug' },
    { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) },
  );
  return { log, lines };
}

interface Held {
  obs: Observation;
  release(): void;
  fail(err?: Error): void;
}

/**
 * A sink whose submit() promises stay pending until the test releases them: it shows that nothing is ACKed
 * before the sink says durable. `auto` resolves at once (for tests that are not about the timing).
 */
export class HeldSink implements ObservationSink {
  readonly submitted: Observation[] = [];
  readonly pending: Held[] = [];
  /** how many submits were in flight at once, at most */
  maxInFlight = 0;
  private inFlight = 0;
  private nextId = 1;
  constructor(public auto = false) {}

  submit(obs: Observation): Promise<IngestResult> {
    this.submitted.push(obs);
    if (this.auto) return Promise.resolve({ status: 'stored', observationId: this.nextId++ });
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    return new Promise<IngestResult>((resolve, reject) => {
      this.pending.push({
        obs,
        release: () => {
          this.inFlight--;
          resolve({ status: 'stored', observationId: this.nextId++ });
        },
        fail: (err = new Error('disk on fire')) => {
          this.inFlight--;
          reject(err);
        },
      });
    });
  }

  /** Take the oldest pending submit (waiting for it to arrive). */
  async next(timeoutMs = 15_000): Promise<Held> {
    await waitFor('a pending submit', () => this.pending.length > 0, timeoutMs);
    return this.pending.shift()!;
  }

  of(type: string): Observation[] {
    return this.submitted.filter((o) => o.type === type);
  }
}
