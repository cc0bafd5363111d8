// A full disk while a resident walks in and out of the safe zone: the gateway runs in its own mount namespace with
// its data directory on a small tmpfs, which the test fills mid-walk and frees again. The locator behaves as firmware
// does: QoS 1 fixes in order, and what got no PUBACK is sent again (same seq and ts) after reconnecting. When the
// disk has room again, every exit of the walk has been raised — none lost to rule memory that ran ahead of a failed
// commit — and every return cleared it.
import { describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import mqtt, { type MqttClient } from 'mqtt';
import { fillChildDisk, onSmallTmpfs, startChildGateway, type ChildGateway } from '../helpers/child-gateway.js';

/** fix `seq` is outside the zone in runs of 4: in ×4, out ×4, … */
const outside = (seq: number) => Math.floor((seq - 1) / 4) % 2 === 1;

describe('a full disk during a walk across the safe zone', () => {
  it('raises every exit once the disk has room again', { timeout: 180_000 }, async () => {
    const base = mkdtempSync(join(tmpdir(), 'eldergate-diskfull-zone-'));
    const dataDir = join(base, 'data');
    mkdirSync(dataDir);
    const password = 'zone-' + randomBytes(8).toString('hex');
    const env = {
      ELDERGATE_DATA_DIR: dataDir, ELDERGATE_MQTT_PORT: '0', ELDERGATE_HTTP_PORT: '0', ELDERGATE_ADMIN_PASSWORD: password,
      // fixes are sent one at a time: a short telemetry flush keeps the walk quick
      ELDERGATE_INGEST_TELEMETRY_FLUSH_MS: '5',
    };
    let gw: ChildGateway | undefined;
    let client: MqttClient | undefined;
    try {
      gw = await startChildGateway(env, 60_000, onSmallTmpfs(dataDir, '16m'));
      const http = `http://127.0.0.1:${gw.httpPort}`;
      const { token } = (await (await fetch(`${http}/api/auth/login`, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password }),
      })).json()) as { token: string };
      const post = async (path: string, body: unknown) => (await fetch(http + path, {
        method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify(body),
      })).json() as Promise<{ id: string; secret: string }>;
      const resident = await post('/api/residents', { name: 'Li Hua', safeZone: { type: 'circle', center: { lat: 39.9, lon: 116.4 }, radiusM: 200 } });
      const dev = await post('/api/devices', { kind: 'locator', serial: 'ZONE-1' });
      await post(`/api/devices/${dev.id}/bind`, { residentId: resident.id });

      let total = 72;
      const ts0 = Date.now();
      let fullSpells = 0;
      let refusedWhileFull = 0;
      const connect = async () => {
        for (;;) {
          const c = mqtt.connect(`mqtt://127.0.0.1:${gw!.mqttPort}`, {
            clientId: dev.id, username: dev.id, password: dev.secret, reconnectPeriod: 0, protocolVersion: 4,
          });
          const ok = await new Promise<boolean>((res) => { c.once('connect', () => res(true)); c.once('error', () => res(false)); c.once('close', () => res(false)); });
          if (ok) return c;
          c.end(true);
          await new Promise((r) => setTimeout(r, 100));
        }
      };
      // the firmware: one fix at a time, in order; no PUBACK → reconnect and send the same fix again
      const send = (c: MqttClient, seq: number) => new Promise<boolean>((res) => {
        const onClose = () => res(false);
        c.once('close', onClose);
        c.publish(`devices/${dev.id}/telemetry`, JSON.stringify({
          ts: ts0 + seq, seq, type: 'position', lat: outside(seq) ? 39.91 : 39.9, lon: 116.4, accuracy: 10,
        }), { qos: 1 }, (err) => { c.off('close', onClose); res(!err); });
      });
      client = await connect();
      for (let seq = 1; seq <= total;) {
        // two spells of a full disk, each beginning on a different side of the fence
        if ((fullSpells === 0 && seq === 22) || (fullSpells === 1 && seq >= 49 && outside(seq) === outside(49))) {
          const fill = fillChildDisk(gw!, dataDir);
          fullSpells++;
          // While it is full, the walk goes on until a few fixes are refused. Commits may still succeed for a while,
          // stored and acknowledged: after a checkpoint SQLite writes the WAL again from its start, over blocks the
          // file already has, and only a commit that must grow it meets the full disk. (Stopping at the first fix,
          // stored or not, let a run go by with no write refused at all.) The walk is longer if it must be.
          let refused = 0;
          while (refused < 3) {
            if (seq > total - 4) total += 8;
            if (await send(client, seq)) {
              seq++;
              continue;
            }
            refused++;
            refusedWhileFull++;
            client.end(true);
            client = await connect();
          }
          unlinkSync(fill);
          // room for the second spell and the walk after it
          if (fullSpells === 1) total = Math.max(total, seq + 40);
        }
        if (await send(client, seq)) {
          seq++;
        } else {
          client.end(true);
          client = await connect();
        }
      }
      client.end(true);
      expect(fullSpells).toBe(2);
      expect(refusedWhileFull).toBeGreaterThan(0);

      const items = ((await (await fetch(`${http}/api/incidents?deviceId=${dev.id}&type=safe-zone-exit&limit=200`, {
        headers: { authorization: `Bearer ${token}` },
      })).json()) as { items: { id: string; status: string; openedAt: string | number }[] }).items;
      let exits = 0;
      for (let seq = 1; seq <= total; seq++) if (outside(seq) && !outside(seq - 1)) exits++;
      // every exit of the walk is an incident of its own (each return cleared the one before)
      expect(items.length).toBe(exits);
      expect(items.filter((i) => i.status === 'open' || i.status === 'acknowledged').length).toBe(outside(total) ? 1 : 0);
    } finally {
      client?.end(true);
      await gw?.kill('SIGKILL');
      rmSync(base, { recursive: true, force: true });
    }
  });
});
