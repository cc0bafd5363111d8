// Figure 3 beyond the file-descriptor limit: eldergate (or raw aedes) in this very process, its broker fed with
// in-memory duplex streams (`aedes.handle(stream)`) instead of sockets, so 50k–100k devices fit in one process.
// What it measures is the broker's and gateway's own cost per connected device — no kernel socket buffers — and
// it says so in the report. The simulated side is kept minimal (one stream object and a counter per device) and its
// own cost is measured first and subtracted.
import { Duplex } from 'node:stream';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import mqttPacket from 'mqtt-packet';
import { Aedes } from 'aedes';
import { serve } from '../lib/ipc.js';
import { encodePublish } from '../lib/mqtt-lite.js';
import { summarize, type LatencySummary } from '../lib/stats.js';
import { loadConfig } from '../../core/config.js';
import { createLogger } from '../../core/logger.js';
import { startEldergate, type Eldergate } from '../../eldergate.js';
import { guardConnection } from '../../gateway/broker/guard.js';
import { fakeCreds, type Cred } from '../lib/creds.js';

/** one end of an in-memory pipe: what is written here is read at the other end */
class End extends Duplex {
  peer: End | null = null;
  override _read(): void {}
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.peer?.push(chunk);
    cb();
  }
  override _final(cb: () => void): void {
    this.peer?.push(null);
    cb();
  }
  override _destroy(err: Error | null, cb: (err: Error | null) => void): void {
    const p = this.peer;
    this.peer = null;
    if (p && !p.destroyed) p.destroy();
    cb(err);
  }
}

function pair(): [End, End] {
  const a = new End();
  const b = new End();
  a.peer = b;
  b.peer = a;
  return [a, b];
}

interface Sim {
  end: End;
  id: string;
  seq: number;
}

export interface InMemStep {
  devices: number;
  connected: number;
  connectMs: number;
  rssPerDeviceKiB: number;
  heapPerDeviceKiB: number;
  harnessPerDeviceKiB: number;
  cpuPctSteady: number;
  heartbeatsPerS: number;
  eldMaxMs: number;
  gcMaxMs: number;
  gcMajorMaxMs: number;
  p1: LatencySummary | null;
}

const gc = (globalThis as { gc?: () => void }).gc;
const settle = async () => {
  for (let i = 0; i < 3; i++) {
    gc?.();
    await new Promise((r) => setTimeout(r, 50));
  }
};
const mem = () => process.memoryUsage();
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

serve({
  async run(a: { system: 'eldergate' | 'raw-aedes'; counts: number[]; heartbeatMs: number; steadyMs: number; probeRatePerS: number }) {
    if (!gc) throw new Error('start the in-memory figure with --expose-gc (bench/lib does)');
    // 1. the harness's own cost per device: the same stream pair and record, with nothing behind it
    await settle();
    const h0 = mem().heapUsed;
    const calib: Sim[] = [];
    for (let i = 0; i < 5000; i++) {
      const [c, s] = pair();
      s.on('data', () => undefined);
      calib.push({ end: c, id: `cp-cal${i}`, seq: 0 });
    }
    await settle();
    const harnessPerDevice = (mem().heapUsed - h0) / 5000;
    calib.length = 0;
    await settle();

    // 2. the system under test in this process
    const dataDir = mkdtempSync(join(tmpdir(), 'eldergate-inmem-'));
    let gw: Eldergate | null = null;
    let aedes: Aedes;
    let attach: (server: End) => void;
    const max = Math.max(...a.counts);
    let creds: Cred[];
    const alarmsAt = new Map<string, number>();
    const p1: number[] = [];
    const incidents = new Map<string, string>();
    if (a.system === 'eldergate') {
      const config = loadConfig({}, {
        dataDir, adminPassword: 'bench-' + randomBytes(8).toString('hex'), logLevel: 'warn',
        mqtt: { port: 0, host: '127.0.0.1', maxConnections: max + 1000, maxConnectionsPerAddress: max + 1000 },
        http: { port: 0, host: '127.0.0.1' },
      });
      gw = await startEldergate({ config, log: createLogger('warn') });
      aedes = gw.broker!.aedes;
      const g = gw;
      // provisioned in-process, in the registry's own bulk path
      creds = [];
      for (let i = 0; i < max + 20; i += 5000) {
        const batch = Array.from({ length: Math.min(5000, max + 20 - i) }, (_, k) => ({ serial: `INMEM-${i + k}`, kind: 'call-phone' as const }));
        for (const { device, secret } of g.registry.provisionMany(batch)) creds.push({ id: device.id, secret, kind: device.kind });
      }
      attach = (server) => {
        const client = aedes.handle(server as never);
        guardConnection(client, server as never, { maxPacketBytes: config.mqtt.maxPacketBytes, maxPreConnectBytes: config.mqtt.maxPreConnectBytes, onRefuse: () => undefined });
      };
      // P1 in-process: publish → incident event committed and on the bus (the WebSocket's source)
      g.bus.on('incident-event', (e) => {
        const d = (e.data ?? {}) as { deviceId?: string };
        if (d.deviceId) incidents.set(e.incidentId, d.deviceId);
        if (e.type !== 'opened' && e.type !== 'joined') return;
        const id = d.deviceId ?? incidents.get(e.incidentId);
        const t0 = id ? alarmsAt.get(id) : undefined;
        if (id && t0 !== undefined) {
          alarmsAt.delete(id);
          p1.push(performance.now() - t0);
        }
      });
    } else {
      aedes = await Aedes.createBroker({});
      creds = fakeCreds(max + 20, 'mem');
      attach = (server) => void aedes.handle(server as never);
      aedes.on('publish', (packet, client) => {
        if (!client || !packet.topic.endsWith('/events')) return;
        const id = packet.topic.split('/')[1]!;
        const t0 = alarmsAt.get(id);
        if (t0 !== undefined) {
          alarmsAt.delete(id);
          p1.push(performance.now() - t0);
        }
      });
    }
    const probeCreds = creds.slice(max);
    const fleetCreds = creds.slice(0, max);
    await settle();
    const base = mem();

    const sims: Sim[] = [];
    let connacks = 0;
    const connectOne = (cred: Cred, again?: Sim): Sim => {
      const [c, s] = pair();
      const sim: Sim = again ?? { end: c, id: cred.id, seq: 0 };
      sim.end = c;
      // the first four bytes from the broker are the CONNACK (aedes may write them one by one); the return code is
      // the fourth. Everything after it (PINGRESP, PUBACK) is ignored.
      let seen = 0;
      let ok = true;
      c.on('data', (b: Buffer) => {
        for (let i = 0; i < b.length && seen < 4; i++, seen++) {
          if (seen === 0 && b[i] !== 0x20) ok = false;
          if (seen === 3 && ok && b[i] === 0) connacks++;
          // refused (eldergate's admission control answers "server unavailable" beyond its CONNECTs in progress):
          // the device comes back a little later, as the firmware does
          else if (seen === 3 && ok) {
            c.destroy();
            setTimeout(() => connectOne(cred, sim), 20 + Math.random() * 80);
          }
        }
      });
      c.on('error', () => undefined);
      attach(s);
      c.write(mqttPacket.generate({
        cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: cred.id, username: cred.id,
        password: Buffer.from(cred.secret), keepalive: 120,
      } as never));
      return sim;
    };
    const probes = probeCreds.map((c) => connectOne(c));
    const steps: InMemStep[] = [];
    for (const count of [...a.counts].sort((x, y) => x - y)) {
      const t0 = performance.now();
      const want = count + probes.length;
      while (sims.length < count) {
        // in slices of 100 with at most ~200 in progress, so aedes' connect pipeline keeps up, the loop stays
        // responsive, and eldergate's admission control (mqtt.maxConnectsInProgress) is not what is measured
        const upto = Math.min(count, sims.length + 100);
        while (sims.length < upto) sims.push(connectOne(fleetCreds[sims.length]!));
        const until = performance.now() + 60_000;
        while (connacks < sims.length + probes.length - 100 && performance.now() < until) await sleep(5);
      }
      const until = performance.now() + 120_000;
      while (connacks < want && performance.now() < until) await sleep(20);
      const connectMs = performance.now() - t0;

      // heartbeats with spread phases, and a few P1 alarms, over the steady window
      const tickMs = 100;
      let cursor = 0;
      let beats = 0;
      const hb = setInterval(() => {
        const per = Math.max(1, Math.round((sims.length * tickMs) / a.heartbeatMs));
        const now = Date.now();
        for (let k = 0; k < per; k++) {
          const s = sims[cursor++ % sims.length]!;
          s.seq++;
          s.end.write(encodePublish(`devices/${s.id}/telemetry`, `{"ts":${now},"seq":${s.seq},"type":"heartbeat","battery":90}`, 0, 0));
          beats++;
        }
      }, tickMs);
      let pi = 0;
      const alarmTimer = setInterval(() => {
        const s = probes[pi++ % probes.length]!;
        if (alarmsAt.has(s.id)) return;
        s.seq++;
        alarmsAt.set(s.id, performance.now());
        s.end.write(encodePublish(`devices/${s.id}/events`, `{"ts":${Date.now()},"seq":${s.seq},"type":"sos"}`, 1, (s.seq % 60000) + 1));
      }, Math.max(5, Math.round(1000 / Math.max(1, a.probeRatePerS))));
      p1.length = 0;
      await sleep(Math.min(2000, a.steadyMs / 4)); // warm-up
      p1.length = 0;
      const eld = (await import('node:perf_hooks')).monitorEventLoopDelay({ resolution: 10 });
      eld.enable();
      let gcMax = 0;
      let gcMajorMax = 0;
      const { PerformanceObserver, constants } = await import('node:perf_hooks');
      const obs = new PerformanceObserver((list) => {
        for (const e of list.getEntries()) {
          gcMax = Math.max(gcMax, e.duration);
          if ((e as unknown as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) gcMajorMax = Math.max(gcMajorMax, e.duration);
        }
      });
      obs.observe({ entryTypes: ['gc'] });
      const cpu0 = process.cpuUsage();
      const w0 = performance.now();
      const b0 = beats;
      await sleep(a.steadyMs);
      const cpu = process.cpuUsage(cpu0);
      const wall = performance.now() - w0;
      const beatsInWindow = beats - b0;
      clearInterval(hb);
      clearInterval(alarmTimer);
      obs.disconnect();
      eld.disable();
      const p1Summary = p1.length ? summarize(p1) : null;
      await sleep(200);
      await settle();
      const m = mem();
      const n = sims.length + probes.length;
      steps.push({
        devices: sims.length,
        connected: connacks,
        connectMs,
        rssPerDeviceKiB: (m.rss - base.rss) / n / 1024,
        heapPerDeviceKiB: ((m.heapUsed - base.heapUsed) / n - harnessPerDevice) / 1024,
        harnessPerDeviceKiB: harnessPerDevice / 1024,
        // the simulated side's CPU (writing heartbeats) is counted here too: it is small next to the broker's
        cpuPctSteady: (100 * (cpu.user + cpu.system) / 1000) / wall,
        heartbeatsPerS: (beatsInWindow * 1000) / wall,
        eldMaxMs: eld.max / 1e6,
        gcMaxMs: gcMax,
        gcMajorMaxMs: gcMajorMax,
        p1: p1Summary,
      });
    }
    for (const s of [...sims, ...probes]) s.end.destroy();
    if (gw) await gw.close();
    else await new Promise<void>((r) => aedes.close(() => r()));
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(`${dataDir}-keys`, { recursive: true, force: true }); // the token-signing key beside it
    return { system: a.system, steps, heapLimitMiB: Math.round((await import('node:v8')).getHeapStatistics().heap_size_limit / 2 ** 20) };
  },
});
