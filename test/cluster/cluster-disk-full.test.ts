// Cluster mode with the eldergate node's disk full: the node runs as its own process in its own mount namespace with
// its data directory on a small tmpfs, takes device messages from a real RabbitMQ node, and the test fills the tmpfs
// mid-stream. RabbitMQ keeps taking (and PUBACKing) the terminals' alarms; eldergate cannot commit them, so it leaves
// them unacknowledged in their partition and tries again — a storage fault is not the message's fault, so nothing is
// dead-lettered for it, however long it lasts (rabbitmq.deliveryLimit is 2 here: two failed deliveries would park a
// message). When the disk has room again every alarm is stored once, in each device's order, and no
// "message-not-processed" incident was raised.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import mqtt, { type MqttClient } from 'mqtt';
import { fillChildDisk, onSmallTmpfs, startChildGateway, type ChildGateway } from '../helpers/child-gateway.js';
import { waitFor } from '../helpers/gateway.js';
import { freeBasePort } from '../helpers/cluster-ports.js';
import { storedSeqs } from '../helpers/rabbit-gateway.js';
import { startRabbitCluster, type RabbitCluster } from '../../ops/cluster/rabbitmq.js';
import { DEAD_LETTER_INCIDENT } from '../../gateway/cluster/rabbitmq.js';

interface Incident { id: string; type: string; deviceId: string; status: string; openedAt: string | number }

describe('cluster mode: the eldergate node\'s disk fills up mid-stream', () => {
  const dir = mkdtempSync(join(tmpdir(), 'eldergate-cluster-full-'));
  const dataDir = join(dir, 'data');
  const adminPassword = 'full-' + randomBytes(8).toString('hex');
  let rabbit: RabbitCluster;
  let mqttPort = 0;
  let gw: ChildGateway;
  let http = '';
  let token = '';
  const clients: MqttClient[] = [];

  beforeAll(async () => {
    mkdirSync(dataDir);
    // band 5: no other test file's (grep `band:` and freeBasePort under test/)
    const basePort = await freeBasePort(5);
    const authPort = basePort + 90;
    rabbit = await startRabbitCluster({ dir: join(dir, 'rabbit'), basePort, nodes: 1, authUrl: `http://127.0.0.1:${authPort}/internal/rabbitmq` });
    mqttPort = rabbit.nodes[0]!.mqttPort;
    gw = await startChildGateway({
      ELDERGATE_DATA_DIR: dataDir, ELDERGATE_MQTT_PORT: '0', ELDERGATE_HTTP_PORT: '0', ELDERGATE_ADMIN_PASSWORD: adminPassword,
      ELDERGATE_RABBITMQ_URLS: JSON.stringify(rabbit.amqpUrls), ELDERGATE_RABBITMQ_PASSWORD_FILE: rabbit.passwordFile,
      ELDERGATE_RABBITMQ_AUTH_PORT: String(authPort), ELDERGATE_RABBITMQ_MQTT_PORT: String(mqttPort),
      // one partition per lane, and a window far smaller than the chatty terminal's readings of the full spell: its
      // readings, unacknowledged while the disk is full, fill the telemetry partition's window. Every alarm device
      // shares that partition's hash, so an alarm is delivered during the spell only because events have a lane
      // of their own (with one lane, none of them is taken until the readings are stored)
      ELDERGATE_RABBITMQ_PARTITIONS: '1', ELDERGATE_RABBITMQ_PREFETCH: '50', ELDERGATE_RABBITMQ_DELIVERY_LIMIT: '2',
      // every reading a row (none folded into state), so that each can be counted
      ELDERGATE_INGEST_HEARTBEAT_HISTORY_MS: '0',
    }, 60_000, onSmallTmpfs(dataDir, '16m'));
    await waitFor(() => gw.logs.some((l) => l.includes('connected to RabbitMQ')) || undefined, 'eldergate connected to RabbitMQ', 30_000);
    http = `http://127.0.0.1:${gw.httpPort}`;
    token = ((await (await fetch(`${http}/api/auth/login`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password: adminPassword }),
    })).json()) as { token: string }).token;
  }, 180_000);

  afterAll(async () => {
    for (const c of clients) c.end(true);
    await gw?.kill('SIGKILL');
    await rabbit?.stop({ graceMs: 5_000 });
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  const api = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    const res = await fetch(http + path, {
      method, headers: { authorization: `Bearer ${token}`, ...(body !== undefined && { 'content-type': 'application/json' }) },
      ...(body !== undefined && { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path}: HTTP ${res.status} ${text}`);
    return JSON.parse(text) as T;
  };
  const incidentsOf = async (deviceId: string) => (await api<{ items: Incident[] }>('GET', `/api/incidents?deviceId=${deviceId}&limit=100`)).items;
  const connect = async (id: string, secret: string) => {
    const c = mqtt.connect(`mqtt://127.0.0.1:${mqttPort}`, { clientId: id, username: id, password: secret, protocolVersion: 4, reconnectPeriod: 0 });
    clients.push(c);
    await new Promise<void>((resolve, reject) => {
      c.once('connect', () => resolve());
      c.once('error', reject);
    });
    return c;
  };
  /** a counter (absent until first counted: 0) or, with `present`, a gauge that must be there */
  const metric = async (re: RegExp, present = false) => {
    const m = re.exec(await (await fetch(`${http}/metrics`)).text());
    if (!m && present) throw new Error(`/metrics has no ${re.source}`);
    return Number(m?.[1] ?? 0);
  };
  /** every seq stored for a device's readings */
  const readingSeqs = (deviceId: string) => storedSeqs((path) => api('GET', path), deviceId, '&type=heartbeat');

  it('RabbitMQ keeps the alarms while the disk is full; none is dead-lettered; all are stored once, in order, when there is room again', { timeout: 240_000 }, async () => {
    const devices = await Promise.all([1, 2, 3].map((i) => api<{ id: string; secret: string }>('POST', '/api/devices', { kind: 'call-phone', serial: `FULL-${i}` })));
    const conns = await Promise.all(devices.map((d) => connect(d.id, d.secret)));
    const chatty = await api<{ id: string; secret: string }>('POST', '/api/devices', { kind: 'call-phone', serial: 'FULL-CHATTY' });
    const chattyConn = await connect(chatty.id, chatty.secret);
    const ts0 = Date.now();
    const alarm = (i: number, seq: number, type: string) =>
      conns[i]!.publishAsync(`devices/${devices[i]!.id}/events`, JSON.stringify({ ts: ts0 + seq, seq, type }), { qos: 1 });

    // before: an SOS is stored as usual
    await alarm(0, 1, 'sos');
    await waitFor(async () => (await incidentsOf(devices[0]!.id)).some((i) => i.type === 'sos') || undefined, 'the first SOS stored', 20_000, 200);

    // the disk fills up (the gateway's namespace, through its /proc root)
    const fill = fillChildDisk(gw, dataDir);
    const retried = () => metric(/eldergate_rabbitmq_messages_total\{queue="partition",result="retry"\} (\d+)/);
    const requeued = () => metric(/eldergate_rabbitmq_messages_total\{queue="partition",result="requeued"\} (\d+)/);
    const deadLettered = () => metric(/eldergate_rabbitmq_messages_total\{queue="dead",result="dead-lettered"\} (\d+)/);
    // SQLite writes into room its files already hold (the WAL is reused after a checkpoint) until that is used up: a
    // chatty terminal's readings, each a row, use it up, and the writer starts failing on the storage
    let readings = 0;
    const storageFailing = async () => (await retried()) + (await requeued()) > 0 || (await metric(/eldergate_storage_healthy (\d+)/, true)) === 0;
    // RabbitMQ takes readings far faster than the writer meets the full disk (8,000 were confirmed in 1.5 s while the
    // writer still held its first window of 50, not yet failed): up to 3,000 are sent, then the test waits for it
    for (const until = Date.now() + 60_000; !(await storageFailing());) {
      if (Date.now() > until) throw new Error(`the storage did not fail within 60 s of ${readings} readings on a full disk`);
      if (readings >= 3_000) {
        await new Promise((r) => setTimeout(r, 200));
        continue;
      }
      await Promise.all(Array.from({ length: 200 }, () => {
        readings++;
        return chattyConn.publishAsync(`devices/${chatty.id}/telemetry`,
          JSON.stringify({ ts: ts0 + readings, seq: readings, type: 'heartbeat', battery: readings % 100 }), { qos: 1 });
      }));
    }
    // the telemetry partition's window is full of readings waiting for the storage (one batch is more than it holds)
    expect(readings).toBeGreaterThan(50);
    // the alarms of the full spell: each device a fall, then an SOS; RabbitMQ PUBACKs them (its queue holds them)
    for (let i = 0; i < 3; i++) {
      await alarm(i, 2, 'fall');
      await alarm(i, 3, 'sos');
    }
    // eldergate takes each alarm and fails on the storage: it either keeps it and tries again (right) or hands it back
    // to its queue, which dead-letters it after two deliveries (wrong). Each alarm device's own "not stored" line says
    // its alarm was taken and tried (the retry counter alone could be the chatty terminal's). A full disk is not full
    // for every transaction: SQLite reuses room its files hold, so a small alarm commit can go through between failing
    // telemetry batches (the log shows the storage failing and ready again in turns). An alarm stored then was taken
    // as well — what must not happen is an alarm not taken at all
    const tried = new Set<string>();
    const taken = async () => {
      for (const d of devices) {
        if (gw.logs.some((l) => l.includes(d.id) && l.includes('could not be stored yet'))) tried.add(d.id);
      }
      const stored = await Promise.all(devices.map(async (d) => tried.has(d.id) || (await incidentsOf(d.id)).some((i) => i.type === 'fall')));
      return stored.every(Boolean);
    };
    await waitFor(async () => (await requeued()) > 0 || (await taken()) || undefined,
      'each alarm taken from RabbitMQ (failing on the storage, or stored)', 30_000, 200).catch((err: Error) => {
      const untried = devices.filter((d) => !tried.has(d.id)).map((d) => d.id);
      const tail = gw.logs.filter((l) => !l.includes(chatty.id)).slice(-40).join('\n');
      throw new Error(`${err.message}: neither tried nor stored: ${untried.join(', ')}; the gateway's last lines but the chatty terminal's:\n${tail}`);
    });
    // the full disk was met by alarms, not only by readings
    expect(tried.size).toBeGreaterThanOrEqual(1);
    await new Promise((r) => setTimeout(r, 3_000));
    // (dead-lettered is counted once eldergate has raised it, which it could not do on a full disk: the requeue count
    // is the guard here; dead-lettered is checked again at the end)
    expect({ requeued: await requeued(), deadLettered: await deadLettered() }).toEqual({ requeued: 0, deadLettered: 0 });
    expect(await retried()).toBeGreaterThanOrEqual(3);

    // room again
    unlinkSync(fill);
    // the wait is on the stored observations (the fall, seq 2, and the SOS, seq 3): the first device's SOS incident
    // is already open from before the spell, so its incidents alone would show the spell stored once the fall was,
    // before its SOS (which joins that open incident) had been
    const spellSeqs = async (deviceId: string) => {
      const obs = await api<{ items: { seq: number | null; type: string }[] }>('GET', `/api/observations?deviceId=${deviceId}&limit=20`);
      // newest first: reversed, the order they were stored in
      return obs.items.map((o) => o.seq).filter((s): s is number => s !== null && s >= 2).reverse();
    };
    for (const d of devices) {
      await waitFor(async () => ((await spellSeqs(d.id)).length >= 2 || undefined), `the full spell's alarms of ${d.id} stored`, 60_000, 250)
        .catch(async (err: Error) => { throw new Error(`${err.message}: stored seqs ${JSON.stringify(await spellSeqs(d.id))}`); });
      const got = await incidentsOf(d.id);
      // once each: one fall incident; one SOS incident (the first device's second SOS joined its open one)
      expect(got.filter((i) => i.type === 'fall')).toHaveLength(1);
      expect(got.filter((i) => i.type === 'sos')).toHaveLength(1);
      expect(got.filter((i) => i.type === DEAD_LETTER_INCIDENT)).toEqual([]);
      // in the device's order: its observations were stored fall (seq 2) before SOS (seq 3), once each
      expect(await spellSeqs(d.id)).toEqual([2, 3]);
    }
    expect(await deadLettered()).toBe(0);
    // and every reading of the chatty terminal, before and during the full spell, is there once
    const all = Array.from({ length: readings }, (_, i) => i + 1);
    const seqs = await waitFor(async () => {
      const got = await readingSeqs(chatty.id);
      return got.length >= readings ? got : undefined;
    }, 'the readings stored', 60_000, 250).catch(async (err) => {
      const got = new Set(await readingSeqs(chatty.id));
      const missing = all.filter((q) => !got.has(q));
      throw new Error(`${(err as Error).message}: ${readings} readings sent, ${got.size} stored, missing ${missing.slice(0, 40).join(',')}`);
    });
    expect(seqs.length).toBe(readings);
    expect([...new Set(seqs)].sort((x, y) => x - y)).toEqual(all);
  });
});
