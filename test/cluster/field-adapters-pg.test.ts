// The field adapters on a cluster node on the PostgreSQL store, as on one node (test/gateway/field-adapters.test.ts):
// a Contact ID panic from a landline alarm receiver on a serial line (socat pseudo-terminals) and a bed exit read over
// Modbus TCP from a simulated controller in another process become incidents in PostgreSQL, with a real RabbitMQ and a
// real PostgreSQL 15 started by this file. The devices are provisioned through the API (the cluster's shared registry);
// the node then starts with the adapters configured, on its data directory. What the previous run left of the links
// (a link lost, a Modbus point faulting) is read from PostgreSQL's observations.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { startRabbitTestGateway, type RabbitTestGateway } from '../helpers/rabbit-gateway.js';
import { startPostgresForStores, type PostgresForStores } from '../helpers/postgres.js';
import { startPtyPair, type PtyPair } from '../serial/helpers.js';
import { ReceiverSim } from '../../firmware-sim/serial/receiver-sim.js';
import { killAll, startSim } from '../modbus/helpers.js';
import { pgAdapterMemory } from '../../gateway/adapters/link-state.js';

// band 10 (RabbitMQ: its stretches below the kernel's ephemeral ports, where no client socket can take a port first): no other test file's (grep `band:` and `BAND =` under test/)
const BAND = 10;

describe('field adapters on a node on the PostgreSQL store', () => {
  const dir = mkdtempSync(join(tmpdir(), 'eldergate-adapters-pg-'));
  let pgs: PostgresForStores;
  let pool: pg.Pool;
  let postgres: Record<string, unknown>;
  let g: RabbitTestGateway;
  let t: TestGateway;
  let pty: PtyPair;
  let sim: ReceiverSim | undefined;
  beforeAll(async () => {
    pgs = await startPostgresForStores({ dir: join(dir, 'pg'), band: BAND });
    const fresh = await pgs.fresh('adapters', 4);
    pool = fresh.pool;
    const url = new URL(fresh.url);
    postgres = { url: `postgres://127.0.0.1:${url.port}${url.pathname}`, username: pgs.server.user, passwordFile: pgs.server.passwordFile };
    g = await startRabbitTestGateway({ dir, band: BAND, config: { postgres } });
    t = g.t;
    pty = await startPtyPair();
  }, 180_000);
  afterAll(async () => {
    await sim?.close();
    if (t && t !== g?.t) await t.stop();
    await g?.stop();
    await pty?.close();
    await killAll();
    await pgs?.stop();
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('a Contact ID panic over a serial line and a bed exit over Modbus become incidents in PostgreSQL', { timeout: 90_000 }, async () => {
    const receiver = await t.provision('receiver');
    const phone = await t.provision('call-phone');
    const account = await t.api('PATCH', `/api/devices/${phone.id}`, { account: '4321' });
    expect(account.status).toBe(200);
    const controller = await t.provision('modbus');
    const bed2 = await t.provision('modbus');
    const { proc, ready } = await startSim(['--map', 'bed-exit-controller', '--tcp-port', '0']);

    // the node again on its data directory, now with a serial receiver and a Modbus link configured
    const dataDir = t.dataDir;
    await t.stop();
    t = await startTestGateway({
      rabbitmq: g.t.gw.config.rabbitmq, postgres, adminPassword: t.adminPassword,
      serial: [{ path: pty.a, receiverDeviceId: receiver.id, baudRate: 19200, heartbeatTimeoutMs: 60_000 }],
      modbus: [{ name: 'ward-a', deviceId: controller.id, link: { transport: 'tcp', host: '127.0.0.1', port: ready.port }, unitId: 1, map: 'bed-exit-controller', pollMs: 100, channels: { '2': bed2.id } }],
    }, dataDir);
    await t.gw.cluster!.ready;
    const inPostgres = async (deviceId: string) => (await pool.query('SELECT type, priority, status FROM incidents WHERE device_id = $1', [deviceId])).rows;

    // the receiver ACKs the panel only once the panic is durable in PostgreSQL
    sim = await ReceiverSim.open({ path: pty.b, baudRate: 19200 });
    const outcome = await sim.sendEvent({ account: '4321', qualifier: 'E', code: 120, group: 1, zone: 3 });
    expect(JSON.stringify(outcome)).toMatch(/ACK/);
    expect(await inPostgres(phone.id)).toEqual([{ type: 'panic', priority: 'P1', status: 'open' }]);
    expect((await pool.query('SELECT source, type FROM observations WHERE device_id = $1', [phone.id])).rows).toEqual([{ source: 'serial', type: 'panic' }]);

    // bed 2 empties: bed-exit (P2 at night, P3 by day: either way an incident, never dropped)
    await waitFor(() => (t.gw.modbus.stats()[0]?.okPolls ?? 0) > 1 || undefined, 'the first polls (baseline: every bed occupied)');
    await proc.send('point bed-2-exit 0');
    const [exit] = await waitFor(async () => { const r = await inPostgres(bed2.id); return r.length ? r : undefined; }, 'the bed-exit incident in PostgreSQL', 20_000);
    expect(exit).toMatchObject({ type: 'bed-exit', status: 'open' });
    expect(['P2', 'P3']).toContain(exit.priority);
    // and the console's API, read from the node's replica, shows both
    const open = (await t.api('GET', '/api/incidents?status=open')).body.items as { deviceId: string }[];
    expect(open.map((i) => i.deviceId)).toEqual(expect.arrayContaining([phone.id, bed2.id]));
  });

  it('what the previous run left of the links is read from PostgreSQL: a link lost, a point faulting', async () => {
    const add = (deviceId: string, type: string, data: unknown) => pool.query(
      `INSERT INTO observations (device_id, type, received_at, source, life_safety, data) VALUES ($1, $2, $3, 'modbus', false, $4)`,
      [deviceId, type, Date.now(), JSON.stringify(data)]);
    await add('mem-lost', 'comm-lost', {});
    await add('mem-back', 'comm-lost', {});
    await add('mem-back', 'comm-restored', {});
    await add('mem-fault', 'device-fault', { detail: { map: 'm', point: 'p1' } });
    await add('mem-fault', 'device-fault', { detail: { map: 'm', point: 'p2' } });
    await add('mem-fault', 'device-fault', { restore: true, detail: { map: 'm', points: ['p2'] } });
    await add('mem-fault', 'device-fault', { detail: { map: 'other', point: 'p3' } });
    const memory = await pgAdapterMemory(pool, t.gw.store.sqlite, ['mem-lost', 'mem-back', 'mem-fault', 'mem-none']);
    expect(['mem-lost', 'mem-back', 'mem-fault', 'mem-none'].map((d) => memory.commLost(d))).toEqual([true, false, false, false]);
    expect(memory.pointFaults('mem-fault', 'm')).toEqual(['p1']);
    expect(memory.pointFaults('mem-none', 'm')).toEqual([]);
  });
});
