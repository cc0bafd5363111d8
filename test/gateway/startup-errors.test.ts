// A configuration that does not validate stops start-up with every error listed and what to fix.
import { describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { GATEWAY_ARGV } from '../helpers/child-gateway.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
const start = (env: Record<string, string>) => spawnSync(GATEWAY_ARGV[0]!, GATEWAY_ARGV.slice(1), {
  cwd: ROOT, env: { ...process.env, ELDERGATE_MQTT_PORT: '0', ELDERGATE_HTTP_PORT: '0', ...env }, encoding: 'utf8', timeout: 60_000,
});

// the port-in-use case holds a port in this process: the child must run while this event loop stays free
const startAsync = (env: Record<string, string>) => new Promise<{ status: number | null; stderr: string }>((done) => {
  const child = spawn(GATEWAY_ARGV[0]!, GATEWAY_ARGV.slice(1), { cwd: ROOT, env: { ...process.env, ELDERGATE_MQTT_PORT: '0', ELDERGATE_HTTP_PORT: '0', ...env } });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout.resume();
  const kill = setTimeout(() => child.kill('SIGKILL'), 60_000);
  child.on('close', (status) => { clearTimeout(kill); done({ status, stderr }); });
});

// each start is a cold start of the gateway (seconds, far more beside the whole suite on 2 cores: 30 s was once not
// enough for the two starts of one test, under tsx); a start itself is bounded at 60 s above
const SPAWNS_MS = 150_000;

describe('start-up refuses a bad configuration', () => {
  it('lists every environment error at once and exits 78', () => {
    const r = start({ ELDERGATE_MQTT_PORT: 'x', ELDERGATE_HTTP_PORT: '-1', ELDERGATE_LOG_LEVEL: 'loud' });
    expect(r.status).toBe(78);
    expect(r.stderr).toMatch(/ELDERGATE_MQTT_PORT/);
    expect(r.stderr).toMatch(/ELDERGATE_HTTP_PORT/);
    expect(r.stderr).toMatch(/ELDERGATE_LOG_LEVEL/);
  }, SPAWNS_MS);

  it('lists every problem of rules declared as data and of a register map', () => {
    const dir = mkdtempSync(join(tmpdir(), 'eg-badcfg-'));
    const file = join(dir, 'config.json');
    writeFileSync(file, JSON.stringify({
      dataDir: join(dir, 'data'),
      rules: [
        { name: 'hot-room', on: 'temperature', condition: { type: 'simple', field: 'celsius', op: '>', value: 35 }, alarm: 'heat', priority: 'P2' },
        { name: 'flat-battery', on: 'battery', condition: { type: 'simple', field: 'volts', op: '<', value: 3 }, alarm: 'battery-flat', priority: 'P3' },
      ],
    }));
    const r = start({ ELDERGATE_CONFIG: file });
    expect(r.status).toBe(78);
    expect(r.stderr).toMatch(/hot-room/);
    expect(r.stderr).toMatch(/flat-battery/);

    writeFileSync(file, JSON.stringify({
      dataDir: join(dir, 'data2'),
      modbus: [{ name: 'ward', deviceId: 'mb-x', link: { transport: 'tcp', host: '127.0.0.1', port: 70000 }, map: { name: 'broken', points: [{ name: 'p', table: 'register', address: -1 }] } }],
    }));
    const m = start({ ELDERGATE_CONFIG: file });
    expect(m.status).toBe(78);
    expect(m.stderr).toMatch(/modbus/);
    expect(m.stderr).toMatch(/port/);
  }, SPAWNS_MS);

  it('a port in use names the setting to change, with no stack trace, and exits 78', async () => {
    const holder = createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
    const taken = (holder.address() as AddressInfo).port;
    try {
      const dir = mkdtempSync(join(tmpdir(), 'eg-port-'));
      const r = await startAsync({ ELDERGATE_DATA_DIR: join(dir, 'data'), ELDERGATE_MQTT_HOST: '127.0.0.1', ELDERGATE_MQTT_PORT: String(taken), ELDERGATE_HTTP_HOST: '127.0.0.1', ELDERGATE_ADMIN_PASSWORD: 'a-long-password-1' });
      expect(r.status).toBe(78);
      expect(r.stderr).toMatch(new RegExp(`port ${taken} .*already in use.*change mqtt\\.port \\(ELDERGATE_MQTT_PORT\\)`));
      expect(r.stderr).not.toMatch(/\n\s+at /);
    } finally {
      holder.close();
    }
  }, SPAWNS_MS);

  it('a missing certificate file names the setting, with no stack trace, and exits 78', () => {
    const dir = mkdtempSync(join(tmpdir(), 'eg-cert-'));
    const r = start({ ELDERGATE_DATA_DIR: join(dir, 'data'), ELDERGATE_MQTT_HOST: '127.0.0.1', ELDERGATE_HTTP_HOST: '127.0.0.1', ELDERGATE_MQTT_TLS_PORT: '0',
      ELDERGATE_TLS_CERT_FILE: join(dir, 'missing-cert.pem'), ELDERGATE_TLS_KEY_FILE: join(dir, 'missing-key.pem'), ELDERGATE_ADMIN_PASSWORD: 'a-long-password-1' });
    expect(r.status).toBe(78);
    expect(r.stderr).toMatch(/tls\.certFile \(ELDERGATE_TLS_CERT_FILE\): the file .*missing-cert\.pem does not exist/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  }, SPAWNS_MS);

  it('an unknown ELDERGATE_* variable stops start-up with a suggestion', () => {
    const r = start({ ELDERGATE_HTTP_PROT: '8081' });
    expect(r.status).toBe(78);
    expect(r.stderr).toMatch(/ELDERGATE_HTTP_PROT: not a setting \(did you mean ELDERGATE_HTTP_PORT\?\)/);
  }, SPAWNS_MS);
});
