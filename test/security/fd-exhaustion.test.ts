// Issue 14, High 1: running out of file descriptors killed the process (EMFILE thrown from a timer, uncaught).
// The gateway runs as its own process under `ulimit -n 1024`; this test opens more idle HTTP and MQTT sockets than
// that limit and holds them. The gateway must stay alive, keep a connected device's SOS acknowledged and pushed to
// a console, answer /healthz on a new connection, and count what it refused.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { publishAsync, waitFor } from '../helpers/gateway.js';
import { type Watched, holdIdleSockets, refusalReport, startWatched } from './helpers.js';

const NOFILE = 1024;

describe('descriptor exhaustion (issue 14, High 1)', () => {
  let w: Watched;

  beforeAll(async () => {
    // the attacker's sockets stay for the whole attack (the CONNECT timeout would otherwise close them as they come)
    w = await startWatched({ nofile: NOFILE, env: { ELDERGATE_MQTT_CONNECT_TIMEOUT_MS: '120000' } });
  }, 90_000);

  afterAll(async () => w?.stop());

  it('derives its caps from the real limit, below it, with a reserve', () => {
    const line = w.g.lines.find((l) => l.includes('connection caps derived from the descriptor limit'));
    expect(line, 'the start-up line with the derived caps').toBeDefined();
    const caps = JSON.parse(line!) as { fdLimit: number; httpMaxConnections: number; mqttMaxConnections: number; fdReserve: number };
    expect(caps.fdLimit).toBe(NOFILE);
    expect(caps.httpMaxConnections + caps.mqttMaxConnections + caps.fdReserve).toBeLessThanOrEqual(NOFILE);
    expect(caps.fdReserve).toBeGreaterThan(0);
  });

  it('holds more idle HTTP and MQTT sockets than the limit and still takes an SOS, /healthz and /metrics', async () => {
    const { g, device, deviceId, console: console_, held } = w;
    held.push(await holdIdleSockets(g.httpPort, NOFILE + 100));
    held.push(await holdIdleSockets(g.mqttPort, NOFILE + 100));
    // give a timer (the memory watchdog ticks every second) the chance to meet a full descriptor table
    await new Promise((r) => setTimeout(r, 2500));
    expect(g.alive(), `the gateway died:\n${g.lines.slice(-15).join('\n')}`).toBe(true);

    // the device connected before the flood: its SOS is acknowledged (PUBACK) and reaches the console
    const ts = Date.now();
    await publishAsync(device, `devices/${deviceId}/events`, JSON.stringify({ ts, seq: 1, type: 'sos' }), 1);
    await waitFor(() => console_.opened(deviceId), 'the SOS on the console', 30_000);

    // a new HTTP connection is admitted (an idle one makes room) and answered
    const health = await waitFor(async () => {
      const r = await fetch(`${g.http}/healthz`, { signal: AbortSignal.timeout(5000) });
      return r.status === 200 ? r : undefined;
    }, '/healthz', 30_000);
    expect(health.status).toBe(200);

    const refusedHttp = await g.metric('eldergate_connections_refused_total', { listener: 'http' });
    const refusedMqtt = await g.metric('eldergate_connections_refused_total', { listener: 'mqtt' });
    const refused = await refusalReport(g);
    expect(refusedHttp, refused).toBeGreaterThan(0);
    expect(refusedMqtt, refused).toBeGreaterThan(0);
    expect(await g.metric('eldergate_connections_refused_total', { reason: 'accept-error' })).toBe(0);
    expect(g.alive()).toBe(true);
  }, 120_000);
});
