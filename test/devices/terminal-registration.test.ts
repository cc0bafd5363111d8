// The registry's record that a protocol terminal holds its device's secret (a JT/T 808 terminal authenticated with its
// code: config.authCodeIssuedAt, written by markTerminalRegistered). A person cannot set or clear it through a config
// PATCH (that would open the phone number to anyone's registration, or lock the terminal out); rotate-secret clears it.
// A real gateway, real SQLite, real HTTP.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';

describe('config.authCodeIssuedAt is the registry\'s own', () => {
  let t: TestGateway;
  beforeAll(async () => { t = await startTestGateway(); });
  afterAll(async () => t?.stop());

  it('markTerminalRegistered records it; a config PATCH keeps it; rotate-secret clears it', async () => {
    const { id } = await t.provision('jt808', '13800138990');
    const marked = t.gw.registry.markTerminalRegistered(id);
    const at = marked.config.authCodeIssuedAt;
    expect(typeof at).toBe('number');
    expect(t.gw.registry.entry(id)!.config.authCodeIssuedAt).toBe(at);

    // a config PATCH replaces the config, but not the mark
    const p1 = await t.api('PATCH', `/api/devices/${id}`, { config: { note: 'pendant on the left wrist' } });
    expect(p1.status, JSON.stringify(p1.body)).toBe(200);
    expect((await t.api('GET', `/api/devices/${id}`)).body.config).toEqual({ note: 'pendant on the left wrist', authCodeIssuedAt: at });
    // nor can a PATCH clear or move it
    await t.api('PATCH', `/api/devices/${id}`, { config: { authCodeIssuedAt: null } });
    expect((await t.api('GET', `/api/devices/${id}`)).body.config).toEqual({ authCodeIssuedAt: at });
    await t.api('PATCH', `/api/devices/${id}`, { config: { authCodeIssuedAt: 1 } });
    expect((await t.api('GET', `/api/devices/${id}`)).body.config).toEqual({ authCodeIssuedAt: at });
    expect(t.gw.registry.protocolDevice('jt808', '13800138990')!.config).toEqual({ authCodeIssuedAt: at });

    // rotate-secret is how a person opens registration again
    expect((await t.api('POST', `/api/devices/${id}/rotate-secret`)).status).toBe(200);
    expect((await t.api('GET', `/api/devices/${id}`)).body.config).toEqual({});
    // and then a PATCH cannot set it either
    await t.api('PATCH', `/api/devices/${id}`, { config: { authCodeIssuedAt: 5 } });
    expect((await t.api('GET', `/api/devices/${id}`)).body.config).toEqual({});
  });
});
