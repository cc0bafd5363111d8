// An acknowledged incident is not left waiting on whoever took it (response/escalation.ts): if nobody is on site within
// the priority's reach budget, its people and the unit responsible are told again (`overdue`), and again every reach
// budget, until someone is on site or it is closed. Before, acknowledging cleared its deadline for good: an SOS taken
// by an operator whose account was then disabled (or whose shift ended) was never escalated or sounded again.
// A real gateway, real SQLite, real HTTP and WebSocket, a real MQTT device; restarted on the same data directory.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { publishAsync, startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { TestConsole } from '../ws/helpers.js';

interface Card { id: string; status: string; deadlineAt: number | null; events: { type: string; at: number; data: Record<string, unknown> }[] }

const REACH_MS = 1500;
const ACK_MS = 1000;
const budgets = { P1: { pushMs: 1000, ackMs: ACK_MS, reachMs: REACH_MS } };

describe('an acknowledged incident nobody reaches in time', () => {
  const dir = mkdtempSync(join(tmpdir(), 'eldergate-follow-up-'));
  const adminPassword = 'follow-up-admin-password-1';
  let t: TestGateway | undefined;
  afterAll(async () => {
    await t?.stop();
    rmSync(dir, { recursive: true, force: true });
    rmSync(`${dir}-keys`, { recursive: true, force: true });
  });

  const card = async (id: string) => (await t!.api('GET', `/api/incidents/${id}`)).body as Card;
  const sos = async (serial: string) => {
    const res = (await t!.api('POST', '/api/residents', { name: `Resident ${serial}` })).body as { id: string };
    const dev = await t!.provision('call-phone', serial);
    expect((await t!.api('POST', `/api/devices/${dev.id}/bind`, { residentId: res.id })).status).toBe(200);
    const c = await t!.connectDevice(dev.id, dev.secret);
    try {
      await publishAsync(c, `devices/${dev.id}/events`, JSON.stringify({ ts: Date.now(), seq: 1, type: 'sos' }));
    } finally {
      c.end(true);
    }
    return waitFor(async () => (await t!.api('GET', `/api/incidents?deviceId=${dev.id}&type=sos`)).body.items[0] as { id: string } | undefined, 'the SOS card');
  };

  it('taken by an operator who is then disabled: told again at the reach budget, and again after it, on the stream too', { timeout: 30_000 }, async () => {
    t = await startTestGateway({ budgets, adminPassword }, dir);
    const nina = await t.api('POST', '/api/users', { username: 'nina', password: 'operator-nina-password-1', role: 'operator' });
    expect(nina.status).toBe(201);
    const ninaToken = await t.token('nina', 'operator-nina-password-1');
    const watcher = await TestConsole.open(t, await t.token());
    watcher.subscribe('all');
    try {
      const inc = await sos('FOLLOW-1');
      const acked = await t.api('POST', `/api/incidents/${inc.id}/acknowledge`, {}, ninaToken);
      expect(acked.status, JSON.stringify(acked.body)).toBe(200);
      const events = (await card(inc.id)).events;
      const ackAt = events.find((e) => e.type === 'acknowledged')!;
      // the reach budget counts from the opening; taken late, an acknowledgement budget from then at least
      const followUpAt = Math.max(events[0]!.at + REACH_MS, ackAt.at + ACK_MS);
      expect(ackAt.data.followUpAt).toBe(followUpAt);
      // she leaves: her account is disabled, the incident stays hers, acknowledged
      expect((await t.api('PATCH', `/api/users/${nina.body.id}`, { disabled: true })).status).toBe(200);

      const first = await waitFor(async () => (await card(inc.id)).events.find((e) => e.type === 'overdue'), 'the first follow-up', 10_000);
      expect(first.data).toMatchObject({ status: 'acknowledged', dueAt: followUpAt });
      expect(first.at).toBeGreaterThanOrEqual(followUpAt);
      const after = await card(inc.id);
      expect(after.status).toBe('acknowledged');
      expect(after.deadlineAt).toBe(first.data.deadlineAt);
      await watcher.waitFor((f) => f.type === 'incident' && f.event?.type === 'overdue' && f.event.incidentId === inc.id, 'the follow-up on the stream');
      // nobody yet: told again one reach budget later
      await waitFor(async () => ((await card(inc.id)).events.filter((e) => e.type === 'overdue').length >= 2 ? true : undefined), 'the second follow-up', 10_000);
    } finally {
      await watcher.close();
    }
  });

  it('someone on site: no more follow-ups', { timeout: 30_000 }, async () => {
    const inc = await sos('FOLLOW-2');
    expect((await t!.api('POST', `/api/incidents/${inc.id}/acknowledge`, {})).status).toBe(200);
    expect((await t!.api('POST', `/api/incidents/${inc.id}/on-site`, {})).status).toBe(200);
    expect((await card(inc.id)).deadlineAt).toBeNull();
    await new Promise((r) => setTimeout(r, 2 * REACH_MS + 500));
    expect((await card(inc.id)).events.some((e) => e.type === 'overdue')).toBe(false);
  });

  it('a follow-up due while the gateway was down is made at start', { timeout: 40_000 }, async () => {
    const inc = await sos('FOLLOW-3');
    expect((await t!.api('POST', `/api/incidents/${inc.id}/acknowledge`, {})).status).toBe(200);
    const due = (await card(inc.id)).deadlineAt!;
    await t!.stop();
    t = undefined;
    await new Promise((r) => setTimeout(r, Math.max(0, due - Date.now()) + 200));
    t = await startTestGateway({ budgets, adminPassword }, dir);
    const first = await waitFor(async () => (await card(inc.id)).events.find((e) => e.type === 'overdue'), 'the follow-up after the restart', 10_000);
    expect(first.data).toMatchObject({ status: 'acknowledged', dueAt: due, catchUp: true });
  });
});
