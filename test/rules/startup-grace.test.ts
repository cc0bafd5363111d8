// Start-up grace for supervision (issue 9, part 3): after a gateway outage longer than the devices' offline limit,
// nobody is called offline at once; each device gets at least one supervision interval from the restart to
// reconnect. First the rule in the engine with a manual clock, then a real gateway (child process, real SQLite file,
// real MQTT) stopped for longer than the offline limit.
import { describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { MqttClient } from 'mqtt';
import { HOUR, MIN, World } from './harness.js';
import { startChildGateway, type ChildGateway } from '../helpers/child-gateway.js';
import { connectDevice, publishAsync, waitFor } from '../helpers/gateway.js';

const hb = { type: 'heartbeat' } as const;
const startup = () => ({ startup: true });

describe('supervision: start-up grace (engine, manual clock)', () => {
  it('a device silent past its offline limit is offline one interval after the restart, not at once; one that speaks is never', () => {
    // call-phone on battery: interval 1 h, late 1.5 h, offline 3 h
    const w = new World();
    w.device('gone', { lastSeen: w.now - 4 * HOUR, supervision: 'ok' });
    w.device('back', { lastSeen: w.now - 4 * HOUR, supervision: 'ok' });
    w.device('nearly', { lastSeen: w.now - 2.5 * HOUR, supervision: 'ok' }); // offline due in 30 min: inside the grace
    w.device('fine', { lastSeen: w.now - 10 * MIN, supervision: 'ok' });
    w.restart(startup);
    expect(w.incidents).toEqual([]);
    // 'late' is a state, not an incident: it may show at once
    expect(w.devices.get('gone')!.supervision).toBe('late');
    expect(w.engine.pendingTimers('gone')).toEqual([{ rule: 'supervision', key: 'offline', inMs: HOUR }]);

    w.advance(30 * MIN);
    w.send('back', hb);
    w.advance(30 * MIN - 1);
    expect(w.incidents).toEqual([]);
    w.advance(1);
    expect(w.raisedOf('offline')).toHaveLength(2);
    expect(w.openIncident('gone', 'offline')).toMatchObject({ priority: 'P3', data: expect.objectContaining({ silentMs: 5 * HOUR }) });
    expect(w.openIncident('nearly', 'offline')).toBeDefined();
    expect(w.openIncident('back', 'offline')).toBeUndefined();
    expect(w.devices.get('back')!.supervision).toBe('ok');
    // a healthy device keeps its own schedule: late 80 min after the restart, offline at 170 min
    expect(w.openIncident('fine', 'offline')).toBeUndefined();
    w.advance(110 * MIN - 1);
    expect(w.openIncident('fine', 'offline')).toBeUndefined();
    w.advance(1);
    expect(w.openIncident('fine', 'offline')).toBeDefined();
  });

  it('supervision.startupGraceMs lengthens the grace; it never shortens it below one interval', () => {
    const long = new World({ supervision: { startupGraceMs: 2 * HOUR } });
    long.device('gone', { lastSeen: long.now - 4 * HOUR, supervision: 'ok' });
    long.restart(startup);
    long.advance(2 * HOUR - 1);
    expect(long.incidents).toEqual([]);
    long.advance(1);
    expect(long.openIncident('gone', 'offline')).toBeDefined();

    const short = new World({ supervision: { startupGraceMs: 1000 } });
    short.device('gone', { lastSeen: short.now - 4 * HOUR, supervision: 'ok' });
    short.restart(startup);
    short.advance(HOUR - 1);
    expect(short.incidents).toEqual([]);
    short.advance(1);
    expect(short.openIncident('gone', 'offline')).toBeDefined();
  });

  it('a device already offline (its card on the board) is not raised again; the grace is for start-up only', () => {
    const w = new World();
    w.device('p1');
    w.send('p1', hb);
    w.advance(3 * HOUR);
    expect(w.openIncident('p1', 'offline')).toBeDefined();
    w.restart(startup);
    w.advance(2 * HOUR);
    expect(w.incidents).toHaveLength(1);
    expect(w.incidents[0]!.count).toBe(1);
  });
});

describe('supervision: start-up grace (a real gateway stopped longer than the offline limit)', () => {
  it('no offline incident before the grace; the device that never comes back after it; the one that reconnects never', { timeout: 180_000 }, async () => {
    const intervalMs = 3000; // late at 3 s, offline at 6 s (factors 1 and 2)
    const graceMs = 12_000;
    const dataDir = mkdtempSync(join(tmpdir(), 'eldergate-grace-'));
    const password = 'grace-' + randomBytes(8).toString('hex');
    const env = {
      ELDERGATE_DATA_DIR: dataDir, ELDERGATE_MQTT_PORT: '0', ELDERGATE_HTTP_PORT: '0', ELDERGATE_ADMIN_PASSWORD: password,
      // call-phone on battery: 15 min × scale = 3 s
      ELDERGATE_SUPERVISION_INTERVAL_SCALE: String(intervalMs / (15 * 60_000)),
      ELDERGATE_SUPERVISION_LATE_FACTOR: '1',
      ELDERGATE_SUPERVISION_OFFLINE_FACTOR: '2',
      ELDERGATE_SUPERVISION_STARTUP_GRACE_MS: String(graceMs),
    };
    let gw: ChildGateway | undefined;
    let token = '';
    const api = async (method: string, path: string, body?: unknown) => {
      const base = `http://127.0.0.1:${gw!.httpPort}`;
      if (!token) {
        const r = await fetch(`${base}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password }) });
        token = ((await r.json()) as { token: string }).token;
      }
      const r = await fetch(base + path, { method, headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) }, ...(body ? { body: JSON.stringify(body) } : {}) });
      return { status: r.status, body: (await r.json()) as any };
    };
    const offlineOf = async (deviceId: string) =>
      ((await api('GET', `/api/incidents?deviceId=${deviceId}`)).body.items as { type: string; openedAt: number }[]).filter((i) => i.type === 'offline');
    let seq = 1;
    const heartbeat = (c: MqttClient, id: string) => publishAsync(c, `devices/${id}/telemetry`, JSON.stringify({ ts: Date.now(), seq: seq++, type: 'heartbeat' }));
    let beating: NodeJS.Timeout | undefined;
    try {
      gw = await startChildGateway(env, 60_000);
      const provision = async (serial: string) => {
        const r = await api('POST', '/api/devices', { kind: 'call-phone', serial });
        expect(r.status).toBe(201);
        return r.body as { id: string; secret: string };
      };
      const gone = await provision('GRACE-GONE');
      const back = await provision('GRACE-BACK');
      // bound to a resident, so supervised even before its commissioning test (a device still on the shelf is not)
      const resident = (await api('POST', '/api/residents', { name: 'Liu Yan' })).body as { id: string };
      for (const d of [gone, back]) expect((await api('POST', `/api/devices/${d.id}/bind`, { residentId: resident.id })).status).toBe(200);
      // both heard from (PUBACK: stored), then the gateway stops (SIGTERM: device state flushed)
      for (const d of [gone, back]) {
        const c = await connectDevice(`mqtt://127.0.0.1:${gw.mqttPort}`, d.id, d.secret);
        await heartbeat(c, d.id);
        c.end(true);
      }
      await gw.kill('SIGTERM');
      const stoppedAt = Date.now();

      // down for longer than the offline limit (6 s)
      await new Promise((r) => setTimeout(r, 2 * intervalMs + 3000));
      gw = await startChildGateway(env, 60_000);
      token = '';
      const restoredLine = gw.logs.find((l) => l.includes('"rule timers restored"') && l.includes('"module":"alarms"'))
        ?? gw.logs.find((l) => l.includes('"rule timers restored"'));
      expect(restoredLine).toBeDefined();
      const restoredAt = Date.parse((JSON.parse(restoredLine!) as { time: string }).time);
      expect(restoredAt - stoppedAt).toBeGreaterThan(2 * intervalMs);

      // the one that comes back reconnects at once (well inside the grace) and keeps beating
      const c = await connectDevice(`mqtt://127.0.0.1:${gw.mqttPort}`, back.id, back.secret);
      await heartbeat(c, back.id);
      const reconnectedAt = Date.now();
      beating = setInterval(() => void heartbeat(c, back.id).catch(() => undefined), 1000);

      // the device that never comes back: offline, but only after the grace from the restart
      const [incident] = await waitFor(async () => {
        const o = await offlineOf(gone.id);
        return o.length ? o : undefined;
      }, 'the silent device declared offline', graceMs + 30_000, 200);
      expect(incident!.openedAt - restoredAt).toBeGreaterThanOrEqual(graceMs - 250);
      // the reconnected device: never
      expect(reconnectedAt - restoredAt).toBeLessThan(graceMs);
      expect(await offlineOf(back.id)).toEqual([]);
      await new Promise((r) => setTimeout(r, 2 * intervalMs));
      expect(await offlineOf(back.id)).toEqual([]);
      expect(await offlineOf(gone.id)).toHaveLength(1);
      clearInterval(beating);
      c.end(true);
    } finally {
      clearInterval(beating);
      await gw?.kill('SIGKILL');
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
