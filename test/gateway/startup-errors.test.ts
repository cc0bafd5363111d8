// A configuration that does not validate stops start-up with every error listed and what to fix.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '..', '..');
const start = (env: Record<string, string>) => spawnSync(process.execPath, ['--import', 'tsx', 'main.ts'], {
  cwd: ROOT, env: { ...process.env, ELDERGATE_MQTT_PORT: '0', ELDERGATE_HTTP_PORT: '0', ...env }, encoding: 'utf8', timeout: 60_000,
});

describe('start-up refuses a bad configuration', () => {
  it('lists every environment error at once and exits 78', () => {
    const r = start({ ELDERGATE_MQTT_PORT: 'x', ELDERGATE_HTTP_PORT: '-1', ELDERGATE_LOG_LEVEL: 'loud' });
    expect(r.status).toBe(78);
    expect(r.stderr).toMatch(/ELDERGATE_MQTT_PORT/);
    expect(r.stderr).toMatch(/ELDERGATE_HTTP_PORT/);
    expect(r.stderr).toMatch(/ELDERGATE_LOG_LEVEL/);
  });

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
  });
});
