// Issue 14, High 3: a 50,000-line CSV import held the event loop for seconds (an SOS's PUBACK took 13.4 s). Through
// real HTTP and real MQTT: while the largest import runs, a device's SOS is acknowledged and /healthz answers, and the
// import is still running when they do. Then the import completes, all or nothing, with every secret once.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, publishAsync, waitFor, type TestGateway } from '../helpers/gateway.js';

describe('a 50,000-line import does not stall the alarm path', () => {
  let t: TestGateway;
  beforeAll(async () => { t = await startTestGateway(); });
  afterAll(async () => t?.stop());

  it('PUBACKs an SOS and answers /healthz while the import is still running', async () => {
    const dev = await t.provision('call-phone');
    const client = await t.connectDevice(dev.id, dev.secret);
    const N = 50_000;
    const csv = 'serial,kind,model,firmware\n' + Array.from({ length: N }, (_, i) => `BIG-${i},call-phone,K1,"2.${i % 10}"`).join('\n');

    let importDone = false;
    const imported = t.api('POST', '/api/devices/import', csv).then((r) => { importDone = true; return r; });
    // the import has begun work (on a gateway without the running flag, give it time to reach its work instead)
    const registry = t.gw.registry as { importRunning?: () => boolean };
    if (typeof registry.importRunning === 'function') await waitFor(() => registry.importRunning!(), 'the import to start writing', 60_000, 1);
    else await new Promise((r) => setTimeout(r, 500));

    await publishAsync(client, `devices/${dev.id}/events`, JSON.stringify({ ts: Date.now(), seq: 1, type: 'sos' }), 1);
    const pubackWhileImporting = !importDone;
    const health = await fetch(`${t.http}/healthz`);
    const healthWhileImporting = !importDone;
    expect(health.status).toBe(200);
    expect(pubackWhileImporting, 'the SOS was acknowledged only after the import had finished').toBe(true);
    expect(healthWhileImporting, '/healthz answered only after the import had finished').toBe(true);

    const r = await imported;
    expect(r.status).toBe(201);
    const lines = (r.body as string).trim().split('\n');
    expect(lines).toHaveLength(N + 1);
    expect(lines[0]).toBe('id,serial,kind,secret');
    expect((await t.api('GET', '/api/devices?q=BIG-4999&limit=1')).body.total).toBe(11); // BIG-4999, BIG-49990..49999
    const incidents = await t.api('GET', `/api/incidents?deviceId=${dev.id}`);
    expect(incidents.body.items.map((i: { type: string }) => i.type)).toContain('sos');
    client.end(true);
  }, 180_000);
});
