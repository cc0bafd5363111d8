// firmware-sim driving the real gateway in a child process, as a test engineer would: MQTT and HTTP only.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GatewayApi } from '../../firmware-sim/api.js';
import { Rng } from '../../firmware-sim/core/prng.js';
import { RealScheduler } from '../../firmware-sim/core/scheduler.js';
import { CallPhone } from '../../firmware-sim/devices/call-phone.js';
import { provisionDevices } from '../../firmware-sim/provision.js';
import type { RunReport } from '../../firmware-sim/report/types.js';
import { until } from './helpers/broker.js';
import { REPO, removeDir, startGateway, type GatewayProcess } from './helpers/gateway.js';

let gw: GatewayProcess;
let api: GatewayApi;
const scheduler = new RealScheduler();
const tmp = mkdtempSync(join(tmpdir(), 'eldergate-sim-cli-'));

beforeAll(async () => {
  gw = await startGateway();
  api = await GatewayApi.login(gw.apiUrl, 'admin', gw.password);
}, 120_000);

afterAll(async () => {
  scheduler.clear();
  await gw?.stop();
  if (gw) removeDir(gw.dataDir);
  removeDir(tmp);
});

/** the CLI as a user runs it: `npx eldergate-sim …` from the repository root */
function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const child = spawn('npx', ['eldergate-sim', ...args], { cwd: REPO, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('exit', (code) => resolve({ code: code ?? -1, out }));
  });
}

describe('firmware-sim against the real gateway', () => {
  it('SOS: PUBACK only once durable, then a P1 incident visible through the API', async () => {
    const [creds] = await provisionDevices({ api, rng: new Rng(1), requests: [{ kind: 'call-phone', count: 1, resident: {} }] });
    expect(creds!.residentId).toMatch(/./);
    const phone = new CallPhone({ creds: creds!, mqttUrl: gw.mqttUrl, scheduler, rng: new Rng(1) });
    try {
      phone.start();
      await until(() => phone.online, 30_000, 'phone online');
      const sentAt = Date.now();
      const sos = phone.sos()!;
      await until(() => sos.acked, 15_000, 'PUBACK');
      // durable before PUBACK: by the time the phone has its PUBACK, the observation is stored
      const stored = await api.observations({ deviceId: creds!.id, type: 'sos' });
      expect(stored.map((o) => [o.seq, o.deviceTs])).toEqual([[sos.seq, sos.ts]]);
      let incidents: Awaited<ReturnType<GatewayApi['incidents']>> = [];
      await until(async () => (incidents = await api.incidents({ deviceId: creds!.id })).length > 0, 15_000, 'incident');
      expect(incidents[0]).toMatchObject({ deviceId: creds!.id, type: 'sos', priority: 'P1', status: 'open', residentId: creds!.residentId });
      expect(incidents[0]!.openedAt).toBeGreaterThanOrEqual(sentAt - 50);
    } finally {
      await phone.stop();
    }
  });

  it('runs a shipped scenario end to end through `npx eldergate-sim run`: exit code 0 and a report', async () => {
    const reportDir = join(tmp, 'sos');
    const r = await cli(
      ['run', 'scenarios/sos.yaml', '--api', gw.apiUrl, '--mqtt', gw.mqttUrl, '--user', 'admin', '--report', reportDir],
      { ELDERGATE_SIM_PASSWORD: gw.password },
    );
    expect(r.out).toContain('PASSED');
    expect(r.code, r.out).toBe(0);
    const report = JSON.parse(readFileSync(join(reportDir, 'report.json'), 'utf8')) as RunReport;
    expect(report.passed).toBe(true);
    expect(report.expectations.length).toBe(6);
    expect(report.latency.puback.summary.count).toBe(1);
    expect(report.latency.incident.summary.count).toBe(1);
    expect(report.steps.map((s) => s.label)).toEqual(['sos phone', 'acknowledge phone']);
    const html = readFileSync(join(reportDir, 'report.html'), 'utf8');
    expect(html).toContain('<svg');
    expect(html).not.toMatch(/(src|href)="https?:/); // self-contained: nothing fetched from anywhere
  }, 120_000);

  it('a failing expectation gives exit code 1 and says which one, with its line', async () => {
    const file = join(tmp, 'wrong.yaml');
    writeFileSync(
      file,
      [
        'name: an SOS is not a fall',
        'devices:',
        '  - { name: phone, kind: call-phone }',
        'timeline:',
        '  - at: 500ms',
        '    sos: phone',
        '    expect:',
        '      - incident: { type: sos, priority: P1 }',
        '        within: 1s',
        '      - incident: { type: sos, priority: P3 }',
        '        within: 1s',
      ].join('\n'),
    );
    const reportDir = join(tmp, 'wrong');
    const r = await cli(['run', file, '--api', gw.apiUrl, '--mqtt', gw.mqttUrl, '--user', 'admin', '--report', reportDir], {
      ELDERGATE_SIM_PASSWORD: gw.password,
    });
    expect(r.code, r.out).toBe(1);
    expect(r.out).toMatch(/✓ line 8: incident type=sos priority=P1/);
    expect(r.out).toMatch(/✗ line 10: incident type=sos priority=P3 within 1s — no P3 sos incident/);
    expect(r.out).toContain('FAILED');
    expect(existsSync(join(reportDir, 'report.html'))).toBe(true);
  }, 120_000);

  it('`eldergate-sim fleet` provisions a mixed fleet, sends random alarms, and every one is PUBACKed', async () => {
    const reportDir = join(tmp, 'fleet');
    const creds = join(tmp, 'fleet-credentials.json');
    const r = await cli(
      ['fleet', '--devices', '30', '--mix', 'call-phone:1,fall-sensor:1,locator:1', '--rate', '240', '--duration', '6s', '--seed', '3',
        '--api', gw.apiUrl, '--mqtt', gw.mqttUrl, '--user', 'admin', '--keep', '--save-credentials', creds, '--report', reportDir],
      { ELDERGATE_SIM_PASSWORD: gw.password },
    );
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/all 30 device\(s\) online/);
    // not a terminal: plain progress lines, no escape codes
    expect(r.out).toMatch(/^\[\s*\d+s\] connected \d+\/30 · alarms \d+ sent/m);
    expect(r.out).not.toContain('\x1b[');
    const report = JSON.parse(readFileSync(join(reportDir, 'report.json'), 'utf8')) as RunReport;
    expect(report.stats.alarmsSent).toBeGreaterThan(5);
    expect(report.stats.alarmsAcked).toBe(report.stats.alarmsSent);
    expect(report.groups.map((g) => [g.kind, g.count])).toEqual([['call-phone', 10], ['fall-sensor', 10], ['locator', 10]]);
    // kept (--keep), so the saved credentials are reusable: the same devices connect again without provisioning
    const again = await cli(['fleet', '--devices', '3', '--mix', 'locator', '--duration', '1s', '--credentials', creds, '--api', gw.apiUrl, '--mqtt', gw.mqttUrl]);
    expect(again.code, again.out).toBe(0);
    expect(again.out).toMatch(/using 3 device\(s\) from/);
  }, 180_000);

  it('an invalid scenario is refused before anything runs: exit code 1, every problem with its line', async () => {
    const file = join(tmp, 'invalid.yaml');
    writeFileSync(file, 'name: x\ndevices:\n  - { name: p, kind: toaster }\ntimeline:\n  - at: soon\n    sos: p\n');
    const r = await cli(['run', file, '--check']);
    expect(r.code).toBe(1);
    expect(r.out).toContain(`${file}:3:`);
    expect(r.out).toContain(`${file}:5:`);
  }, 60_000);
});
