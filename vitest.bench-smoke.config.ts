// `npm run bench:smoke`: the benchmark harness run end to end at tiny sizes (minutes, not part of `npm test`;
// .ci/run runs it as its own step).
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/bench-smoke/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 600_000,
    hookTimeout: 60_000,
    fileParallelism: false,
    reporters: ['default'],
  },
});
