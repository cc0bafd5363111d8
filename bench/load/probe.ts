// P1 latency probe, in its own process: a few terminals send SOS alarms (QoS 1) and a console in the same
// process waits for each one to show up — as an incident frame on the WebSocket (eldergate, Mosquitto + subscriber)
// or as the MQTT message itself (raw aedes, publish → subscriber). Sender and console share one clock, so the
// latency is `performance.now()` at publish() to the frame's arrival. One alarm in flight per device, so a frame
// can be matched to its alarm by device without touching the payload.
import WebSocket from 'ws';
import { serve } from '../lib/ipc.js';
import { LiteClient, type TcpTarget } from '../lib/mqtt-lite.js';
import type { Cred } from '../lib/creds.js';
import { runQueueWaitMs, threadSched, waitPerWakeMs } from '../lib/sched.js';

export type Observer =
  | {
      kind: 'ws'; url: string; token: string; since: number;
      /** incident → device, learned by earlier consoles: a `joined` frame names only the incident */
      incidents?: [string, string][];
    }
  | { kind: 'mqtt'; host: string; port: number };

export interface ProbeArgs {
  target: TcpTarget;
  devices: Cred[];
  observer: Observer;
  ratePerS: number;
  durationMs: number;
  warmupMs: number;
  /** the P1 push budget: later than this is counted late */
  budgetMs: number;
  /** no frame after this long: counted lost */
  lostAfterMs: number;
}

export interface ProbeResult {
  latencies: number[];
  pubacks: number[];
  sent: number;
  delivered: number;
  late: number;
  lost: number;
  skipped: number;
  lastSeq: number;
  unmatchedFrames: number;
  incidents: [string, string][];
  /** this process's own run-queue wait over its sending window, ms per second: a probe kept from its CPU times late */
  waitMsPerS: number;
  /** its main thread's mean run-queue wait per wake-up over the run, ms (what a timestamp can be late by) */
  waitPerWakeMs: number | null;
  /** the console's WebSocket ended during the run (the server closed it, or it failed): how */
  observerClosed: string | null;
}

interface Out {
  t0: number;
  measured: boolean;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Pull (deviceId, type, seq) out of an incident frame, whatever envelope docs/websocket.md settles on. */
function readFrame(raw: string, incidents: Map<string, string>): { deviceId?: string; delivery: boolean; seq?: number; ack?: unknown } {
  let m: Record<string, unknown>;
  try {
    m = JSON.parse(raw) as Record<string, unknown>;
  } catch {
    return { delivery: false };
  }
  const ev = ((m.event && typeof m.event === 'object' ? m.event : m) as Record<string, unknown>);
  const data = (ev.data && typeof ev.data === 'object' ? ev.data : {}) as Record<string, unknown>;
  const incidentId = typeof ev.incidentId === 'string' ? ev.incidentId : undefined;
  let deviceId = typeof data.deviceId === 'string' ? data.deviceId : typeof ev.deviceId === 'string' ? ev.deviceId : undefined;
  if (incidentId && deviceId) incidents.set(incidentId, deviceId);
  if (!deviceId && incidentId) deviceId = incidents.get(incidentId);
  const seq = typeof ev.seq === 'number' ? ev.seq : typeof m.seq === 'number' ? m.seq : undefined;
  // incident frames (docs/websocket.md: {type:'incident', seq, event}); an alarm is delivered as opened or joined
  const delivery = (m.type === 'incident' || m.type === undefined || m.type === ev.type) && (ev.type === 'opened' || ev.type === 'joined');
  return { ...(deviceId ? { deviceId } : {}), delivery, ...(seq !== undefined ? { seq } : {}) };
}

serve({
  async run(a: ProbeArgs): Promise<ProbeResult> {
    const outstanding = new Map<string, Out>();
    const latencies: number[] = [];
    const pubacks: number[] = [];
    let delivered = 0;
    let late = 0;
    let lost = 0;
    let lastSeq = a.observer.kind === 'ws' ? a.observer.since : 0;
    let unmatchedFrames = 0;
    const arrived = (deviceId: string) => {
      const o = outstanding.get(deviceId);
      if (!o) return false;
      const ms = performance.now() - o.t0;
      outstanding.delete(deviceId);
      if (!o.measured) return true;
      delivered++;
      latencies.push(ms);
      if (ms > a.budgetMs) late++;
      return true;
    };

    // the console first, so nothing is missed
    let closeObserver: () => void;
    let observerClosed: string | null = null;
    /** the probe itself is closing its console: what follows is not the server's doing */
    let ending = false;
    let learned = new Map<string, string>();
    if (a.observer.kind === 'ws') {
      const o = a.observer;
      const incidents = new Map<string, string>(o.incidents ?? []);
      learned = incidents;
      const ws = new WebSocket(o.url, ['eldergate.v1'], { headers: { authorization: `Bearer ${o.token}` }, perMessageDeflate: false });
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`console WebSocket ${o.url} did not open in 10 s`)), 10_000);
        ws.once('open', () => {
          clearTimeout(t);
          resolve();
        });
        ws.once('unexpected-response', (_req, res) => {
          clearTimeout(t);
          reject(new Error(`console WebSocket ${o.url} answered HTTP ${res.statusCode}`));
        });
        ws.once('error', (err) => {
          clearTimeout(t);
          reject(err);
        });
      });
      (ws as unknown as { _socket?: { setNoDelay(b: boolean): void } })._socket?.setNoDelay(true);
      // a console the server drops mid-run is a result (its alarms count as lost), not a crash of the probe
      ws.on('error', (err) => {
        if (!ending) observerClosed ??= `error: ${err.message}`;
      });
      ws.on('close', (code, reason) => {
        if (!ending) observerClosed ??= `closed ${code} ${reason.toString()}`.trim();
      });
      // delivery is acknowledged as a console does (docs/websocket.md): cumulative, batched every 100 ms
      let acked = lastSeq;
      const ackTimer = setInterval(() => {
        if (lastSeq > acked && ws.readyState === WebSocket.OPEN) {
          acked = lastSeq;
          ws.send(JSON.stringify({ type: 'ack', seq: acked }));
        }
      }, 100);
      ws.on('close', () => clearInterval(ackTimer));
      ws.on('message', (data) => {
        const f = readFrame(data.toString(), incidents);
        if (f.seq !== undefined && f.seq > lastSeq) lastSeq = f.seq;
        if (!f.delivery) return;
        if (!f.deviceId || !arrived(f.deviceId)) unmatchedFrames++;
      });
      ws.send(JSON.stringify({ type: 'subscribe', scope: 'all', since: o.since }));
      closeObserver = () => {
        ending = true;
        clearInterval(ackTimer);
        ws.terminate();
      };
    } else {
      const sub = await LiteClient.tcp({ host: a.observer.host, port: a.observer.port }, { clientId: `console-${process.pid}`, keepaliveS: 60 });
      sub.onMessage = (topic) => {
        const id = topic.split('/')[1];
        if (!id || !arrived(id)) unmatchedFrames++;
      };
      sub.subscribe('devices/+/events', 1);
      closeObserver = () => sub.destroy();
    }
    await sleep(200); // the subscription is in place before the first alarm

    const senders = await Promise.all(a.devices.map((d) => LiteClient.tcp(a.target, {
      clientId: d.id, username: d.id, password: d.secret, keepaliveS: 60, timeoutMs: 20_000,
    })));
    const seqs = new Map<string, number>();
    const sentAt = new Map<number, number>();
    senders.forEach((c, i) => {
      c.onPuback = (id) => {
        const t = sentAt.get(id + (i << 16));
        if (t === undefined) return;
        sentAt.delete(id + (i << 16));
        pubacks.push(performance.now() - t);
      };
    });

    const started = performance.now();
    const wait0 = runQueueWaitMs(process.pid);
    const main0 = threadSched(process.pid);
    const measureFrom = started + a.warmupMs;
    let sent = 0;
    let skipped = 0;
    let cursor = 0;
    while (performance.now() - started < a.durationMs) {
      const now = performance.now();
      for (const [id, o] of outstanding) {
        if (now - o.t0 > a.lostAfterMs) {
          outstanding.delete(id);
          if (o.measured) lost++;
        }
      }
      const due = Math.floor(((now - started) / 1000) * a.ratePerS);
      for (let k = 0; sent + skipped < due && k < 100; k++) {
        // the next device with no alarm in flight
        let c: LiteClient | undefined;
        let d: Cred | undefined;
        let index = 0;
        for (let tries = 0; tries < senders.length; tries++) {
          const i = cursor++ % senders.length;
          if (!outstanding.has(a.devices[i]!.id) && senders[i]!.connected) {
            c = senders[i];
            d = a.devices[i];
            index = i;
            break;
          }
        }
        if (!c || !d) {
          skipped++;
          continue;
        }
        const s = (seqs.get(d.id) ?? 0) + 1;
        seqs.set(d.id, s);
        const t0 = performance.now();
        outstanding.set(d.id, { t0, measured: t0 >= measureFrom });
        const { messageId } = c.publish(`devices/${d.id}/events`, `{"ts":${Date.now()},"seq":${s},"type":"sos"}`, 1);
        if (t0 >= measureFrom) sentAt.set(messageId + (index << 16), t0);
        sent++;
      }
      await sleep(1); // 1 ms ticks: alarms leave evenly spread, as they are due
    }
    const waitMsPerS = (runQueueWaitMs(process.pid) - wait0) / ((performance.now() - started) / 1000);
    const perWakeMs = waitPerWakeMs(main0, threadSched(process.pid));
    // the last alarms get their chance to arrive (bounded)
    const drainUntil = performance.now() + Math.min(a.lostAfterMs, 5000);
    while (outstanding.size > 0 && performance.now() < drainUntil) await sleep(10);
    for (const o of outstanding.values()) if (o.measured) lost++;
    closeObserver();
    for (const c of senders) c.destroy();
    return { latencies, pubacks, sent, delivered, late, lost, skipped, lastSeq, unmatchedFrames, incidents: [...learned], waitMsPerS, waitPerWakeMs: perWakeMs, observerClosed };
  },
});
