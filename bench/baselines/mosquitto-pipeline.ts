// The other way to build this: Mosquitto as the broker and a Node service subscribed to it that does what
// eldergate does in-process — validate each frame against the kind's schema (the same compiled schemas),
// write it durably (better-sqlite3, WAL, synchronous=FULL, group commit on the next turn of the loop, telemetry
// batched), acknowledge the alarm to the broker only once durable, and push it to consoles over a WebSocket.
import { createServer } from 'node:http';
import Database from 'better-sqlite3';
import { WebSocketServer, type WebSocket } from 'ws';
import { serve } from '../lib/ipc.js';
import { LiteClient } from '../lib/mqtt-lite.js';
import { decodeFrame } from '../../devices/frames.js';
import type { DeviceKind, Observation } from '../../core/contracts.js';

const KIND_OF: Record<string, DeviceKind> = { cp: 'call-phone', fs: 'fall-sensor', lc: 'locator' };

interface Row {
  obs: Observation;
  ackId: number;
}

let stored = 0;
let rejected = 0;
let seq = 0;

serve({
  async start(a: { mqttPort: number; dbFile: string; wsPort?: number }) {
    const db = new Database(a.dbFile);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.exec(`create table if not exists observations (id integer primary key, device_id text not null, type text not null,
      seq integer, device_ts integer, received_at integer not null, data text not null, unique (device_id, seq, device_ts))`);
    const insert = db.prepare('insert into observations (device_id, type, seq, device_ts, received_at, data) values (?, ?, ?, ?, ?, ?) on conflict do nothing');

    const consoles = new Set<WebSocket>();
    const http = createServer((_req, res) => res.writeHead(404).end());
    const wss = new WebSocketServer({ server: http, path: '/ws' });
    wss.on('connection', (ws, req) => {
      if (req.headers.authorization !== 'Bearer bench') return ws.close(4401, 'unauthorised');
      // the first message is the subscription; this baseline streams everything live
      ws.once('message', () => consoles.add(ws));
      ws.on('close', () => consoles.delete(ws));
    });
    await new Promise<void>((r) => http.listen(a.wsPort ?? 0, '127.0.0.1', () => r()));
    const writeRows = (rows: Row[]) => {
      db.transaction(() => {
        for (const { obs } of rows) {
          const { deviceId, type, seq: s, deviceTs, receivedAt, ...rest } = obs as Observation & Record<string, unknown>;
          insert.run(deviceId, type, s ?? null, deviceTs ?? null, receivedAt, JSON.stringify(rest));
        }
      })();
      stored += rows.length;
    };

    let urgent: Row[] = [];
    let scheduled = false;
    let telemetry: Row[] = [];
    let timer: NodeJS.Timeout | null = null;
    const flushTelemetry = () => {
      timer = null;
      const rows = telemetry;
      telemetry = [];
      if (rows.length) writeRows(rows);
    };
    const mq = await LiteClient.tcp({ host: '127.0.0.1', port: a.mqttPort }, { clientId: 'eldergate-pipeline', keepaliveS: 60 });
    mq.autoAck = false;
    const flushUrgent = () => {
      scheduled = false;
      const rows = urgent;
      urgent = [];
      writeRows(rows);
      for (const r of rows) {
        mq.puback(r.ackId);
        const frame = JSON.stringify({ seq: ++seq, incidentId: `inc_${r.obs.deviceId}`, type: 'opened', at: Date.now(), data: { deviceId: r.obs.deviceId, type: r.obs.type, priority: 'P1' } });
        for (const ws of consoles) ws.send(frame);
      }
    };
    mq.onMessage = (topic, payload, qos, messageId) => {
      const parts = topic.split('/');
      const id = parts[1] ?? '';
      const channel = parts[2] === 'events' ? 'events' : 'telemetry';
      const kind = KIND_OF[id.slice(0, 2)] ?? 'call-phone';
      const r = decodeFrame(kind, id, channel, payload, Date.now(), 4096);
      if (!r.ok) {
        rejected++;
        if (qos === 1) mq.puback(messageId);
        return;
      }
      if (channel === 'events') {
        urgent.push({ obs: r.obs, ackId: messageId });
        if (!scheduled) {
          scheduled = true;
          setImmediate(flushUrgent);
        }
      } else {
        telemetry.push({ obs: r.obs, ackId: messageId });
        if (qos === 1) mq.puback(messageId);
        if (telemetry.length >= 2000) setImmediate(flushTelemetry);
        else if (!timer) timer = setTimeout(flushTelemetry, 200);
      }
    };
    mq.subscribe('devices/+/events', 1);
    mq.subscribe('devices/+/telemetry', 0);
    return { wsPort: (http.address() as { port: number }).port };
  },
  count() {
    return { ingested: stored, rejected };
  },
});
