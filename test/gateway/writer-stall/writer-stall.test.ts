// A disk that stops answering under the writer's fsync (hang.c, loaded into a child gateway): the alarm it was storing
// gets no PUBACK, and within ingest.writerStallMs the gateway says so — /readyz "writer-stalled", a fatal log line, a
// counted internal error — and ends the thread. The unanswered alarm is held as after a writer's death and refused
// after ingest.writerRestartHoldMs (the terminal's connection closes). When the disk answers again the thread ends, a
// new one starts, and the terminal's resend is acknowledged; the alarm is stored once.
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import mqtt from 'mqtt';
import { provisionCallPhone, startChildGateway, type ChildGateway } from '../../helpers/child-gateway.js';
import { waitFor } from '../../helpers/gateway.js';

describe('a writer thread stalled by a hung disk', () => {
  it('is reported within ingest.writerStallMs, its alarm refused after the hold, and replaced when the disk answers; the alarm is stored once', { timeout: 120_000 }, async () => {
    const base = mkdtempSync(join(tmpdir(), 'eldergate-stall-'));
    const dataDir = join(base, 'data');
    mkdirSync(dataDir);
    const so = join(base, 'hang.so');
    execFileSync('gcc', ['-shared', '-fPIC', '-O2', '-o', so, join(import.meta.dirname, 'hang.c'), '-ldl']);
    const flag = join(base, 'hang');
    const password = 'stall-' + randomBytes(8).toString('hex');
    let gw: ChildGateway | undefined;
    try {
      gw = await startChildGateway({
        ELDERGATE_DATA_DIR: dataDir, ELDERGATE_MQTT_PORT: '0', ELDERGATE_HTTP_PORT: '0', ELDERGATE_ADMIN_PASSWORD: password,
        ELDERGATE_INGEST_WRITER_STALL_MS: '2000', ELDERGATE_INGEST_WRITER_RESTART_HOLD_MS: '3000', LD_PRELOAD: so, HANG_DIR: dataDir, HANG_FLAG: flag,
      }, 60_000);
      const { http, id, secret } = await provisionCallPhone(gw, password, 'STALL-1');
      const readyz = async () => {
        const r = await fetch(`${http}/readyz`);
        return { status: r.status, body: (await r.json()) as { status: string; since?: string; action?: string } };
      };
      expect((await readyz()).status).toBe(200);
      const connect = async () => {
        const c = mqtt.connect(`mqtt://127.0.0.1:${gw!.mqttPort}`, { clientId: id, username: id, password: secret, reconnectPeriod: 0, protocolVersion: 4 });
        c.on('error', () => undefined);
        await new Promise<void>((res, rej) => { c.once('connect', () => res()); c.once('error', rej); });
        return c;
      };
      const sos = (c: mqtt.MqttClient, seq: number) => c.publishAsync(`devices/${id}/events`, JSON.stringify({ ts: 1_700_000_000_000 + seq, seq, type: 'sos' }), { qos: 1 });
      const first = await connect();
      await sos(first, 1);

      // the disk stops answering: the next commit's fsync does not return
      writeFileSync(flag, '');
      let acked = false;
      let closedAt = 0;
      first.on('close', () => { closedAt ||= Date.now(); });
      void sos(first, 2).then(() => { acked = true; }, () => undefined);
      const hungAt = Date.now();
      const stalled = await waitFor(async () => {
        const r = await readyz();
        return r.body.status === 'writer-stalled' ? r : undefined;
      }, '/readyz to say writer-stalled', 15_000);
      const stalledAt = Date.now();
      expect(stalled.status).toBe(503);
      expect(stalled.body.action).toMatch(/disk/);
      expect(stalledAt - hungAt).toBeLessThan(10_000);
      expect(acked).toBe(false);
      // (log lines reach this process through the child's stdout, after /readyz may already show what they say)
      await waitFor(() => gw!.logs.some((l) => l.includes('has said nothing for ingest.writerStallMs')), 'the stall in the log', 10_000);
      const metrics = await (await fetch(`${http}/metrics`)).text();
      expect(metrics).toMatch(/eldergate_internal_errors_total\{where="writer-stalled"\} 1/);

      // the disk stays hung: the unanswered SOS is held like one a dead writer left, and refused after
      // ingest.writerRestartHoldMs (its connection closes), so the terminal can call for help another way
      await waitFor(() => closedAt, 'the terminal refused (its connection closed)', 15_000);
      expect(acked).toBe(false);
      // held from the moment the stall was seen (its last word + writerStallMs), refused writerRestartHoldMs later
      expect(closedAt - Date.parse(stalled.body.since!)).toBeGreaterThanOrEqual(2000 + 3000 - 100);
      expect((await readyz()).body.status).toBe('writer-stalled');

      // the disk answers again: the stalled thread ends, a new one starts; the terminal resends and is answered
      rmSync(flag);
      await waitFor(async () => ((await readyz()).status === 200 ? true : undefined), '/readyz to be ready again', 30_000);
      await waitFor(() => gw!.logs.some((l) => l.includes('writer thread restarted')), 'the restart in the log', 10_000);
      const again = await connect();
      await sos(again, 2);
      again.end(true);
      await gw.kill('SIGTERM');
      gw = undefined;

      const db = new Database(join(dataDir, 'eldergate.db'), { readonly: true });
      const rows = db.prepare("select seq from observations where device_id = ? and type = 'sos' order by seq").all(id);
      const incidents = db.prepare("select count(*) as n from incidents where device_id = ? and type = 'sos'").get(id) as { n: number };
      db.close();
      expect(rows).toEqual([{ seq: 1 }, { seq: 2 }]);
      expect(incidents.n).toBe(1);
    } finally {
      try { rmSync(flag, { force: true }); } catch { /* gone */ }
      await gw?.kill('SIGKILL');
      rmSync(base, { recursive: true, force: true });
    }
  });
});
