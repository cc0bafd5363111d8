// DC-09 reporting-path supervision through the running gateway (docs/protocols/dc09.md § Supervision):
// - one fault, one card: a silent panel raises the protocol's comm-lost and nothing else — the general supervision
//   follows the panel's own poll interval into 'offline' but leaves the card to the protocol — and the card clears
//   when the polls resume;
// - a panel silent since before a restart (it polled, the gateway restarted, it never polls again) raises comm-lost
//   from the start (the gateway lists the panels heard before: ProtocolServices.provisioned()); one provisioned but
//   never heard (not installed yet) does not.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startTestGateway, waitFor, type TestGateway } from '../../helpers/gateway.js';
import { Dc09SimTerminal } from '../../../firmware-sim/protocols/dc09.js';

type Incident = { id: string; deviceId: string; type: string; priority: string; status: string };
const SETTINGS = { protocols: { dc09: { port: 0, host: '127.0.0.1', pollIntervalS: 1, pollMissFactor: 2 } } };

const openCards = async (t: TestGateway, deviceId: string): Promise<Incident[]> =>
  ((await t.api('GET', '/api/incidents?status=open&limit=200')).body.items as Incident[]).filter((i) => i.deviceId === deviceId);
const supervisionOf = async (t: TestGateway, deviceId: string): Promise<string> =>
  (await t.api('GET', `/api/devices/${deviceId}`)).body.live?.supervision;

describe('DC-09 supervision: one fault, one card', () => {
  it('a silent panel has exactly one open card (comm-lost, P2: a telecare hub is a life-safety kind), though supervision calls it offline; polls clear it', { timeout: 60_000 }, async () => {
    const t = await startTestGateway(SETTINGS);
    const panel = new Dc09SimTerminal({ host: '127.0.0.1', port: t.gw.protocols.port('dc09')!, identifier: 'E2E2A1', ackTimeoutMs: 3000 });
    try {
      const { id } = await t.provision('dc09', 'E2E2A1');
      // the panel's poll interval on its device: the DC-09 supervisor and the general supervision both read it
      expect((await t.api('PATCH', `/api/devices/${id}`, { config: { pollIntervalS: 1 } })).status).toBe(200);
      await panel.connect();
      panel.startPolling(300);
      await waitFor(async () => (await supervisionOf(t, id)) === 'ok', 'the panel supervised ok');
      panel.stopPolling();

      await waitFor(async () => (await openCards(t, id)).some((i) => i.type === 'comm-lost'), 'the comm-lost card', 15_000);
      // supervision's own ladder ran to its end (1 s × offlineFactor 3) without a second card
      await waitFor(async () => (await supervisionOf(t, id)) === 'offline', 'supervision state offline', 15_000);
      const cards = await openCards(t, id);
      expect(cards.map((c) => [c.type, c.priority])).toEqual([['comm-lost', 'P2']]);

      panel.startPolling(300);
      await waitFor(async () => (await openCards(t, id)).length === 0, 'the card cleared by the polls', 15_000);
      await waitFor(async () => (await supervisionOf(t, id)) === 'ok', 'supervision ok again');
      expect(await openCards(t, id)).toEqual([]);
    } finally {
      panel.drop();
      await t.stop();
    }
  });
});

describe('DC-09 supervision across a restart', () => {
  it('a panel that polled before a restart and never again raises comm-lost from the start; a never-heard one does not', { timeout: 60_000 }, async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'dc09-silent-'));
    let t = await startTestGateway(SETTINGS, dataDir);
    try {
      const heard = await t.provision('dc09', 'E2E3A1');
      const never = await t.provision('dc09', 'E2E3B1'); // provisioned ahead of its installation
      expect((await t.api('POST', '/api/users', { username: 'dc09op2', password: 'dc09-operator-password-2', role: 'operator' })).status).toBe(201);
      const panel = new Dc09SimTerminal({ host: '127.0.0.1', port: t.gw.protocols.port('dc09')!, identifier: 'E2E3A1', ackTimeoutMs: 3000 });
      await panel.connect(); // one poll, stored: the panel is heard
      await waitFor(async () => (await t.api('GET', `/api/devices/${heard.id}`)).body.live?.lastSeen, 'the poll stored');
      panel.drop();
      await t.gw.close(); // before its deadline: nothing raised yet
      t = await startTestGateway(SETTINGS, dataDir);
      const token = await t.token('dc09op2', 'dc09-operator-password-2');
      const open = async (deviceId: string) => ((await t.api('GET', '/api/incidents?status=open', undefined, token)).body.items as Incident[])
        .filter((i) => i.deviceId === deviceId && i.type === 'comm-lost');

      const [card] = await waitFor(async () => {
        const c = await open(heard.id);
        return c.length > 0 ? c : undefined;
      }, 'comm-lost for the panel silent since the restart', 15_000);
      expect(card).toMatchObject({ priority: 'P2', status: 'open' });
      const full = (await t.api('GET', `/api/incidents/${card!.id}`, undefined, token)).body;
      expect(JSON.stringify(full)).toMatch(/"sinceStart":true/);
      // the never-heard panel had the same deadline: well past it, still nothing
      await new Promise((r) => setTimeout(r, 3000));
      expect(await open(never.id)).toEqual([]);
    } finally {
      await t.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
