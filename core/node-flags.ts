// The V8 flags the gateway's node runs with, wherever it is started: `npm start` (package.json), the systemd unit
// (ops/eldergate.service), cluster mode's nodes (ops/cluster/cli.ts), the tests' child gateways and the bench's.
// V8 reads them when the heap is set up, so they go on node's command line (v8.setFlagsFromString at start-up is too
// late). test/ops/service-unit.test.ts checks that every place agrees with this list.
//
// --max-semi-space-size=32 (MiB; node 20's default is 16): a reconnect storm allocates for every connection, and with
// the young generation twice as large, fewer scavenges run. Three storms of 14,000 terminals each way, alternating:
// 303–396 against 386–405 µs of CPU per connect, P1 alarms during the storm at most 387–423 against 544–766 ms
// (bench/analysis.md). The cost is at most 32 MiB more memory per thread while such allocation lasts.
//
// --v8-pool-size=0: as many V8 helper threads (the garbage collector's parallel and concurrent work, for the main
// thread's heap and the writer's alike) as the process has cores to run on, less one, at least one; node's default is
// four whatever the cores. With four helpers on fewer cores, a collection's helpers take the CPU in turns with the
// main thread and the writer: on the bench's one core (`taskset`), the scheduler ran the four one after another in
// 4 ms slices for ~100 ms, the main thread getting one slice in five, and an SOS waited 100 ms for its console
// (`perf record -e sched:sched_switch`, figure 1 at 10k msg/s; bench/analysis.md). With the pool fitted to the cores,
// figure 1's second repetition at 10k, where those spells fell, came out at 19–24 ms p99 in four runs, against
// 23–69 ms in three without it.
export const NODE_FLAGS: readonly string[] = ['--max-semi-space-size=32', '--v8-pool-size=0'];
