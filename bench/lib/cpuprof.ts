// Summarise a V8 CPU profile (`node --cpu-prof`): self time per function, the top of the list, so the report
// can name what the gateway spends its core on when a target is missed.
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface SelfTime {
  fn: string;
  where: string;
  ms: number;
  pct: number;
}

export interface ProfileSummary {
  file: string;
  /** which thread of the process: 'main thread', 'writer thread', … (threadName) */
  thread: string;
  totalMs: number;
  /** share of sampled time the process was idle (waiting in epoll) */
  idlePct: number;
  gcPct: number;
  top: SelfTime[];
  /** self time grouped by package (node_modules/<pkg>) or project folder */
  byArea: { area: string; pct: number }[];
}

export function summariseProfile(file: string, root: string, topN = 15): ProfileSummary {
  const prof = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile & { workerUrl?: string };
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, ProfileNode>();
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n);
  const self = new Map<number, number>();
  let total = 0;
  for (let i = 0; i < prof.samples.length; i++) {
    const dt = (prof.timeDeltas[i] ?? 0) / 1000;
    total += dt;
    self.set(prof.samples[i]!, (self.get(prof.samples[i]!) ?? 0) + dt);
  }
  const byFn = new Map<string, SelfTime>();
  const byArea = new Map<string, number>();
  let idle = 0;
  let gc = 0;
  for (const [id, ms] of self) {
    const cf = byId.get(id)?.callFrame;
    if (!cf) continue;
    const name = cf.functionName || '(anonymous)';
    if (name === '(idle)') {
      idle += ms;
      continue;
    }
    if (name === '(garbage collector)') gc += ms;
    const url = cf.url.replace(/^file:\/\//, '');
    // tsx compiles each .ts file to what V8 runs: its line numbers are not the source's, so only the file is named
    const rel = url ? relative(root, url) : '';
    let where = !url ? '' : rel.endsWith('.ts') ? rel : `${rel}:${cf.lineNumber + 1}`;
    if (!url && !name.startsWith('(')) {
      // a native function (SQLite's Statement.run, a socket write): name its JavaScript caller
      const p = parent.get(id)?.callFrame;
      if (p) where = `native, called by ${p.functionName || '(anonymous)'}${p.url ? ' in ' + relative(root, p.url.replace(/^file:\/\//, '')) : ''}`;
    }
    const key = `${name} ${where}`;
    const url2 = url || (parent.get(id)?.callFrame.url ?? '').replace(/^file:\/\//, '');
    const e = byFn.get(key) ?? { fn: name, where, ms: 0, pct: 0 };
    e.ms += ms;
    byFn.set(key, e);
    const area = areaOf(url || (name.startsWith('(') ? '' : url2), root, name);
    byArea.set(area, (byArea.get(area) ?? 0) + ms);
  }
  const busy = total - idle;
  const top = [...byFn.values()].sort((a, b) => b.ms - a.ms).slice(0, topN).map((e) => ({ ...e, pct: busy > 0 ? (100 * e.ms) / busy : 0 }));
  return {
    file: relative(root, file),
    thread: threadName(prof.workerUrl),
    totalMs: total,
    idlePct: total > 0 ? (100 * idle) / total : 0,
    gcPct: busy > 0 ? (100 * gc) / busy : 0,
    top,
    byArea: [...byArea.entries()].map(([area, ms]) => ({ area, pct: busy > 0 ? (100 * ms) / busy : 0 })).sort((a, b) => b.pct - a.pct).slice(0, 10),
  };
}

function areaOf(url: string, root: string, name: string): string {
  if (!url) return name.startsWith('(') ? name : '(native)';
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  if (url.startsWith('node:')) return 'node core (' + url.slice(5).split('/')[0] + ')';
  const rel = relative(root, url);
  if (rel.startsWith('..')) return 'other';
  return rel.split('/').slice(0, rel.includes('/') ? 1 : 0).join('/') || rel;
}

/** What a thread of the gateway is, from the script it runs (the probe stores it with a worker's profile). */
function threadName(workerUrl: string | undefined): string {
  if (workerUrl === undefined) return 'main thread';
  if (/writer\/worker\.[jt]s$/.test(workerUrl)) return 'writer thread';
  if (/writer\/checkpointer\.[jt]s$/.test(workerUrl)) return 'checkpointer thread';
  if (/thread-stream|pino/.test(workerUrl)) return 'log transport thread';
  return `thread (${workerUrl.split('/').slice(-2).join('/')})`;
}
