// The bench's command line: a wrong option says what to use (fast; the smoke run itself is `npm run bench:smoke`).
import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { parseArgs } from '../../bench/run.js';
import { allowedCpus, pinThread } from '../../bench/lib/sched.js';

describe('npm run bench options', () => {
  it('refuses unknown options with a message that says what to use', () => {
    expect(() => parseArgs(['--fast'])).toThrow(/unknown option --fast: use --full/);
    expect(() => parseArgs(['--only=9'])).toThrow(/figure numbers 1–8/);
    expect(() => parseArgs(['--systems=emqx'])).toThrow(/unknown emqx/);
  });

  it('pins by default, --no-pin turns it off; figures 7 (consoles) and 8 (DB growth) are selectable', () => {
    expect(parseArgs([]).pin).toBe(true);
    expect(parseArgs([]).figures).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(parseArgs(['--no-pin']).pin).toBe(false);
    expect(parseArgs(['--only=7,8']).figures).toEqual([7, 8]);
  });

  it('--cluster runs one-node eldergate and the cluster side by side into their own report; the cluster is also a system by name', () => {
    const o = parseArgs(['--cluster', '--only=1,2,5']);
    expect(o.systems).toEqual(['eldergate', 'eldergate-cluster']);
    expect(o.mdFile).toMatch(/benchmarks-cluster\.md$/);
    expect(parseArgs(['--systems=eldergate,eldergate-cluster']).systems).toContain('eldergate-cluster');
    // the default run stays the one-node comparison
    expect(parseArgs([]).systems).not.toContain('eldergate-cluster');
  });

  it('--writer-core is an experiment: its report goes to a directory of its own, never with --cluster or --no-pin', () => {
    expect(() => parseArgs(['--writer-core'])).toThrow(/--out=DIR/);
    expect(() => parseArgs(['--writer-core', '--out=/tmp/x', '--cluster'])).toThrow(/does not go with --cluster/);
    expect(() => parseArgs(['--writer-core', '--out=/tmp/x', '--no-pin'])).toThrow(/--no-pin/);
    const o = parseArgs(['--writer-core', '--out=/tmp/writer-core', '--only=1']);
    expect(o.writerCore).toBe(true);
    expect(o.mdFile).toBe('/tmp/writer-core/benchmarks.md');
    expect(parseArgs([]).writerCore).toBeUndefined();
  });

  it('pinThread moves one thread of a process, not the others', async () => {
    const cores = allowedCpus();
    const target = String(cores[0]);
    const worker = new Worker(`const { parentPort } = require('node:worker_threads'); const fs = require('node:fs');
      parentPort.postMessage(Number(fs.readlinkSync('/proc/thread-self').split('/').pop())); setInterval(() => {}, 1000);`, { eval: true });
    try {
      const tid = await new Promise<number>((resolve) => worker.once('message', resolve));
      const allowed = (t: number | string) => /Cpus_allowed_list:\s*(\S+)/.exec(readFileSync(`/proc/self/task/${t}/status`, 'utf8'))![1];
      const mine = allowed(process.pid);
      pinThread(tid, target);
      expect(allowed(tid)).toBe(target);
      expect(allowed(process.pid)).toBe(mine);
    } finally {
      await worker.terminate();
    }
  });
});
