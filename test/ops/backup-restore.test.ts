// Backup and restore, as an operator runs them (`npm run backup`, `npm run restore`, each its own process): a backup
// taken while alarms keep arriving holds every alarm acknowledged before it began; restore refuses a running
// gateway's database, keeps the database it replaces aside, and a gateway started on the restored file has them all.
import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import mqtt from 'mqtt';
import { provisionCallPhone, startChildGateway, type ChildGateway } from '../helpers/child-gateway.js';

const ROOT = resolve(import.meta.dirname, '..', '..');

/** `npm run <script> -- <arg>` with the gateway's environment; resolves with exit code and output */
function npmRun(script: 'backup' | 'restore', arg: string, env: Record<string, string>): Promise<{ code: number; out: string; err: string }> {
  return new Promise((res) => {
    execFile('npm', ['run', '--silent', script, '--', arg], { cwd: ROOT, env: { ...process.env, ...env } }, (error, stdout, stderr) => {
      res({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, out: stdout, err: stderr });
    });
  });
}

describe('backup and restore', () => {
  it('round trip: no alarm acknowledged before the backup began is lost; a running gateway is never overwritten', { timeout: 180_000 }, async () => {
    const base = mkdtempSync(join(tmpdir(), 'eldergate-backup-'));
    const dataDir = join(base, 'data');
    const freshDir = join(base, 'fresh');
    const backupFile = join(base, 'eldergate-backup.db');
    const password = 'bk-' + randomBytes(8).toString('hex');
    const env = { ELDERGATE_DATA_DIR: dataDir, ELDERGATE_MQTT_PORT: '0', ELDERGATE_HTTP_PORT: '0', ELDERGATE_ADMIN_PASSWORD: password };
    let gw: ChildGateway | undefined;
    let client: mqtt.MqttClient | undefined;
    try {
      gw = await startChildGateway(env);
      const dev = await provisionCallPhone(gw, password, 'BACKUP-1');
      client = mqtt.connect(`mqtt://127.0.0.1:${gw.mqttPort}`, { clientId: dev.id, username: dev.id, password: dev.secret, reconnectPeriod: 0, protocolVersion: 4 });
      await new Promise<void>((r, j) => { client!.once('connect', () => r()); client!.once('error', j); });
      const ts0 = Date.now();
      const acked = new Set<number>();
      let next = 1;
      const send = (seq: number) => new Promise<void>((r) => client!.publish(`devices/${dev.id}/events`,
        JSON.stringify({ ts: ts0 + seq, seq, type: seq % 2 ? 'sos' : 'fall' }), { qos: 1 }, (err) => { if (!err) acked.add(seq); r(); }));
      for (; next <= 40; next++) await send(next);
      const ackedBefore = new Set(acked);
      expect(ackedBefore.size).toBe(40);

      // alarms keep flowing while the backup runs
      let flowing = true;
      const flow = (async () => { while (flowing) await send(next++); })();
      const b = await npmRun('backup', backupFile, env);
      flowing = false;
      await flow;
      expect(b.err).toBe('');
      expect(b.code).toBe(0);
      expect(b.out).toMatch(/integrity checked/);
      expect(b.out).toMatch(/-keys\/ directory separately/);
      expect(next).toBeGreaterThan(41);

      // a backup is never written over another file
      const again = await npmRun('backup', backupFile, env);
      expect(again.code).not.toBe(0);
      expect(again.err).toMatch(/exists: name a new file/);

      // restoring over the running gateway's database is refused, and changes nothing
      const refused = await npmRun('restore', backupFile, env);
      expect(refused.code).not.toBe(0);
      expect(refused.err).toMatch(/in use — a gateway is running on it: stop it first/);
      expect(readdirSync(dataDir).some((f) => f.includes('before-restore'))).toBe(false);

      // a damaged backup is refused
      const bad = join(base, 'bad.db');
      writeFileSync(bad, 'not a database at all, just some bytes that are long enough to look like a file'.repeat(100));
      const badRestore = await npmRun('restore', bad, { ...env, ELDERGATE_DATA_DIR: freshDir });
      expect(badRestore.code).not.toBe(0);
      expect(badRestore.err).toMatch(/not a sound backup, nothing was changed/);

      client.end(true);
      client = undefined;
      await gw.kill('SIGTERM');
      gw = undefined;

      // into a fresh data directory, twice: the second time the first is kept aside
      const freshEnv = { ...env, ELDERGATE_DATA_DIR: freshDir };
      const r1 = await npmRun('restore', backupFile, freshEnv);
      expect(r1.err).toBe('');
      expect(r1.code).toBe(0);
      // the database belongs to the gateway's user (a service's), and the restored one must too
      chownSync(join(freshDir, 'eldergate.db'), 65534, 65534);
      chmodSync(join(freshDir, 'eldergate.db'), 0o640);
      const r2 = await npmRun('restore', backupFile, freshEnv);
      expect(r2.code).toBe(0);
      expect(statSync(join(freshDir, 'eldergate.db')).uid).toBe(65534);
      expect(statSync(join(freshDir, 'eldergate.db')).mode & 0o777).toBe(0o640);
      expect(r2.out).toMatch(/kept as .*before-restore-/);
      expect(readdirSync(freshDir).filter((f) => f.includes('before-restore')).length).toBe(1);

      // a gateway starts on it and has every alarm acknowledged before the backup began
      gw = await startChildGateway(freshEnv);
      await gw.kill('SIGTERM');
      gw = undefined;
      const db = new Database(join(freshDir, 'eldergate.db'), { readonly: true });
      const seqs = new Set((db.prepare('select seq from observations where device_id = ?').pluck().all(dev.id)) as number[]);
      const incidents = db.prepare("select count(*) from incidents where device_id = ?").pluck().get(dev.id) as number;
      db.close();
      for (const seq of ackedBefore) expect(seqs.has(seq), `seq ${seq}, acknowledged before the backup`).toBe(true);
      expect(incidents).toBeGreaterThan(0);
      expect(existsSync(join(freshDir, 'eldergate.db.restoring'))).toBe(false);
    } finally {
      client?.end(true);
      await gw?.kill('SIGKILL');
      rmSync(base, { recursive: true, force: true });
    }
  });
});
