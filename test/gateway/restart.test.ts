// Incidents, their escalation deadlines and pending device commands survive kill -9 and restart: an incident that
// fell overdue while the gateway was down escalates at start-up; a command queued for an offline device reaches it
// after the restart, when it connects.
import { describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { startChildGateway, type ChildGateway } from '../helpers/child-gateway.js';
import { connectDevice, publishAsync, waitFor } from '../helpers/gateway.js';

describe('kill -9 and restart', () => {
  it('keeps incidents, deadlines and pending commands', { timeout: 120_000 }, async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'eldergate-restart-'));
    const password = 'restart-' + randomBytes(8).toString('hex');
    const env = { ELDERGATE_DATA_DIR: dataDir, ELDERGATE_MQTT_PORT: '0', ELDERGATE_HTTP_PORT: '0', ELDERGATE_ADMIN_PASSWORD: password, ELDERGATE_BUDGETS_P1_ACK_MS: '2000' };
    let gw: ChildGateway = await startChildGateway(env);
    let token = '';
    const api = async (method: string, path: string, body?: unknown) => {
      if (!token) {
        const r = await fetch(`http://127.0.0.1:${gw.httpPort}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password }) });
        token = ((await r.json()) as { token: string }).token;
      }
      const r = await fetch(`http://127.0.0.1:${gw.httpPort}${path}`, { method, headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) }, ...(body ? { body: JSON.stringify(body) } : {}) });
      return { status: r.status, body: (await r.json()) as any };
    };
    try {
      const unit = async (name: string, tier: string, parentId?: string) => (await api('POST', '/api/units', { name, tier, ...(parentId ? { parentId } : {}) })).body.id as string;
      const district = await unit('District', 'district');
      const street = await unit('Street', 'street', district);
      const community = await unit('Community', 'community', street);
      const grid = await unit('Grid', 'grid', community);
      const resident = (await api('POST', '/api/residents', { name: 'Sun Li', unitId: grid })).body;
      const phone = (await api('POST', '/api/devices', { kind: 'call-phone', serial: 'R-PHONE' })).body;
      await api('POST', `/api/devices/${phone.id}/bind`, { residentId: resident.id });
      const watch = (await api('POST', '/api/devices', { kind: 'locator', serial: 'R-WATCH' })).body;
      await api('POST', `/api/devices/${watch.id}/bind`, { residentId: resident.id });

      const c = await connectDevice(`mqtt://127.0.0.1:${gw.mqttPort}`, phone.id, phone.secret);
      await publishAsync(c, `devices/${phone.id}/events`, JSON.stringify({ ts: Date.now(), seq: 1, type: 'sos' }));
      c.end(true);
      const incident = (await api('GET', '/api/incidents?status=open')).body.items.find((i: { deviceId: string }) => i.deviceId === phone.id);
      expect(incident).toMatchObject({ tierUnitId: grid, deadlineAt: expect.any(Number) });
      // the watch is offline: the command waits, stored
      const cmd = (await api('POST', `/api/devices/${watch.id}/commands`, { type: 'locate-now' })).body;
      expect(cmd.status).toBe('pending');

      await gw.kill('SIGKILL');
      // down for more than two budgets
      await new Promise((r) => setTimeout(r, 4500));
      gw = await startChildGateway(env);
      token = '';

      const after = await waitFor(async () => {
        const d = (await api('GET', `/api/incidents/${incident.id}`)).body;
        return d.escalationLevel >= 2 ? d : undefined;
      }, 'catch-up escalation at start-up', 20_000);
      const escalated = after.events.filter((e: { type: string }) => e.type === 'escalated');
      expect(escalated[0].data).toMatchObject({ toUnitId: community, catchUp: true });
      expect(escalated[1].data).toMatchObject({ toUnitId: street, catchUp: true });
      expect(after.status).toBe('open');

      const w = await connectDevice(`mqtt://127.0.0.1:${gw.mqttPort}`, watch.id, watch.secret);
      const got = new Promise<{ id: string; type: string }>((resolve) => w.on('message', (_t, p) => resolve(JSON.parse(p.toString()))));
      w.subscribe(`devices/${watch.id}/commands`, { qos: 1 });
      const received = await got;
      expect(received).toMatchObject({ id: cmd.id, type: 'locate-now' });
      w.publish(`devices/${watch.id}/commands/ack`, JSON.stringify({ id: cmd.id, ok: true }), { qos: 1 });
      await waitFor(async () => (await api('GET', `/api/devices/${watch.id}/commands`)).body.items[0].status === 'acked', 'command acked');
      w.end(true);
    } finally {
      await gw.kill('SIGKILL');
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
