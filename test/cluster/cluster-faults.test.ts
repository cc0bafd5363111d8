// Cluster mode under faults, on one machine with the real engines: a 3-node RabbitMQ cluster (Debian's rabbitmq-server,
// MQTT plugin) behind HAProxy, eldergate nodes as separate processes taking the device messages over AMQP and
// answering RabbitMQ's auth backend, terminals over MQTT through HAProxy, a console on each node's WebSocket stream.
// Mid-stream: kill -9 of the RabbitMQ node the terminals are on, and kill -9 of an eldergate node.
// Promised: no acknowledged alarm lost, none stored twice, no twin incident, every console sees every incident event
// once and in order, and terminals are back on a surviving node within seconds. Run twice: one node on its own SQLite
// file; and two nodes on the PostgreSQL store (a PostgreSQL 15 started by this file), the registry and accounts shared
// (devices provisioned through either node, RabbitMQ's auth backend behind HAProxy answered by either), each node's
// console served from its own replica of the log; the first node killed and restarted while the second carries on.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import mqtt, { type MqttClient } from 'mqtt';
import WebSocket from 'ws';
import { startChildGateway, type ChildGateway } from '../helpers/child-gateway.js';
import { waitFor } from '../helpers/gateway.js';
import { startRabbitCluster, type RabbitCluster } from '../../ops/cluster/rabbitmq.js';
import { startHaproxy, type Haproxy } from '../../ops/cluster/haproxy.js';
import { freeBasePort } from '../helpers/cluster-ports.js';
import pg from 'pg';
import { startPostgresForStores, type PostgresForStores } from '../helpers/postgres.js';
import { numbered } from '../../core/pg-bind.js';

const DEVICES = 12;
const PER_DEVICE = 40;
/** readings are numbered from here (the event of message n is seq n, its reading READING + n) */
const READING = 10_000;

interface Terminal {
  id: string;
  secret: string;
  client: MqttClient;
  acked: Set<number>;
  pending: Set<number>;
  /** QoS 1 battery readings (telemetry): the writer holds them up to a flush interval before committing */
  readingsAcked: Set<number>;
  next: number;
  /** when its connection dropped, and how long until it was back */
  droppedAt?: number;
  backAfterMs: number[];
}

// bands: RabbitMQ 0 (SQLite run) and 8 (PostgreSQL run), both below the kernel's ephemeral ports (a client socket of
// another test took a RabbitMQ port of band 20 once, in CI); PostgreSQL 21 (grep `band:` and freeBasePort under test/)
describe.each([
  { store: 'sqlite', nodes: 1 },
  { store: 'postgres', nodes: 2 },
] as const)('cluster mode: RabbitMQ + HAProxy + $nodes eldergate node(s) on $store, one killed mid-stream', ({ store, nodes }) => {
  const dir = mkdtempSync(join(tmpdir(), 'eldergate-cluster-'));
  let pgs: PostgresForStores | undefined;
  let pool: pg.Pool | undefined;
  let authPort = 0;
  let mqttPort = 0;
  const adminPassword = 'cluster-' + randomBytes(8).toString('hex');
  let rabbit: RabbitCluster;
  let proxy: Haproxy;
  /** the eldergate nodes; the first is the one killed */
  const gws: ChildGateway[] = [];
  const envs: Record<string, string>[] = [];
  let diagnose = () => {};

  beforeAll(async () => {
    const basePort = await freeBasePort(store === 'sqlite' ? 0 : 8);
    authPort = basePort + 90;
    mqttPort = basePort + 91;
    rabbit = await startRabbitCluster({ dir: join(dir, 'rabbit'), basePort, nodes: 3, authUrl: `http://127.0.0.1:${authPort}/internal/rabbitmq` });
    // RabbitMQ asks one address whether a device may connect: with two nodes, HAProxy in front of both answers it
    const authPorts = nodes === 1 ? [authPort] : [basePort + 92, basePort + 93];
    proxy = await startHaproxy({
      dir: join(dir, 'haproxy'),
      listeners: [
        { name: 'mqtt', port: mqttPort, mode: 'tcp', backends: rabbit.nodes.map((n) => ({ host: '127.0.0.1', port: n.mqttPort })) },
        ...(nodes > 1 ? [{ name: 'auth', port: authPort, mode: 'http' as const, backends: authPorts.map((port) => ({ host: '127.0.0.1', port })) }] : []),
      ],
    });
    const env: Record<string, string> = {
      ELDERGATE_DATA_DIR: join(dir, 'eldergate'), ELDERGATE_MQTT_PORT: '0', ELDERGATE_HTTP_PORT: '0', ELDERGATE_ADMIN_PASSWORD: adminPassword,
      ELDERGATE_RABBITMQ_URLS: JSON.stringify(rabbit.amqpUrls), ELDERGATE_RABBITMQ_PASSWORD_FILE: rabbit.passwordFile,
      ELDERGATE_RABBITMQ_AUTH_PORT: String(authPort), ELDERGATE_RABBITMQ_MQTT_PORT: String(mqttPort),
      // every node signs and verifies people's tokens with one key
      ELDERGATE_AUTH_KEY_FILE: join(dir, 'keys', 'token-signing-key.json'),
      ELDERGATE_RABBITMQ_PARTITIONS: '4', ELDERGATE_RABBITMQ_MANAGEMENT_URL: rabbit.managementUrl,
      // telemetry waits in the writer up to 0.5 s before its commit (and a terminal's readings one after another): a kill lands while some is taken and not committed
      ELDERGATE_INGEST_TELEMETRY_FLUSH_MS: '500', ELDERGATE_INGEST_TELEMETRY_BATCH_ROWS: '100000',
      // every reading a row (none folded into state), so that each can be counted
      ELDERGATE_INGEST_HEARTBEAT_HISTORY_MS: '0',
    };
    if (store === 'postgres') {
      pgs = await startPostgresForStores({ dir: join(dir, 'pg'), band: 21 });
      const fresh = await pgs.fresh('faults', 4);
      pool = fresh.pool;
      const url = new URL(fresh.url);
      Object.assign(env, {
        ELDERGATE_POSTGRES_URL: `postgres://127.0.0.1:${url.port}${url.pathname}`,
        ELDERGATE_POSTGRES_USERNAME: pgs.server.user, ELDERGATE_POSTGRES_PASSWORD_FILE: pgs.server.passwordFile,
      });
    }
    for (let i = 0; i < nodes; i++) {
      envs.push({ ...env, ELDERGATE_DATA_DIR: join(dir, `eldergate-${i + 1}`), ELDERGATE_RABBITMQ_AUTH_PORT: String(authPorts[i]) });
      // one after the other: the first creates the token key and the admin, the next finds them
      gws.push(await startChildGateway(envs[i]!, 60_000));
      await waitFor(() => gws[i]!.logs.some((l) => l.includes('connected to RabbitMQ')), `eldergate node ${i + 1} connected to RabbitMQ`, 30_000);
    }
  }, 180_000);

  afterAll(async () => {
    for (const gw of gws) await gw.kill('SIGTERM');
    await proxy?.stop();
    await rabbit?.stop();
    await pgs?.stop();
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  /** rows of the node's store: its SQLite file, or PostgreSQL (numbers as numbers in both) */
  const query = async (sql: string, ...args: unknown[]): Promise<Record<string, number>[]> => {
    const num = (r: Record<string, unknown>) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, Number(v)]));
    if (pool) return (await pool.query(numbered(sql), args)).rows.map(num);
    const db = new Database(join(envs[0]!.ELDERGATE_DATA_DIR!, 'eldergate.db'), { readonly: true });
    try {
      return (db.prepare(sql).all(...args) as Record<string, unknown>[]).map(num);
    } finally {
      db.close();
    }
  };
  const countReadings = async () => (await query("select count(*) n from observations where type = 'battery'"))[0]!.n!;
  const http = (node = 0) => `http://127.0.0.1:${gws[node]!.httpPort}`;
  const token = async (node = 0) => {
    const r = await fetch(`${http(node)}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password: adminPassword }) });
    return ((await r.json()) as { token: string }).token;
  };

  it('loses no acknowledged alarm, stores none twice, opens no twin, and the console sees every event once, in order', { timeout: 240_000 }, async ({ onTestFailed }) => {
    onTestFailed(() => diagnose());
    // devices provisioned through every node in turn: each connects through whichever node RabbitMQ asks
    const bearers = await Promise.all(gws.map((_, i) => token(i)));
    const terminals: Terminal[] = [];
    for (let i = 0; i < DEVICES; i++) {
      const r = await fetch(`${http(i % nodes)}/api/devices`, {
        method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${bearers[i % nodes]}` },
        body: JSON.stringify({ kind: 'call-phone', serial: `CL-${i}-${randomBytes(3).toString('hex')}` }),
      });
      expect(r.status).toBe(201);
      const dev = (await r.json()) as { id: string; secret: string; terminal?: unknown };
      terminals.push({ ...dev, client: undefined as unknown as MqttClient, acked: new Set(), pending: new Set(), readingsAcked: new Set(), next: 1, backAfterMs: [] });
    }

    // a console on each node: every incident frame, resumed from its last seq whenever the stream drops
    const seens: number[][] = gws.map(() => []);
    let consoleOpen = true;
    /** connects (retrying while the node is down) and resumes from the last seq seen; again whenever it drops */
    const openConsole = async (node: number): Promise<void> => {
      const seen = seens[node]!;
      for (;;) {
        try {
          const ws = new WebSocket(`ws://127.0.0.1:${gws[node]!.httpPort}/ws`, { headers: { authorization: `Bearer ${await token(node)}` } });
          ws.on('message', (data) => {
            const f = JSON.parse(String(data)) as { type: string; seq?: number };
            if (f.type === 'hello') ws.send(JSON.stringify({ type: 'subscribe', scope: 'all', since: seen.at(-1) ?? 0 }));
            if (f.type === 'incident') {
              seen.push(f.seq!);
              // its user confirms what it shows (a delivery receipt for each opening)
              ws.send(JSON.stringify({ type: 'ack', seq: f.seq }));
            }
          });
          await new Promise<void>((resolve, reject) => {
            ws.once('open', () => resolve());
            ws.once('error', reject);
          });
          ws.on('error', () => undefined);
          ws.once('close', () => {
            if (consoleOpen) void openConsole(node);
          });
          return;
        } catch {
          if (!consoleOpen) return;
          await new Promise((r) => setTimeout(r, 300));
        }
      }
    };
    for (let i = 0; i < nodes; i++) await openConsole(i);

    diagnose = () => {
      // what each terminal was waiting for, and what the gateway said last
      for (const t of terminals) console.error(t.id, JSON.stringify({ acked: t.acked.size, pending: [...t.pending], next: t.next, connected: t.client?.connected, back: t.backAfterMs, errors: (t as any).errors, reconnects: (t as any).reconnects, dropped: t.droppedAt }));
      for (const n of rabbit.nodes) {
        try {
          console.error(n.name, readFileSync(n.log, 'utf8').split('\n').filter((l) => /error|warn|mqtt/i.test(l)).slice(-15).join('\n'));
        } catch { /* no log yet */ }
      }
      void (async () => {
        const auth = 'Basic ' + Buffer.from(`${rabbit.serviceUser}:${readFileSync(rabbit.passwordFile, 'utf8').trim()}`).toString('base64');
        const qs = await fetch(`http://127.0.0.1:${rabbit.nodes[1]!.managementPort}/api/queues`, { headers: { authorization: auth } }).then((r) => r.json()).catch((e) => String(e));
        console.error('queues', JSON.stringify(Array.isArray(qs) ? qs.map((q: any) => [q.name, q.messages_ready, q.messages_unacknowledged, q.consumers, q.leader ?? q.node, q.single_active_consumer_tag ?? null]) : qs));
        // who RabbitMQ holds as each queue's consumers: the active one, its channel's node and connection (a consumer
        // left on a dead node, or an active one that takes nothing, shows here)
        const cs = await fetch(`http://127.0.0.1:${rabbit.nodes[1]!.managementPort}/api/consumers`, { headers: { authorization: auth } }).then((r) => r.json()).catch((e) => String(e));
        console.error('consumers', JSON.stringify(Array.isArray(cs) ? cs.map((c: any) => [c.queue?.name, c.consumer_tag, c.active, c.activity_status, c.prefetch_count, c.channel_details?.node, c.channel_details?.connection_name]) : cs));
      })();
      for (const gw of gws) console.error(gw.logs.filter((l) => l.includes('"module":"rabbitmq"') || l.includes('"level":50')).slice(-60).join('\n'));
    };
    let stop = false;
    const ts0 = Date.now();
    // the firmware: QoS 1, resends what never got a PUBACK with the same seq and ts after every reconnect
    const send = (t: Terminal, seq: number) => {
      t.pending.add(seq);
      // a battery reading per message, QoS 1 (resent with the event until both are acknowledged); the firmware's one
      // counter numbers both, so the reading has a (seq, ts) of its own
      t.client.publish(`devices/${t.id}/telemetry`, JSON.stringify({ ts: ts0 + READING + seq, seq: READING + seq, type: 'battery', level: 5 + (seq % 90) }), { qos: 1 }, (err) => {
        if (err) return;
        t.readingsAcked.add(seq);
        if (t.acked.has(seq)) t.pending.delete(seq);
      });
      t.client.publish(`devices/${t.id}/events`, JSON.stringify({ ts: ts0 + seq, seq, type: seq % 5 === 0 ? 'sos' : 'test' }), { qos: 1 }, (err) => {
        if (!err) {
          t.acked.add(seq);
          if (t.readingsAcked.has(seq)) t.pending.delete(seq);
        }
      });
    };
    for (const t of terminals) {
      t.client = mqtt.connect(`mqtt://127.0.0.1:${mqttPort}`, {
        clientId: t.id, username: t.id, password: t.secret, protocolVersion: 4, clean: true, reconnectPeriod: 250, connectTimeout: 5000,
        will: { topic: `devices/${t.id}/status`, payload: Buffer.from('{"online":false}'), qos: 1, retain: true },
      });
      t.client.on('error', (e) => {
        (t as any).errors = [...((t as any).errors ?? []), e.message].slice(-5);
        // refused (no node answered RabbitMQ's auth question: the eldergate node is down): a terminal keeps trying
        if (/refused/i.test(e.message)) setTimeout(() => { if (!t.client.connected && !stop) t.client.reconnect(); }, 500);
      });
      t.client.on('reconnect', () => { (t as any).reconnects = ((t as any).reconnects ?? 0) + 1; });
      t.client.on('close', () => { t.droppedAt ??= Date.now(); });
      t.client.on('connect', () => {
        if (t.droppedAt !== undefined) {
          t.backAfterMs.push(Date.now() - t.droppedAt);
          t.droppedAt = undefined;
        }
        t.client.publish(`devices/${t.id}/status`, '{"online":true}', { qos: 1, retain: true });
        for (const seq of [...t.pending]) send(t, seq);
      });
    }
    await waitFor(() => terminals.every((t) => t.client.connected) || undefined, 'every terminal connected through HAProxy', 30_000);

    // keep a few messages in flight per terminal until all are sent
    const pump = (async () => {
      while (!stop) {
        for (const t of terminals) {
          while (t.client.connected && t.next <= PER_DEVICE && t.pending.size < 3) send(t, t.next++);
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    })();

    // fault 1: the RabbitMQ node a third of the terminals are on dies
    await waitFor(() => terminals.reduce((n, t) => n + t.acked.size, 0) >= DEVICES * 8 || undefined, 'a first part acknowledged', 60_000);
    await rabbit.kill(0);
    // fault 2: the eldergate node dies with messages taken and not yet acknowledged, and comes back on the same data
    await waitFor(() => terminals.reduce((n, t) => n + t.acked.size, 0) >= DEVICES * 20 || undefined, 'more acknowledged after the RabbitMQ node died', 90_000);
    await gws[0]!.kill('SIGKILL');
    // acknowledged by RabbitMQ (PUBACK) but not in eldergate's database when it died: the queues still hold them
    const readingsAckedAtKill = terminals.reduce((n, t) => n + t.readingsAcked.size, 0);
    const readingsStoredAtKill = await countReadings();
    if (nodes > 1) {
      // the second node carries on alone: it takes the dead node's partitions, stores, and its console hears of it
      const stored = async () => (await query("select count(*) n from observations where type in ('sos', 'test')"))[0]!.n!;
      const storedAtKill = await stored();
      const heardAtKill = seens[1]!.length;
      await waitFor(async () => (await stored()) >= storedAtKill + DEVICES || undefined, 'the second node storing alarms while the first is down', 60_000, 200);
      await waitFor(() => seens[1]!.length > heardAtKill || undefined, 'the console on the second node hearing of incidents while the first is down', 30_000);
    }
    gws[0] = await startChildGateway(envs[0]!, 60_000);

    await waitFor(() => terminals.every((t) => t.acked.size === PER_DEVICE && t.readingsAcked.size === PER_DEVICE) || undefined, 'every message acknowledged', 120_000, 200);
    stop = true;
    await pump;

    // what the store holds: every acknowledged message exactly once
    // the last readings wait for their flush; what is still missing after that is named by the checks below
    await waitFor(async () => (await query("select count(*) n from observations where type in ('sos', 'test', 'battery')"))[0]!.n! >= 2 * DEVICES * PER_DEVICE || undefined,
      'every observation stored', 30_000, 200).catch(() => undefined);
    for (const t of terminals) {
      const rows = await query("select seq, count(*) n from observations where device_id = ? and type in ('sos', 'test') group by seq", t.id);
      const stored = new Map(rows.map((r) => [r.seq, r.n]));
      for (const seq of t.acked) expect(stored.get(seq), `${t.id} seq ${seq} acknowledged and stored once`).toBe(1);
      const readings = new Map((await query("select seq - ? seq, count(*) n from observations where device_id = ? and type = 'battery' group by seq", READING, t.id)).map((r) => [r.seq, r.n]));
      for (const seq of t.readingsAcked) expect(readings.get(seq), `${t.id} reading ${seq} acknowledged and stored once`).toBe(1);
      // no twin: the SOSes of one terminal join one incident
      const [sos] = await query("select count(*) n from incidents where device_id = ? and type = 'sos'", t.id);
      expect(sos!.n, `${t.id}: one SOS incident`).toBe(1);
    }
    // every console saw every event in the log once, in order, across the eldergate node's death
    const logSeqs = (await query('select seq from incident_events order by seq')).map((r) => r.seq!);
    for (const [i, seen] of seens.entries()) {
      await waitFor(() => (seen.at(-1) ?? 0) >= logSeqs.at(-1)! || undefined, `the console on node ${i + 1} caught up`, 30_000);
      expect(seen, `the console on node ${i + 1}`).toEqual(logSeqs);
    }
    if (pool) {
      // every node shows every incident's push and delivery receipts as the cluster holds them, whichever node's
      // console brought them first: the same receipts and stamps on both, the push and the admin's delivery among them
      const ids = (await pool.query("SELECT id FROM incidents WHERE type = 'sos'")).rows.map((r: { id: string }) => r.id);
      expect(ids.length).toBe(DEVICES);
      const auth = await Promise.all(gws.map(async (_, i) => ({ authorization: `Bearer ${await token(i)}` })));
      type Detail = { stamps: Record<string, number>; receipts: { kind: string; username: string | null }[] };
      const details = async (id: string) => Promise.all(gws.map(async (_, i) => (await (await fetch(`${http(i)}/api/incidents/${id}`, { headers: auth[i] })).json()) as Detail));
      for (const id of ids) {
        await waitFor(async () => {
          const [one, two] = await details(id);
          const whole = one!.stamps.pushed !== undefined && one!.receipts.some((r) => r.kind === 'delivered' && r.username === 'admin');
          return (whole && JSON.stringify([one!.stamps, one!.receipts]) === JSON.stringify([two!.stamps, two!.receipts])) || undefined;
        }, `incident ${id}: the same push and delivery receipts on both nodes`, 15_000);
      }
    }
    consoleOpen = false;
    // the eldergate node died with acknowledged readings not yet in its database; all of them are there now
    expect(readingsAckedAtKill).toBeGreaterThan(readingsStoredAtKill);

    // the terminals on the dead node were back on a surviving one within seconds
    const back = terminals.flatMap((t) => t.backAfterMs);
    expect(back.length).toBeGreaterThanOrEqual(1);
    expect(Math.max(...back)).toBeLessThan(15_000);
    for (const t of terminals) t.client.end(true);
  });
});
