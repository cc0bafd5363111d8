import { defineConfig } from 'vitest/config';

// Cluster mode's tests (test/cluster): each file starts its own RabbitMQ (one or three nodes) on its own band of ports.
// Run by `npm run test:cluster` (its own step in .ci/run) apart from `npm test` (vitest.config.ts leaves them out), two
// files at a time, so the Erlang VMs do not share the two cores with the browser, serial and timing tests.
export default defineConfig({
  test: {
    include: ['test/cluster/**/*.test.ts'],
    // dist/ built before any test: child gateways run the compiled JavaScript, as `npm start` does
    globalSetup: ['test/global-setup.ts'],
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 180_000,
    fileParallelism: true,
    maxWorkers: 2,
    reporters: ['default'],
  },
});
