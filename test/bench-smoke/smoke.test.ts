// Not part of `npm test` (it takes minutes): `npm run bench:smoke`, its own step in .ci/run.
// The bench harness must not rot: a seconds-sized run of every figure against all three systems (eldergate as a
// child process, raw aedes, Mosquitto + subscriber), real processes and sockets, asserting that each figure produced
// measurements and the report was written — never how fast anything was (timings are not test assertions here).
import { describe, it, expect } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs, runBench } from '../../bench/run.js';
import { MOSQUITTO } from '../../bench/lib/targets.js';
import { CHROMIUM } from '../../bench/lib/svg.js';

describe('npm run bench (smoke profile)', () => {
  it('runs every figure against eldergate, raw aedes and Mosquitto and writes the report', async () => {
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

      // figures 1, 2, 5 for every system, with samples
      expect(results.traffic.map((t) => t.system).sort()).toEqual(['eldergate', 'mosquitto', 'raw-aedes']);
      for (const t of results.traffic) {
        expect(t.errors, `${t.system}: ${why()}`).toEqual([]);
        expect(t.connect.connected, why()).toBe(results.profile.latency.backgroundDevices);
        expect(t.latency.length).toBe(results.profile.latency.ratesPerS.length * results.profile.reps);
        for (const rep of t.latency) {
          expect(rep.p1.n, `${t.system}: no P1 alarm reached the console\n${why()}`).toBeGreaterThan(0);
          expect(rep.cpu.system).toBeGreaterThan(0);
        }
        expect(t.samplesAtTop.length).toBeGreaterThan(0);
        expect(t.ingest.length).toBe(results.profile.reps);
        for (const i of t.ingest) expect(i.msgPerS, `${t.system} ingest`).toBeGreaterThan(0);
        if (t.system === 'mosquitto') expect(t.durable).toEqual([]);
        else for (const d of t.durable) expect(d.latency.n, `${t.system} durable alarms`).toBeGreaterThan(0);
      }

      // figure 3 over TCP and in memory, figure 4's storm: everyone came back
      expect(results.fleet.map((f) => f.system).sort()).toEqual(['eldergate', 'raw-aedes']);
      for (const f of results.fleet) {
        expect(f.errors, `${f.system}: ${why()}`).toEqual([]);
        expect(f.connected).toBe(f.devices);
        expect(Number.isFinite(f.rssPerDeviceKiB)).toBe(true);
        expect(f.storm, why()).not.toBeNull();
        expect(f.storm!.back).toBe(f.storm!.total);
        expect(f.storm!.p1.n, `${f.system}: no P1 during the storm`).toBeGreaterThan(0);
      }
      for (const im of results.inMemory) {
        expect(im.errors, `${im.system}: ${why()}`).toEqual([]);
        const step = im.steps[0]!;
        expect(step.connected, `${im.system} in memory`).toBe(step.devices + 20);
        expect(step.p1?.n ?? 0, `${im.system}: no in-process P1 sample`).toBeGreaterThan(0);
      }

      // the CPU profile was taken and summarised with the gateway's own functions in it
      const prof = results.profiles.find((p) => p.load === 'ingest')!.summary;
      expect('error' in prof ? prof.error : '').toBe('');
      if (!('error' in prof)) expect(prof.top.length).toBeGreaterThan(0);

      // figure 6: SOS alarms were acknowledged while a (tiny) import ran, and the import went in
      expect(results.importStall, `no figure 6\n${why()}`).not.toBeNull();
      expect(results.importStall!.error, why()).toBeNull();
      expect(results.importStall!.importStatus).toBe(201);
      expect(results.importStall!.during.n).toBeGreaterThan(0);

      // the report: every figure, the verdict table, the commands, the pictures
      expect(readFileSync(opts.mdFile, 'utf8')).toBe(markdown);
      for (const h of ['## Targets against measurements', '## Figure 1', '## Figure 2', '## Figure 3', '## Figure 4', '## Figure 5', '## Figure 6', '## Where the gateway spends its CPU']) {
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
