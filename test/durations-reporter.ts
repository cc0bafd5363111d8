// A vitest reporter that writes test/durations.json: how long each test file held its worker, in seconds, from the
// moment it was queued on a worker (before its imports) to its end (after its afterAll hooks). test/sequencer.ts
// starts the longest first. `npm run test:durations` runs the suite with it; written only when every file passed.
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { durationKey } from './sequencer.js';
import type { Reporter, TestModule } from 'vitest/node';

const ROOT = resolve(import.meta.dirname, '..');

export default class DurationsReporter implements Reporter {
  private readonly started = new Map<string, number>();
  private readonly took = new Map<string, number>();

  onTestModuleQueued(m: TestModule): void {
    this.started.set(m.moduleId, performance.now());
  }

  onTestModuleEnd(m: TestModule): void {
    const from = this.started.get(m.moduleId);
    if (from !== undefined) this.took.set(durationKey(m.moduleId), (performance.now() - from) / 1000);
  }

  onTestRunEnd(modules: ReadonlyArray<TestModule>, errors: ReadonlyArray<unknown>): void {
    if (errors.length || modules.some((m) => m.state() !== 'passed')) {
      console.error('durations: not written (a file failed or did not run): they are taken from a passing run only');
      return;
    }
    const out = Object.fromEntries([...this.took].map(([f, s]) => [f, Math.round(s * 10) / 10]).sort((a, b) => (b[1] as number) - (a[1] as number)));
    writeFileSync(resolve(ROOT, 'test', 'durations.json'), JSON.stringify(out, null, 1) + '\n');
    console.log(`durations: ${this.took.size} files written to test/durations.json`);
  }
}
