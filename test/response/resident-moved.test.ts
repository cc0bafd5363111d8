// A resident's unit changed while her incidents are open (she moved, or was placed in the wrong grid): her incidents
// follow her (response/follow-resident.ts). Her new unit's people see them and her next alarms, the unit she left
// drops them from its consoles, and the escalation climbs her new unit's chain. Before, they stayed with the old unit:
// the new one never saw them, and the old one's people could not open her file. A real gateway, real SQLite, real
// HTTP and WebSocket, a real MQTT device.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { publishAsync, startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { TestConsole } from '../ws/helpers.js';

interface Card { id: string; unitId: string | null; tierUnitId: string | null; status: string; count: number; escalationLevel: number; events?: { type: string; data: Record<string, unknown> }[] }

describe('open incidents follow their resident to her new unit', () => {
  let t: TestGateway;
  const units: Record<string, string> = {};
  const tokens: Record<string, string> = {};
  beforeAll(async () => {
    // escalation every 2 s, so that the test sees one climb each chain
    t = await startTestGateway({ budgets: { P1: { pushMs: 1000, ackMs: 2000, reachMs: 60_000 } } });
    const unit = async (key: string, name: string, tier: string, parent?: string) => {
      const r = await t.api('POST', '/api/units', { name, tier, ...(parent ? { parentId: units[parent] } : {}) });
      expect(r.status, JSON.stringify(r.body)).toBe(201);
      units[key] = r.body.id;
    };
    await unit('d', 'District centre', 'district');
    await unit('s1', 'Street centre North', 'street', 'd');
    await unit('c1', 'Community North', 'community', 's1');
    await unit('g1', 'Grid North', 'grid', 'c1');
    await unit('s2', 'Street centre South', 'street', 'd');
    await unit('c2', 'Community South', 'community', 's2');
    await unit('g2', 'Grid South', 'grid', 'c2');
    for (const [name, key] of [['north', 'g1'], ['south', 'g2']] as const) {
      const password = `operator-${name}-password-1`;
      expect((await t.api('POST', '/api/users', { username: name, password, role: 'operator', unitId: units[key] })).status).toBe(201);
      tokens[name] = await t.token(name, password);
    }
  });
  afterAll(async () => t?.stop());

  /** a resident of Grid North with a call phone, connected, whose first SOS is open */
  const sosIn = async (name: string, serial: string) => {
    const res = (await t.api('POST', '/api/residents', { name, unitId: units.g1 })).body as { id: string };
    const dev = await t.provision('call-phone', serial);
    expect((await t.api('POST', `/api/devices/${dev.id}/bind`, { residentId: res.id })).status).toBe(200);
    const c = await t.connectDevice(dev.id, dev.secret);
    await publishAsync(c, `devices/${dev.id}/events`, JSON.stringify({ ts: Date.now(), seq: 1, type: 'sos' }));
    const card = await waitFor(async () => (await t.api('GET', `/api/incidents?deviceId=${dev.id}&type=sos`)).body.items[0] as Card | undefined, 'the SOS card');
    return { res, dev, c, card };
  };
  const inUnit = (id: string, unitId: string) => waitFor(async () => {
    const d = (await t.api('GET', `/api/incidents/${id}`)).body as Card;
    return d.unitId === unitId ? d : undefined;
  }, 'the card in her new grid');

  it('her SOS card goes to her new grid with its escalation; her next press joins it there; the old grid drops it', { timeout: 60_000 }, async () => {
    const north = await TestConsole.open(t, tokens.north!);
    const south = await TestConsole.open(t, tokens.south!);
    north.subscribe('all');
    south.subscribe('all');
    const { res, dev, c, card } = await sosIn('Guo Lan', 'MOVE-UNIT-1');
    try {
      expect(card).toMatchObject({ unitId: units.g1, tierUnitId: units.g1 });
      // nobody answers in the north: it climbs to the north's community station
      await waitFor(async () => ((await t.api('GET', `/api/incidents/${card.id}`)).body as Card).tierUnitId === units.c1 || undefined, 'escalation to Community North', 15_000);

      expect((await t.api('PATCH', `/api/residents/${res.id}`, { unitId: units.g2 })).status).toBe(200);
      const moved = await inUnit(card.id, units.g2!);
      // Community North is not above her new grid: the escalation goes on from there, with the deadline it had
      expect(moved.tierUnitId).toBe(units.g2);
      expect(moved.events!.find((e) => e.type === 'moved')!.data).toMatchObject({ fromUnitId: units.g1, toUnitId: units.g2, tierUnitId: units.g2 });

      // the south sees it, on its board and its stream; the north is told it left, and may no longer open it
      const southActive = (await t.api('GET', '/api/incidents/active', undefined, tokens.south)).body.items as Card[];
      expect(southActive.map((i) => i.id)).toContain(card.id);
      expect(((await t.api('GET', '/api/incidents/active', undefined, tokens.north)).body.items as Card[]).map((i) => i.id)).not.toContain(card.id);
      expect([403, 404]).toContain((await t.api('GET', `/api/incidents/${card.id}`, undefined, tokens.north)).status);
      await south.waitFor((f) => f.type === 'incident' && f.event?.type === 'moved' && f.event.incidentId === card.id, 'the move on the south\'s stream');
      await north.waitFor((f) => f.type === 'incident' && f.event?.type === 'moved' && f.event.incidentId === card.id, 'the move on the north\'s stream');

      // her next press joins her card, now the south's
      await publishAsync(c, `devices/${dev.id}/events`, JSON.stringify({ ts: Date.now(), seq: 2, type: 'sos' }));
      await south.waitFor((f) => f.type === 'incident' && f.event?.type === 'joined' && f.event.incidentId === card.id, 'her second press on the south\'s stream');
      expect(north.incidentFrames.some((f) => f.event?.type === 'joined' && f.event.incidentId === card.id)).toBe(false);

      // nobody answers in the south either: it climbs the south's chain
      const climbed = await waitFor(async () => {
        const d = (await t.api('GET', `/api/incidents/${card.id}`)).body as Card;
        return d.tierUnitId === units.c2 ? d : undefined;
      }, 'escalation to Community South', 15_000);
      expect(climbed).toMatchObject({ unitId: units.g2, count: 2 });
      expect(climbed.events!.filter((e) => e.type === 'escalated').map((e) => e.data.toUnitId)).not.toContain(units.s1);
    } finally {
      c.end(true);
      await north.close();
      await south.close();
    }
  });

  it('an escalation that reached a tier above her new unit goes on from there', { timeout: 60_000 }, async () => {
    const { res, c, card } = await sosIn('Huang Mei', 'MOVE-UNIT-2');
    try {
      // grid → community → street → district: the district centre is above both grids
      await waitFor(async () => ((await t.api('GET', `/api/incidents/${card.id}`)).body as Card).tierUnitId === units.d || undefined, 'escalation to the district centre', 20_000);
      expect((await t.api('PATCH', `/api/residents/${res.id}`, { unitId: units.g2 })).status).toBe(200);
      expect((await inUnit(card.id, units.g2!)).tierUnitId).toBe(units.d);
    } finally {
      c.end(true);
    }
  });

  it('a change that leaves her unit alone moves nothing', async () => {
    const { res, c, card } = await sosIn('Lin Hui', 'MOVE-UNIT-3');
    try {
      expect((await t.api('PATCH', `/api/residents/${res.id}`, { notes: 'key with the neighbour' })).status).toBe(200);
      // (a move is written within milliseconds, as the tests above wait for)
      await new Promise((r) => setTimeout(r, 500));
      const d = (await t.api('GET', `/api/incidents/${card.id}`)).body as Card;
      expect(d.unitId).toBe(units.g1);
      expect(d.events!.some((e) => e.type === 'moved')).toBe(false);
    } finally {
      c.end(true);
    }
  });
  it('one already acknowledged stays with the people handling it; her next press joins it there', async () => {
    const { res, dev, c, card } = await sosIn('Qian Yi', 'MOVE-UNIT-4');
    try {
      expect((await t.api('POST', `/api/incidents/${card.id}/acknowledge`, {}, tokens.north)).status).toBe(200);
      expect((await t.api('PATCH', `/api/residents/${res.id}`, { unitId: units.g2 })).status).toBe(200);
      await publishAsync(c, `devices/${dev.id}/events`, JSON.stringify({ ts: Date.now(), seq: 2, type: 'sos' }));
      const d = await waitFor(async () => {
        const x = (await t.api('GET', `/api/incidents/${card.id}`, undefined, tokens.north)).body as Card;
        return x.count === 2 ? x : undefined;
      }, 'her second press on the card the north is handling');
      expect(d).toMatchObject({ unitId: units.g1, status: 'acknowledged' });
      expect(d.events!.some((e) => e.type === 'moved')).toBe(false);
    } finally {
      c.end(true);
    }
  });
});
