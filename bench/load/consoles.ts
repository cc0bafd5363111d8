// Dispatch consoles for the "20 consoles attached" figure, in their own process on the load cores: each one a real
// WebSocket client (`ws`) logged in as its own operator, subscribed to every unit from the current head, acknowledging
// what it received the way the console does (cumulative `ack`, batched every 100 ms; docs/websocket.md). They only
// count: the P1 probe's own console (the 20th) does the timing.
import WebSocket from 'ws';
import { serve } from '../lib/ipc.js';

interface ConsoleArgs {
  url: string;
  tokens: string[];
  since: number;
}

interface Open {
  ws: WebSocket;
  lastSeq: number;
  acked: number;
  frames: number;
  acks: number;
  closedWith: string | null;
}

let open: Open[] = [];
let ackTimer: NodeJS.Timeout | null = null;

function connectOne(url: string, token: string, since: number): Promise<Open> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, ['eldergate.v1'], { headers: { authorization: `Bearer ${token}` }, perMessageDeflate: false });
    const c: Open = { ws, lastSeq: since, acked: since, frames: 0, acks: 0, closedWith: null };
    const t = setTimeout(() => reject(new Error(`console WebSocket ${url} did not open in 10 s`)), 10_000);
    ws.once('open', () => {
      clearTimeout(t);
      ws.send(JSON.stringify({ type: 'subscribe', scope: 'all', since }));
      resolve(c);
    });
    ws.once('unexpected-response', (_req, res) => {
      clearTimeout(t);
      reject(new Error(`console WebSocket ${url} answered HTTP ${res.statusCode}`));
    });
    ws.once('error', (err) => {
      clearTimeout(t);
      reject(err);
    });
    ws.on('message', (data) => {
      c.frames++;
      try {
        const m = JSON.parse(data.toString()) as { seq?: unknown; event?: { seq?: unknown } };
        const seq = typeof m.seq === 'number' ? m.seq : typeof m.event?.seq === 'number' ? m.event.seq : undefined;
        if (seq !== undefined && seq > c.lastSeq) c.lastSeq = seq;
      } catch {
        // not JSON: counted as a frame, nothing to ack
      }
    });
    ws.on('close', (code, reason) => {
      c.closedWith = `${code} ${reason.toString()}`.trim();
    });
  });
}

serve({
  async attach(a: ConsoleArgs) {
    open = await Promise.all(a.tokens.map((t) => connectOne(a.url, t, a.since)));
    ackTimer = setInterval(() => {
      for (const c of open) {
        if (c.lastSeq > c.acked && c.ws.readyState === WebSocket.OPEN) {
          c.acked = c.lastSeq;
          c.acks++;
          c.ws.send(JSON.stringify({ type: 'ack', seq: c.acked }));
        }
      }
    }, 100);
    return { attached: open.length };
  },

  /** frames and acks so far, per console; a console the server closed says with what */
  stats() {
    return {
      consoles: open.length,
      open: open.filter((c) => c.ws.readyState === WebSocket.OPEN).length,
      frames: open.map((c) => c.frames),
      acks: open.map((c) => c.acks),
      closed: open.filter((c) => c.closedWith !== null).map((c) => c.closedWith!),
    };
  },

  close() {
    if (ackTimer) clearInterval(ackTimer);
    for (const c of open) c.ws.terminate();
    open = [];
    return null;
  },
});
