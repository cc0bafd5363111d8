// A device moved from one person to another (POST /api/devices/<id>/bind with another resident): what it sends from
// then on is the new person's. Her alarms open her own cards, never join one of the previous person's still open (an
// operator reading that card would send help to the wrong home), a cancel she presses does not cancel his fall, and
// the rules forget what they remembered of him (a locator "already outside" his zone would miss her first exit). His
// open cards stay his, for a person to close. A real gateway, real SQLite, real HTTP, a real MQTT device.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { publishAsync, startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';

interface Card { id: string; residentId: string | null; status: string; count: number; test: boolean }

describe('a device moved to another resident', () => {
  let t: TestGateway;
  beforeAll(async () => { t = await startTestGateway(); });
  afterAll(async () => t?.stop());

  const cards = async (deviceId: string, type: string): Promise<Card[]> => (await t.api('GET', `/api/incidents?deviceId=${deviceId}&type=${type}`)).body.items;
  const resident = async (name: string, extra: Record<string, unknown> = {}) => {
    const r = await t.api('POST', '/api/residents', { name, ...extra });
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    return r.body as { id: string };
  };
  const bind = async (deviceId: string, residentId: string) => {
    const r = await t.api('POST', `/api/devices/${deviceId}/bind`, { residentId });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
  };
  /** a device bound to him, connected, and her, to whom it will go */
  const handOver = async (kind: string, serial: string, names: [string, string], zones: [unknown, unknown] = [null, null], config?: Record<string, unknown>) => {
    const dev = await t.provision(kind, serial);
    if (config) expect((await t.api('PATCH', `/api/devices/${dev.id}`, { config })).status).toBe(200);
    const first = await resident(names[0], zones[0] ? { safeZone: zones[0] } : {});
    const second = await resident(names[1], zones[1] ? { safeZone: zones[1] } : {});
    await bind(dev.id, first.id);
    return { dev, first, second, c: await t.connectDevice(dev.id, dev.secret) };
  };

  it('her SOS opens her own card while his acknowledged one is still open; his stays his', async () => {
    const { dev, first, second, c } = await handOver('call-phone', 'MOVE-SOS-1', ['Li Wei', 'Chen Hua']);
    try {
      await publishAsync(c, `devices/${dev.id}/events`, JSON.stringify({ ts: Date.now(), seq: 1, type: 'sos' }));
      const his = await waitFor(async () => (await cards(dev.id, 'sos'))[0], 'his SOS card');
      expect(his.residentId).toBe(first.id);
      expect((await t.api('POST', `/api/incidents/${his.id}/acknowledge`, {})).status).toBe(200);

      await bind(dev.id, second.id);
      await publishAsync(c, `devices/${dev.id}/events`, JSON.stringify({ ts: Date.now(), seq: 2, type: 'sos' }));
      const hers = await waitFor(async () => (await cards(dev.id, 'sos')).find((i) => i.id !== his.id), 'her own SOS card');
      expect(hers).toMatchObject({ residentId: second.id, status: 'open', count: 1 });
      // his card did not take her alarm, and is still open for a person to close
      expect((await t.api('GET', `/api/incidents/${his.id}`)).body).toMatchObject({ residentId: first.id, status: 'acknowledged', count: 1 });
      // a third press is hers and joins her card
      await publishAsync(c, `devices/${dev.id}/events`, JSON.stringify({ ts: Date.now(), seq: 3, type: 'sos' }));
      await waitFor(async () => ((await t.api('GET', `/api/incidents/${hers.id}`)).body.count === 2 ? true : undefined), 'her second press joined her card');
      expect((await cards(dev.id, 'sos')).length).toBe(2);
    } finally {
      c.end(true);
    }
  });

  it('a cancel she presses does not cancel his fall', async () => {
    // a long window: the cancel below would be inside it if it were his
    const { dev, first, second, c } = await handOver('fall-sensor', 'MOVE-FALL-1', ['Zhou Min', 'Wu Jing'], [null, null], { cancelWindowMs: 600_000 });
    try {
      await publishAsync(c, `devices/${dev.id}/events`, JSON.stringify({ ts: Date.now(), seq: 1, type: 'fall' }));
      const his = await waitFor(async () => (await cards(dev.id, 'fall'))[0], 'his fall card');
      await bind(dev.id, second.id);
      await publishAsync(c, `devices/${dev.id}/events`, JSON.stringify({ ts: Date.now(), seq: 2, type: 'cancel' }));
      // the cancel is stored (its observation) and changes nothing of his: read after it was taken in
      await waitFor(async () => ((await t.api('GET', `/api/observations?deviceId=${dev.id}&type=cancel`)).body.items?.length ? true : undefined), 'the cancel stored');
      expect((await t.api('GET', `/api/incidents/${his.id}`)).body).toMatchObject({ residentId: first.id, status: 'open' });
    } finally {
      c.end(true);
    }
  });

  it('a locator forgets his zone: the first fix outside hers raises her exit, though his is still open', async () => {
    const hisZone = { type: 'circle', center: { lat: 39.9, lon: 116.4 }, radiusM: 200 };
    const herZone = { type: 'circle', center: { lat: 31.2, lon: 121.5 }, radiusM: 200 };
    const { dev, first, second, c } = await handOver('locator', 'MOVE-LOC-1', ['Sun Qiang', 'Ma Li'], [hisZone, herZone]);
    const fix = (seq: number, lat: number, lon: number) => JSON.stringify({ ts: Date.now(), seq, type: 'position', lat, lon, accuracy: 10 });
    try {
      await publishAsync(c, `devices/${dev.id}/telemetry`, fix(1, 39.91, 116.4));
      const his = await waitFor(async () => (await cards(dev.id, 'safe-zone-exit'))[0], 'his exit');
      expect(his.residentId).toBe(first.id);

      await bind(dev.id, second.id);
      // outside her zone too (it is in another city): her first fix outside is her exit
      await publishAsync(c, `devices/${dev.id}/telemetry`, fix(2, 31.21, 121.5));
      const hers = await waitFor(async () => (await cards(dev.id, 'safe-zone-exit')).find((i) => i.id !== his.id), 'her exit at her first fix outside');
      expect(hers).toMatchObject({ residentId: second.id, status: 'open' });
      // her way back in clears hers, not his
      await publishAsync(c, `devices/${dev.id}/telemetry`, fix(3, 31.2, 121.5));
      await waitFor(async () => ((await t.api('GET', `/api/incidents/${hers.id}`)).body.status !== 'open' ? true : undefined), 'her exit cleared');
      expect((await t.api('GET', `/api/incidents/${his.id}`)).body.status).toBe('open');
    } finally {
      c.end(true);
    }
  });
});
