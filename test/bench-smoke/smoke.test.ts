// Not part of `npm test`: `npm run bench:smoke`, its own step in .ci/run (≤ 90 s on this 2-core machine when quiet).
// The bench harness must not rot: a seconds-sized run of every figure (figures 1, 2, 5, 7 against all three systems:
// eldergate as a child process, raw aedes, Mosquitto + subscriber; 3, 4 and the CPU profile against eldergate),
// real processes and sockets, asserting that each figure produced measurements, that the system under test ran
// pinned to its own core with its run-queue wait read, that consoles attached and acked, and that the report was
// written — never how fast anything was, nor whether a repetition was clean (timings are not test assertions here).
import { describe, it, expect } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs, runBench } from '../../bench/run.js';
import { MOSQUITTO } from '../../bench/lib/targets.js';
import { CHROMIUM } from '../../bench/lib/svg.js';
import { allowedCpus, TASKSET, type LoadConditions } from '../../bench/lib/sched.js';

describe('npm run bench (smoke profile)', () => {
  it('runs every figure (the system pinned, its run-queue wait read, consoles attached) and writes the report', async () => {
    // real parts: a missing one is a failure with the fix, never a skip
    expect(existsSync(MOSQUITTO), `Mosquitto is needed for the side-by-side figures: apt-get install -y mosquitto`).toBe(true);
    expect(existsSync(CHROMIUM), `Chromium renders the latency histogram to PNG: apt-get install -y chromium`).toBe(true);
    const out = mkdtempSync(join(tmpdir(), 'bench-smoke-'));
    const lines: string[] = [];
    try {
      const opts = parseArgs(['--smoke', `--out=${out}`, `--json=${join(out, 'run.json')}`]);
      expect(opts.mdFile).toBe(join(out, 'benchmarks.md'));
      const { results, markdown, terminal } = await runBench({ ...opts, log: (l) => lines.push(l) });
      const why = () => lines.join('\n');

      // pinning: the system under test on the last allowed core, the harness and its load on the others
      expect(TASKSET, 'taskset is in util-linux: apt-get install -y util-linux').not.toBeNull();
      const cpus = allowedCpus();
      expect(cpus.length, 'the bench needs 2 cores to pin the system apart from its load').toBeGreaterThanOrEqual(2);
      expect(results.cpuPlan).toMatchObject({ sut: String(cpus.at(-1)), load: cpus.slice(0, -1).join(','), note: null });
      expect(results.cpuPlan!.harness).toBe(results.cpuPlan!.load);
      expect(results.noiseRule).toMatch(/discarded as noisy/);
      // every repetition carries its load conditions, read from schedstat and /proc/stat, the system where it belongs
      const readable = (l: LoadConditions | undefined, what: string) => {
        expect(l, `${what}: no load conditions`).toBeDefined();
        expect(l!.pinnedAs, what).toBe(results.cpuPlan!.sut);
        expect(Number.isFinite(l!.sutWaitMsPerS) && l!.sutWaitMsPerS >= 0, `${what}: run-queue wait ${l!.sutWaitMsPerS}`).toBe(true);
        expect(Number.isFinite(l!.stealPct) && l!.stealPct >= 0, `${what}: steal ${l!.stealPct}`).toBe(true);
        expect(l!.noisy).toBe(l!.why !== null);
      };

      // figures 1, 2, 5, 7 for every system, with samples
      expect(results.traffic.map((t) => t.system).sort()).toEqual(['eldergate', 'mosquitto', 'raw-aedes']);
      for (const t of results.traffic) {
        expect(t.errors, `${t.system}: ${why()}`).toEqual([]);
        expect(t.connect.connected, why()).toBe(results.profile.latency.backgroundDevices);
        // the smoke profile runs each once, noisy or not (no extra attempts)
        expect(t.latency.length).toBe(results.profile.latency.ratesPerS.length * results.profile.reps);
        for (const rep of t.latency) {
          expect(rep.p1.n, `${t.system}: no P1 alarm reached the console\n${why()}`).toBeGreaterThan(0);
          expect(rep.cpu.system).toBeGreaterThan(0);
          readable(rep.load, `${t.system} fig1`);
          expect(rep.load.probeWaitMsPerS, `${t.system}: the probe reads its own run-queue wait`).toBeGreaterThanOrEqual(0);
          expect(rep.generator.maxBurst, 'the background is spread over 1 ms ticks').toBeGreaterThan(0);
        }
        for (const rep of [...t.ingest, ...t.durable]) readable(rep.load, `${t.system} fig2/5`);
        // figure 7: the extra consoles attached (real WebSocket clients), received the alarms and acked them
        if (t.system === 'raw-aedes') expect(t.consoles).toEqual([]);
        else {
          expect(t.consoles.length, `${t.system}: no figure 7\n${why()}`).toBe(results.profile.reps);
          for (const c of t.consoles) {
            expect(c.consoles, `${t.system}: consoles still attached`).toBe(results.profile.consoles);
            expect(c.p1.n, `${t.system}: no P1 with consoles attached`).toBeGreaterThan(0);
            expect(c.framesPerConsole.min, `${t.system}: a console received nothing`).toBeGreaterThan(0);
            expect(c.closed, `${t.system}: the server closed a console`).toEqual([]);
            readable(c.load, `${t.system} fig7`);
          }
          if (t.system === 'eldergate') for (const c of t.consoles) expect(c.acksPerConsole.min, 'every console acked').toBeGreaterThan(0);
        }
        expect(t.samplesAtTop.length).toBeGreaterThan(0);
        expect(t.ingest.length).toBe(results.profile.reps);
        for (const i of t.ingest) expect(i.msgPerS, `${t.system} ingest`).toBeGreaterThan(0);
        // eldergate's main and writer threads are metered apart (figure 2's cost per message and thread)
        if (t.system === 'eldergate') {
          for (const i of t.ingest) {
            expect(i.cpu.parts?.main, 'the main thread\'s CPU').toBeGreaterThan(0);
            expect(i.cpu.parts?.writer, 'the writer thread\'s CPU').toBeGreaterThan(0);
            expect(i.cpu.parts!.main! + i.cpu.parts!.writer!).toBeLessThanOrEqual(i.cpu.system + 5);
          }
        }
        if (t.system === 'mosquitto') expect(t.durable).toEqual([]);
        else for (const d of t.durable) expect(d.latency.n, `${t.system} durable alarms`).toBeGreaterThan(0);
      }

      // figure 3 over TCP and in memory, figure 4's storm: everyone came back (eldergate only in the smoke)
      expect(results.fleet.map((f) => f.system)).toEqual(['eldergate']);
      for (const f of results.fleet) {
        expect(f.errors, `${f.system}: ${why()}`).toEqual([]);
        expect(f.connected).toBe(f.devices);
        expect(Number.isFinite(f.rssPerDeviceKiB)).toBe(true);
        expect(f.storm, why()).not.toBeNull();
        // every repetition ran on the same fleet and each brought everyone back; the median is one of them
        expect(f.stormRuns, why()).toHaveLength(results.profile.storm.repeats);
        expect(f.stormRuns).toContainEqual(f.storm);
        for (const s of f.stormRuns) {
          expect(s.back).toBe(s.total);
          expect(s.p1.n, `${f.system}: no P1 during the storm`).toBeGreaterThan(0);
          readable(s.load, `${f.system} storm`);
          expect(s.generatorUsPerConnect, 'the generators\' own cost per connect').toBeGreaterThan(0);
        }
      }
      for (const im of results.inMemory) {
        expect(im.errors, `${im.system}: ${why()}`).toEqual([]);
        const step = im.steps[0]!;
        expect(step.connected, `${im.system} in memory`).toBe(step.devices + 20);
        expect(step.p1?.n ?? 0, `${im.system}: no in-process P1 sample`).toBeGreaterThan(0);
      }

      // the CPU profile was taken on the main thread and on the writer thread, each summarised with the gateway's own
      // functions in it
      const prof = results.profiles.find((p) => p.load === 'ingest')!.summary;
      expect('error' in prof ? prof.error : '').toBe('');
      const threads = Array.isArray(prof) ? prof : [];
      expect(threads.map((t) => t.thread)).toEqual(expect.arrayContaining(['main thread', 'writer thread']));
      for (const t of threads.filter((x) => x.thread === 'main thread' || x.thread === 'writer thread')) {
        expect(t.top.some((f) => f.where.startsWith('dist/')), `${t.thread}: no function of the gateway in ${JSON.stringify(t.top)}`).toBe(true);
      }

      // figure 6: SOS alarms were acknowledged while a (tiny) import ran, and the import went in
      expect(results.importStall, `no figure 6\n${why()}`).not.toBeNull();
      expect(results.importStall!.error, why()).toBeNull();
      expect(results.importStall!.importStatus).toBe(201);
      expect(results.importStall!.during.n).toBeGreaterThan(0);

      // figure 8: bench/retention-size.ts ran and its days were read
      expect(results.dbGrowth?.error ?? null, why()).toBeNull();
      expect(results.dbGrowth!.runs.length, why()).toBeGreaterThan(0);
      for (const run of results.dbGrowth!.runs) {
        expect(run.perDay, run.label).toHaveLength(results.profile.dbGrowth.days);
        expect(run.mbPerThousandPerDay, run.label).toBeGreaterThanOrEqual(0);
      }

      // the report: every figure, the verdict table, the load conditions, the commands, the pictures
      expect(readFileSync(opts.mdFile, 'utf8')).toBe(markdown);
      for (const h of ['## Targets against measurements', '## Figure 1', '## Figure 2', '## Figure 3', '## Figure 4', '## Figure 5', '## Figure 6',
        '## Figure 7', '## Figure 8', '## Load conditions of each repetition', '## Where the gateway spends its CPU', '**Where things ran.**', '**Noise.**']) {
        expect(markdown).toContain(h);
      }
      expect(markdown).toContain('npm run bench -- --smoke --only=1');
      expect(markdown).toContain(results.machine.commit);
      expect(markdown).toContain('Mosquitto + Node subscriber');
      expect(readFileSync(join(out, 'bench-latency.svg'), 'utf8')).toContain('<svg');
      expect(results.histogram?.pngError ?? null).toBeNull();
      expect(readFileSync(join(out, 'bench-latency.png')).subarray(1, 4).toString()).toBe('PNG');
      expect(terminal).toContain('verdict');

      // a saved run re-renders to the same report without measuring anything
      const again = await runBench({ ...parseArgs([`--from=${join(out, 'run.json')}`, `--out=${out}`]), log: () => undefined });
      expect(again.markdown).toBe(markdown);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }, 600_000);
});
