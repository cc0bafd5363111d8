// Figure 8: database growth per 1,000 terminals per day, and the size it settles at under retention. It runs
// bench/retention-size.ts (the committed migrations, rows as ingest writes them, a retention pass after each simulated
// day) as its own process and reads its report; what a heartbeat costs on disk is that script's to say.
import { spawn } from 'node:child_process';
import { ROOT } from '../lib/ipc.js';
import { coresFor, pinned } from '../lib/sched.js';
import type { Profile } from '../lib/profile.js';

/** one database the script filled: "a row per heartbeat" (before issue 10), "state, rows downsampled" (after) … */
export interface DbGrowthRun {
  label: string;
  emptyMB: number | null;
  /** file size after each simulated day's inserts and after its retention pass, MB */
  perDay: { day: number; grownMB: number; afterRetentionMB: number; rowsKept: number | null }[];
  /** MB added per day per 1,000 terminals: the first day's growth, before retention has anything to prune */
  mbPerThousandPerDay: number | null;
  /** the file at the end, MB, scaled to 1,000 terminals */
  steadyMBPerThousand: number | null;
}

export interface DbGrowthResult {
  terminals: number;
  heartbeatMin: number;
  retentionDays: number;
  days: number;
  runs: DbGrowthRun[];
  /** the script's own lines, as it printed them */
  output: string[];
  error: string | null;
}

const num = (re: RegExp, line: string) => {
  const m = re.exec(line);
  return m ? Number(m[1]) : null;
};

/**
 * The script's report, one section per database: a header line ending "empty DB x MB" (its label before the first
 * ": N terminals"), then a line per day ("day N: … x MB after …, … file y MB").
 */
export function parseRetentionSize(lines: string[], g: Profile['dbGrowth']): Omit<DbGrowthResult, 'error' | 'output'> {
  const runs: DbGrowthRun[] = [];
  const scale = 1000 / g.terminals;
  for (const raw of lines) {
    const l = raw.trim();
    const empty = num(/empty DB ([\d.]+) MB/, l);
    if (empty !== null) {
      const label = /^(.*?):\s*\d+ terminals/.exec(l)?.[1]?.trim();
      runs.push({ label: label && !/^\d+$/.test(label) ? label : 'a row per heartbeat', emptyMB: empty, perDay: [], mbPerThousandPerDay: null, steadyMBPerThousand: null });
      continue;
    }
    const day = num(/^day (\d+):/, l);
    const grown = num(/([\d.]+) MB after (?:inserting|the day)/, l);
    const after = num(/file ([\d.]+) MB/, l);
    if (day !== null && grown !== null && after !== null) {
      if (runs.length === 0) runs.push({ label: 'a row per heartbeat', emptyMB: null, perDay: [], mbPerThousandPerDay: null, steadyMBPerThousand: null });
      runs[runs.length - 1]!.perDay.push({ day, grownMB: grown, afterRetentionMB: after, rowsKept: num(/(\d+) rows kept/, l) });
    }
  }
  for (const r of runs) {
    const first = r.perDay[0];
    r.mbPerThousandPerDay = first && r.emptyMB !== null ? (first.grownMB - r.emptyMB) * scale : null;
    r.steadyMBPerThousand = r.perDay.length ? r.perDay[r.perDay.length - 1]!.afterRetentionMB * scale : null;
  }
  return { ...g, runs };
}

export function runDbGrowth(p: Profile, log: (l: string) => void): Promise<DbGrowthResult> {
  const g = p.dbGrowth;
  const args = [g.terminals, g.heartbeatMin, g.retentionDays, g.days].map(String);
  const [cmd, argv] = pinned(coresFor('sut'), process.execPath, ['--import', 'tsx', 'bench/retention-size.ts', ...args]);
  return new Promise((resolve) => {
    const child = spawn(cmd, argv, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
    // bounded like every wait in the bench: a full profile's 8 days of 1,000 terminals take well under this
    const timer = setTimeout(() => child.kill('SIGKILL'), 15 * 60_000);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      const output = out.trim().split('\n').filter(Boolean);
      for (const l of output) log(`  ${l}`);
      const parsed = parseRetentionSize(output, g);
      const error = code === 0 ? (parsed.runs.some((r) => r.perDay.length) ? null : `bench/retention-size.ts printed no day lines: ${output.join(' | ').slice(0, 300)}`)
        : `bench/retention-size.ts exited ${code ?? signal}: ${err.trim().split('\n').slice(-3).join(' ')}`;
      resolve({ ...parsed, output, error });
    });
  });
}
