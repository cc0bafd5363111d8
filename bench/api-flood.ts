// One logged-in script flooding the API, and what an SOS waits meanwhile (issue 10: reads for the API must not block
// the alarm path). The script is another process with 64 connections, each asking again as soon as it has its
// answer, for 5 s (and the same from 8 users at once); an SOS device publishes one SOS every 10 ms (one in flight) and
// its PUBACK times are reported, with the event loop's longest stall. Each round runs the same floods three times, on
// a fresh gateway each: with the API's turns and budgets lifted (a baseline from the same run), with the defaults but
// no bound on all users' rows together (http.apiRowsPerS), and with the defaults (server/plugins/api-admission.ts).
//   npm run bench:api-flood -- [rounds, default 3]
// The gateway (with its writer thread) and the SOS device run in this process on the last core; the flood on core 0.
import { randomBytes } from 'node:crypto';
import { execFileSync, spawn } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { loadConfig } from '../core/config.js';
import { createLogger } from '../core/logger.js';
import { startEldergate } from '../eldergate.js';
import { loginAdmin, sosProbe } from './lib/sos-probe.js';

const ROUNDS = Number(process.argv[2] ?? 3);
const CONNECTIONS = 64;
const FLOOD_MS = 5000;
const PATHS = ['/api/devices?limit=200', '/api/units'];
const cores = availableParallelism();
if (cores < 2) throw new Error('bench:api-flood needs 2 cores: the gateway on one, the flood on the other');
// every thread started from here on (the writer, V8's helpers) inherits this
execFileSync('taskset', ['-a', '-p', '-c', String(cores - 1), String(process.pid)], { stdio: 'ignore' });

const dir = mkdtempSync(join(tmpdir(), 'eldergate-api-flood-'));
const flooder = join(dir, 'flooder.mjs');
writeFileSync(flooder, `
const [url, tokens, connections, ms] = [process.argv[2], process.argv[3].split(','), Number(process.argv[4]), Number(process.argv[5])];
const codes = {};
const end = Date.now() + ms;
await Promise.all(Array.from({ length: connections }, async (_, i) => {
  while (Date.now() < end) {
    const r = await fetch(url, { headers: { authorization: 'Bearer ' + tokens[i % tokens.length] } });
    await r.arrayBuffer();
    codes[r.status] = (codes[r.status] ?? 0) + 1;
  }
}));
console.log(JSON.stringify(codes));
`);

const lifted = {
  apiConcurrency: 100_000, apiQueue: 100_000, apiReadsPerUserPerS: 1_000_000, apiWritesPerUserPerS: 1_000_000, apiRowsPerUserPerS: 1_000_000_000, apiRowsPerS: 1_000_000_000,
};
/** the floods: one user's 64 connections on each path, then 8 users' 8 connections each on the device pages */
const FLOODS = [...PATHS.map((path) => ({ path, users: 1 })), { path: PATHS[0]!, users: 8 }];
const loop = monitorEventLoopDelay({ resolution: 1 });
loop.enable();

async function round(http: Record<string, number>, label: string) {
  const data = mkdtempSync(join(dir, 'gw-'));
  const adminPassword = randomBytes(12).toString('hex');
  const config = loadConfig({}, { dataDir: data, adminPassword, logLevel: 'error', mqtt: { port: 0, host: '127.0.0.1' }, http: { port: 0, host: '127.0.0.1', ...http } });
  const gw = await startEldergate({ config, log: createLogger('error') });
  const base = `http://127.0.0.1:${gw.httpPort}`;
  try {
    const token = await loginAdmin(base, adminPassword);
    await gw.registry.importDevices(Array.from({ length: 2000 }, (_, i) => ({ line: i + 2, serial: `FLOOD-${i}`, kind: 'call-phone' as const })), 'bench');
    const probe = await sosProbe(base, token, gw.mqttPort, 'FLOOD-SOS');
    const during = async (what: () => Promise<string>) => {
      loop.reset();
      const m = await probe.during(what);
      return { ...m, stall: loop.max / 1e6 };
    };
    const fmt = (n: number) => n.toFixed(1).padStart(6);
    const show = (what: string, m: Awaited<ReturnType<typeof during>>) =>
      console.log(`${label.padEnd(16)} ${what.padEnd(36)} SOS PUBACK p50 ${fmt(m.p50)}  p99 ${fmt(m.p99)}  max ${fmt(m.max)} ms (n=${String(m.count).padStart(3)})  longest loop stall ${fmt(m.stall)} ms  ${m.answer}`);
    show('(no flood)', await during(() => new Promise((r) => setTimeout(() => r(''), FLOOD_MS))));
    const tokens = [token];
    for (let u = 1; u < Math.max(...FLOODS.map((f) => f.users)); u++) {
      const password = randomBytes(12).toString('hex');
      await fetch(`${base}/api/users`, {
        method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ username: `flood-${u}`, password, role: 'operator' }),
      });
      const res = await fetch(`${base}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: `flood-${u}`, password }) });
      tokens.push((await res.json() as { token: string }).token);
    }
    for (const { path, users } of FLOODS) {
      show(users > 1 ? `${path} (${users} users)` : path, await during(() => new Promise((resolve) => {
        let out = '';
        const p = spawn('taskset', ['-c', '0', process.execPath, flooder, base + path, tokens.slice(0, users).join(','), String(CONNECTIONS), String(FLOOD_MS)]);
        p.stdout.on('data', (d) => (out += d));
        p.on('exit', () => resolve(`answers by status ${out.trim()}`));
      })));
    }
    await probe.close();
  } finally {
    await gw.close();
  }
}

try {
  console.log(`${CONNECTIONS} connections of one admin asking again as soon as answered, ${FLOOD_MS / 1000} s a flood; one SOS every 10 ms`);
  for (let r = 0; r < ROUNDS; r++) {
    await round(lifted, 'limits lifted');
    await round({ apiRowsPerS: lifted.apiRowsPerS }, 'no sum of rows');
    await round({}, 'defaults');
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
