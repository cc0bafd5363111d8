// Disk full, for real: the gateway runs as a child process in its own mount namespace with its data directory on a
// small tmpfs; the test fills that tmpfs (through /proc/<pid>/root, which resolves paths in the child's namespace).
// An SOS gets no PUBACK, /readyz says not-ready and why, the metric says 0; once space is freed the resent SOS is
// stored, /readyz is ready, the metric 1, and the P2 storage incident was opened (with the moment the fault began)
// and resolved automatically.
import { describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import mqtt from 'mqtt';
import { fillChildDisk, onSmallTmpfs, startChildGateway, type ChildGateway } from '../helpers/child-gateway.js';

async function waitUntil<T>(fn: () => Promise<T | undefined | false>, what: string, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('a full disk', () => {
  it('makes the gateway not-ready with the reason, counts it, raises and resolves a P2 storage incident; no SOS is lost',
    { timeout: 180_000 }, async () => {
      const base = mkdtempSync(join(tmpdir(), 'eldergate-diskfull-'));
      const dataDir = join(base, 'data');
      mkdirSync(dataDir);
      const password = 'full-' + randomBytes(8).toString('hex');
      const env = { ELDERGATE_DATA_DIR: dataDir, ELDERGATE_MQTT_PORT: '0', ELDERGATE_HTTP_PORT: '0', ELDERGATE_ADMIN_PASSWORD: password };
      let gw: ChildGateway | undefined;
      try {
        gw = await startChildGateway(env, 60_000, onSmallTmpfs(dataDir, '16m'));
        const http = `http://127.0.0.1:${gw.httpPort}`;
        const login = await fetch(`${http}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password }) });
        const { token } = (await login.json()) as { token: string };
        const auth = { authorization: `Bearer ${token}` };
        const dev = await (await fetch(`${http}/api/devices`, {
          method: 'POST', headers: { 'content-type': 'application/json', ...auth }, body: JSON.stringify({ kind: 'call-phone', serial: 'FULL-1' }),
        })).json() as { id: string; secret: string };
        const metric = async (name: string) => {
          const text = await (await fetch(`${http}/metrics`)).text();
          const line = text.split('\n').find((l) => l.startsWith(name + ' ') || l.startsWith(name + '{'));
          return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
        };
        expect((await fetch(`${http}/readyz`)).status).toBe(200);
        expect(await metric('eldergate_storage_healthy')).toBe(1);

        // fill the tmpfs to the last block, seen from inside the child's mount namespace
        const fill = fillChildDisk(gw, dataDir);

        const t0 = Date.now();
        const frameOf = (seq: number) => JSON.stringify({ ts: t0 + seq, seq, type: 'sos' });
        const connect = () => mqtt.connect(`mqtt://127.0.0.1:${gw!.mqttPort}`, {
          clientId: dev.id, username: dev.id, password: dev.secret, reconnectPeriod: 0, protocolVersion: 4,
        });
        const c = connect();
        await new Promise<void>((res, rej) => { c.once('connect', () => res()); c.once('error', rej); });
        const closed = new Promise<'closed'>((r) => c.once('close', () => r('closed')));
        // The write-ahead log reuses the space it already has (the checkpointer copies it back every second): the
        // first alarms after the disk filled may still fit there, and are then durable and acknowledged. Alarms are
        // sent until one finds no room: that one is refused (no PUBACK, the connection closed), never acknowledged.
        const acked: number[] = [];
        let refusedSeq = 0;
        for (let seq = 1; seq <= 2000 && !refusedSeq; seq++) {
          const outcome = await Promise.race([
            new Promise<'acked' | 'failed'>((r) => c.publish(`devices/${dev.id}/events`, frameOf(seq), { qos: 1 }, (err) => r(err ? 'failed' : 'acked'))),
            closed,
          ]);
          if (outcome === 'acked') acked.push(seq);
          else refusedSeq = seq;
        }
        expect(refusedSeq).toBeGreaterThan(0);
        expect(acked).not.toContain(refusedSeq);
        c.end(true);

        const notReady = await fetch(`${http}/readyz`);
        expect(notReady.status).toBe(503);
        const body = (await notReady.json()) as { status: string; reason: string; since: string; action: string };
        expect(body.status).toBe('storage-failing');
        expect(body.reason).toMatch(/disk full/);
        expect(body.action).toMatch(/free disk space/);
        expect(await metric('eldergate_storage_healthy')).toBe(0);
        expect(await metric('eldergate_storage_write_failures_total')).toBeGreaterThanOrEqual(1);
        const faultBegan = Date.parse(body.since);

        // space again; the terminal resends what got no PUBACK
        unlinkSync(fill);
        const again = connect();
        await new Promise<void>((res, rej) => { again.once('connect', () => res()); again.once('error', rej); });
        await new Promise<void>((res, rej) => again.publish(`devices/${dev.id}/events`, frameOf(refusedSeq), { qos: 1 }, (err) => (err ? rej(err) : res())));
        again.end(true);

        await waitUntil(async () => (await fetch(`${http}/readyz`)).status === 200, '/readyz ready');
        expect(await metric('eldergate_storage_healthy')).toBe(1);
        const list = async (q: string) => ((await (await fetch(`${http}/api/incidents?${q}`, { headers: auth })).json()) as {
          items: { id: string; type: string; priority: string; status: string; unitId: string | null; stamps: Record<string, number> }[];
        }).items;
        // one incident for the presses, and every press acknowledged is in it (the refused one once resent)
        const sos = await list(`deviceId=${dev.id}&type=sos`);
        expect(sos).toHaveLength(1);
        const stored = ((await (await fetch(`${http}/api/observations?deviceId=${dev.id}&type=sos&limit=1000`, { headers: auth })).json()) as { items: { seq: number }[] }).items.map((o) => o.seq);
        for (const seq of [...acked, refusedSeq]) expect(stored.filter((x) => x === seq), `SOS seq ${seq}`).toHaveLength(1);
        const storage = await waitUntil(async () => {
          const items = await list('type=storage-failing');
          return items.length === 1 && items[0]!.status === 'resolved' ? items[0] : undefined;
        }, 'the storage incident resolved');
        expect(storage.priority).toBe('P2');
        // nobody's unit: the root of the network (the call centre) sees it
        expect(storage.unitId).toBeNull();
        expect(storage.stamps.faultBegan).toBe(faultBegan);
        const detail = (await (await fetch(`${http}/api/incidents/${storage.id}`, { headers: auth })).json()) as
          { events: { type: string; data: Record<string, unknown> }[] };
        expect(detail.events.find((e) => e.type === 'opened')?.data.data).toMatchObject({ reason: expect.stringMatching(/disk full/) });
        const timeline = detail.events;
        const cleared = timeline.find((e) => e.type === 'cleared');
        expect(String(cleared?.data.reason)).toMatch(/storage writes succeed again .*resolved automatically/);
      } finally {
        await gw?.kill('SIGKILL');
        rmSync(base, { recursive: true, force: true });
      }
    });
});
