// An eldergate node in cluster mode on the PostgreSQL store (config `postgres`): a real RabbitMQ node with its MQTT
// plugin, a real PostgreSQL 15 (both started by this file on private ports and data directories) and the node in this
// process. What the one-node gateway promises, on the shared store: an SOS from a terminal becomes an incident in
// PostgreSQL, reaches a console over the WebSocket from the node's replica of the log, is acknowledged by a person and
// "help is coming" reaches the terminal through the cluster, whose answer is recorded; the observations API reads
// PostgreSQL; a node restarted on its data directory resumes its replica (a console resuming misses nothing and
// gets nothing twice); a change the shared store refuses is answered 503 and not made, and its retry is made once, its
// audit entry in the shared audit log; a data directory that ran on its own SQLite log is refused, with what to do.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { startRabbitTestGateway, storedSeqs, type RabbitTestGateway } from '../helpers/rabbit-gateway.js';
import { startPostgresForStores, type PostgresForStores } from '../helpers/postgres.js';
import { startPostgres, type PostgresServer } from '../../ops/cluster/postgres.js';
import { TestConsole } from '../ws/helpers.js';

// band 9 (RabbitMQ: a band below the kernel's ephemeral ports, where no client socket can take a port first): no other test file's (grep `band:` and `BAND =` under test/)
const BAND = 9;

describe('a node on the PostgreSQL store', () => {
  const dir = mkdtempSync(join(tmpdir(), 'eldergate-node-pg-'));
  let pgs: PostgresForStores;
  let pool: pg.Pool;
  let postgres: Record<string, unknown>;
  let g: RabbitTestGateway;
  let t: TestGateway;

  beforeAll(async () => {
    pgs = await startPostgresForStores({ dir: join(dir, 'pg'), band: BAND });
    const fresh = await pgs.fresh('node', 4);
    pool = fresh.pool;
    const url = new URL(fresh.url);
    // the URL the node is given holds no password: it reads it from the file (mode 0600)
    postgres = { url: `postgres://127.0.0.1:${url.port}${url.pathname}`, username: pgs.server.user, passwordFile: pgs.server.passwordFile };
    // a P1 not acknowledged within 4 s escalates (the escalation test below; the others acknowledge within a second)
    g = await startRabbitTestGateway({ dir, band: BAND, config: { postgres, budgets: { P1: { ackMs: 4000 } } } });
    t = g.t;
  }, 180_000);

  /** PostgreSQL started again on its directory after its kill -9 (the last test): this file's to stop */
  let restarted: PostgresServer | undefined;

  afterAll(async () => {
    // (the node restarted below is this file's, not the helper's)
    if (t && t !== g?.t) await t.stop();
    await g?.stop();
    await restarted?.stop();
    await pgs?.stop();
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  const incidentsOf = async (deviceId: string) => (await t.api('GET', `/api/incidents?deviceId=${deviceId}`)).body.items as { id: string; type: string; priority: string; status: string }[];
  const inPostgres = async (deviceId: string) => (await pool.query('SELECT id, type, status FROM incidents WHERE device_id = $1 ORDER BY opened_at', [deviceId])).rows;

  it('an SOS: stored in PostgreSQL, on the console from the replica, acknowledged, "help is coming" at the terminal and its answer recorded', async () => {
    const consoleUser = await TestConsole.open(t, await t.token());
    consoleUser.subscribe('all', 0);
    const dev = await t.provision('call-phone');
    const c = await g.connect(dev.id, dev.secret, { will: { topic: `devices/${dev.id}/status`, payload: Buffer.from('{"online":false}'), qos: 1, retain: true } });
    const commands: { id: string; type: string }[] = [];
    c.on('message', (_topic, payload) => commands.push(JSON.parse(payload.toString())));
    await c.subscribeAsync(`devices/${dev.id}/commands`, { qos: 1 });
    await c.publishAsync(`devices/${dev.id}/status`, '{"online":true}', { qos: 1, retain: true });
    await c.publishAsync(`devices/${dev.id}/events`, JSON.stringify({ ts: Date.now(), seq: 1, type: 'sos' }), { qos: 1 });

    const opened = await consoleUser.waitFor((f) => f.type === 'incident' && f.event?.type === 'opened', 'the SOS on the console');
    const [row] = await waitFor(async () => { const r = await inPostgres(dev.id); return r.length ? r : undefined; }, 'the incident in PostgreSQL');
    expect(row).toMatchObject({ type: 'sos', status: 'open' });
    expect(opened.event?.incidentId).toBe(row.id);
    // the API reads the node's replica: the same incident
    expect(await incidentsOf(dev.id)).toEqual([expect.objectContaining({ id: row.id, type: 'sos', priority: 'P1', status: 'open' })]);
    // the observations are PostgreSQL's, listed by the API from there
    expect(await storedSeqs(async (p) => (await t.api('GET', p)).body, dev.id)).toEqual([1]);
    expect(t.gw.states.isOnline(dev.id)).toBe(true);

    const ack = await t.api('POST', `/api/incidents/${row.id}/acknowledge`);
    expect(ack.status).toBe(200);
    // answered once the replica holds it: what the person reads next shows it
    expect((await t.api('GET', `/api/incidents/${row.id}`)).body).toMatchObject({ status: 'acknowledged' });
    expect((await inPostgres(dev.id))[0]).toMatchObject({ status: 'acknowledged' });
    const cmd = await waitFor(() => commands.find((m) => m.type === 'acknowledge-alarm'), 'acknowledge-alarm at the terminal');
    await c.publishAsync(`devices/${dev.id}/commands/ack`, JSON.stringify({ id: cmd.id, ok: true }), { qos: 1 });
    await waitFor(async () => (await t.gw.commands.get(cmd.id)).status === 'acked' || undefined, 'the command acknowledged');
    expect((await pool.query('SELECT status FROM commands WHERE id = $1', [cmd.id])).rows[0]).toEqual({ status: 'acked' });
    // the console saw the log as committed: every event once, in seq order, from 1
    await waitFor(async () => {
      const head = Number((await pool.query('SELECT seq FROM incident_log_head')).rows[0].seq);
      return consoleUser.lastSeq === head || undefined;
    }, 'the console at the head of the log');
    expect(consoleUser.seqs).toEqual(Array.from({ length: consoleUser.seqs.length }, (_, i) => i + 1));
    await consoleUser.close();

    c.stream.destroy();
    await waitFor(() => !t.gw.states.isOnline(dev.id) || undefined, 'offline from the Last Will');
  });

  it('a P1 nobody acknowledges escalates: escalation reads the replica, writes through the writer to PostgreSQL', async () => {
    const watcher = await TestConsole.open(t, await t.token());
    watcher.subscribe('all', Number((await pool.query('SELECT seq FROM incident_log_head')).rows[0].seq));
    const dev = await t.provision('call-phone');
    const c = await g.connect(dev.id, dev.secret);
    await c.publishAsync(`devices/${dev.id}/events`, JSON.stringify({ ts: Date.now(), seq: 1, type: 'sos' }), { qos: 1 });
    const [row] = await waitFor(async () => { const r = await inPostgres(dev.id); return r.length ? r : undefined; }, 'the incident in PostgreSQL');
    const escalated = await watcher.waitFor((f) => f.type === 'incident' && f.event?.type === 'escalated' && f.event.incidentId === row.id, 'the escalation on the console', 20_000);
    expect(escalated.event?.incidentId).toBe(row.id);
    expect((await pool.query(`SELECT count(*)::int AS n FROM incident_events WHERE incident_id = $1 AND type = 'escalated'`, [row.id])).rows[0].n).toBeGreaterThanOrEqual(1);
    await watcher.close();
    c.end(true);
  });

  it('restarted on its data directory: the replica resumes, a console resuming from its last seq gets what was missed, once', async () => {
    const before = await TestConsole.open(t, await t.token());
    before.subscribe('all', 0);
    const dev = await t.provision('call-phone');
    const c = await g.connect(dev.id, dev.secret);
    await c.publishAsync(`devices/${dev.id}/events`, JSON.stringify({ ts: Date.now(), seq: 1, type: 'sos' }), { qos: 1 });
    await waitFor(async () => (await inPostgres(dev.id)).length === 1 || undefined, 'the first SOS in PostgreSQL');
    await before.waitForSeq(Number((await pool.query('SELECT seq FROM incident_log_head')).rows[0].seq));
    const seen = before.lastSeq;
    await before.close();
    c.end(true);

    const dataDir = t.dataDir;
    await t.stop();
    // the terminal's next alarm waits in RabbitMQ while no node consumes; the node comes back on its directory
    const c2 = await g.connect(dev.id, dev.secret);
    await c2.publishAsync(`devices/${dev.id}/events`, JSON.stringify({ ts: Date.now() + 1, seq: 2, type: 'sos' }), { qos: 1 });
    t = await startTestGateway({ rabbitmq: g.t.gw.config.rabbitmq, postgres, adminPassword: t.adminPassword }, dataDir);
    await t.gw.cluster!.ready;
    const after = await TestConsole.open(t, await t.token());
    after.subscribe('all', seen);
    const head = await waitFor(async () => {
      const rows = await inPostgres(dev.id);
      const joined = (await pool.query(`SELECT count(*)::int AS n FROM incident_events WHERE incident_id = $1 AND type = 'joined'`, [rows[0]?.id])).rows[0].n;
      return joined === 1 ? Number((await pool.query('SELECT seq FROM incident_log_head')).rows[0].seq) : undefined;
    }, 'the second SOS joined in PostgreSQL', 30_000);
    await after.waitForSeq(head);
    expect(after.seqs).toEqual(Array.from({ length: head - seen }, (_, i) => seen + 1 + i));
    await after.close();
    c2.end(true);
  });

  it('a change the shared store refuses is answered 503 and was not made; the same request then succeeds, once', async () => {
    // PostgreSQL refuses new device rows in the shared tables for a moment (a constraint the test adds and drops)
    await pool.query(`ALTER TABLE shared_rows ADD CONSTRAINT test_no_devices CHECK (tbl <> 'devices' OR seq < 0) NOT VALID`);
    const serial = `REFUSED-${Date.now()}`;
    let refused;
    try {
      refused = await t.api('POST', '/api/devices', { kind: 'call-phone', serial });
    } finally {
      await pool.query('ALTER TABLE shared_rows DROP CONSTRAINT test_no_devices');
    }
    expect(refused.status).toBe(503);
    expect(refused.body.message).toMatch(/could not be stored in the cluster's shared database .*it was not made: try again/);
    // not made: not in the node's registry, nor listed, nor in PostgreSQL
    const listed = (await t.api('GET', `/api/devices?q=${serial}`)).body.items as { serial: string }[];
    expect(listed).toEqual([]);
    expect([...t.gw.registry.allEntries()].some((e) => t.gw.registry.get(e.id).serial === serial)).toBe(false);
    // tried again: made, once, and in the shared store
    const again = await t.api('POST', '/api/devices', { kind: 'call-phone', serial });
    expect(again.status).toBe(201);
    expect((await pool.query(`SELECT count(*)::int AS n FROM shared_rows WHERE tbl = 'devices' AND row->>'serial' = $1`, [serial])).rows[0].n).toBe(1);
    expect(t.gw.registry.authenticate(again.body.id, again.body.secret)).toBe('ok');
    // its audit entry is in the shared audit log (every node's admins read it), and the API lists it from there
    await waitFor(async () => (await pool.query(`SELECT count(*)::int AS n FROM audit_log WHERE action = 'device.provision' AND target_id = $1`, [again.body.id])).rows[0].n === 1 || undefined, 'the audit entry in PostgreSQL');
    const listed2 = (await t.api('GET', `/api/audit?target=device:${again.body.id}`)).body.items as { action: string }[];
    expect(listed2.map((e) => e.action)).toEqual(['device.provision']);
  });

  it('a data directory that ran on its own SQLite log is refused, saying what to do', async () => {
    const own = await startTestGateway({}, join(dir, 'sqlite-node'));
    await own.provision('call-phone');
    const dev = await own.provision('call-phone');
    const c = await own.connectDevice(dev.id, dev.secret);
    await c.publishAsync(`devices/${dev.id}/events`, JSON.stringify({ ts: Date.now(), seq: 1, type: 'sos' }), { qos: 1 });
    c.end(true);
    const dataDir = own.dataDir;
    await own.stop();
    await expect(startTestGateway({ rabbitmq: t.gw.config.rabbitmq, postgres }, dataDir))
      .rejects.toThrow(/holds incidents of another log .*new data directory/);
  });

  // last: it kills the file's PostgreSQL
  it('PostgreSQL killed (kill -9) under the node and started again: the SOS sent meanwhile stored once, /readyz not ready meanwhile, a P2 storage incident on the console, resolved once writes work', { timeout: 120_000 }, async () => {
    const watcher = await TestConsole.open(t, await t.token());
    watcher.subscribe('all', Number((await pool.query('SELECT seq FROM incident_log_head')).rows[0].seq));
    const dev = await t.provision('call-phone');
    const c = await g.connect(dev.id, dev.secret);
    const readyz = async () => (await fetch(`${t.http}/readyz`)).status;
    expect(await readyz()).toBe(200);

    const server = pgs.server;
    server.kill9();
    // RabbitMQ takes the alarm (PUBACK: in its quorum queue); the node cannot store it
    await c.publishAsync(`devices/${dev.id}/events`, JSON.stringify({ ts: Date.now(), seq: 1, type: 'sos' }), { qos: 1 });
    await waitFor(async () => (await readyz()) === 503 || undefined, '/readyz not ready while PostgreSQL is down', 20_000);
    expect(t.gw.storage.status()?.reason).toMatch(/PostgreSQL cannot be written/);
    // down for a while: the alarm waits unacknowledged in RabbitMQ, tried again in place (not dead-lettered)
    await new Promise((r) => setTimeout(r, 3000));
    restarted = await startPostgres({ dir: server.dir, port: server.port, fsync: true });

    // the SOS stored once, on the console; the storage incident opened and resolved, on the console too
    const [sos] = await waitFor(async () => { const r = await inPostgres(dev.id); return r.length ? r : undefined; }, 'the SOS in PostgreSQL', 60_000);
    const storage = await waitFor(async () => (await pool.query(`SELECT id FROM incidents WHERE type = 'storage-failing' AND status = 'resolved'`)).rows[0] as { id: string } | undefined,
      'the storage incident opened and resolved in PostgreSQL', 30_000);
    await watcher.waitFor((f) => f.type === 'incident' && f.event?.type === 'opened' && f.event.incidentId === sos.id, 'the SOS on the console');
    await watcher.waitFor((f) => f.type === 'incident' && f.event?.type === 'opened' && f.event.incidentId === storage.id, 'the storage incident on the console');
    await watcher.waitFor((f) => f.type === 'incident' && f.event?.type === 'cleared' && f.event.incidentId === storage.id, 'the storage incident cleared on the console');
    await waitFor(async () => (await readyz()) === 200 || undefined, '/readyz ready again');
    const rows = (await pool.query(`SELECT id, priority, status FROM incidents WHERE type = 'storage-failing'`)).rows;
    expect(rows).toEqual([expect.objectContaining({ priority: 'P2', status: 'resolved' })]);
    const opened = (await pool.query(`SELECT data FROM incident_events WHERE incident_id = $1 AND type = 'opened'`, [storage.id])).rows[0];
    expect(opened.data.data).toMatchObject({ node: expect.any(String), reason: expect.stringMatching(/PostgreSQL/) });
    expect((await pool.query(`SELECT count(*)::int AS n FROM observations WHERE device_id = $1 AND seq = 1`, [dev.id])).rows[0].n).toBe(1);
    expect((await inPostgres(dev.id)).map((r) => r.id)).toEqual([sos.id]);
    // nothing was dead-lettered for it
    expect((await pool.query(`SELECT count(*)::int AS n FROM incidents WHERE type = 'message-not-processed'`)).rows[0].n).toBe(0);
    await watcher.close();
    c.end(true);
  });
});
