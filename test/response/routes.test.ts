// The incidents, network and KPI routes through the real app (buildApp with the auth plugin), via app.inject.
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../server/app.js';
import { createScope } from '../../server/scope.js';
import type { AppDeps } from '../../server/deps.js';
import { Audit } from '../../core/audit.js';
import { createMetrics } from '../../core/metrics.js';
import { serviceSecret } from '../../core/secrets.js';
import { Users } from '../../core/users.js';
import { SecretHasher } from '../../devices/credentials.js';
import { DeviceRegistry } from '../../devices/registry.js';
import { DeviceStates } from '../../gateway/device-state.js';
import { Commands } from '../../gateway/commands.js';
import { incidentRoutes } from '../../server/routes/incidents.js';
import { networkRoutes } from '../../server/routes/network.js';
import { kpiRoutes } from '../../server/routes/kpis.js';
import { buildTree, ingest, log, openHarness, source, sos, type Harness } from './helpers.js';

const PW = 'a-long-enough-password';

describe('incident, network and KPI routes', () => {
  let h: Harness;
  let app: FastifyInstance;
  const tokens: Record<string, string> = {};

  beforeAll(async () => {
    h = openHarness({ config: { budgets: { P1: { ackMs: 600_000 } }, notifiers: { channels: { 'grid-nine': { url: 'https://example.org/hook' } } } } });
    buildTree(h.response.network);
    const { store, bus, config } = h;
    const users = new Users(store.db, serviceSecret(store.db, 'token-key'), config.http.tokenTtlS);
    const deps: AppDeps = {
      config, store, bus, log, metrics: createMetrics(), users,
      registry: new DeviceRegistry(store.db, new SecretHasher(serviceSecret(store.db, 'device-secret-key')), bus),
      states: new DeviceStates(store.sqlite),
      commands: new Commands(store.sqlite, log),
      mqttPorts: { port: 0, tlsPort: null },
      scope: createScope(h.response.network),
      audit: new Audit(store.sqlite),
      ready: () => true,
      refreshMetrics: () => undefined,
    };
    const { network, incidents } = h.response;
    app = await buildApp(deps, [
      { name: 'incidents', plugin: incidentRoutes({ incidents, network }) },
      { name: 'network', plugin: networkRoutes({ network }) },
      { name: 'kpis', plugin: kpiRoutes({ network, kpis: (q) => h.response.kpis(q) }) },
    ]);
    const people: [string, 'admin' | 'operator' | 'steward' | 'technician', string | null][] = [
      ['admin', 'admin', null],
      ['oper', 'operator', null],
      ['op-s2', 'operator', 's2'],
      ['stew-g1', 'steward', 'g1'],
      ['stew-g2', 'steward', 'g2'],
      ['tech', 'technician', null],
    ];
    for (const [username, role, unitId] of people) {
      await users.create({ username, password: PW, role, unitId });
      tokens[username] = (await users.login(username, PW)).token;
    }
  });
  afterAll(async () => {
    await app?.close();
    await h?.close();
  });

  const call = async (who: string | null, method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, body?: unknown, headers: Record<string, string> = {}) => {
    const res = await app.inject({
      method, url,
      headers: { ...(who ? { authorization: `Bearer ${tokens[who]}` } : {}), ...headers },
      ...(body !== undefined ? { payload: body as Record<string, unknown> } : {}),
    });
    return { status: res.statusCode, body: res.body ? (JSON.parse(res.body) as any) : undefined, headers: res.headers };
  };
  const open = (deviceId: string, unitId: string | null, over = {}) =>
    ingest(h, sos(over), source({ deviceId, unitId }, h.clock.now()))[0]!.incidentId;

  it('lists with filters and paging, scoped to what each user may see', async () => {
    const a = open('r-a', 'g1');
    open('r-b', 'g2', { type: 'offline', priority: 'P3' });
    open('r-c', 'g3');
    const all = await call('oper', 'GET', '/api/incidents?limit=100');
    expect(all.status).toBe(200);
    expect(all.body.total).toBeGreaterThanOrEqual(3);
    expect((await call('stew-g1', 'GET', '/api/incidents')).body.items.every((i: { unitId: string }) => i.unitId === 'g1')).toBe(true);
    expect((await call('op-s2', 'GET', '/api/incidents')).body.items.map((i: { deviceId: string }) => i.deviceId)).toContain('r-c');
    expect((await call('op-s2', 'GET', '/api/incidents')).body.items.map((i: { deviceId: string }) => i.deviceId)).not.toContain('r-a');
    const p3 = await call('oper', 'GET', '/api/incidents?priority=P3&status=open,acknowledged');
    expect(p3.body.items.map((i: { deviceId: string }) => i.deviceId)).toEqual(['r-b']);
    expect((await call('oper', 'GET', '/api/incidents?status=open&status=acknowledged&unitId=c1')).body.items.length).toBeGreaterThanOrEqual(2);
    const page = await call('oper', 'GET', '/api/incidents?limit=1&offset=1');
    expect(page.body.items).toHaveLength(1);
    const iso = new Date(h.clock.now() + 1).toISOString();
    expect((await call('oper', 'GET', `/api/incidents?from=${encodeURIComponent(iso)}`)).body.total).toBe(0);
    const bad = await call('oper', 'GET', '/api/incidents?priority=P9');
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ code: 'BAD_REQUEST', details: { field: 'priority' } });
    expect((await call('oper', 'GET', '/api/incidents?from=yesterday')).body.message).toMatch(/from/);
    expect((await call(null, 'GET', '/api/incidents')).status).toBe(401);
    // the technician reads (a commissioning test alarm end to end) but may not act
    expect((await call('tech', 'GET', `/api/incidents/${a}`)).status).toBe(200);
    expect((await call('tech', 'POST', `/api/incidents/${a}/acknowledge`)).status).toBe(403);
  });

  it('detail has the timeline, the stamps and the budget; other units see a 404', async () => {
    const id = open('d-a', 'g1');
    const d = await call('stew-g1', 'GET', `/api/incidents/${id}`);
    expect(d.status).toBe(200);
    expect(d.body).toMatchObject({ id, status: 'open', priority: 'P1', unitId: 'g1', budget: { ackMs: 600_000 } });
    expect(d.body.stamps).toMatchObject({ received: expect.any(Number), durable: expect.any(Number) });
    expect(d.body.events.map((e: { type: string }) => e.type)).toEqual(['opened']);
    expect(d.body.events[0].data).toMatchObject({ deviceId: 'd-a', rule: 'sos' });
    expect((await call('stew-g2', 'GET', `/api/incidents/${id}`)).status).toBe(404);
    expect((await call('op-s2', 'GET', `/api/incidents/${id}`)).status).toBe(404);
    expect((await call('oper', 'GET', '/api/incidents/inc_missing')).status).toBe(404);
  });

  it('actions: lifecycle with 409s carrying the current state, roles and units enforced', async () => {
    const id = open('act-a', 'g1');
    const early = await call('oper', 'POST', `/api/incidents/${id}/resolve`, { outcome: 'x' });
    expect(early.status).toBe(409);
    expect(early.body).toMatchObject({ code: 'CONFLICT', details: { status: 'open' } });
    expect(early.body.message).toMatch(/acknowledge it first/);
    // a steward of another grid unit does not even see it; one of this unit acts
    expect((await call('stew-g2', 'POST', `/api/incidents/${id}/acknowledge`)).status).toBe(404);
    const ack = await call('stew-g1', 'POST', `/api/incidents/${id}/acknowledge`);
    expect(ack.status).toBe(200);
    // (its deadline now: the follow-up, if nobody is on site within the reach budget)
    expect(ack.body.incident).toMatchObject({ status: 'acknowledged', deadlineAt: ack.body.events[0].data.followUpAt });
    expect(ack.body.events[0]).toMatchObject({ type: 'acknowledged', actor: expect.stringMatching(/^u_/), data: { username: 'stew-g1' } });
    const again = await call('stew-g1', 'POST', `/api/incidents/${id}/acknowledge`);
    expect(again.status).toBe(409);
    expect(again.body.details).toMatchObject({ status: 'acknowledged', incidentId: id });

    const missing = await call('oper', 'POST', `/api/incidents/${id}/dispatch`, {});
    expect(missing.status).toBe(400);
    expect(missing.body.message).toMatch(/staffId/);
    const nurse = await call('admin', 'POST', '/api/staff', { name: 'Nurse Wu', role: 'nurse', unitId: 'g1', onDuty: true });
    expect(nurse.status).toBe(201);
    expect((await call('oper', 'POST', `/api/incidents/${id}/dispatch`, { staffId: nurse.body.id })).body.incident.assignee).toBe(nurse.body.id);
    expect((await call('oper', 'POST', `/api/incidents/${id}/on-site`)).body.incident.status).toBe('on-site');
    expect((await call('oper', 'POST', `/api/incidents/${id}/note`, { text: 'all fine' })).status).toBe(200);
    expect((await call('oper', 'POST', `/api/incidents/${id}/note`, { text: '' })).status).toBe(400);
    expect((await call('admin', 'POST', `/api/incidents/${id}/resolve`, { outcome: 'treated' })).body.incident).toMatchObject({ status: 'resolved', outcome: 'treated' });
    const c = open('act-b', 'g1');
    expect((await call('oper', 'POST', `/api/incidents/${c}/cancel`, { reason: 'test call by staff' })).body.incident.status).toBe('cancelled');
    expect(h.response.incidents.rebuild(id)).toEqual(h.response.incidents.get(id));
  });

  it('Idempotency-Key: the same request again replays the first answer instead of a 409', async () => {
    const id = open('idem-a', 'g1');
    const key = { 'idempotency-key': 'b0c2d1c4-6a0e-4b8e-9f51-2f1c0f3e9a77' };
    const first = await call('oper', 'POST', `/api/incidents/${id}/acknowledge`, undefined, key);
    expect(first.status).toBe(200);
    const retry = await call('oper', 'POST', `/api/incidents/${id}/acknowledge`, undefined, key);
    expect(retry.status).toBe(200);
    expect(retry.headers['idempotent-replayed']).toBe('true');
    expect(retry.body).toEqual(first.body);
    expect(h.response.incidents.events(id).filter((e) => e.type === 'acknowledged')).toHaveLength(1);
    // without the key, or with another key, it is a conflict; another user's same key is their own key
    expect((await call('oper', 'POST', `/api/incidents/${id}/acknowledge`)).status).toBe(409);
    expect((await call('oper', 'POST', `/api/incidents/${id}/acknowledge`, undefined, { 'idempotency-key': 'other' })).status).toBe(409);
    expect((await call('admin', 'POST', `/api/incidents/${id}/acknowledge`, undefined, key)).status).toBe(409);
    // a stored 409 is replayed as the same 409
    const again = await call('oper', 'POST', `/api/incidents/${id}/acknowledge`, undefined, { 'idempotency-key': 'other' });
    expect(again.status).toBe(409);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect((await call('oper', 'POST', `/api/incidents/${id}/acknowledge`, undefined, { 'idempotency-key': 'has space' })).status).toBe(400);
  });

  it('network: admin manages units and staff, others read what they see, stewards toggle duty in their unit', async () => {
    const created = await call('admin', 'POST', '/api/units', { id: 'g9', name: 'Grid Nine', tier: 'grid', parentId: 'c2', webhook: 'grid-nine' });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ id: 'g9', ancestors: ['c2', 's2', 'd1'], children: [] });
    expect((await call('oper', 'POST', '/api/units', { name: 'x', tier: 'grid', parentId: 'c2' })).status).toBe(403);
    const wrong = await call('admin', 'POST', '/api/units', { name: 'x', tier: 'street', parentId: 'c2' });
    expect(wrong.status).toBe(400);
    expect(wrong.body).toMatchObject({ details: { field: 'parentId' } });
    expect((await call('admin', 'POST', '/api/units', { name: 'x', tier: 'village', parentId: 'c2' })).status).toBe(400);
    expect((await call('admin', 'PATCH', '/api/units/g9', { name: 'Grid 9' })).body.name).toBe('Grid 9');
    expect((await call('stew-g1', 'GET', '/api/units')).body.items.map((u: { id: string }) => u.id)).toEqual(['g1']);
    expect((await call('op-s2', 'GET', '/api/units?tier=grid')).body.items.map((u: { id: string }) => u.id).sort()).toEqual(['g3', 'g9']);
    expect((await call('stew-g1', 'GET', '/api/units/g2')).status).toBe(404);
    expect((await call('oper', 'GET', '/api/units/c1')).body.children).toEqual(['g1', 'g2']);

    const s1 = (await call('admin', 'POST', '/api/staff', { name: 'Chief Zhou', role: 'chief-steward', unitId: 'g1' })).body;
    const s2 = (await call('admin', 'POST', '/api/staff', { name: 'Nurse Qian', role: 'nurse', unitId: 'g2' })).body;
    expect((await call('admin', 'POST', '/api/staff', { name: 'X', role: 'janitor', unitId: 'g2' })).status).toBe(400);
    expect((await call('stew-g1', 'POST', `/api/staff/${s1.id}/on-duty`, { onDuty: true })).body.onDuty).toBe(true);
    expect((await call('stew-g1', 'POST', `/api/staff/${s2.id}/on-duty`, { onDuty: true })).status).toBe(404);
    expect((await call('tech', 'POST', `/api/staff/${s2.id}/on-duty`, { onDuty: true })).status).toBe(403);
    expect((await call('stew-g1', 'GET', '/api/staff')).body.items.every((s: { unitId: string }) => s.unitId === 'g1')).toBe(true);
    expect((await call('oper', 'GET', '/api/staff?onDuty=true')).body.items.map((s: { id: string }) => s.id)).toContain(s1.id);
    expect((await call('admin', 'PATCH', `/api/staff/${s2.id}`, { unitId: 'g9' })).body.unitId).toBe('g9');
    const busy = await call('admin', 'DELETE', '/api/units/g9');
    expect(busy.status).toBe(409);
    expect(busy.body.details).toMatchObject({ staff: 1 });
    expect((await call('admin', 'DELETE', `/api/staff/${s2.id}`)).status).toBe(204);
    expect((await call('admin', 'DELETE', '/api/units/g9')).status).toBe(204);
    expect((await call('admin', 'GET', '/api/units/g9')).status).toBe(404);
  });

  it('KPIs per shift, scoped; bad periods are 400s; everything is in the OpenAPI document', async () => {
    const now = h.clock.now();
    const r = await call('oper', 'GET', `/api/kpis?from=${now - 86_400_000}&to=${now + 1}`);
    expect(r.status).toBe(200);
    expect(r.body.shifts.length).toBeGreaterThanOrEqual(2);
    expect(r.body.total.incidents).toBeGreaterThan(0);
    const scoped = await call('stew-g2', 'GET', `/api/kpis?from=${now - 86_400_000}&to=${now + 1}&shifts=07:00,19:00`);
    expect(scoped.status).toBe(200);
    expect(scoped.body.total.incidents).toBeLessThan(r.body.total.incidents);
    expect((await call('oper', 'GET', `/api/kpis?from=${now}&to=${now - 1}`)).status).toBe(400);
    expect((await call('oper', 'GET', `/api/kpis?shifts=8am`)).status).toBe(400);
    expect((await call('tech', 'GET', '/api/kpis')).status).toBe(403);
    // the OpenAPI document is for admins unless http.docsPublic (issue 14)
    expect((await call(null, 'GET', '/docs/json')).status).toBe(401);
    const doc = await call('admin', 'GET', '/docs/json');
    for (const p of ['/api/incidents', '/api/incidents/{id}/acknowledge', '/api/units', '/api/staff/{id}/on-duty', '/api/kpis']) {
      expect(Object.keys(doc.body.paths)).toContain(p);
    }
  });
});
