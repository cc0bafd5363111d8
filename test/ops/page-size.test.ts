// The database's page size (core/db.ts PAGE_SIZE), as an operator meets it: a new database gets it; a gateway started on
// an older file with SQLite's default 4096-byte pages says so and how to convert; `npm run db:page-size` (its own
// process) refuses a running gateway, converts a killed one with every alarm in it (its WAL folded in), keeps the old
// file aside and the owner, and a gateway started on the new file takes alarms again. Without the room for the new file it changes nothing.
import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import mqtt from 'mqtt';
import { PAGE_SIZE, openStore, pageSizeOf } from '../../core/db.js';
import { provisionCallPhone, startChildGateway, type ChildGateway } from '../helpers/child-gateway.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
/** the user and group 'nobody': a file owner other than the test's (root) */
const NOBODY = 65534;
const WARNING = /the database's pages are 4096 bytes; new databases use \d+/;

function run(cmd: string, args: string[], env: Record<string, string>): Promise<{ code: number; out: string; err: string }> {
  return new Promise((res) => {
    execFile(cmd, args, { cwd: ROOT, env: { ...process.env, ...env } }, (error, stdout, stderr) => {
      res({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, out: stdout, err: stderr });
    });
  });
}
const pageSizeCommand = (env: Record<string, string>) => run('npm', ['run', '--silent', 'db:page-size'], env);

/** an empty database file fixed at SQLite's default page size, as every eldergate database was made before PAGE_SIZE */
function oldStyleFile(file: string): void {
  const db = new Database(file);
  db.pragma('page_size = 4096');
  db.pragma('journal_mode = WAL');
  db.close();
}

function filePageSize(file: string): number {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return pageSizeOf(db);
  } finally {
    db.close();
  }
}

describe('the database page size', () => {
  it(`a new database gets ${PAGE_SIZE}-byte pages, not SQLite's default`, () => {
    const dir = mkdtempSync(join(tmpdir(), 'eldergate-pages-'));
    try {
      const store = openStore(join(dir, 'eldergate.db'));
      expect(pageSizeOf(store.sqlite)).toBe(PAGE_SIZE);
      store.close();
      expect(PAGE_SIZE).not.toBe(4096);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('an older 4096-byte database: the gateway warns, the command refuses it while it runs, converts it killed (its WAL folded in) with every alarm kept and its owner, and the gateway takes alarms on the new file', { timeout: 180_000 }, async () => {
    const base = mkdtempSync(join(tmpdir(), 'eldergate-pages-'));
    const dataDir = join(base, 'data');
    mkdirSync(dataDir);
    const file = join(dataDir, 'eldergate.db');
    oldStyleFile(file);
    const password = 'pg-' + randomBytes(8).toString('hex');
    const env = { ELDERGATE_DATA_DIR: dataDir, ELDERGATE_MQTT_PORT: '0', ELDERGATE_HTTP_PORT: '0', ELDERGATE_ADMIN_PASSWORD: password };
    let gw: ChildGateway | undefined;
    let client: mqtt.MqttClient | undefined;
    const connect = async (g: ChildGateway, dev: { id: string; secret: string }) => {
      const c = mqtt.connect(`mqtt://127.0.0.1:${g.mqttPort}`, { clientId: dev.id, username: dev.id, password: dev.secret, reconnectPeriod: 0, protocolVersion: 4 });
      await new Promise<void>((r, j) => { c.once('connect', () => r()); c.once('error', j); });
      return c;
    };
    const sos = (c: mqtt.MqttClient, devId: string, seq: number) => new Promise<void>((r, j) =>
      c.publish(`devices/${devId}/events`, JSON.stringify({ ts: 1_780_000_000_000 + seq, seq, type: 'sos' }), { qos: 1 }, (err) => (err ? j(err) : r())));
    try {
      gw = await startChildGateway(env);
      expect(gw.logs.some((l) => WARNING.test(l) && l.includes('npm run db:page-size')), gw.logs.join('\n')).toBe(true);
      const dev = await provisionCallPhone(gw, password, 'PAGES-1');
      client = await connect(gw, dev);
      for (let seq = 1; seq <= 30; seq++) await sos(client, dev.id, seq);

      const refused = await pageSizeCommand(env);
      expect(refused.code).not.toBe(0);
      expect(refused.err).toMatch(/is in use — a gateway is running on it: stop it first .*npm run db:page-size/);
      expect(filePageSize(file)).toBe(4096);
      expect(readdirSync(dataDir).some((f) => f.includes('page-size'))).toBe(false);

      // killed, not stopped: the alarms are still in its WAL, and its shared-memory index is left behind
      client.end(true);
      client = undefined;
      await gw.kill('SIGKILL');
      gw = undefined;
      expect(existsSync(`${file}-wal`) && statSync(`${file}-wal`).size > 0).toBe(true);
      // the gateway's own user, as a service has it: the new file must be that user's too
      for (const f of [file, `${file}-wal`, `${file}-shm`]) chownSync(f, NOBODY, NOBODY);
      chmodSync(file, 0o640);
      const converted = await pageSizeCommand(env);
      expect(converted.err).toBe('');
      expect(converted.code).toBe(0);
      expect(converted.out).toMatch(new RegExp(`pages of 4096 bytes rewritten as ${PAGE_SIZE} .*integrity and row counts checked`, 's'));
      expect(filePageSize(file)).toBe(PAGE_SIZE);
      expect(statSync(file).uid).toBe(NOBODY);
      expect(statSync(file).mode & 0o777).toBe(0o640);
      // the old file beside it, whole, with every alarm; no WAL, index or partial file left; an empty journal at most
      const listing = readdirSync(dataDir).filter((f) => !(f === 'eldergate.db-journal' && statSync(join(dataDir, f)).size === 0)).sort();
      expect(listing).toHaveLength(2);
      expect(listing[0]).toBe('eldergate.db');
      expect(listing[1]).toMatch(/^eldergate\.db\.before-page-size-[\dT-]+Z$/);
      const old = new Database(join(dataDir, listing[1]!), { readonly: true, fileMustExist: true });
      expect(pageSizeOf(old)).toBe(4096);
      expect(old.prepare('select count(*) from observations where device_id = ?').pluck().get(dev.id)).toBe(30);
      old.close();

      // a second run has nothing to do
      const again = await pageSizeCommand(env);
      expect(again.code).toBe(0);
      expect(again.out).toMatch(new RegExp(`already has ${PAGE_SIZE}-byte pages; nothing to do`));

      // the gateway on the new file: no warning, the same device, its alarms, and it takes new ones
      gw = await startChildGateway(env);
      expect(gw.logs.some((l) => WARNING.test(l))).toBe(false);
      expect(existsSync(`${file}-journal`)).toBe(false);
      client = await connect(gw, dev);
      for (let seq = 31; seq <= 35; seq++) await sos(client, dev.id, seq);
      client.end(true);
      client = undefined;
      await gw.kill('SIGTERM');
      gw = undefined;
      const db = new Database(file, { readonly: true });
      const seqs = db.prepare('select seq from observations where device_id = ? order by seq').pluck().all(dev.id) as number[];
      const incidents = db.prepare('select count(*) from incidents where device_id = ?').pluck().get(dev.id) as number;
      db.close();
      expect(seqs).toEqual(Array.from({ length: 35 }, (_, i) => i + 1));
      expect(incidents).toBeGreaterThan(0);
    } finally {
      client?.end(true);
      await gw?.kill('SIGKILL');
      rmSync(base, { recursive: true, force: true });
    }
  });

  it('without room for the new file it says how much it needs and changes nothing', { timeout: 60_000 }, async () => {
    const base = mkdtempSync(join(tmpdir(), 'eldergate-pages-'));
    const src = join(base, 'src.db');
    oldStyleFile(src);
    // about 3 MiB of rows, in a 4 MiB tmpfs (its own mount namespace): the new file does not fit beside the old one
    const fill = new Database(src);
    fill.exec('create table filler(x); ');
    const ins = fill.prepare('insert into filler values (?)');
    fill.transaction(() => { for (let i = 0; i < 3000; i++) ins.run(randomBytes(1000)); })();
    fill.pragma('wal_checkpoint(TRUNCATE)');
    fill.close();
    const mnt = join(base, 'small');
    mkdirSync(mnt);
    try {
      const script = [
        'mount -t tmpfs -o size=4m tmpfs "$0"',
        'cp "$1" "$0/eldergate.db"',
        'ELDERGATE_DATA_DIR="$0" npx tsx ops/page-size.ts; echo "exit=$?"',
        'ls "$0"',
        `node -e 'const D=require("better-sqlite3"); const d=new D(process.argv[1],{readonly:true}); console.log("pages="+d.pragma("page_size",{simple:true})+" rows="+d.prepare("select count(*) from filler").pluck().get())' "$0/eldergate.db"`,
      ].join(' && ');
      const r = await run('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script, mnt, src], { ELDERGATE_MQTT_PORT: '0', ELDERGATE_HTTP_PORT: '0' });
      expect(r.code, r.err).toBe(0);
      expect(r.err).toMatch(/has [\d.]+ MiB free and the new file needs about [\d.]+ MiB: free that much space there and run it again; nothing was changed/);
      expect(r.out).toMatch(/exit=1/);
      expect(r.out).not.toMatch(/partial|before-page-size/);
      expect(r.out).toMatch(/pages=4096 rows=3000/);
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  });
});
