// An attacker's idle sockets, held by a process of their own: `node socket-holder.mjs PORT N` opens N TCP
// connections to 127.0.0.1:PORT, 200 at a time, never writes, prints one JSON line with what it got, and holds them
// until it is killed or its parent is gone (stdin closes). A process of its own so that the attack does not depend
// on how many descriptors the test process has left (vitest's workers run file after file, and a fresh machine's
// limit may be 1024): the test starts it with its soft `ulimit -n` raised to the hard one.
import { connect } from 'node:net';
// the gateway's own reader of the descriptor limit (dist/ is built before any test: test/global-setup.ts)
import { readFdLimit } from '../../dist/core/limits.js';

const [port, n] = process.argv.slice(2).map(Number);
if (!Number.isInteger(port) || !Number.isInteger(n) || n < 1) {
  console.error('usage: node socket-holder.mjs PORT N');
  process.exit(2);
}
const sockets = [];
let connected = 0;
const errors = {};
for (let i = 0; i < n; i += 200) {
  await Promise.all(Array.from({ length: Math.min(200, n - i) }, () => new Promise((res) => {
    const s = connect({ host: '127.0.0.1', port });
    s.on('error', (err) => { errors[err.code ?? err.message] = (errors[err.code ?? err.message] ?? 0) + 1; });
    s.once('connect', () => { connected++; res(); });
    s.once('close', () => res());
    sockets.push(s);
  })));
}
const fdLimit = readFdLimit().soft;
process.stdout.write(JSON.stringify({ connected, errors, fdLimit }) + '\n');
// held until killed, or until the test process is gone (its end of the stdin pipe closes)
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
