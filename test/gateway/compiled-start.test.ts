// `npm start` runs the gateway as compiled JavaScript (issue 10): dist/ is built when the sources are newer (`npm test`
// builds it before the tests, so here it is usually fresh), then plain node runs it — no TypeScript loader in the
// process — and everything the code finds beside itself (migrations, Modbus register maps, the console's sources,
// package.json for the build info) is found from dist/ too.
import { afterEach, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import mqtt from 'mqtt';
import { withTimeout } from '../../core/timeout.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
/** each step after the start: a failure names the step that got no answer (and carries the gateway's output) */
const bounded = <T>(what: string, p: Promise<T>) => withTimeout(p, 60_000, `no answer: ${what}`);
/** a build of dist/ (when stale) and the start, on a loaded machine */
const READY_WITHIN_MS = 300_000;

describe('npm start (compiled)', () => {
  // a test that times out never reaches its own finally: the gateway it started must not outlive it
  let started: { pid?: number } | undefined;
  afterEach(() => {
    try { if (started?.pid) process.kill(-started.pid, 'SIGKILL'); } catch { /* gone */ }
  });
  it('builds dist/, runs it with plain node, and an SOS is acknowledged and becomes an incident', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'eg-compiled-'));
    const adminPassword = 'Compiled-' + randomBytes(9).toString('hex');
    const cfg = join(dir, 'config.json');
    // a Modbus link so the shipped register maps must be found from dist/ (the slave is absent: the link just retries)
    writeFileSync(cfg, JSON.stringify({ modbus: [{ name: 'ward', deviceId: 'mb-none', link: { transport: 'tcp', host: '127.0.0.1', port: 1 }, map: 'pull-cord-panel' }] }));
    const child = spawn('npm', ['start', '--silent'], {
      cwd: ROOT,
      env: {
        ...process.env, ELDERGATE_DATA_DIR: join(dir, 'data'), ELDERGATE_ADMIN_PASSWORD: adminPassword, ELDERGATE_CONFIG: cfg,
        ELDERGATE_MQTT_PORT: '0', ELDERGATE_HTTP_PORT: '0', ELDERGATE_MQTT_HOST: '127.0.0.1', ELDERGATE_HTTP_HOST: '127.0.0.1',
        ELDERGATE_PUBLIC_HOST: '127.0.0.1', ELDERGATE_LOG_LEVEL: 'info',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    started = child;
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    try {
      const ready = await new Promise<{ mqttPort: number; httpPort: number }>((done, fail) => {
        // bounded, and saying what the process printed: a start that never gets ready must not be a silent timeout
        const giveUp = setTimeout(() => {
          clearInterval(t);
          // (the gateway's output is added where the error is caught below)
          fail(new Error(`npm start did not say "eldergate ready" within ${READY_WITHIN_MS / 1000} s`));
        }, READY_WITHIN_MS);
        const t = setInterval(() => {
          const line = out.split('\n').find((l) => l.includes('"eldergate ready"'));
          if (line) {
            clearInterval(t);
            clearTimeout(giveUp);
            const j = JSON.parse(line) as { mqttPort: number; httpPort: number };
            done(j);
          }
        }, 100);
        child.on('exit', (code, signal) => {
          clearInterval(t);
          clearTimeout(giveUp);
          fail(new Error(`npm start exited (${code ?? signal}) before it was ready`));
        });
      });
      expect(existsSync(join(ROOT, 'dist', 'main.js'))).toBe(true);
      expect(existsSync(join(ROOT, 'dist', '.built'))).toBe(true);
      // the gateway process is plain node on the compiled output: no tsx loader in it
      // npm runs `node scripts/start.mjs` as its child (the gateway), which loads dist/main.js in the same process
      const gatewayPid = Number(readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim().split(/\s+/)[0]);
      const cmdline = readFileSync(`/proc/${gatewayPid}/cmdline`, 'utf8').split('\0').join(' ');
      expect(cmdline).toMatch(/node .*scripts\/start\.mjs/);
      expect(cmdline).not.toMatch(/tsx/);
      const http = `http://127.0.0.1:${ready.httpPort}`;
      const metrics = await bounded('GET /metrics', (await fetch(`${http}/metrics`)).text());
      expect(metrics).toMatch(/eldergate_build_info\{version="\d+\.\d+\.\d+"/);
      const login = await (await fetch(`${http}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password: adminPassword }) })).json() as { token: string };
      const auth = { authorization: `Bearer ${login.token}`, 'content-type': 'application/json' };
      const dev = await (await fetch(`${http}/api/devices`, { method: 'POST', headers: auth, body: JSON.stringify({ kind: 'call-phone', serial: 'CP-COMPILED-1' }) })).json() as { id: string; secret: string };
      const client = await bounded('the MQTT connection', mqtt.connectAsync(`mqtt://127.0.0.1:${ready.mqttPort}`, { clientId: dev.id, username: dev.id, password: dev.secret, reconnectPeriod: 0 }));
      await bounded('the SOS\'s PUBACK', client.publishAsync(`devices/${dev.id}/events`, JSON.stringify({ type: 'sos', ts: Date.now(), seq: 1 }), { qos: 1 }));
      await client.endAsync();
      const incidents = await (await fetch(`${http}/api/incidents?deviceId=${dev.id}`, { headers: auth })).json() as { items: { type: string; priority: string }[] };
      expect(incidents.items.map((i) => [i.type, i.priority])).toContainEqual(['sos', 'P1']);
      // the console is bundled from its sources
      expect((await fetch(`${http}/console/app.js`)).status).toBe(200);
    } catch (e) {
      // whatever failed, what the gateway printed is what to read
      throw new Error(`${(e as Error).message}\n-- the gateway's stderr:\n${err.slice(-4000)}\n-- its stdout:\n${out.slice(-6000)}`, { cause: e });
    } finally {
      // a child that has already exited sends no second 'exit': waiting for one would hang the test past its timeout
      // and hide the error above
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        try { process.kill(-child.pid!, 'SIGTERM'); } catch { /* gone */ }
        await Promise.race([exited, new Promise((r) => setTimeout(r, 20_000))]);
      }
    }
  }, 480_000);
});
