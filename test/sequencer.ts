// The order the suite's files start in: the longest first, so that four workers finish together instead of one
// long file starting last and running alone (a fresh clone has no vitest cache, and vitest then starts the largest
// files first: the 81 s scenario file was started 210 s into a 292 s run). The durations are a committed
// measurement (test/durations.json, written by test/durations-reporter.ts when `npm run test:durations` runs the
// suite); a file not in it yet starts first.
import { readFileSync } from 'node:fs';
import { relative, resolve } from 'node:path';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

const ROOT = resolve(import.meta.dirname, '..');

/** a test file's key in test/durations.json: its path from the repository, with forward slashes */
export const durationKey = (moduleId: string): string => relative(ROOT, moduleId).split('\\').join('/');

function durations(): Map<string, number> {
  try {
    return new Map(Object.entries(JSON.parse(readFileSync(resolve(ROOT, 'test', 'durations.json'), 'utf8')) as Record<string, number>));
  } catch {
    return new Map(); // none yet: vitest's own order
  }
}

export default class LongestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const known = durations();
    if (!known.size) return super.sort(files);
    const cost = (f: TestSpecification) => known.get(durationKey(f.moduleId)) ?? Number.MAX_VALUE;
    return [...files].sort((a, b) => cost(b) - cost(a) || (a.moduleId < b.moduleId ? -1 : 1));
  }
}
