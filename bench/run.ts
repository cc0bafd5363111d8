// `npm run bench` — eldergate against raw aedes and Mosquitto, side by side; see docs/benchmarks.md.
//   npm run bench                    quick profile (a few minutes), writes docs/benchmarks.md and the histogram
//   npm run bench -- --full          the long one (issue 6's sizes, where one machine holds them)
//   npm run bench -- --only=1,2      some figures only (1 P1 latency, 2 ingest, 3 terminals, 4 storm, 5 durable,
//                                    6 SOS during the largest CSV import, 7 P1 with 20 consoles, 8 DB growth)
//   --no-pin                         do not pin (the system under test otherwise gets a core of its own: taskset)
//   --writer-core --out=DIR          an experiment: eldergate's writer thread moved onto the load's core, so each of its
//                                    two busy threads has a core (the writer sharing the load's); its report in DIR
//   npm run bench -- --smoke --out=DIR   a short run of the harness (npm run bench:smoke; no thresholds)
//   --systems=eldergate,raw-aedes,mosquitto   --in-memory=50000,100000   --no-profile
//   npm run bench -- --cluster --only=1,2,5   eldergate in cluster mode (3 RabbitMQ nodes + HAProxy + one eldergate
//                                    node, docs/scale-out.md) beside one-node eldergate, same run; figures 1, 2, 4, 5;
//                                    writes docs/benchmarks-cluster.md (never docs/benchmarks.md). Not in the default
//                                    set: the cluster takes ~40 s to start per figure group. Also --systems=…,eldergate-cluster
//   --json=FILE (save the measurements)   --from=FILE[,FILE] (re-render docs from them, e.g. after editing bench/analysis.md;
//                                    several runs of different figures as one report)
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import os from 'node:os';
import { PROFILES, type Profile, type ProfileName } from './lib/profile.js';
import { machineInfo } from './lib/sys.js';
import { ROOT } from './lib/ipc.js';
import { checks, renderMarkdown, renderTerminal, type BenchResults } from './lib/report.js';
import { latencyHistogramSvg, renderPng } from './lib/svg.js';
import { runTraffic } from './figures/traffic.js';
import { runFleet, runInMemory } from './figures/fleet.js';
import { profileGateway } from './figures/profile.js';
import { runImportStall } from './figures/import.js';
import { SYSTEMS, type SystemName } from './lib/targets.js';
import { affinityOf, cpuPlan, PROBE_NICE, describeRule, pinProcess, setCpuPlan, type CpuPlan } from './lib/sched.js';
import { runDbGrowth } from './figures/dbgrowth.js';

export interface RunOptions {
  profile: Profile;
  figures: number[];
  systems: SystemName[];
  outDir: string;
  /** the markdown file; docs/benchmarks.md by default */
  mdFile: string;
  cpuProfile: boolean;
  /** pin the system under test to a core of its own (default) */
  pin: boolean;
  jsonFile?: string;
  /** re-render docs from a run saved with --json, measuring nothing */
  from?: string;
  /** eldergate's writer thread on the load's core (an experiment: a core per thread on a 2-core machine) */
  writerCore?: boolean;
  log: (line: string) => void;
}

export class UsageError extends Error {}

export function parseArgs(argv: string[]): Omit<RunOptions, 'log'> {
  let name: ProfileName = 'quick';
  let figures = [1, 2, 3, 4, 5, 6, 7, 8];
  let pin = true;
  let systems: SystemName[] = ['eldergate', 'raw-aedes', 'mosquitto'];
  let out: string | undefined;
  let cpuProfile = true;
  let jsonFile: string | undefined;
  let inMemory: number[] | undefined;
  let from: string | undefined;
  let cluster = false;
  let systemsGiven = false;
  let writerCore = false;
  for (const a of argv) {
    if (a === '--full') name = 'full';
    else if (a === '--smoke') name = 'smoke';
    else if (a === '--quick') name = 'quick';
    else if (a === '--no-profile') cpuProfile = false;
    else if (a === '--no-pin') pin = false;
    else if (a === '--cluster') cluster = true;
    else if (a === '--writer-core') writerCore = true;
    else if (a.startsWith('--only=')) {
      figures = a.slice(7).split(',').map(Number);
      if (figures.some((f) => !Number.isInteger(f) || f < 1 || f > 8)) throw new UsageError(`--only takes figure numbers 1–8, comma-separated (got "${a.slice(7)}")`);
    } else if (a.startsWith('--systems=')) {
      const s = a.slice(10).split(',') as SystemName[];
      const bad = s.filter((x) => !SYSTEMS.includes(x));
      if (bad.length) throw new UsageError(`--systems: unknown ${bad.join(', ')} (use ${SYSTEMS.join(', ')})`);
      systems = s;
      systemsGiven = true;
    } else if (a.startsWith('--out=')) out = a.slice(6);
    else if (a.startsWith('--json=')) jsonFile = a.slice(7);
    else if (a.startsWith('--from=')) from = a.slice(7);
    else if (a.startsWith('--in-memory=')) {
      inMemory = a.slice(12).split(',').map(Number);
      if (inMemory.some((n) => !Number.isInteger(n) || n < 1 || n > 500_000)) throw new UsageError(`--in-memory takes device counts, comma-separated, e.g. 50000,100000 (got "${a.slice(12)}")`);
    }
    else throw new UsageError(`unknown option ${a}: use --full, --smoke, --only=1,2,3,4,5,6,7,8, --systems=…, --cluster, --in-memory=N,N, --out=DIR, --json=FILE, --from=FILE, --no-profile, --no-pin, --writer-core --out=DIR`);
  }
  // --cluster: one-node eldergate and the cluster side by side (or the cluster added to the systems given)
  if (cluster) systems = systemsGiven ? [...new Set<SystemName>([...systems, 'eldergate-cluster'])] : ['eldergate', 'eldergate-cluster'];
  let profile = PROFILES[name];
  if (inMemory) {
    // the in-memory steps of figure 3 sized apart from the rest (100k devices in a quick run)
    profile = { ...profile, terminals: { ...profile.terminals, inMemory }, overrides: [`--in-memory=${inMemory.join(',')}`] };
  }
  if (writerCore && !out) throw new UsageError('--writer-core is an experiment: give its report a directory of its own with --out=DIR (it never replaces docs/benchmarks.md)');
  if (writerCore && cluster) throw new UsageError('--writer-core moves one-node eldergate\'s writer thread: it does not go with --cluster');
  if (writerCore && !pin) throw new UsageError('--writer-core moves a thread between pinned cores: it cannot go with --no-pin');
  const outDir = resolve(out ?? join(ROOT, 'docs'));
  return { profile, figures, systems, outDir, mdFile: join(outDir, mdName(systems.includes('eldergate-cluster'))), cpuProfile, pin, ...(jsonFile ? { jsonFile } : {}), ...(from ? { from } : {}), ...(writerCore ? { writerCore } : {}) };
}

/** two saved runs as one: the second's figures added to the first's (the first's machine and date head the report) */
function mergeRuns(a: BenchResults, b: BenchResults): BenchResults {
  const figures = [...new Set([...a.figures, ...b.figures])].sort((x, y) => x - y);
  const fromB = <T extends { system: string }>(xs: T[], ys: T[]) => ys.filter((y) => !xs.some((x) => x.system === y.system));
  return {
    ...a,
    figures,
    systems: [...new Set([...(a.systems ?? []), ...(b.systems ?? [])])],
    durationS: a.durationS + b.durationS,
    loadAfter: b.loadAfter,
    // a system in both: each figure's repetitions from the first run that has them (list the run that should win first)
    traffic: [...a.traffic.map((t) => {
      const u = b.traffic.find((x) => x.system === t.system);
      if (!u) return t;
      const pick = <K extends 'latency' | 'ingest' | 'durable' | 'consoles'>(k: K) => ((t[k] ?? []).length ? t[k] : u[k]);
      return {
        ...t, latency: pick('latency'), ingest: pick('ingest'), durable: pick('durable'), consoles: pick('consoles'),
        samplesAtTop: t.latency.length ? t.samplesAtTop : u.samplesAtTop, errors: [...t.errors, ...u.errors], notes: t.notes ?? u.notes,
      };
    }), ...fromB(a.traffic, b.traffic)],
    fleet: [...a.fleet, ...fromB(a.fleet, b.fleet)],
    inMemory: [...a.inMemory, ...fromB(a.inMemory, b.inMemory)],
    profiles: [...a.profiles, ...b.profiles.filter((p) => !a.profiles.some((q) => q.load === p.load))],
    importStall: a.importStall ?? b.importStall ?? null,
    dbGrowth: a.dbGrowth ?? b.dbGrowth ?? null,
  };
}

/** a run with the cluster has a report of its own: docs/benchmarks.md stays the one-node comparison */
function mdName(cluster: boolean): string {
  return cluster ? 'benchmarks-cluster.md' : 'benchmarks.md';
}

function isClusterRun(r: BenchResults): boolean {
  return (r.systems ?? []).includes('eldergate-cluster') || r.traffic.some((t) => t.system === 'eldergate-cluster') || r.fleet.some((f) => f.system === 'eldergate-cluster');
}

export async function runBench(o: RunOptions): Promise<{ results: BenchResults; markdown: string; terminal: string; mdFile: string }> {
  if (o.from) {
    // re-render a saved run (after editing bench/analysis.md): nothing is measured again
    // several files (a cluster run of figures 1, 2, 5 and one of figure 4, say) render as one report
    const runs = o.from.split(',').map((f) => JSON.parse(readFileSync(f, 'utf8')) as BenchResults);
    const saved = runs.reduce(mergeRuns);
    o.log(`re-rendering the run${runs.length > 1 ? 's' : ''} of ${runs.map((r) => r.machine.date).join(', ')} from ${o.from}`);
    // a saved cluster run re-renders into its own report, not over docs/benchmarks.md
    const mdFile = isClusterRun(saved) && basename(o.mdFile) === 'benchmarks.md' ? join(dirname(o.mdFile), mdName(true)) : o.mdFile;
    return render(saved, { ...o, mdFile });
  }
  const started = Date.now();
  const p = o.profile;
  const figs = new Set(o.figures);
  const machine = machineInfo(ROOT);
  const log = o.log;
  log(`eldergate bench: ${p.name} profile, figures ${o.figures.join(',')}, systems ${o.systems.join(', ')} — load average ${machine.loadavg.join(' ')}`);
  // the system under test on a core of its own; the harness itself (and so every generator, probe and console it
  // starts) on the others
  const plan: CpuPlan = cpuPlan(!o.pin);
  if (o.writerCore) {
    if (!plan.load) throw new UsageError(`--writer-core needs the system and the load pinned apart (${plan.note ?? 'no plan'})`);
    plan.writer = plan.load;
  }
  setCpuPlan(plan);
  const harnessWas = affinityOf(process.pid);
  pinProcess(process.pid, plan.load);
  log(plan.note ? `  not pinned: ${plan.note}` : `  pinned: system under test on core ${plan.sut}; generators, probe, consoles and harness on ${plan.load}${plan.writer ? `; eldergate's writer thread moved onto ${plan.writer} (--writer-core)` : ''}${plan.probeFirst ? `; the probe at nice ${PROBE_NICE}` : '; the probe at the load\'s priority (could not raise it)'}`);
  const results: BenchResults = {
    profile: p, figures: o.figures, machine, loadAfter: [], startedAt: machine.date, durationS: 0,
    traffic: [], fleet: [], inMemory: [], profiles: [], histogram: null, analysis: null, importStall: null,
    cpuPlan: { ...plan, harness: affinityOf(process.pid) }, noiseRule: describeRule(p.noise), dbGrowth: null, eldergateStart: 'compiled',
    systems: o.systems,
  };
  try {
    await measure(results, o, log);
  } finally {
    // the harness may run inside a longer-lived process (the smoke test): give it back its cores
    if (plan.load && harnessWas) pinProcess(process.pid, harnessWas);
  }
  results.loadAfter = os.loadavg().map((x) => Math.round(x * 100) / 100);
  results.durationS = (Date.now() - started) / 1000;
  return render(results, o);
}

async function measure(results: BenchResults, o: RunOptions, log: (l: string) => void): Promise<void> {
  const p = o.profile;
  const figs = new Set(o.figures);

  if (figs.has(1) || figs.has(2) || figs.has(5) || figs.has(7)) {
    for (const s of o.systems) {
      log(`figures 1, 2, 5, 7 — ${s}`);
      results.traffic.push(await runTraffic(s, p, log, figs));
    }
  }
  if (figs.has(3) || figs.has(4)) {
    // the cluster only for the storm (figure 4): its figure 3 would be the engines' memory, not eldergate's
    const fleetSystems = (s: SystemName) => s !== 'mosquitto' && (s === 'eldergate-cluster' ? figs.has(4) : (p.fleetSystems?.includes(s) ?? true));
    for (const s of o.systems.filter(fleetSystems)) {
      log(`figures 3, 4 — ${s} over TCP`);
      results.fleet.push(await runFleet(s, p, log, figs.has(4)));
    }
  }
  if (figs.has(3)) {
    for (const s of o.systems.filter((x): x is 'eldergate' | 'raw-aedes' => (x === 'eldergate' || x === 'raw-aedes') && (p.fleetSystems?.includes(x) ?? true))) {
      log(`figure 3 — ${s} in memory`);
      results.inMemory.push(await runInMemory(s, p, log));
    }
  }
  if (figs.has(6) && o.systems.includes('eldergate')) {
    log(`figure 6 — eldergate, SOS while a ${p.importStall.rows}-line CSV import runs`);
    results.importStall = await runImportStall(p, log);
  }
  if (o.cpuProfile && o.systems.includes('eldergate')) {
    // each profiled load with the figure it belongs to
    for (const [load, fig] of [['ingest', 2], ['latency', 1], ['consoles', 7], ['durable', 5], ['storm', 4]] as const) {
      if (!figs.has(fig)) continue;
      // the smoke run proves the profiler path once; two would only add start-up time to npm test
      if (p.name === 'smoke' && load !== 'ingest') continue;
      log(`CPU profile of the gateway — ${load}`);
      results.profiles.push({ load, summary: await profileGateway(load, p, log) });
    }
  }
  if (figs.has(8)) {
    const g = p.dbGrowth;
    log(`figure 8 — database growth: ${g.terminals} terminals, a heartbeat every ${g.heartbeatMin} min, ${g.days} days, retention ${g.retentionDays} days (bench/retention-size.ts)`);
    results.dbGrowth = await runDbGrowth(p, log);
  }
}

async function render(results: BenchResults, o: RunOptions): Promise<{ results: BenchResults; markdown: string; terminal: string; mdFile: string }> {
  const p = results.profile;
  const machine = results.machine;
  const log = o.log;
  mkdirSync(o.outDir, { recursive: true });
  if (results.figures.includes(1)) {
    const colors: Record<SystemName, string> = { eldergate: '#1f6feb', 'eldergate-cluster': '#8250df', 'raw-aedes': '#2da44e', mosquitto: '#bf8700' };
    const labels: Record<SystemName, string> = { eldergate: 'eldergate → WS', 'eldergate-cluster': 'cluster: HAProxy → RabbitMQ → eldergate → WS', 'raw-aedes': 'raw aedes → sub', mosquitto: 'Mosquitto+sub → WS' };
    const svg = latencyHistogramSvg(
      `P1 latency at ${Math.max(...p.latency.ratesPerS).toLocaleString('en-US')} msg/s background — ${p.name} profile, ${machine.date.slice(0, 10)}`,
      results.traffic.map((t) => {
        // with every repetition at the top rate discarded, the picture is drawn from them and says so
        const top = t.latency.filter((x) => x.ratePerS === Math.max(...p.latency.ratesPerS));
        const noisy = top.length > 0 && top.every((x) => x.discarded);
        return { label: labels[t.system] + (noisy ? ' (noisy runs)' : ''), color: colors[t.system], samples: t.samplesAtTop };
      }),
      20,
    );
    // the cluster run's picture beside its own report, never over docs/bench-latency.*
    const stem = isClusterRun(results) ? 'bench-cluster-latency' : 'bench-latency';
    const svgFile = join(o.outDir, `${stem}.svg`);
    const pngFile = join(o.outDir, `${stem}.png`);
    writeFileSync(svgFile, svg);
    const pngError = await renderPng(svgFile, pngFile);
    if (pngError) log(`  ${pngError}`);
    const rel = (f: string) => relative(o.outDir, f);
    results.histogram = { svg: rel(svgFile), png: pngError ? null : rel(pngFile), pngError };
  }
  const analysisFile = join(ROOT, 'bench', 'analysis.md');
  // bench/analysis.md reads the one-node run; the cluster report says its own piece (bench/lib/report.ts)
  results.analysis = p.name !== 'smoke' && !isClusterRun(results) && existsSync(analysisFile) ? readFileSync(analysisFile, 'utf8') : null;
  const cs = checks(results);
  const markdown = renderMarkdown(results, cs);
  writeFileSync(o.mdFile, markdown);
  if (o.jsonFile) writeFileSync(o.jsonFile, JSON.stringify({ ...results, checks: cs }, null, 1));
  const terminal = renderTerminal(results, cs);
  return { results, markdown, terminal, mdFile: o.mdFile };
}

const isMain = process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename);
if (isMain) {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(64); // EX_USAGE
    }
    throw err;
  }
  const t0 = Date.now();
  const stamp = () => `[${String(Math.round((Date.now() - t0) / 1000)).padStart(4)} s] `;
  runBench({ ...opts, log: (l) => process.stdout.write(stamp() + l + '\n') }).then(({ terminal, mdFile }) => {
    process.stdout.write('\n' + terminal + '\n\n' + `written: ${relative(process.cwd(), mdFile)}\n`);
    // child processes are all stopped; timers of the probe module must not hold the exit
    process.exit(0);
  }, (err) => {
    process.stderr.write(`bench failed: ${(err as Error).stack ?? err}\n`);
    process.exit(1);
  });
}
