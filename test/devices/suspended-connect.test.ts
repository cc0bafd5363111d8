// A suspended device that tries to connect with its own secret is refused, and a person is told: the device's P3
// card says its connection was refused because it is suspended, and how to resume it (gateway/broker/broker.ts), as
// the protocol listeners do for their terminals. Someone may be pressing its button: a resident home from hospital
// with her device suspended meanwhile. A stranger (a wrong secret) raises nothing. A real gateway, real MQTT.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';

describe('a suspended device that tries to connect', () => {
  let t: TestGateway;
  beforeAll(async () => { t = await startTestGateway(); });
  afterAll(async () => t?.stop());

  it('is refused, and its card says why and what to do; a wrong secret raises nothing', async () => {
    const res = (await t.api('POST', '/api/residents', { name: 'Tang Yu' })).body as { id: string };
    const dev = await t.provision('call-phone', 'SUSP-1');
    expect((await t.api('POST', `/api/devices/${dev.id}/bind`, { residentId: res.id })).status).toBe(200);
    expect((await t.api('POST', `/api/devices/${dev.id}/suspend`, {})).status).toBe(200);

    await expect(t.connectDevice(dev.id, 'not-its-secret')).rejects.toThrow(/Bad username or password/);
    await expect(t.connectDevice(dev.id, dev.secret)).rejects.toThrow(/Not authorized/);
    const card = await waitFor(async () => (await t.api('GET', `/api/incidents?deviceId=${dev.id}`)).body.items[0], 'the device\'s card');
    expect(card).toMatchObject({ type: 'unreadable-messages', priority: 'P3', residentId: res.id, status: 'open' });
    const opened = (await t.api('GET', `/api/incidents/${card.id}`)).body.events[0];
    expect(opened.data.data.reason).toMatch(/suspended .* tried to connect/);
    expect(opened.data.data.reason).toContain(`POST /api/devices/${dev.id}/resume`);
    // the wrong secret's attempt came first and raised nothing: one card, one report
    expect((await t.api('GET', `/api/incidents?deviceId=${dev.id}`)).body.items).toHaveLength(1);
  });
});
