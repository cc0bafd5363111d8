import { Writable } from 'node:stream';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../core/config.js';
import { dbFile } from '../../core/db.js';
import { createLogger } from '../../core/logger.js';
import { publishAsync, startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';

describe('small things users hit (issue 13 §5)', () => {
  let t: TestGateway;
  beforeAll(async () => { t = await startTestGateway(); });
  afterAll(async () => t.stop());

  const column = (sql: string, id: string) => {
    const db = new Database(dbFile(t.dataDir), { readonly: true });
    try { return (db.prepare(sql).get(id) as { v: unknown }).v; } finally { db.close(); }
  };

  it('"unitId": null in a JSON body is null, not "" (bodies are not type-coerced)', async () => {
    const r = await t.api('POST', '/api/residents', { name: 'Ada Null', unitId: null });
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    expect(r.body.unitId).toBeNull();
    const p = await t.api('PATCH', `/api/residents/${r.body.id}`, { unitId: null, address: null });
    expect(p.status, JSON.stringify(p.body)).toBe(200);
    expect(p.body.unitId).toBeNull();
    expect(column('select unit_id v from residents where id = ?', r.body.id)).toBeNull();

    const u = await t.api('POST', '/api/users', { username: 'nora', password: 'nora-password-123', role: 'operator', unitId: null });
    expect(u.status, JSON.stringify(u.body)).toBe(201);
    const pu = await t.api('PATCH', `/api/users/${u.body.id}`, { unitId: null });
    expect(pu.status, JSON.stringify(pu.body)).toBe(200);
    expect(column('select unit_id v from users where id = ?', u.body.id)).toBeNull();
  });

  it('a JSON body of the wrong type is refused, not coerced, and the answer names the field', async () => {
    const r = await t.api('POST', '/api/residents', { name: 'Bea', unitId: 42 });
    expect(r.status).toBe(400);
    expect(r.body.message).toMatch(/unitId/);
  });

  it('a bound device stays provisioned until its commissioning test passes; then commissioned, then in service', async () => {
    const dev = await t.provision('call-phone', 'LIFE-1');
    const resident = await t.api('POST', '/api/residents', { name: 'Chen Jing' });
    const bound = await t.api('POST', `/api/devices/${dev.id}/bind`, { residentId: resident.body.id });
    expect(bound.body).toMatchObject({ residentId: resident.body.id, state: 'provisioned' });

    const c = await t.connectDevice(dev.id, dev.secret);
    await publishAsync(c, `devices/${dev.id}/events`, JSON.stringify({ ts: Date.now(), seq: 1, type: 'test' }));
    const inc = (await t.api('GET', `/api/incidents?deviceId=${dev.id}`)).body.items[0];
    expect(inc).toMatchObject({ test: true });
    // the test alarm came through and was recorded: its incident closes itself as passed (issue 13 §4) and the
    // device is commissioned (test/devices/commissioning.test.ts covers the rest)
    await waitFor(async () => (await t.api('GET', `/api/devices/${dev.id}`)).body.state === 'commissioned', 'commissioned after the test');
    expect((await t.api('GET', `/api/incidents/${inc.id}`)).body).toMatchObject({ status: 'resolved', outcome: 'test passed' });

    // the first real message after commissioning puts it in service
    await publishAsync(c, `devices/${dev.id}/telemetry`, JSON.stringify({ ts: Date.now(), seq: 2, type: 'heartbeat', battery: 80 }));
    await waitFor(async () => (await t.api('GET', `/api/devices/${dev.id}`)).body.state === 'in-service', 'in service');
    c.end(true);
  });

  it('a test of a device bound to nobody does not commission it', async () => {
    const dev = await t.provision('call-phone', 'LIFE-SHELF');
    const c = await t.connectDevice(dev.id, dev.secret);
    await publishAsync(c, `devices/${dev.id}/events`, JSON.stringify({ ts: Date.now(), seq: 1, type: 'test' }));
    c.end(true);
    const inc = (await t.api('GET', `/api/incidents?deviceId=${dev.id}`)).body.items[0];
    await waitFor(async () => (await t.api('GET', `/api/incidents/${inc.id}`)).body.status === 'resolved', 'the bench test closed as passed');
    expect((await t.api('GET', `/api/devices/${dev.id}`)).body.state).toBe('provisioned');
  });

  it('a command to an offline device says it is queued, and until when', async () => {
    const dev = await t.provision('call-phone', 'CMD-OFF');
    const r = await t.api('POST', `/api/devices/${dev.id}/commands`, { type: 'test-alarm', ttlS: 600 });
    expect(r.status).toBe(202);
    expect(r.body.queued).toBe(true);
    expect(r.body.reason).toBe(`device offline; sent when it reconnects (expires at ${new Date(r.body.expiresAt).toISOString()})`);

    const c = await t.connectDevice(dev.id, dev.secret);
    await waitFor(() => t.gw.broker!.isConnected(dev.id), 'device connected');
    const online = await t.api('POST', `/api/devices/${dev.id}/commands`, { type: 'test-alarm', ttlS: 600 });
    expect(online.status).toBe(202);
    expect(online.body.queued).toBe(false);
    expect(online.body.reason).toBeUndefined();
    c.end(true);
  });
});

describe('the broker host in provisioning answers (issue 13 §5)', () => {
  const startLogged = async (overrides: Record<string, unknown>) => {
    const lines: { level: number; msg: string }[] = [];
    const sink = new Writable({ write(chunk, _e, cb) { for (const l of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(l)); cb(); } });
    const t = await startTestGateway(overrides, undefined, createLogger('info', sink as never));
    return { t, lines };
  };

  it('warns once at start-up, naming ELDERGATE_PUBLIC_HOST, while provisioning answers would say "localhost"', async () => {
    const { t, lines } = await startLogged({});
    try {
      const warned = lines.filter((l) => /publicHost is "localhost"/.test(l.msg));
      expect(warned).toHaveLength(1);
      expect(warned[0]!.level).toBe(40);
      expect(warned[0]!.msg).toMatch(/ELDERGATE_PUBLIC_HOST/);
      expect((await t.api('POST', '/api/devices', { kind: 'call-phone', serial: 'HOST-1' })).body.mqtt.host).toBe('localhost');
    } finally { await t.stop(); }
  });

  it('ELDERGATE_PUBLIC_HOST sets the host devices are told, and then nothing is warned', async () => {
    expect(loadConfig({ ELDERGATE_PUBLIC_HOST: 'gw.example.org' }).publicHost).toBe('gw.example.org');
    const { t, lines } = await startLogged({ publicHost: 'gw.example.org' });
    try {
      expect(lines.filter((l) => /publicHost/.test(l.msg))).toEqual([]);
      expect((await t.api('POST', '/api/devices', { kind: 'call-phone', serial: 'HOST-2' })).body.mqtt.host).toBe('gw.example.org');
    } finally { await t.stop(); }
  });
});
