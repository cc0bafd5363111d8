import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // the bench harness's end-to-end smoke run takes minutes: `npm run bench:smoke` (its own step in .ci/run)
    exclude: ['test/bench-smoke/**', '**/node_modules/**'],
    // real brokers, databases, browsers and child processes: give them time, and run files in forks
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 30_000,
    fileParallelism: true,
    maxWorkers: 2,
    reporters: ['default'],
  },
});
