// The V8 flags the gateway's node runs with, wherever it is started: `npm start` (package.json), the systemd unit
// (ops/eldergate.service), cluster mode's nodes (ops/cluster/cli.ts), the tests' child gateways and the bench's.
// V8 reads them when the heap is set up, so they go on node's command line (v8.setFlagsFromString at start-up is too
// late). test/ops/service-unit.test.ts checks that every place agrees with this list.
//
// --max-semi-space-size=32 (MiB; node 20's default is 16): a reconnect storm allocates for every connection, and with
// the young generation twice as large, fewer scavenges run. Three storms of 14,000 terminals each way, alternating:
// 303–396 against 386–405 µs of CPU per connect, P1 alarms during the storm at most 387–423 against 544–766 ms
// (bench/analysis.md). The cost is at most 32 MiB more memory per thread while such allocation lasts.
export const NODE_FLAGS: readonly string[] = ['--max-semi-space-size=32'];
