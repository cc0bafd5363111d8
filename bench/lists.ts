// A city's lists read through the API — the device list over a whole fleet (filtered by live state, a page deep, by
// kind) and the incident list a page deep in a year's history — and what an SOS waits meanwhile: a list read in one
// turn of the main thread holds every socket, and one read in one message to the writer thread holds what the writer
// takes after it (its port is one queue).
//   npm run bench:lists -- [devices, default 100000] [incidents, default 300000] [residents, default 100000]
// A gateway in this process on a temporary data directory (its writer thread, a real SQLite file, real HTTP and MQTT);
// the fleet imported, every device given a state (connected once), a tenth left connected; the incidents (resolved,
// over 360 days) and residents (with contacts and a safe zone; namesakes) written into its database directly.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../core/config.js';
import { createLogger } from '../core/logger.js';
import { startEldergate } from '../eldergate.js';
import { loginAdmin, sosProbe } from './lib/sos-probe.js';

const N = Number(process.argv[2] ?? 100_000);
const INCIDENTS = Number(process.argv[3] ?? 300_000);
const RESIDENTS = Number(process.argv[4] ?? 100_000);
const ROUNDS = 5;
const dir = mkdtempSync(join(tmpdir(), 'eldergate-devlist-'));
const adminPassword = randomBytes(12).toString('hex');
const config = loadConfig({}, {
  dataDir: dir, adminPassword, logLevel: 'warn', mqtt: { port: 0, host: '127.0.0.1' }, http: { port: 0, host: '127.0.0.1' },
});
const gw = await startEldergate({ config, log: createLogger('warn') });
const http = `http://127.0.0.1:${gw.httpPort}`;
try {
  const token = await loginAdmin(http, adminPassword);
  const get = async (path: string) => {
    const res = await fetch(http + path, { headers: { authorization: `Bearer ${token}` } });
    if (res.status !== 200) throw new Error(`${path}: ${res.status} ${await res.text()}`);
    // (the total only: parsing a 1,000-row answer here would be this process's own stall, not the gateway's)
    return { total: Number(/"total":(\d+)/.exec(await res.text())?.[1]) };
  };

  let t0 = performance.now();
  await gw.registry.importDevices(Array.from({ length: N }, (_, i) => ({ line: i + 2, serial: `LIST-${i}`, kind: 'call-phone' as const })), 'bench');
  const ids = await gw.registry.listIds({});
  const at = Date.now();
  for (const [i, id] of ids.entries()) {
    gw.writer.states.setOnline(id, true, at);
    if (i % 10 !== 0) gw.writer.states.setOnline(id, false, at + 1);
  }
  await gw.writer.flushAll();
  console.log(`${N} devices imported and given a state in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const insert = gw.store.sqlite.prepare(`INSERT INTO incidents (id, device_id, type, priority, status, opened_at, last_at, stamps, last_seq)
    VALUES (?, ?, 'sos', 'P1', 'resolved', ?, ?, '{}', 1)`);
  for (let from = 0; from < INCIDENTS; from += 10_000) {
    gw.store.sqlite.transaction(() => {
      for (let i = from; i < Math.min(INCIDENTS, from + 10_000); i++) {
        const opened = at - 60_000 - Math.floor(Math.random() * 360 * 86_400_000);
        insert.run(`bench-inc-${i}`, ids[i % ids.length], opened, opened + 60_000);
      }
    })();
    await new Promise((r) => setImmediate(r));
  }
  console.log(`${INCIDENTS} incidents written`);
  const resident = gw.store.sqlite.prepare(`INSERT INTO residents (id, name, address, unit_id, contacts, safe_zone, created_at, updated_at)
    VALUES (?, ?, ?, NULL, ?, ?, ?, ?)`);
  const surnames = ['Wang', 'Li', 'Zhang', 'Liu', 'Chen', 'Yang', 'Huang', 'Zhao'];
  const zone = JSON.stringify({ type: 'polygon', points: Array.from({ length: 12 }, (_, k) => ({ lat: 39.9 + k / 1000, lon: 116.4 + k / 1000 })) });
  for (let from = 0; from < RESIDENTS; from += 10_000) {
    gw.store.sqlite.transaction(() => {
      for (let i = from; i < Math.min(RESIDENTS, from + 10_000); i++) {
        resident.run(`r-bench-${i}`, `${surnames[i % 8]} ${(i * 7919) % 5000}`, `${i} Jiefang Road, building ${i % 300}`,
          JSON.stringify([{ name: 'son', phone: '+86 138 0000 0000' }]), zone, at, at);
      }
    })();
    await new Promise((r) => setImmediate(r));
  }
  console.log(`${RESIDENTS} residents written`);

  const probe = await sosProbe(http, token, gw.mqttPort, 'LIST-SOS');
  const sosDuring = probe.during;
  const fmt = (n: number) => n.toFixed(1).padStart(7);
  console.log('request                                   answer ms   SOS PUBACK p50 / max ms (n)');
  for (let r = 0; r < ROUNDS; r++) {
    for (const path of ['/api/devices?supervision=never-seen&limit=50', '/api/devices?online=true&limit=50', '/api/devices?limit=50&offset=50000', '/api/devices?kind=call-phone&limit=50',
      '/api/incidents?limit=50&offset=100000', '/api/residents?limit=50', '/api/residents?limit=50&offset=50000', '/api/residents?q=Wang%201&limit=50']) {
      const m = await sosDuring(() => get(path));
      console.log(`${path.padEnd(44)} ${fmt(m.ms)}   ${fmt(m.p50)} / ${fmt(m.max)} (${m.count})  total ${m.answer.total}`);
    }
    // the largest pages the API gives, ten in a row (their answers are large: ~650 bytes a device)
    for (const path of ['/api/devices?limit=1000', '/api/incidents?limit=500', '/api/residents?limit=1000']) {
      const m = await sosDuring(async () => {
        let answer = { total: 0 };
        for (let i = 0; i < 10; i++) answer = await get(path);
        return answer;
      });
      console.log(`${`${path} ×10`.padEnd(44)} ${fmt(m.ms)}   ${fmt(m.p50)} / ${fmt(m.max)} (${m.count})  total ${m.answer.total}`);
    }
    {
      // a script asking for many at once: they take turns (2 at a time, 8 waiting), the rest are refused (503)
      const path = '/api/devices?supervision=never-seen&limit=50';
      const statuses: number[] = [];
      const m = await sosDuring(() => Promise.all(Array.from({ length: 20 }, () =>
        fetch(http + path, { headers: { authorization: `Bearer ${token}` } }).then(async (r) => { statuses.push(r.status); await r.arrayBuffer(); }))));
      const n = (s: number) => statuses.filter((x) => x === s).length;
      console.log(`${'20 of the first at once'.padEnd(44)} ${fmt(m.ms)}   ${fmt(m.p50)} / ${fmt(m.max)} (${m.count})  ${n(200)} answered, ${n(503)} refused`);
    }
    t0 = performance.now();
    const idle = await sosDuring(() => new Promise((r) => setTimeout(r, 300)));
    console.log(`${'(nothing: 300 ms)'.padEnd(44)} ${fmt(performance.now() - t0)}   ${fmt(idle.p50)} / ${fmt(idle.max)} (${idle.count})`);
  }
  await probe.close();
} finally {
  await gw.close();
  rmSync(dir, { recursive: true, force: true });
  rmSync(`${dir}-keys`, { recursive: true, force: true });
}
