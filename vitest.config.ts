import { defineConfig } from 'vitest/config';
import LongestFirst from './test/sequencer.js';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // the bench harness's end-to-end smoke run takes minutes: `npm run bench:smoke` (its own step in .ci/run)
    // cluster mode's files start RabbitMQ nodes (up to three Erlang VMs each): beside the rest of the suite on two cores
    // they starved its timing-sensitive tests, so they run on their own, two at a time: `npm run test:cluster`
    // (vitest.cluster.config.ts; its own step in .ci/run)
    exclude: ['test/bench-smoke/**', 'test/cluster/**', '**/node_modules/**'],
    // real brokers, databases, browsers and child processes: give them time, and run files in forks
    // dist/ built before any test: child gateways run the compiled JavaScript, as `npm start` does
    globalSetup: ['test/global-setup.ts'],
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 30_000,
    fileParallelism: true,
    // a worker keeps the modules it loaded from one file to the next: each file importing the whole gateway afresh
    // (fastify, aedes, drizzle, pino, …) cost ~3 s of CPU, 466 s over the suite. Measured on this machine, the whole
    // suite: 17 min isolated, 10.8 min not, the same 935 tests passing. So a file must clean up after itself (stop its
    // gateways, restore timers and process.env), as every file here does in afterAll / afterEach.
    isolate: false,
    // most files wait on timers, sockets and child processes, not the CPU: four at once on two cores (two at once took
    // 8 min of wall time for 13 min of test time, when the suite was smaller)
    maxWorkers: 4,
    // the longest files first (test/sequencer.ts): the run ends when its longest chain of files does
    sequence: { sequencer: LongestFirst },
    reporters: ['default'],
  },
});
