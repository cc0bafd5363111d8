// kill -9 the gateway mid-stream, again and again: every event that got a PUBACK is stored exactly once.
import { describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import mqtt from 'mqtt';
import { startChildGateway } from '../helpers/child-gateway.js';

describe('a gateway killed with SIGKILL mid-stream', () => {
  it('loses no acknowledged event and stores none twice', { timeout: 180_000 }, async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'eldergate-crash-'));
    const password = 'crash-' + randomBytes(8).toString('hex');
    const env = { ELDERGATE_DATA_DIR: dataDir, ELDERGATE_MQTT_PORT: '0', ELDERGATE_HTTP_PORT: '0', ELDERGATE_ADMIN_PASSWORD: password };
    let gw = await startChildGateway(env);
    const api = async (path: string, body: unknown) => {
      const login = await fetch(`http://127.0.0.1:${gw.httpPort}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password }) });
      const { token } = (await login.json()) as { token: string };
      const r = await fetch(`http://127.0.0.1:${gw.httpPort}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify(body) });
      return r.json() as Promise<{ id: string; secret: string }>;
    };
    const dev = await api('/api/devices', { kind: 'call-phone', serial: 'CRASH-1' });

    const total = 400;
    const ts0 = Date.now();
    const acked = new Set<number>();
    const pending = new Set<number>();
    let next = 1;
    const kills = 4;
    try {
      for (let life = 0; life <= kills; life++) {
        const client = mqtt.connect(`mqtt://127.0.0.1:${gw.mqttPort}`, { clientId: dev.id, username: dev.id, password: dev.secret, reconnectPeriod: 0, protocolVersion: 4 });
        await new Promise<void>((res, rej) => { client.once('connect', () => res()); client.once('error', rej); });
        // the firmware resends what never got a PUBACK, with the same seq and ts
        const send = (seq: number) => {
          pending.add(seq);
          client.publish(`devices/${dev.id}/events`, JSON.stringify({ ts: ts0 + seq, seq, type: seq % 7 === 0 ? 'sos' : 'test' }), { qos: 1 }, (err) => {
            if (!err) { acked.add(seq); pending.delete(seq); }
          });
        };
        for (const seq of [...pending]) send(seq);
        const lifeEnd = life === kills ? total : Math.min(total, next + 60 + Math.floor(Math.random() * 40));
        // keep a window of messages in flight so the kill lands mid-stream
        await new Promise<void>((res) => {
          const pump = () => {
            while (next <= lifeEnd && pending.size < 8) send(next++);
            if (next > lifeEnd && pending.size === 0) return res();
            if (life < kills && next > lifeEnd - 10) return res();
            setTimeout(pump, 1);
          };
          pump();
        });
        if (life < kills) {
          await gw.kill('SIGKILL');
          client.end(true);
          gw = await startChildGateway(env);
        } else {
          await new Promise<void>((res) => client.end(false, {}, () => res()));
        }
      }
      // resend anything still pending once more against the last life
      expect(pending.size).toBe(0);
      await gw.kill('SIGTERM');
      const db = new Database(join(dataDir, 'eldergate.db'), { readonly: true });
      const rows = db.prepare('select seq, count(*) n from observations where device_id = ? group by seq').all(dev.id) as { seq: number; n: number }[];
      db.close();
      const stored = new Map(rows.map((r) => [r.seq, r.n]));
      for (const seq of acked) expect(stored.get(seq), `seq ${seq} acknowledged`).toBe(1);
      expect([...stored.values()].every((n) => n === 1)).toBe(true);
      expect(acked.size).toBe(total);
    } finally {
      await gw.kill('SIGKILL');
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
