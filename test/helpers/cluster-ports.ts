// Ports for a RabbitMQ cluster started by a test (ops/cluster: base..base+39 for the nodes, +80..+99 for what is put in
// front of them). Below the kernel's ephemeral range (32768+): no client socket of another test can be holding one.
// Each test file has its own band, so files running at once never pick the same ports; within the band, a stretch
// still held (a run killed before it could stop) is skipped.
import { portFree } from '../../ops/cluster/processes.js';

const FIRST = 20_000;
const BAND = 2_400;

export async function freeBasePort(band: number): Promise<number> {
  for (let attempt = 0; attempt < 30; attempt++) {
    const base = FIRST + band * BAND + 100 * Math.floor(Math.random() * (BAND / 100));
    const ports = Array.from({ length: 100 }, (_, i) => base + i);
    if ((await Promise.all(ports.map((p) => portFree(p)))).every(Boolean)) return base;
  }
  throw new Error(`no free stretch of 100 ports in ${FIRST + band * BAND}..${FIRST + (band + 1) * BAND} on 127.0.0.1: stop what holds them`);
}
