// Writes test/durations.json (how long each test file ran, in seconds) from a run of the suite, for the order the
// files start in (test/sequencer.ts). `npm run test:durations` runs the suite with vitest's JSON reporter and then
// this; `node scripts/test-durations.mjs <report.json>` uses a report you already have.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
let report = process.argv[2];
if (!report) {
  report = join(tmpdir(), `eldergate-durations-${process.pid}.json`);
  try {
    execFileSync(process.execPath, [resolve(root, 'node_modules/vitest/vitest.mjs'), 'run', '--reporter=default', '--reporter=json', `--outputFile=${report}`], { cwd: root, stdio: 'inherit' });
  } catch {
    console.error('test-durations: the run failed (above); durations are written from a passing run only');
    process.exit(1);
  }
}
const { testResults } = JSON.parse(readFileSync(report, 'utf8'));
const out = Object.fromEntries(testResults
  .map((f) => [relative(root, f.name).split('\\').join('/'), Math.round((f.endTime - f.startTime) / 100) / 10])
  .sort((a, b) => b[1] - a[1]));
writeFileSync(resolve(root, 'test', 'durations.json'), JSON.stringify(out, null, 1) + '\n');
console.log(`test-durations: ${Object.keys(out).length} files written to test/durations.json`);
