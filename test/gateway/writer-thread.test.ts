// The writer thread (issue 10): the device domain and its write transactions run off the main event loop, and a
// PUBACK still means "committed". Real gateway: aedes on a real port, the real mqtt client, the SQLite file with the
// committed migrations, the writer in its worker thread on its own connection.
//
// - While the writer is stuck (a third connection holds the database's write lock), the main thread still answers
//   HTTP and accepts MQTT connections; the SOS sent meanwhile is not acknowledged until its commit, then stored once.
// - A person's action on the main thread's connection and the writer's commits interleave without a lost write.
// - The writer thread dying is survived: what it had not answered is not acknowledged but held, with what comes while
//   the new one starts, and handed to the new writer, which stores each once; the terminal's connection stays up.
import mqtt from 'mqtt';
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Worker } from 'node:worker_threads';
import { metricValue, startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { holdWriteLock } from '../helpers/write-lock.js';

describe('the writer thread', () => {
  let t: TestGateway;
  // the tests here that kill threads add up the restart back-off (2 s, then 5 s, for deaths within a minute of a
  // start), and a thread starts slowly beside the whole suite: held for the default 10 s, the third test's messages were
  // refused once (the hold's bound has its own test below)
  beforeAll(async () => { t = await startTestGateway({ ingest: { writerRestartHoldMs: 60_000 } }); });
  afterAll(async () => t.stop());


  it('a stuck writer does not stop the main thread; the SOS is acknowledged only after its commit', async () => {
    const { id, secret } = await t.provision('call-phone');
    const other = await t.provision('call-phone');
    const c = await t.connectDevice(id, secret);
    // a third connection takes the write lock: the writer's next transaction waits for it (busy_timeout)
    const lock = holdWriteLock(t.dataDir);
    try {
      let ackedAt = 0;
      const acked = new Promise<void>((resolve, reject) => c.publish(`devices/${id}/events`, JSON.stringify({ ts: Date.now(), seq: 1, type: 'sos' }), { qos: 1 },
        (err) => { if (err) reject(err); else { ackedAt = Date.now(); resolve(); } }));
      // the writer thread is now blocked inside SQLite; this thread is not: HTTP answers, a new device connects
      await new Promise((r) => setTimeout(r, 300));
      const health = await fetch(`${t.http}/healthz`);
      expect(health.status).toBe(200);
      const c2 = await t.connectDevice(other.id, other.secret);
      c2.end(true);
      expect(ackedAt).toBe(0);
      expect(sosRows(t, id)).toEqual([]);
      lock.release();
      const releasedAt = Date.now();
      await acked;
      expect(ackedAt).toBeGreaterThanOrEqual(releasedAt);
      expect(sosRows(t, id)).toEqual([{ seq: 1 }]);
      expect(incidentsOf(t, id)).toMatchObject([{ type: 'sos', status: 'open' }]);
    } finally {
      lock.close();
      c.end(true);
    }
  });

  it('a person\'s acknowledgement is written by the writer thread: while it waits for the lock, the main loop does not', async () => {
    const { id, secret } = await t.provision('call-phone');
    const c = await t.connectDevice(id, secret);
    await c.publishAsync(`devices/${id}/events`, JSON.stringify({ ts: Date.now(), seq: 1, type: 'sos' }), { qos: 1 });
    c.end(true);
    const [inc] = await waitFor(() => (incidentsOf(t, id).length ? incidentsOf(t, id) : undefined), 'the incident');
    const heard: string[] = [];
    const onEvent = (e: { incidentId: string; type: string }) => { if (e.incidentId === inc!.id) heard.push(e.type); };
    t.gw.bus.on('incident-event', onEvent);
    // this process is the gateway's main thread: the lock's tick measures how long its loop stalled
    const lock = holdWriteLock(t.dataDir);
    try {
      const ack = t.api('POST', `/api/incidents/${inc!.id}/acknowledge`);
      // the lock is held for a second: a main loop waiting for it would stall that long
      await new Promise((r) => setTimeout(r, 1000));
      // the acknowledgement waits in the writer thread (SQLite's busy wait is there), not here
      expect((await fetch(`${t.http}/healthz`)).status).toBe(200);
      expect(incidentsOf(t, id)).toMatchObject([{ status: 'open' }]);
      expect(heard).toEqual([]);
      lock.release();
      const res = await ack;
      expect(res.status).toBe(200);
      expect((res.body as { incident: { status: string } }).incident.status).toBe('acknowledged');
      expect(incidentsOf(t, id)).toMatchObject([{ status: 'acknowledged' }]);
      // published on this thread as the writer's answer arrived, once
      expect(heard.filter((x) => x === 'acknowledged')).toHaveLength(1);
      // a second operator's acknowledgement is refused with the state, as before: the domain's 409 crosses the thread
      const again = await t.api('POST', `/api/incidents/${inc!.id}/acknowledge`);
      expect(again.status).toBe(409);
      expect(JSON.stringify(again.body)).toMatch(/it is acknowledged/);
      // not a timing target: the lock is released by this very thread, so a main loop that waited for it could not
      // release it and would stall for the whole busy timeout (5 s, core/db.ts) before SQLite gave up. The bound is
      // half that: a loaded machine's pauses (986 ms seen once, with the whole suite on 2 cores) stay under it
      expect(lock.longestGapMs).toBeLessThan(2500);
    } finally {
      lock.close();
      t.gw.bus.off('incident-event', onEvent);
    }
  });

  it('a person\'s command to a device is written by the writer thread: while it waits for the lock, the main loop does not', async () => {
    const { id, secret } = await t.provision('call-phone');
    const c = await t.connectDevice(id, secret);
    const received: string[] = [];
    c.on('message', (_topic, payload) => received.push((JSON.parse(payload.toString()) as { type: string }).type));
    await c.subscribeAsync(`devices/${id}/commands`, { qos: 1 });
    const lock = holdWriteLock(t.dataDir);
    try {
      const sent = t.api('POST', `/api/devices/${id}/commands`, { type: 'locate-now' });
      await new Promise((r) => setTimeout(r, 1000));
      // the command waits in the writer thread for the lock; this thread answers meanwhile, and sends nothing unstored
      expect((await fetch(`${t.http}/healthz`)).status).toBe(200);
      expect(received).toEqual([]);
      lock.release();
      const res = await sent;
      expect(res.status).toBe(202);
      expect(res.body).toMatchObject({ type: 'locate-now', queued: false });
      await waitFor(() => (received.includes('locate-now') ? true : undefined), 'the command at the device');
      // marked sent by the writer thread too, once the broker took it
      await waitFor(() => ((t.gw.store.sqlite.prepare('select status from commands where id = ?').get((res.body as { id: string }).id) as { status: string }).status === 'sent' || undefined), 'the command marked sent');
      // as above: a main loop that waited for the lock this thread releases would stall the whole busy timeout (5 s)
      expect(lock.longestGapMs).toBeLessThan(2500);
    } finally {
      lock.close();
      c.end(true);
    }
  });

  it('people acting on the main thread and devices written by the writer thread share the file without a lost write', async () => {
    const devices = await Promise.all([0, 1, 2, 3, 4].map(() => t.provision('locator')));
    const clients = await Promise.all(devices.map((d) => t.connectDevice(d.id, d.secret)));
    try {
      // each device raises an SOS; each incident is acknowledged as soon as it exists, while the devices keep sending
      await Promise.all(clients.map((c, i) => c.publishAsync(`devices/${devices[i]!.id}/events`, JSON.stringify({ ts: Date.now(), seq: 1, type: 'sos' }), { qos: 1 })));
      const telemetry = clients.map((c, i) => (async () => {
        for (let seq = 1; seq <= 15; seq++) {
          await c.publishAsync(`devices/${devices[i]!.id}/telemetry`, JSON.stringify({ ts: Date.now() + seq, seq, type: 'position', lat: 39.9 + seq / 1e4, lon: 116.4 }), { qos: 1 });
        }
      })());
      for (const d of devices) {
        const [inc] = await waitFor(() => (incidentsOf(t, d.id).length ? incidentsOf(t, d.id) : undefined), 'the incident');
        expect((await t.api('POST', `/api/incidents/${inc!.id}/acknowledge`)).status).toBe(200);
      }
      await Promise.all(telemetry);
      for (const d of devices) {
        expect(incidentsOf(t, d.id)).toMatchObject([{ type: 'sos', status: 'acknowledged' }]);
        const n = t.gw.store.sqlite.prepare("select count(*) n from observations where device_id = ? and type = 'position'").get(d.id) as { n: number };
        expect(n.n).toBe(15);
      }
      // the log is gap-free and in order: the events of both connections, one sequence
      const seqs = (t.gw.store.sqlite.prepare('select seq from incident_events order by seq').all() as { seq: number }[]).map((r) => r.seq);
      expect(new Set(seqs).size).toBe(seqs.length);
    } finally {
      for (const c of clients) c.end(true);
    }
  });

  it('no commit runs a checkpoint: the checkpointer thread copies the WAL back while the writer goes on', async () => {
    const db = t.gw.store.sqlite;
    expect(db.pragma('wal_autocheckpoint', { simple: true })).toBe(0);
    const { id, secret } = await t.provision('locator');
    const c = await t.connectDevice(id, secret);
    for (let seq = 1; seq <= 30; seq++) {
      await c.publishAsync(`devices/${id}/telemetry`, JSON.stringify({ ts: Date.now() + seq, seq, type: 'position', lat: 39.9 + seq / 1e3, lon: 116.4 }), { qos: 1 });
    }
    c.end(true);
    // within a few checkpointer ticks every frame of the log is back in the database file, with nothing else writing
    await waitFor(async () => {
      const log = await metricValue(t.gw, 'eldergate_wal_frames', { state: 'log' });
      const done = await metricValue(t.gw, 'eldergate_wal_frames', { state: 'checkpointed' });
      return log > 0 && done === log;
    }, 'the WAL checkpointed by the checkpointer thread', 10_000, 200);
  });

  it('the writer thread dying loses nothing acknowledged: what it had not answered is held for the new writer, which stores each alarm once', async () => {
    const { id, secret } = await t.provision('call-phone');
    // a terminal that reconnects on its own (the test helper's client gives up on its first error)
    const c = await terminal(t, id, secret, 100);
    let closes = 0;
    c.on('close', () => closes++);
    await writerRunning(t);
    const restartsBefore = await metricValue(t.gw, 'eldergate_internal_errors_total', { where: 'writer-thread' });
    const acked = new Set<number>();
    const sends: Promise<void>[] = [];
    for (let seq = 1; seq <= 30; seq++) {
      sends.push(new Promise<void>((resolve) => c.publish(`devices/${id}/events`, JSON.stringify({ ts: 1_700_000_000_000 + seq, seq, type: 'sos' }), { qos: 1 },
        (err) => { if (!err) acked.add(seq); resolve(); })));
      // mid-stream, the writer thread meets a message it cannot handle (a bug) and dies between two of its turns
      if (seq === 12) killWriter(t);
      await new Promise((r) => setTimeout(r, 5));
    }
    await waitFor(() => acked.size === 30 || undefined, 'every SOS acknowledged, held where the writer died', 20_000).catch((err: Error) => {
      // what to look at when it does not converge: which ones, whether the terminal is connected and still holds them
      const missing = Array.from({ length: 30 }, (_, i) => i + 1).filter((s) => !acked.has(s));
      const held = Object.keys((c as unknown as { outgoing: Record<string, unknown> }).outgoing);
      throw new Error(`${err.message}: unacknowledged ${missing.join(',')}; terminal connected ${c.connected}, holding packet ids ${held.join(',')}; stored ${sosRows(t, id).map((r) => r.seq).join(',')}; writer running ${t.gw.writer.running}`);
    });
    await Promise.all(sends);
    // each once: nothing acknowledged was lost, nothing resent was stored twice; one incident for them all
    expect(sosRows(t, id).map((r) => r.seq)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    expect(incidentsOf(t, id)).toMatchObject([{ type: 'sos', status: 'open' }]);
    expect(await metricValue(t.gw, 'eldergate_internal_errors_total', { where: 'writer-thread' })).toBe(restartsBefore + 1);
    // the restart cost the terminal a late PUBACK, not its connection (a reconnect would have resent, and mqtt.js
    // fails what it queued behind a resend when that connection closes too)
    expect(closes).toBe(0);
    expect(await metricValue(t.gw, 'eldergate_ingest_queue', { queue: 'held' })).toBe(0);
    // the new writer knows who is connected, and works for everyone
    expect((await t.api('GET', `/api/devices/${id}`)).body.live.online).toBe(true);
    const other = await t.provision('call-phone');
    const c2 = await t.connectDevice(other.id, other.secret);
    await c2.publishAsync(`devices/${other.id}/events`, JSON.stringify({ ts: Date.now(), seq: 1, type: 'sos' }), { qos: 1 });
    expect(incidentsOf(t, other.id)).toMatchObject([{ type: 'sos' }]);
    c.end(true);
    c2.end(true);
  }, 40_000);

  it('an SOS without a key that the dying thread had committed, unanswered, is answered by the next one as a duplicate', async () => {
    const { id, secret } = await t.provision('call-phone');
    const c = await t.connectDevice(id, secret);
    let closes = 0;
    c.on('close', () => closes++);
    // the answer is lost: the thread commits, and dies before its answer is read (here, answers are not read)
    await writerRunning(t);
    const writer = t.gw.writer as unknown as { worker: Worker; onMessage(m: { op: string }): void };
    const read = writer.onMessage;
    let lose = true;
    writer.onMessage = function (m) { if (lose && m.op === 'result') return; read.call(this, m); };
    try {
      let acked = false;
      // keyless: no seq, no ts (dedup can only go by the MQTT packet id and session)
      c.publish(`devices/${id}/events`, JSON.stringify({ type: 'sos' }), { qos: 1 }, (err) => { if (!err) acked = true; });
      await waitFor(() => (sosCount(t, id) === 1 ? true : undefined), 'the SOS committed');
      // answers are lost until the thread is gone: its answer, read after the commit was seen, would come from it
      const dying = killWriter(t);
      await new Promise((r) => dying.once('exit', r));
      lose = false;
      await waitFor(() => acked || undefined, 'the SOS acknowledged by the next thread', 20_000);
    } finally {
      lose = false;
      writer.onMessage = read;
    }
    // handed on as a resend: the next thread found it stored and answered it as a duplicate
    expect(sosCount(t, id)).toBe(1);
    expect(incidentsOf(t, id)).toHaveLength(1);
    expect(closes).toBe(0);
    c.end(true);
  }, 40_000);

  it('incident events the dying thread committed and never reported reach the bus once, though this thread published a later one', async () => {
    const { id, secret } = await t.provision('call-phone');
    const c = await t.connectDevice(id, secret);
    await writerRunning(t);
    const writer = t.gw.writer as unknown as { worker: Worker; onMessage(m: { op: string }): void };
    const read = writer.onMessage;
    let lose = true;
    // the thread commits the SOS and its incident, and its reports of them are never read
    writer.onMessage = function (m) { if (lose && (m.op === 'result' || m.op === 'committed')) return; read.call(this, m); };
    const onBus: { seq: number; incidentId: string; type: string }[] = [];
    const listen = (e: { seq: number; incidentId: string; type: string }) => { onBus.push({ seq: e.seq, incidentId: e.incidentId, type: e.type }); };
    t.gw.bus.on('incident-event', listen);
    try {
      c.publish(`devices/${id}/events`, JSON.stringify({ ts: Date.now(), seq: 1, type: 'sos' }), { qos: 1 });
      const [sos] = await waitFor(() => (incidentsOf(t, id).length === 1 ? incidentsOf(t, id) : undefined), 'the SOS incident committed');
      // meanwhile this thread commits and publishes events of its own, with later seqs: a storage incident, opened and
      // resolved (core/storage-health.ts writes it on this thread's connection)
      t.gw.storage.failed('test', Object.assign(new Error('disk I/O error (a test)'), { code: 'SQLITE_IOERR' }));
      t.gw.storage.succeeded();
      const own = await waitFor(() => onBus.filter((e) => e.incidentId !== sos!.id && e.type === 'opened').at(-1), 'the storage incident on the bus');
      expect(own.seq).toBeGreaterThan(Math.min(...(t.gw.store.sqlite.prepare('select seq from incident_events where incident_id = ?').all(sos!.id) as { seq: number }[]).map((r) => r.seq)));
      expect(onBus.filter((e) => e.incidentId === sos!.id)).toEqual([]);
      const dying = killWriter(t);
      await new Promise((r) => dying.once('exit', r));
      lose = false;
      await waitFor(() => onBus.some((e) => e.incidentId === sos!.id && e.type === 'opened') || undefined, 'the SOS incident\'s opening on the bus', 20_000);
      await writerRunning(t);
      // each event once: the SOS's from the catch-up, this thread's own not again
      const seqs = onBus.map((e) => e.seq);
      expect(new Set(seqs).size).toBe(seqs.length);
      expect(onBus.filter((e) => e.incidentId === sos!.id && e.type === 'opened')).toHaveLength(1);
    } finally {
      lose = false;
      writer.onMessage = read;
      t.gw.bus.off('incident-event', listen);
      c.end(true);
    }
  }, 40_000);

  it('/metrics names the main and writer threads by Linux thread id (for top -H or taskset -p), and a replacement by its own', async () => {
    await writerRunning(t);
    const threads = async () => {
      const out: Record<string, string[]> = {};
      for (const [, thread, tid] of (await t.gw.writer.metricsText()).matchAll(/^eldergate_thread_info\{thread="(\w+)",tid="(\d+)"\} 1$/gm)) {
        (out[thread!] ??= []).push(tid!);
      }
      return out;
    };
    const before = await threads();
    expect(Object.keys(before).sort()).toEqual(['main', 'writer']);
    const [main] = before.main!;
    const [writer] = before.writer!;
    // threads of this process, two different ones
    expect(existsSync(`/proc/self/task/${main}`)).toBe(true);
    expect(existsSync(`/proc/self/task/${writer}`)).toBe(true);
    expect(writer).not.toBe(main);
    killWriter(t);
    await waitFor(async () => ((await threads()).writer?.[0] !== writer && t.gw.writer.running) || undefined, 'the new writer thread named', 20_000);
    const after = await threads();
    expect(after.main).toEqual([main]);
    expect(after.writer).toHaveLength(1);
    expect(existsSync(`/proc/self/task/${after.writer![0]}`)).toBe(true);
  });

  it('two deaths in one stream: the terminal stays connected and every SOS is stored once', async () => {
    await writerRunning(t);
    const restartsBefore = await metricValue(t.gw, 'eldergate_internal_errors_total', { where: 'writer-thread' });
    const { id, secret } = await t.provision('call-phone');
    const c = await terminal(t, id, secret, 100);
    let closes = 0;
    c.on('close', () => closes++);
    const acked = new Set<number>();
    const failed: string[] = [];
    const kill = () => killWriter(t);
    for (let seq = 1; seq <= 60; seq++) {
      c.publish(`devices/${id}/events`, JSON.stringify({ ts: 1_700_000_000_000 + seq, seq, type: 'sos' }), { qos: 1 },
        (err) => { if (err) failed.push(`${seq}: ${err.message}`); else acked.add(seq); });
      // the first writer dies mid-stream; once the new one has answered what was held, it dies too. Before holding, a
      // death while the terminal was resending into a writer still starting closed its connection again, and mqtt.js
      // failed what it had queued behind the resends ("Connection closed"): never sent again
      if (seq === 12) kill();
      if (seq === 30) {
        await waitFor(() => acked.size === 30 || undefined, 'the first 30 answered by the second writer', 20_000);
        kill();
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    await waitFor(() => acked.size + failed.length === 60 || undefined, 'an answer for every SOS', 20_000);
    expect(failed).toEqual([]);
    expect(closes).toBe(0);
    expect(sosRows(t, id).map((r) => r.seq)).toEqual(Array.from({ length: 60 }, (_, i) => i + 1));
    expect(await metricValue(t.gw, 'eldergate_internal_errors_total', { where: 'writer-thread' })).toBe(restartsBefore + 2);
    c.end(true);
  }, 40_000);
});

// On a gateway of its own: a person's action while the writer restarts is refused, unlike a device's observation.
describe('the writer thread replaced while people act', () => {
  let t: TestGateway;
  beforeAll(async () => { t = await startTestGateway(); });
  afterAll(async () => t.stop());


  it('while the writer thread is replaced, a person\'s action is answered 503 "try again", then works', async () => {
    const { id, secret } = await t.provision('call-phone');
    const c = await t.connectDevice(id, secret);
    await c.publishAsync(`devices/${id}/events`, JSON.stringify({ ts: Date.now(), seq: 1, type: 'sos' }), { qos: 1 });
    c.end(true);
    const [inc] = await waitFor(() => (incidentsOf(t, id).length ? incidentsOf(t, id) : undefined), 'the incident');
    // the writer thread dies (a bug) and a new one starts: the acknowledgement sent meanwhile is not lost silently,
    // nor reported as an internal error; the console is told to try again
    killWriter(t);
    const refused = await fetch(`${t.http}/api/incidents/${inc!.id}/acknowledge`, { method: 'POST', headers: { authorization: `Bearer ${await t.token()}` } });
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('2');
    expect(((await refused.json()) as { message: string }).message).toMatch(/writer .*(restarting|stopped before answering)/);
    await waitFor(() => t.gw.writer.running || undefined, 'a new writer thread', 20_000);
    const again = await t.api('POST', `/api/incidents/${inc!.id}/acknowledge`);
    // 200, or 409 if the first one had been committed before the thread died: either way it is acknowledged once
    expect([200, 409]).toContain(again.status);
    expect(incidentsOf(t, id)).toMatchObject([{ status: 'acknowledged' }]);
    const acks = t.gw.store.sqlite.prepare("select count(*) n from incident_events where incident_id = ? and type = 'acknowledged'").get(inc!.id) as { n: number };
    expect(acks.n).toBe(1);
  });

  it('"help is coming" reaches the device when the writer thread dies as the acknowledgement is published: asked again, stored once', async () => {
    const { id, secret } = await t.provision('call-phone');
    const c = await t.connectDevice(id, secret);
    const received: string[] = [];
    c.on('message', (_topic, payload) => received.push((JSON.parse(payload.toString()) as { type: string }).type));
    await c.subscribeAsync(`devices/${id}/commands`, { qos: 1 });
    await c.publishAsync(`devices/${id}/events`, JSON.stringify({ ts: Date.now(), seq: 1, type: 'sos' }), { qos: 1 });
    const [inc] = await waitFor(() => (incidentsOf(t, id).length ? incidentsOf(t, id) : undefined), 'the incident');
    // the writer thread dies as the acknowledgement is published: the command asked of it in that turn goes with it
    const kill = (e: { incidentId: string; type: string }) => {
      if (e.incidentId === inc!.id && e.type === 'acknowledged') killWriter(t);
    };
    t.gw.bus.on('incident-event', kill);
    try {
      expect((await t.api('POST', `/api/incidents/${inc!.id}/acknowledge`)).status).toBe(200);
    } finally {
      t.gw.bus.off('incident-event', kill);
    }
    await waitFor(() => received.includes('acknowledge-alarm') || undefined, 'help is coming, at the device', 30_000);
    expect(t.gw.store.sqlite.prepare("select count(*) n from commands where incident_id = ? and type = 'acknowledge-alarm'").get(inc!.id)).toEqual({ n: 1 });
    await waitFor(() => ((t.gw.store.sqlite.prepare("select count(*) n from incident_events where incident_id = ? and type = 'command-sent'").get(inc!.id) as { n: number }).n === 1 || undefined), 'command-sent on the timeline');
    c.end(true);
  }, 60_000);
});

describe('a writer thread that takes long to replace', () => {
  let t: TestGateway;
  // a short hold, so that a restart slowed by the back-off outlasts it
  beforeAll(async () => { t = await startTestGateway({ ingest: { writerRestartHoldMs: 300 } }); });
  afterAll(async () => t.stop());

  it('a message held longer than ingest.writerRestartHoldMs is refused (the connection closes); resent, it is stored once', async () => {
    const { id, secret } = await t.provision('call-phone');
    const c = await terminal(t, id, secret, 100);
    const closedAt: { at: number; writerRunning: boolean }[] = [];
    c.on('close', () => closedAt.push({ at: Date.now(), writerRunning: t.gw.writer.running }));
    // the next writer thread comes after 2 s, far longer than the hold
    await slowRestart(t);
    const sentAt = Date.now();
    let ackedAt = 0;
    c.publish(`devices/${id}/events`, JSON.stringify({ ts: Date.now(), seq: 1, type: 'sos' }), { qos: 1 }, (err) => { if (!err) ackedAt = Date.now(); });
    await waitFor(() => ackedAt || undefined, 'the SOS acknowledged once a writer runs again', 20_000);
    // refused by the bound, while no writer ran, not before it
    expect(closedAt.length).toBeGreaterThanOrEqual(1);
    expect(closedAt[0]!.writerRunning).toBe(false);
    expect(closedAt[0]!.at - sentAt).toBeGreaterThanOrEqual(290);
    const rows = t.gw.store.sqlite.prepare("select seq from observations where device_id = ? and type = 'sos'").all(id);
    expect(rows).toEqual([{ seq: 1 }]);
    c.end(true);
  }, 40_000);
});

// On a gateway of its own: the restart back-off (0, 500 ms, 2 s, 5 s) starts again only after a thread ran a minute,
// and this test times a failed start's restart against its first steps.
describe('a writer thread that dies while it starts', () => {
  let t: TestGateway;
  beforeAll(async () => { t = await startTestGateway(); });
  afterAll(async () => t.stop());

  it('a new writer thread dying while it starts is replaced once, and what was held reaches the one that runs', async () => {
    const { id, secret } = await t.provision('call-phone');
    const c = await t.connectDevice(id, secret);
    const writer = t.gw.writer as unknown as { worker: Worker; spawned: number };
    const first = writer.worker;
    const spawnedBefore = writer.spawned;
    first.postMessage(null);
    // the replacement is started at once (no back-off for a first death): it dies before it says it is ready (a
    // message would wait on its port until it is)
    await waitFor(() => (writer.worker !== first ? true : undefined), 'a replacement thread', 5_000);
    const starting = writer.worker;
    expect(t.gw.writer.running).toBe(false);
    void starting.terminate();
    const acked = c.publishAsync(`devices/${id}/events`, JSON.stringify({ ts: Date.now(), seq: 1, type: 'sos' }), { qos: 1 });
    await waitFor(() => t.gw.writer.running || undefined, 'a writer thread that runs', 20_000);
    await acked;
    expect(sosRows(t, id)).toEqual([{ seq: 1 }]);
    // and stays the one: a failed start was once restarted twice, and the second thread, started after the back-off
    // (2 s), took the first one's place while it still ran — two writers on one database
    const running = writer.worker;
    expect(running).not.toBe(starting);
    await new Promise((r) => setTimeout(r, 3000));
    expect(writer.worker).toBe(running);
    expect(writer.spawned - spawnedBefore).toBe(2);
    expect(incidentsOf(t, id)).toMatchObject([{ type: 'sos', status: 'open' }]);
    c.end(true);
  }, 40_000);
  it('after a long run, a death restarts at once, but a failed start backs off; each is counted', async () => {
    const writer = t.gw.writer as unknown as { worker: Worker; upSince: number; spawned: number };
    // this thread has run for two minutes (the back-off starts again after one)
    writer.upSince = Date.now() - 120_000;
    const errorsBefore = await metricValue(t.gw, 'eldergate_internal_errors_total', { where: 'writer-thread' });
    const first = writer.worker;
    first.postMessage(null);
    await waitFor(() => (writer.worker !== first ? true : undefined), 'a replacement at once', 5_000);
    const starting = writer.worker;
    expect(t.gw.writer.running).toBe(false);
    // taken before the thread ends: the back-off runs from its death, which the client may see before this test's
    // await returns (on a loaded machine 220 ms before, once)
    const failedAt = Date.now();
    await starting.terminate();
    // its failed start is not taken for a long run: the next one waits the back-off (500 ms), not 0
    await waitFor(() => (writer.worker !== starting ? true : undefined), 'the next replacement', 10_000);
    expect(Date.now() - failedAt).toBeGreaterThanOrEqual(450);
    await waitFor(() => t.gw.writer.running || undefined, 'a writer thread that runs', 20_000);
    expect(await metricValue(t.gw, 'eldergate_internal_errors_total', { where: 'writer-thread' })).toBe(errorsBefore + 2);
  }, 40_000);
});

// On a gateway of its own, for the same reason as above.
describe('telemetry held while the writer thread is replaced', () => {
  let t: TestGateway;
  beforeAll(async () => { t = await startTestGateway(); });
  afterAll(async () => t.stop());

  it('never takes an alarm\'s place: beyond its own bound telemetry is refused, an SOS is still held and stored', async () => {
    // aedes reads a connection's next message only once the one before is answered: at most one is held per
    // connection, so the bound (2,000 in service) is lowered here to meet it with a few watches
    const writer = t.gw.writer as unknown as { worker: Worker; holdTelemetryLimit: number };
    writer.holdTelemetryLimit = 10;
    const watches = await Promise.all(Array.from({ length: 15 }, async () => {
      const { id, secret } = await t.provision('locator');
      const c = await terminal(t, id, secret, 0);
      return { id, c };
    }));
    const caller = await t.provision('call-phone');
    const phone = await terminal(t, caller.id, caller.secret, 0);
    let phoneClosed = false;
    phone.on('close', () => { phoneClosed = true; });
    // the next writer thread comes after 2 s
    await slowRestart(t);
    // 15 QoS 1 positions meet the bound for telemetry held: 10 are held, 5 refused (their connections close) ...
    // (a refused one gets no PUBACK: its connection is closed, and the client keeps it to resend)
    const outcome = { stored: 0, refused: 0 };
    const closed = () => outcome.refused++;
    for (const { id, c } of watches) {
      c.once('close', closed);
      c.publish(`devices/${id}/telemetry`, JSON.stringify({ ts: Date.now(), seq: 1, type: 'position', lat: 39.9, lon: 116.4 }), { qos: 1 },
        (err) => { if (!err) outcome.stored++; });
    }
    await waitFor(async () => ((await metricValue(t.gw, 'eldergate_ingest_queue', { queue: 'held' })) >= 10 || undefined), 'telemetry held up to its bound', 5_000);
    expect(t.gw.writer.running).toBe(false);
    // ... and the SOS that comes after them is held all the same, and stored by the writer that comes
    await phone.publishAsync(`devices/${caller.id}/events`, JSON.stringify({ ts: Date.now(), seq: 1, type: 'sos' }), { qos: 1 });
    expect(phoneClosed).toBe(false);
    expect(t.gw.store.sqlite.prepare("select seq from observations where device_id = ? and type = 'sos'").all(caller.id)).toEqual([{ seq: 1 }]);
    await waitFor(() => outcome.stored + outcome.refused === 15 || undefined, 'an answer for every position', 10_000);
    for (const { c } of watches) {
      c.off('close', closed);
      c.end(true);
    }
    phone.end(true);
    expect(outcome).toEqual({ stored: 10, refused: 5 });
  }, 40_000);
});

/**
 * The writer thread dies, and its next two replacements die while starting: with the restart back-off (0, 500 ms,
 * 2 s) the one after them comes 2 s later. Resolves at the start of those 2 s, with no writer running.
 */
async function slowRestart(t: TestGateway): Promise<void> {
  const writer = t.gw.writer as unknown as { worker: Worker };
  const first = writer.worker;
  first.postMessage(null);
  let dying = first;
  for (let i = 0; i < 2; i++) {
    await waitFor(() => (writer.worker !== dying ? true : undefined), 'a replacement thread', 10_000);
    expect(t.gw.writer.running).toBe(false);
    dying = writer.worker;
    // resolves once it has exited (and the gateway has seen it go)
    await dying.terminate();
  }
  expect(t.gw.writer.running).toBe(false);
}

/**
 * The running writer thread meets a message it cannot handle and dies. Only a running one: posted to a thread that
 * already died (its replacement not yet started), the message is dropped, and the test would kill nothing.
 */
function killWriter(t: TestGateway): Worker {
  if (!t.gw.writer.running) throw new Error('no writer thread is running to be killed');
  const worker = (t.gw.writer as unknown as { worker: Worker }).worker;
  worker.postMessage(null);
  return worker;
}

/** a writer thread runs (one killed by the test before has been replaced) */
const writerRunning = (t: TestGateway) => waitFor(() => t.gw.writer.running || undefined, 'a writer thread running', 20_000);

const sosRows = (t: TestGateway, deviceId: string) =>
  t.gw.store.sqlite.prepare("select seq from observations where device_id = ? and type = 'sos' order by seq").all(deviceId) as { seq: number }[];
const sosCount = (t: TestGateway, deviceId: string) =>
  (t.gw.store.sqlite.prepare("select count(*) n from observations where device_id = ? and type = 'sos'").get(deviceId) as { n: number }).n;
const incidentsOf = (t: TestGateway, deviceId: string) =>
  t.gw.store.sqlite.prepare('select id, type, status from incidents where device_id = ?').all(deviceId) as { id: string; type: string; status: string }[];

/** a terminal that reconnects on its own every `reconnectPeriod` ms (0: never); the test helper's client gives up on its first error */
async function terminal(t: TestGateway, id: string, secret: string, reconnectPeriod: number): Promise<mqtt.MqttClient> {
  const c = mqtt.connect(t.mqttUrl, { clientId: id, username: id, password: secret, reconnectPeriod, protocolVersion: 4 });
  c.on('error', () => {});
  await new Promise((r) => c.once('connect', r));
  return c;
}
