// The bench's command line: a wrong option says what to use (fast; the smoke run itself is `npm run bench:smoke`).
import { describe, it, expect } from 'vitest';
import { parseArgs } from '../../bench/run.js';

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
});
