// Stopping the gateway (SIGTERM, as systemd does at an upgrade) while the city is connected: it closes every
// connection itself and exits 0 within seconds, having closed the writer (what it held written). Before, the MQTT
// listener's close waited for connections only aedes would close, after it: any terminal still connected held the
// shutdown until main.ts's 10 s forced exit (code 1, the writer never closed).
import { connect as tcpConnect, type Socket } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import mqtt from 'mqtt';
import WebSocket from 'ws';
import { describe, expect, it } from 'vitest';
import { startChildGateway } from '../helpers/child-gateway.js';

describe('a gateway stopped with terminals and consoles connected', () => {
  it('closes them itself and exits 0 within seconds, the SOS they sent stored', { timeout: 120_000 }, async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'eldergate-shutdown-'));
    const password = 'stop-' + randomBytes(8).toString('hex');
    // a CONNECT may take a minute here: a socket that never sends one must not hold the stop that long either
    const gw = await startChildGateway({
      ELDERGATE_DATA_DIR: dataDir, ELDERGATE_MQTT_PORT: '0', ELDERGATE_HTTP_PORT: '0', ELDERGATE_ADMIN_PASSWORD: password,
      ELDERGATE_MQTT_CONNECT_TIMEOUT_MS: '60000',
    });
    const http = `http://127.0.0.1:${gw.httpPort}`;
    const terminals: mqtt.MqttClient[] = [];
    let raw: Socket | undefined;
    let ws: WebSocket | undefined;
    try {
      const login = await fetch(`${http}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password }) });
      const { token } = (await login.json()) as { token: string };
      const provision = async (serial: string) => {
        const r = await fetch(`${http}/api/devices`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ kind: 'call-phone', serial }) });
        expect(r.status).toBe(201);
        return (await r.json()) as { id: string; secret: string };
      };
      // terminals that reconnect on their own every 100 ms, as firmware does
      const devices = [await provision('STOP-1'), await provision('STOP-2')];
      for (const d of devices) {
        const c = mqtt.connect(`mqtt://127.0.0.1:${gw.mqttPort}`, { clientId: d.id, username: d.id, password: d.secret, reconnectPeriod: 100, protocolVersion: 4 });
        c.on('error', () => undefined);
        await new Promise((r) => c.once('connect', r));
        terminals.push(c);
      }
      await terminals[0]!.publishAsync(`devices/${devices[0]!.id}/events`, JSON.stringify({ ts: Date.now(), seq: 1, type: 'sos' }), { qos: 1 });
      // a socket on the MQTT port that never sends CONNECT
      raw = tcpConnect(gw.mqttPort, '127.0.0.1');
      raw.on('error', () => undefined);
      await new Promise((r) => raw!.once('connect', r));
      // a console on the live stream
      ws = new WebSocket(`ws://127.0.0.1:${gw.httpPort}/ws`, { headers: { authorization: `Bearer ${token}` } });
      ws.on('error', () => undefined);
      await new Promise((r) => ws!.once('open', r));

      const t0 = Date.now();
      await gw.kill('SIGTERM');
      const tookMs = Date.now() - t0;
      // main.ts forces exit(1) after 10 s: a clean stop is exit 0, long before
      expect({ code: gw.proc.exitCode, signal: gw.proc.signalCode }).toEqual({ code: 0, signal: null });
      expect(tookMs).toBeLessThan(8000);
      expect(gw.logs.some((l) => l.includes('did not close cleanly'))).toBe(false);
      const db = new Database(join(dataDir, 'eldergate.db'), { readonly: true });
      try {
        expect(db.prepare("select count(*) n from observations where device_id = ? and type = 'sos'").get(devices[0]!.id)).toEqual({ n: 1 });
      } finally {
        db.close();
      }
    } finally {
      for (const c of terminals) c.end(true);
      raw?.destroy();
      ws?.terminate();
      await gw.kill('SIGKILL');
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
