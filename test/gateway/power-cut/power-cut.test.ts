// A power cut while positions stream in: a locator's resident walks out of the safe zone and back again and again
// (QoS 0 positions: nobody waits on those commits, only the safe-zone exits and returns they raise). A console — a
// real WebSocket client — watches. The gateway runs under the power-cut shim (shim.c: what it did not fsync is lost
// when the power goes), is killed with SIGKILL mid-stream, the power is cut (the unsynced bytes played back), and it
// starts again. Every incident event the console saw must still be in the log with the same seq, and no seq it saw
// may be given to another event: an event reaches a console only once it is durable.
import { describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import mqtt from 'mqtt';
import WebSocket from 'ws';
import { startChildGateway, type ChildGateway } from '../../helpers/child-gateway.js';
import { buildShim, cutPower, shimEnv, unsyncedBytes } from './powercut.js';

interface Seen { seq: number; incidentId: string; type: string }

async function waitUntil<T>(fn: () => T | undefined | false, what: string, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('a power cut while positions cross a safe zone', () => {
  it('loses no incident event a console saw and reuses no seq', { timeout: 180_000 }, async () => {
    const base = mkdtempSync(join(tmpdir(), 'eldergate-powercut-'));
    const dataDir = join(base, 'data');
    const logDir = join(base, 'undo');
    mkdirSync(dataDir);
    const so = buildShim(base);
    const password = 'cut-' + randomBytes(8).toString('hex');
    const env = { ELDERGATE_DATA_DIR: dataDir, ELDERGATE_MQTT_PORT: '0', ELDERGATE_HTTP_PORT: '0', ELDERGATE_ADMIN_PASSWORD: password };
    const shimmed = { ...env, ...shimEnv(so, dataDir, logDir) };
    let gw: ChildGateway | undefined;
    const seen = new Map<number, Seen>();
    try {
      gw = await startChildGateway(shimmed, 60_000);
      const token = async () => {
        const r = await fetch(`http://127.0.0.1:${gw!.httpPort}/api/auth/login`, {
          method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password }),
        });
        return ((await r.json()) as { token: string }).token;
      };
      const api = async (path: string, body: unknown) => {
        const r = await fetch(`http://127.0.0.1:${gw!.httpPort}${path}`, {
          method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${await token()}` }, body: JSON.stringify(body),
        });
        expect(r.status, `${path}: ${r.status}`).toBeLessThan(300);
        return r.json() as Promise<{ id: string; secret: string }>;
      };
      const resident = await api('/api/residents', {
        name: 'Wang Fang', safeZone: { type: 'circle', center: { lat: 39.9, lon: 116.4 }, radiusM: 200 },
      });
      const dev = await api('/api/devices', { kind: 'locator', serial: 'CUT-1' });
      await api(`/api/devices/${dev.id}/bind`, { residentId: resident.id });

      let seq = 0;
      const ts0 = Date.now();
      const lives = 2;
      let cutsThatTookSomething = 0;
      for (let life = 0; life < lives; life++) {
        // the console: every incident frame it is shown
        const ws = new WebSocket(`ws://127.0.0.1:${gw.httpPort}/ws`, { headers: { authorization: `Bearer ${await token()}` } });
        ws.on('error', () => undefined);
        const frames: Record<string, unknown>[] = [];
        ws.on('message', (d) => frames.push(JSON.parse(String(d)) as Record<string, unknown>));
        await new Promise<void>((res, rej) => { ws.once('open', () => res()); ws.once('error', rej); });
        await waitUntil(() => frames.some((f) => f.type === 'hello'), 'hello');
        ws.send(JSON.stringify({ type: 'subscribe', scope: 'all', since: Math.max(0, ...seen.keys()) }));
        const incidentsShown = () => frames.filter((f) => f.type === 'incident' && f.event).length;

        const client = mqtt.connect(`mqtt://127.0.0.1:${gw.mqttPort}`, {
          clientId: dev.id, username: dev.id, password: dev.secret, reconnectPeriod: 0, protocolVersion: 4,
        });
        await new Promise<void>((res, rej) => { client.once('connect', () => res()); client.once('error', rej); });
        // out (~1.1 km north) and home again, a fix every few ms, QoS 0: telemetry commits that nobody waits on
        const shownBefore = incidentsShown();
        const target = shownBefore + 6 + Math.floor(Math.random() * 4);
        let stop = false;
        const pump = (async () => {
          while (!stop) {
            seq++;
            const out = Math.floor(seq / 40) % 2 === 1;
            client.publish(`devices/${dev.id}/telemetry`, JSON.stringify({
              ts: ts0 + seq, seq, type: 'position', lat: out ? 39.91 : 39.9, lon: 116.4, accuracy: 10,
            }), { qos: 0 });
            await new Promise((r) => setTimeout(r, 8));
          }
        })();
        // (a console that was shown seqs the database lost sees nothing new until the log passes them again: the
        // check below names them)
        await waitUntil(() => incidentsShown() >= target, `${target} incident frames`, 30_000).catch(() => undefined);
        // the cut: mid-stream, once commits of fixes that raised nothing (unsynced) are in the WAL for it to take
        await waitUntil(() => unsyncedBytes(logDir) > 0, 'unsynced telemetry in the WAL', 10_000).catch(() => undefined);
        await gw.kill('SIGKILL');
        stop = true;
        await pump;
        client.end(true);
        ws.terminate();
        for (const f of frames) {
          if (f.type !== 'incident' || !f.event) continue;
          const e = f.event as { seq: number; incidentId: string; type: string };
          seen.set(e.seq, { seq: e.seq, incidentId: e.incidentId, type: e.type });
        }
        const undone = cutPower(logDir);
        if (Object.values(undone).some((u) => u.undoneWrites > 0 || u.sizeBefore > u.truncatedTo)) cutsThatTookSomething++;
        gw = await startChildGateway(life === lives - 1 ? env : shimmed, 60_000);
      }
      await gw.kill('SIGTERM');

      const db = new Database(join(dataDir, 'eldergate.db'), { readonly: true });
      const stored = new Map((db.prepare('select seq, incident_id as incidentId, type from incident_events').all() as Seen[]).map((r) => [r.seq, r]));
      const exits = (db.prepare("select count(*) n from incidents where type = 'safe-zone-exit'").get() as { n: number }).n;
      db.close();
      for (const e of seen.values()) expect(stored.get(e.seq), `event seq ${e.seq} a console saw`).toEqual(e);
      expect(seen.size).toBeGreaterThanOrEqual(lives * 6);
      // unsynced telemetry was there for the cuts to take (else this test would prove nothing)
      expect(cutsThatTookSomething).toBeGreaterThan(0);
      expect(exits).toBeGreaterThan(1);
    } finally {
      await gw?.kill('SIGKILL');
      rmSync(base, { recursive: true, force: true });
    }
  });
});
