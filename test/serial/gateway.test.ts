// The serial receiver adapter inside a real gateway (real SQLite file, real rules and incidents), fed by the simulated
// receiver over a socat pseudo-terminal: a lost receiver link survives a restart and is cleared when the receiver
// speaks again; telecare codes map by the device's own model (set by CSV import); unmapped codes get a card each; each
// account no device holds has cards of its own, shown with its account.
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../core/config.js';
import { createLogger } from '../../core/logger.js';
import { startEldergate, type Eldergate } from '../../eldergate.js';
import { ReceiverSim } from '../../firmware-sim/serial/receiver-sim.js';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { startPtyPair, type PtyPair } from './helpers.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** The gateway on `dataDir` with one serial receiver on `path`. */
async function gatewayWithReceiver(dataDir: string, path: string, receiverDeviceId: string, heartbeatTimeoutMs = 60_000): Promise<Eldergate> {
  const config = loadConfig({}, {
    dataDir, logLevel: process.env.TEST_LOG_LEVEL ?? 'silent',
    mqtt: { port: 0, host: '127.0.0.1' }, http: { port: 0, host: '127.0.0.1' },
    serial: [{ path, receiverDeviceId, heartbeatTimeoutMs }],
  });
  return startEldergate({ config, log: createLogger(config.logLevel) });
}

/** A registry made through a test gateway's API, then that gateway closed: its data directory is reused. */
async function prepared(): Promise<{ t: TestGateway; pty: PtyPair }> {
  const pty = await startPtyPair();
  cleanups.push(() => pty.close());
  const t = await startTestGateway();
  cleanups.push(() => t.stop());
  return { t, pty };
}

const open = (gw: Eldergate, deviceId: string) =>
  gw.response.incidents.list({ status: ['open'], deviceId }).items;

describe('serial receiver in the running gateway', () => {
  it('a receiver lost before a restart is cleared by its first heartbeat after it', { timeout: 60_000 }, async () => {
    const { t, pty } = await prepared();
    const receiver = await t.provision('receiver', 'MLR2-RESTART');
    await t.gw.close();

    // the receiver is silent: its link is lost, a comm-lost card opens
    let gw = await gatewayWithReceiver(t.dataDir, pty.a, receiver.id, 800);
    const lost = await waitFor(() => open(gw, receiver.id).find((i) => i.type === 'comm-lost'), 'the comm-lost incident', 20_000);
    expect(lost.priority).toBe('P2'); // a receiver is a life-safety kind

    // the gateway restarts on the same data; the card is still open
    await gw.close();
    gw = await gatewayWithReceiver(t.dataDir, pty.a, receiver.id, 60_000);
    cleanups.push(() => gw.close());
    expect(open(gw, receiver.id).map((i) => i.type)).toEqual(['comm-lost']);

    // the receiver speaks again: comm-restored is stored and the card cleared
    const sim = await ReceiverSim.open({ path: pty.b });
    cleanups.push(() => sim.close());
    expect((await sim.sendHeartbeat()).delivered).toBe(true);
    await waitFor(() => open(gw, receiver.id).length === 0, 'the comm-lost card to clear', 20_000);
    expect(gw.response.incidents.get(lost.id)).toMatchObject({ status: 'resolved' });
    const comm = gw.store.sqlite.prepare(`SELECT type FROM observations WHERE device_id = ? AND type LIKE 'comm-%' ORDER BY id`).all(receiver.id);
    expect(comm).toEqual([{ type: 'comm-lost' }, { type: 'comm-restored' }]);
  });

  it("telecare codes by the device's own model (CSV import); each unmapped code on its own card", { timeout: 60_000 }, async () => {
    const { t, pty } = await prepared();
    const receiver = await t.provision('receiver', 'MLR2-TELECARE');
    // the model column of a CSV import, as a city imports its telecare units
    const csv = await t.api('POST', '/api/devices/import', 'serial,kind,model\nCLX-0001,call-phone,Climax MP-3G\nPLAIN-0001,call-phone,\n');
    expect(csv.status).toBe(201);
    const devices = t.gw.store.sqlite.prepare('SELECT id, serial FROM devices').all() as { id: string; serial: string }[];
    const climax = devices.find((d) => d.serial === 'CLX-0001')!;
    const plain = devices.find((d) => d.serial === 'PLAIN-0001')!;
    // account identifiers as a technician types them: small letters
    expect((await t.api('PATCH', `/api/devices/${climax.id}`, { account: 'c1a1' })).status).toBe(200);
    expect((await t.api('PATCH', `/api/devices/${plain.id}`, { account: '2222' })).status).toBe(200);
    await t.gw.close();

    const gw = await gatewayWithReceiver(t.dataDir, pty.a, receiver.id);
    cleanups.push(() => gw.close());
    const sim = await ReceiverSim.open({ path: pty.b });
    cleanups.push(() => sim.close());
    const send = async (account: string, code: number, qualifier: 'E' | '1' = 'E') =>
      expect((await sim.sendEvent({ account, code, qualifier })).delivered).toBe(true);

    await send('C1A1', 102, '1'); // 1102 on a Climax unit: no movement after a fall
    await send('2222', 102); // on another device: DC-05 fail to report in
    await send('2222', 641); // inactivity
    await send('2222', 616); // call request
    await send('2222', 732); // wanderer
    await send('2222', 987); // unmapped
    await send('2222', 654); // unmapped, another code
    await send('2222', 987); // the same unmapped code again joins its card

    const climaxCards = open(gw, climax.id);
    expect(climaxCards.map((i) => [i.type, i.priority])).toEqual([['fall', 'P1']]);
    expect(climaxCards[0]!.residentId).toBeNull();
    const types = open(gw, plain.id).map((i) => i.type).sort();
    expect(types).toEqual(['call-request', 'no-movement', 'supervision-failure', 'unknown-event:654', 'unknown-event:987', 'wander']);
    const unknown987 = open(gw, plain.id).find((i) => i.type === 'unknown-event:987')!;
    expect(gw.response.incidents.events(unknown987.id).filter((e) => e.type === 'joined')).toHaveLength(1);
    // nothing landed on the receiver as from an unknown account
    expect(open(gw, receiver.id)).toEqual([]);
  });

  it('two panels no device holds never share a card: each unknown account has its own, with its account shown', { timeout: 60_000 }, async () => {
    const { t, pty } = await prepared();
    const receiver = await t.provision('receiver', 'MLR2-UNKNOWN');
    await t.gw.close();
    const t2 = await startTestGateway({ adminPassword: t.adminPassword, serial: [{ path: pty.a, receiverDeviceId: receiver.id, heartbeatTimeoutMs: 60_000 }] }, t.dataDir);
    cleanups.push(() => t2.gw.close());
    const gw = t2.gw;
    const sim = await ReceiverSim.open({ path: pty.b });
    cleanups.push(() => sim.close());
    const send = async (account: string, code: number, qualifier: 'E' | 'R' = 'E') =>
      expect((await sim.sendEvent({ account, code, qualifier })).delivered).toBe(true);
    const cards = () => open(gw, receiver.id).map((i) => [i.type, i.account, i.count]).sort((a, b) => String(a).localeCompare(String(b)));

    await send('1234', 110); // fire at one home
    await send('5678', 110); // fire at another: a card of its own, not a repeat of the first
    await send('1234', 110); // the first home again: joins its own card
    expect(cards()).toEqual([['fire', '01:1:1234', 2], ['fire', '01:1:5678', 1]]);
    const fire5678 = open(gw, receiver.id).find((i) => i.account === '01:1:5678')!;
    expect(gw.response.incidents.events(fire5678.id)[0]).toMatchObject({ type: 'opened', data: { account: '01:1:5678', flags: ['unknown-account'] } });
    // what a console reads: the account on the incident, the only clue to the home
    const listed = await t2.api('GET', `/api/incidents?deviceId=${receiver.id}&status=open`);
    expect(listed.status).toBe(200);
    expect((listed.body.items as { account: string | null }[]).map((i) => i.account).sort()).toEqual(['01:1:1234', '01:1:5678']);

    // mains lost at both; mains back at one clears that one's card only
    await send('1234', 301);
    await send('5678', 301);
    await send('5678', 301, 'R');
    expect(cards().filter(([type]) => type === 'power-lost')).toEqual([['power-lost', '01:1:1234', 1]]);

    // the account given to the panel's device: its next alarm is the device's, on a card of its own
    const panel = await t2.provision('call-phone', 'PANEL-5678');
    expect((await t2.api('PATCH', `/api/devices/${panel.id}`, { account: '01:1:5678' })).status).toBe(200);
    await send('5678', 110);
    expect(open(gw, panel.id).map((i) => [i.type, i.account])).toEqual([['fire', null]]);
    expect(cards().filter(([type]) => type === 'fire')).toEqual([['fire', '01:1:1234', 2], ['fire', '01:1:5678', 1]]);
  });
});
