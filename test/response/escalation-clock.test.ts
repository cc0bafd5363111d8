// Escalation follows elapsed time on the monotonic clock, never the wall clock (issue 9, part 4).
// In process with the manual clock (a wall-clock step alone), then for real: the gateway as a child process under
// libfaketime, whose wall clock this test steps while a P1 waits, and steps back across a restart. Only the wall
// clock is faked (DONT_FAKE_MONOTONIC=1): that is exactly an NTP step or an operator fixing the date.
import { afterEach, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { createManualClock } from '../../response/clock.js';
import { planEscalation, waitForDeadline } from '../../response/escalation.js';
import { buildTree, ingest, openHarness, source, sos, tempDir, type Harness, chainNetwork } from './helpers.js';
import { startChildGateway, type ChildGateway } from '../helpers/child-gateway.js';
import { connectDevice, publishAsync, waitFor } from '../helpers/gateway.js';

const HOUR = 3600_000;
const budgets = (p1: number) => ({ budgets: { P1: { ackMs: p1 }, P2: { ackMs: 300_000 }, P3: { ackMs: 4 * HOUR } } });

describe('escalation on the monotonic clock (manual clock)', () => {
  let h: Harness | undefined;
  const cleanups: (() => void)[] = [];
  afterEach(async () => {
    await h?.close();
    h = undefined;
    for (const c of cleanups.splice(0)) c();
  });
  const escalations = (hh: Harness, id: string) => hh.response.incidents.events(id).filter((e) => e.type === 'escalated');

  it('a wall clock stepped forward an hour while a P1 waits: one tier per budget, not all four at once', () => {
    h = openHarness({ config: budgets(10_000) });
    buildTree(h.response.network);
    const [o] = ingest(h, sos(), source({}, h.clock.now()));
    const id = o!.incidentId;
    h.clock.jumpWall(HOUR);
    h.clock.advance(10_000);
    expect(escalations(h, id).map((e) => e.data.toUnitId)).toEqual(['c1']);
    // late against the budget by what elapsed, not by the clock step
    expect(escalations(h, id)[0]!.data.lateMs).toBe(0);
    h.clock.advance(9_999);
    expect(escalations(h, id)).toHaveLength(1);
    h.clock.advance(1);
    h.clock.advance(10_000);
    expect(escalations(h, id).map((e) => e.data.toUnitId)).toEqual(['c1', 's1', 'd1']);
    expect(h.response.incidents.get(id)).toMatchObject({ tierUnitId: 'd1', escalationLevel: 3 });
  });

  it('after a restart with the wall clock stepped back an hour, a stored deadline waits at most one budget', async () => {
    const { dir, cleanup } = tempDir();
    cleanups.push(cleanup);
    const clock1 = createManualClock();
    h = openHarness({ dir, clock: clock1, config: budgets(60_000) });
    buildTree(h.response.network);
    const [o] = ingest(h, sos(), source({}, clock1.now()));
    const id = o!.incidentId;
    clock1.advance(20_000);
    await h.close();

    // down 5 s, and the wall clock comes back an hour early
    const clock2 = createManualClock(clock1.now() + 5_000 - HOUR);
    h = openHarness({ dir, clock: clock2, config: budgets(60_000) });
    expect(escalations(h, id)).toHaveLength(0);
    clock2.advance(59_999);
    expect(escalations(h, id)).toHaveLength(0);
    clock2.advance(1);
    expect(escalations(h, id).map((e) => [e.data.toUnitId, e.data.catchUp])).toEqual([['c1', undefined]]);
  });

  it('waitForDeadline clamps to [0, budget]; planEscalation decides tiers from the monotonic overdue time', () => {
    expect(waitForDeadline(10_000 + HOUR, 10_000, 60_000)).toBe(60_000);
    expect(waitForDeadline(10_000, 10_000 + HOUR, 60_000)).toBe(0);
    expect(waitForDeadline(50_000, 20_000, 60_000)).toBe(30_000);
    const network = chainNetwork([['g', 'grid', 'c'], ['c', 'community', 's'], ['s', 'street', null]]);
    const row = { tierUnitId: 'g', deadlineAt: 1000, priority: 'P1' as const };
    // the wall clock says an hour passed; the timer says it just ran out
    const one = planEscalation(row, 1000 + HOUR, network, 1000, { overdueMs: 3 });
    expect(one.map((s) => [s.toUnitId, s.lateMs, s.deadlineAt])).toEqual([['c', 3, 1000 + HOUR + 1000]]);
    // really 2.5 budgets late (the event loop or the host stalled): two tiers, lateness on the monotonic clock
    const two = planEscalation(row, 50, network, 1000, { overdueMs: 2500 });
    expect(two.map((s) => [s.toUnitId, s.lateMs])).toEqual([['c', 2500], ['s', 1500], ['s', 500]]);
  });
});

// ---- the real gateway under libfaketime ---------------------------------------------------------------------

function libfaketime(): string {
  for (const dir of readdirSync('/usr/lib', { withFileTypes: true })) {
    const p = join('/usr/lib', dir.name, 'faketime', 'libfaketime.so.1');
    if (dir.isDirectory() && existsSync(p)) return p;
  }
  throw new Error('libfaketime.so.1 not found under /usr/lib/*/faketime: apt-get install faketime (libfaketime)');
}

interface FakedGateway {
  gw: ChildGateway;
  /** step the child's wall clock to real time + offset (libfaketime syntax: "+0", "+1h", "-1h") */
  setOffset(offset: string): void;
  start(): Promise<void>;
  api(method: string, path: string, body?: unknown): Promise<{ status: number; body: any; date: number }>;
  /** the child's wall clock, from the HTTP Date header (1 s resolution) */
  childNow(): Promise<number>;
  cleanup(): Promise<void>;
}

function fakedGateway(ackMs: number): FakedGateway {
  const dataDir = mkdtempSync(join(tmpdir(), 'eldergate-faketime-'));
  const stampFile = join(dataDir, 'faketime.rc');
  const password = 'faketime-' + randomBytes(8).toString('hex');
  const env = {
    ELDERGATE_DATA_DIR: dataDir, ELDERGATE_MQTT_PORT: '0', ELDERGATE_HTTP_PORT: '0', ELDERGATE_ADMIN_PASSWORD: password,
    ELDERGATE_BUDGETS_P1_ACK_MS: String(ackMs),
    LD_PRELOAD: libfaketime(),
    // the file is read at every clock call, so rewriting it steps the running process's wall clock
    FAKETIME_TIMESTAMP_FILE: stampFile,
    FAKETIME_NO_CACHE: '1',
    // the monotonic clock stays real: it is what must carry the timers through the step
    DONT_FAKE_MONOTONIC: '1',
  };
  let token = '';
  const f: FakedGateway = {
    gw: undefined as unknown as ChildGateway,
    setOffset: (offset) => writeFileSync(stampFile, offset + '\n'),
    async start() {
      token = '';
      f.gw = await startChildGateway(env, 60_000);
    },
    async api(method, path, body) {
      const base = `http://127.0.0.1:${f.gw.httpPort}`;
      if (!token) {
        const r = await fetch(`${base}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password }) });
        token = ((await r.json()) as { token: string }).token;
      }
      const r = await fetch(base + path, { method, headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) }, ...(body ? { body: JSON.stringify(body) } : {}) });
      return { status: r.status, body: await r.json(), date: Date.parse(r.headers.get('date') ?? '') };
    },
    async childNow() {
      return (await f.api('GET', '/api/incidents?status=open')).date;
    },
    async cleanup() {
      await f.gw?.kill('SIGKILL');
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  f.setOffset('+0');
  return f;
}

/** district → street → community → grid, a resident in the grid, her phone; the phone's credentials */
async function setUp(f: FakedGateway) {
  const unit = async (name: string, tier: string, parentId?: string) => {
    const r = await f.api('POST', '/api/units', { name, tier, ...(parentId ? { parentId } : {}) });
    expect(r.status).toBe(201);
    return r.body.id as string;
  };
  const district = await unit('District', 'district');
  const street = await unit('Street', 'street', district);
  const community = await unit('Community', 'community', street);
  const grid = await unit('Grid', 'grid', community);
  const resident = (await f.api('POST', '/api/residents', { name: 'Zhao Min', unitId: grid })).body;
  const phone = (await f.api('POST', '/api/devices', { kind: 'call-phone', serial: 'FT-' + randomBytes(3).toString('hex') })).body;
  expect((await f.api('POST', `/api/devices/${phone.id}/bind`, { residentId: resident.id })).status).toBe(200);
  return { tiers: { district, street, community, grid }, phone: phone as { id: string; secret: string } };
}

async function raiseSos(f: FakedGateway, phone: { id: string; secret: string }): Promise<{ id: string; deadlineAt: number }> {
  const c = await connectDevice(`mqtt://127.0.0.1:${f.gw.mqttPort}`, phone.id, phone.secret);
  // PUBACK: the incident is durable
  await publishAsync(c, `devices/${phone.id}/events`, JSON.stringify({ ts: Date.now(), seq: 1, type: 'sos' }));
  c.end(true);
  const items = (await f.api('GET', '/api/incidents?status=open')).body.items as { id: string; deviceId: string; deadlineAt: number }[];
  const incident = items.find((i) => i.deviceId === phone.id);
  expect(incident).toBeDefined();
  return incident!;
}

const escalatedOf = async (f: FakedGateway, id: string) =>
  ((await f.api('GET', `/api/incidents/${id}`)).body.events as { type: string; at: number; data: any }[]).filter((e) => e.type === 'escalated');

describe('escalation under libfaketime (a real gateway whose wall clock is stepped)', () => {
  let f: FakedGateway | undefined;
  afterEach(async () => {
    await f?.cleanup();
    f = undefined;
  });

  it('a +1 h wall-clock step while a P1 waits: the tiers follow one budget apart, not all at once', { timeout: 180_000 }, async () => {
    const ackMs = 3000;
    f = fakedGateway(ackMs);
    await f.start();
    const { tiers, phone } = await setUp(f);
    const sentAt = Date.now();
    const incident = await raiseSos(f, phone);

    f.setOffset('+1h');
    // the child really sees the step (else this test would prove nothing)
    await waitFor(async () => (await f!.childNow()) > Date.now() + HOUR - 60_000, 'the child wall clock stepped +1 h', 20_000);

    // two tiers reached, then look at how they came
    const steps = await waitFor(async () => {
      const s = await escalatedOf(f!, incident.id);
      return s.length >= 2 ? s : undefined;
    }, 'two escalations', 60_000, 100);
    expect(steps.slice(0, 2).map((e) => e.data.toUnitId)).toEqual([tiers.community, tiers.street]);
    // one budget of real (monotonic) time between the two: with the wall clock deciding, all four share one stamp
    expect(steps[1]!.at - steps[0]!.at).toBeGreaterThanOrEqual(ackMs / 2);
    expect(steps.filter((e) => e.at === steps[0]!.at)).toHaveLength(1);
    // late by elapsed time, not by the clock step
    expect(steps[0]!.data.lateMs).toBeLessThan(60_000);
    // and the first tier was not early on the real clock either
    expect(Date.now() - sentAt).toBeGreaterThanOrEqual(ackMs);
  });

  it('a −1 h wall-clock step and a restart: the P1 escalates within a budget of the restart, not an hour later', { timeout: 180_000 }, async () => {
    const ackMs = 5000;
    f = fakedGateway(ackMs);
    await f.start();
    const { phone } = await setUp(f);
    const incident = await raiseSos(f, phone);
    // where the incident stands when the gateway dies (normally: still with the grid, nothing escalated)
    const before = (await f.api('GET', `/api/incidents/${incident.id}`)).body as { escalationLevel: number; tierUnitId: string };
    await f.gw.kill('SIGKILL');

    f.setOffset('-1h');
    await f.start();
    const readyAt = Date.now();
    expect(await f.childNow()).toBeLessThan(Date.now() - HOUR + 60_000);

    // the stored deadline is up to an hour ahead of the child's clock; the wait is clamped to the budget
    const steps = await waitFor(async () => {
      const s = await escalatedOf(f!, incident.id);
      return s.length > before.escalationLevel ? s : undefined;
    }, 'an escalation after the restart', ackMs + 30_000, 100);
    expect(Date.now() - readyAt).toBeLessThan(ackMs + 30_000);
    const first = steps[before.escalationLevel]!;
    expect(first.data.fromUnitId).toBe(before.tierUnitId);
    // a timer that ran, not a catch-up of tiers that were never due
    expect(first.data.catchUp).toBeUndefined();
    expect(steps.filter((e) => e.at === first.at)).toHaveLength(1);
  });
});
