// SIA DC-09 end to end through a running gateway on real TCP and real UDP: a simulated panel (firmware-sim, its own
// codec) provisioned by account; its SOS becomes a P1 incident and is ACKed only once durable; an encrypted SOS under
// a per-account key; a panel that stops polling raises comm-lost and its next poll clears it, also across a gateway
// restart; an unprovisioned account and garbage are refused, counted, and do not block the next good message.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, waitFor, type TestGateway } from '../../helpers/gateway.js';
import { Dc09SimTerminal, encodeDc09 } from '../../../firmware-sim/protocols/dc09.js';

const KEY = '8f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778';
type Incident = { id: string; deviceId: string; type: string; priority: string; status: string };

/** Simulated panels, each remembered so that dropAll() ends them whatever a test left open. */
function panels(ackTimeoutMs = 3000) {
  const made: Dc09SimTerminal[] = [];
  return {
    make(port: number, identifier: string, extra: { key?: string; transport?: 'tcp' | 'udp' } = {}): Dc09SimTerminal {
      const s = new Dc09SimTerminal({ host: '127.0.0.1', port, identifier, ackTimeoutMs, ...extra });
      made.push(s);
      return s;
    },
    dropAll(): void {
      for (const s of made.splice(0)) s.drop();
    },
  };
}

describe('DC-09 through the running gateway', () => {
  let t: TestGateway;
  let port: number;
  let keysDir: string;
  const sims = panels();
  const sim = (identifier: string, extra: { key?: string; transport?: 'tcp' | 'udp' } = {}, p = port) => sims.make(p, identifier, extra);
  const incidents = async (status = 'open'): Promise<Incident[]> => (await t.api('GET', `/api/incidents?status=${status}`)).body.items;

  beforeAll(async () => {
    keysDir = mkdtempSync(join(tmpdir(), 'dc09-e2e-keys-'));
    const keysFile = join(keysDir, 'keys.json');
    writeFileSync(keysFile, JSON.stringify({ E2E0C1: KEY }));
    chmodSync(keysFile, 0o600);
    // a 1 s poll interval (×2) so that supervision is seen within the test
    t = await startTestGateway({ protocols: { dc09: { port: 0, host: '127.0.0.1', keysFile, pollIntervalS: 1, pollMissFactor: 2 } } });
    port = t.gw.protocols.port('dc09')!;
    expect(port).toBeGreaterThan(0);
  });
  afterAll(async () => {
    sims.dropAll();
    await t?.stop();
    rmSync(keysDir, { recursive: true, force: true });
  });

  for (const transport of ['tcp', 'udp'] as const) {
    it(`${transport}: SOS (ADM-CID 1101) → P1 incident, ACK only once durable`, { timeout: 30_000 }, async () => {
      const account = transport === 'tcp' ? 'E2E0A1' : 'E2E0B1';
      const { id } = await t.provision('dc09', account);
      const panel = sim(account, { transport });
      await panel.connect();
      const ackAt = await panel.sos();
      const incident = (await incidents()).find((i) => i.deviceId === id && i.type === 'sos');
      expect(incident).toMatchObject({ priority: 'P1', status: 'open' });
      const full = (await t.api('GET', `/api/incidents/${incident!.id}`)).body;
      expect(full.stamps.durable).toBeLessThanOrEqual(ackAt);
      expect(panel.answers.filter((a) => a.kind !== 'ACK')).toEqual([]);
      expect(panel.answers.every((a) => a.crcOk && a.lengthOk)).toBe(true);
    });
  }

  it('encrypted (AES-192, per-account key): the SOS is decrypted, raised, and answered by an encrypted ACK', { timeout: 30_000 }, async () => {
    const { id } = await t.provision('dc09', 'E2E0C1');
    const panel = sim('E2E0C1', { key: KEY, transport: 'udp' });
    await panel.connect();
    await panel.sos();
    expect((await incidents()).find((i) => i.deviceId === id && i.type === 'sos')).toMatchObject({ priority: 'P1' });
    expect(panel.answers.at(-1)).toMatchObject({ kind: 'ACK', encrypted: true, crcOk: true });
    // the same panel without its key is a downgrade: DUH, and nothing raised twice
    const plain = sim('E2E0C1', { transport: 'tcp' });
    await expect(plain.sos()).rejects.toThrow(/DUH/);
    // a message that decrypts but is not a DC-09 body: NAK; the device's rejects keep the wire bytes (still
    // encrypted) and a reason without the decrypted text
    const odd = sim('E2E0C1', { key: KEY, transport: 'tcp' });
    await odd.sendRaw(encodeDc09({ token: 'ADM-CID', seq: 3, account: 'E2E0C1', key: KEY, data: '#E2E0C1|1101 00 001 [SECRET-PLAINTEXT', ts: Date.now() }));
    expect(await odd.nextAnswer()).toMatchObject({ kind: 'NAK' });
    const rejects = await waitFor(async () => {
      const items = (await t.api('GET', `/api/devices/${id}/rejects`)).body.items as { reason: string; raw: string }[];
      return items.find((x) => x.reason.startsWith('malformed')) ? items : undefined;
    }, 'the malformed reject on the device');
    expect(rejects.find((x) => x.reason.startsWith('malformed'))!.reason).toMatch(/decrypts under its key.*not kept/);
    expect(JSON.stringify(rejects)).not.toContain('SECRET-PLAINTEXT');
  });

  it('a panel that stops polling raises comm-lost; its next poll clears it', { timeout: 40_000 }, async () => {
    const { id } = await t.provision('dc09', 'E2E0D1');
    const panel = sim('E2E0D1');
    await panel.connect();
    panel.startPolling(300);
    await new Promise((r) => setTimeout(r, 1200));
    expect((await incidents()).find((i) => i.deviceId === id && i.type === 'comm-lost')).toBeUndefined();
    panel.stopPolling();
    const card = await waitFor(async () => (await incidents()).find((i) => i.deviceId === id && i.type === 'comm-lost'), 'comm-lost card', 15_000);
    expect(card.priority).toBe('P2');
    await panel.heartbeat();
    await waitFor(async () => !(await incidents()).some((i) => i.deviceId === id && i.type === 'comm-lost'), 'comm-lost cleared', 15_000);
  });

  it('an unprovisioned account and garbage are refused and counted; the next good message is taken', { timeout: 30_000 }, async () => {
    const { id } = await t.provision('dc09', 'E2E0E1');
    const stranger = sim('E2E0FF');
    await stranger.sendRaw(encodeDc09({ token: 'ADM-CID', seq: 1, account: 'E2E0FF', data: '#E2E0FF|1101 00 001', ts: Date.now() }));
    expect(await stranger.nextAnswer()).toMatchObject({ kind: 'NAK' });
    const panel = sim('E2E0E1');
    await panel.sendRaw(Buffer.from('\x00\x01garbage garbage\n0000002A"ADM-CID"0001R0L0#E2E0E1[#E2E0E1|1101 00 001]\r'));
    const bad = await panel.nextAnswer();
    expect(bad).toMatchObject({ kind: 'NAK' });
    await panel.sos();
    expect((await incidents()).some((i) => i.deviceId === id && i.type === 'sos')).toBe(true);
    const metrics = await (await fetch(`${t.http}/metrics`)).text();
    expect(metrics).toMatch(/eldergate_protocol_refused_total\{protocol="dc09",reason="unprovisioned"\} [1-9]/);
    expect(metrics).toMatch(/eldergate_protocol_refused_total\{protocol="dc09",reason="bad-crc"\} [1-9]/);
    expect(metrics).toMatch(/eldergate_protocol_refused_total\{protocol="dc09",reason="garbage"\} [1-9]/);
  });
});

describe('DC-09 supervision across a gateway restart', () => {
  it('a comm-lost card raised before a restart is cleared by the first poll after it', { timeout: 60_000 }, async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'dc09-restart-'));
    const settings = { protocols: { dc09: { port: 0, host: '127.0.0.1', pollIntervalS: 1, pollMissFactor: 2 } } };
    let t = await startTestGateway(settings, dataDir);
    try {
      const { id } = await t.provision('dc09', 'E2E1A1');
      // the admin's password is new at each start of the test gateway: an operator of our own reads the board
      expect((await t.api('POST', '/api/users', { username: 'dc09op', password: 'dc09-operator-password-1', role: 'operator' })).status).toBe(201);
      let token = await t.token('dc09op', 'dc09-operator-password-1');
      const open = async () => ((await t.api('GET', '/api/incidents?status=open', undefined, token)).body.items as Incident[]).filter((i) => i.deviceId === id && i.type === 'comm-lost');
      let panel = new Dc09SimTerminal({ host: '127.0.0.1', port: t.gw.protocols.port('dc09')!, identifier: 'E2E1A1', ackTimeoutMs: 3000 });
      await panel.connect();
      await waitFor(async () => (await open()).length > 0, 'comm-lost before the restart', 15_000);
      panel.drop();
      await t.gw.close();
      t = await startTestGateway(settings, dataDir);
      token = await t.token('dc09op', 'dc09-operator-password-1');
      expect(await open()).toHaveLength(1);
      panel = new Dc09SimTerminal({ host: '127.0.0.1', port: t.gw.protocols.port('dc09')!, identifier: 'E2E1A1', ackTimeoutMs: 3000 });
      await panel.connect();
      await waitFor(async () => (await open()).length === 0, 'comm-lost cleared after the restart', 15_000);
      panel.drop();
    } finally {
      await t.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

// A receiver takes every account: an event from a panel no device holds is stored on the device that stands for the
// receiver (protocols.dc09.unknownAccountsDeviceId), with its account, on a card of that account's own, and ACKed once
// durable; two unknown panels never share a card, nor a dedup key. Only unencrypted events; without the setting (the
// tests above) such an event is answered NAK.
describe('DC-09 events from accounts no device holds', () => {
  it('are taken on the stand-in device, one card per account; an encrypted one and a suspended stand-in are refused', { timeout: 60_000 }, async () => {
    const first = await startTestGateway();
    const receiver = await first.provision('receiver', 'DC09-RECEIVER');
    await first.gw.close();
    const t = await startTestGateway({
      adminPassword: first.adminPassword,
      protocols: { dc09: { port: 0, host: '127.0.0.1', unknownAccountsDeviceId: receiver.id } },
    }, first.dataDir);
    const sims = panels();
    try {
      const port = t.gw.protocols.port('dc09')!;
      const panel = (account: string) => sims.make(port, account);
      const a = panel('E2E2A1');
      const b = panel('E2E2B1');
      // the same seq and second from both: not taken for one another's resend
      const ts = Date.now();
      await a.sendRaw(encodeDc09({ token: 'ADM-CID', seq: 7, account: 'E2E2A1', data: '#E2E2A1|1110 00 001', ts }));
      expect(await a.nextAnswer()).toMatchObject({ kind: 'ACK' });
      await b.sendRaw(encodeDc09({ token: 'ADM-CID', seq: 7, account: 'E2E2B1', data: '#E2E2B1|1110 00 001', ts }));
      expect(await b.nextAnswer()).toMatchObject({ kind: 'ACK' });
      await a.sendRaw(encodeDc09({ token: 'ADM-CID', seq: 8, account: 'E2E2A1', data: '#E2E2A1|1110 00 001', ts: Date.now() }));
      expect(await a.nextAnswer()).toMatchObject({ kind: 'ACK' });
      // an unknown panel's link test is answered
      await b.sendRaw(encodeDc09({ token: 'NULL', seq: 9, account: 'E2E2B1', data: '', ts: Date.now() }));
      expect(await b.nextAnswer()).toMatchObject({ kind: 'ACK' });
      const cards = (await t.api('GET', `/api/incidents?deviceId=${receiver.id}&status=open`)).body.items as { type: string; account: string | null; count: number; priority: string }[];
      expect(cards.map((c) => [c.type, c.account, c.count, c.priority]).sort()).toEqual([['fire', 'E2E2A1', 2, 'P1'], ['fire', 'E2E2B1', 1, 'P1']]);

      // encrypted: taken only from a provisioned account (no key to read it by)
      const c = panel('E2E2C1');
      await c.sendRaw(encodeDc09({ token: 'ADM-CID', seq: 1, account: 'E2E2C1', data: '#E2E2C1|1110 00 001', ts: Date.now(), key: KEY }));
      expect(await c.nextAnswer()).toMatchObject({ kind: 'NAK' });
      // the stand-in suspended: refused, as without the setting
      expect((await t.api('POST', `/api/devices/${receiver.id}/suspend`)).status).toBe(200);
      await c.sendRaw(encodeDc09({ token: 'ADM-CID', seq: 2, account: 'E2E2C1', data: '#E2E2C1|1110 00 001', ts: Date.now() }));
      expect(await c.nextAnswer()).toMatchObject({ kind: 'NAK' });
      expect((await t.api('GET', `/api/incidents?deviceId=${receiver.id}&status=open`)).body.items).toHaveLength(2);
    } finally {
      sims.dropAll();
      await t.stop();
    }
  });
});

describe('a DC-09 poll and the frame after it', () => {
  // telemetry written every 5 s: a poll's heartbeat waits that long for its batch unless an alarm's commit takes it
  const FLUSH_MS = 5000;
  let t: TestGateway;
  let port: number;
  const sims = panels(3 * FLUSH_MS);
  const panel = (identifier: string) => sims.make(port, identifier);
  beforeAll(async () => {
    t = await startTestGateway({
      protocols: { dc09: { port: 0, host: '127.0.0.1', pollIntervalS: 60 } },
      ingest: { telemetryFlushMs: FLUSH_MS },
    });
    port = t.gw.protocols.port('dc09')!;
  });
  afterAll(async () => {
    sims.dropAll();
    await t?.stop();
  });

  it("an SOS right after a poll is not held up by the poll's heartbeat being written", { timeout: 30_000 }, async () => {
    const { id } = await t.provision('dc09', 'E2E3A1');
    const p = panel('E2E3A1');
    // the first poll restores the path (an urgent report, which writes what is queued); the second is a plain poll
    await p.connect();
    await p.heartbeat();
    const sent = Date.now();
    const ackAt = await p.sos();
    // before, the SOS frame waited for the poll's heartbeat to be durable: the telemetry batch FLUSH_MS later
    expect(ackAt - sent).toBeLessThan(FLUSH_MS / 2);
    expect((await t.api('GET', `/api/incidents?deviceId=${id}&status=open`)).body.items).toMatchObject([{ type: 'sos', priority: 'P1' }]);
  });

  it("a panel's polls sent back to back: one heartbeat on its way per connection, the next poll waits for it", { timeout: 30_000 }, async () => {
    await t.provision('dc09', 'E2E3B1');
    const p = panel('E2E3B1');
    await p.connect();
    const first = p.nextAnswer();
    const second = p.nextAnswer();
    await p.sendRaw(Buffer.concat([11, 12].map((seq) => encodeDc09({ token: 'NULL', seq, account: 'E2E3B1', data: '', ts: Date.now() }))));
    const sent = Date.now();
    expect(await first).toMatchObject({ kind: 'ACK', seq: '0011' });
    const firstAt = Date.now();
    expect(await second).toMatchObject({ kind: 'ACK', seq: '0012' });
    // the first is answered at once; the second once the first's heartbeat is written (its batch, FLUSH_MS after it)
    expect(firstAt - sent).toBeLessThan(FLUSH_MS / 2);
    expect(Date.now() - sent).toBeGreaterThanOrEqual(FLUSH_MS - 500);
  });
});
