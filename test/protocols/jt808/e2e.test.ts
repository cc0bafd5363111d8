// JT/T 808 end to end through a running gateway on real TCP: a simulated terminal (firmware-sim, its own codec)
// registers and authenticates, its SOS becomes a P1 incident answered only once durable, the operator's
// acknowledgement reaches it as 0x8300, a call-back as 0x8400 acked by its 0x0001, a locate-now as 0x8201 answered by
// 0x0201; a location before authentication, a wrong check code and an unprovisioned phone are refused and counted;
// someone who knows a registered phone number cannot register it again until an admin rotates the secret.
import { createConnection, type Socket } from 'node:net';
import iconv from 'iconv-lite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, waitFor, type TestGateway } from '../../helpers/gateway.js';
import { Jt808SimReader, Jt808SimTerminal, jt808SimFrame, jt808SimLocation, type SimMessage } from '../../../firmware-sim/protocols/jt808.js';

describe('JT/T 808 through the running gateway', () => {
  let t: TestGateway;
  let port: number;
  const sims: Jt808SimTerminal[] = [];
  const sockets: Socket[] = [];
  const sim = (identifier: string, extra: { authCode?: string; edition?: 2013 | 2019 } = {}) => {
    const s = new Jt808SimTerminal({ host: '127.0.0.1', port, identifier, ackTimeoutMs: 3000, ...extra });
    sims.push(s);
    return s;
  };
  /** a raw client that collects the gateway's messages */
  const raw = async () => {
    const reader = new Jt808SimReader();
    const got: SimMessage[] = [];
    const s = await new Promise<Socket>((resolve, reject) => {
      const c = createConnection({ host: '127.0.0.1', port }, () => resolve(c));
      c.once('error', reject);
    });
    s.on('data', (d: Buffer) => got.push(...reader.push(d)));
    sockets.push(s);
    return { s, got };
  };

  beforeAll(async () => {
    t = await startTestGateway({ protocols: { jt808: { port: 0, host: '127.0.0.1' } } });
    port = t.gw.protocols.port('jt808')!;
    expect(port).toBeGreaterThan(0);
  });
  afterAll(async () => {
    for (const s of sims) s.drop();
    for (const s of sockets) s.destroy();
    await t?.stop();
  });

  it('register + authenticate; SOS → P1 incident, 0x8001 only after durable; acknowledge → 0x8300; call-back → 0x8400 acked; locate-now → 0x0201', { timeout: 60_000 }, async () => {
    const { id } = await t.provision('jt808', '13800138001');
    const term = sim('13800138001');
    await term.connect();
    expect(term.authCode).toMatch(/.{16,}/);

    const sentAt = Date.now();
    const ackAt = await term.sos({ lat: 22.543096, lon: 114.057865 });
    expect(ackAt).toBeGreaterThanOrEqual(sentAt);
    const list = await t.api('GET', '/api/incidents?status=open');
    const incident = list.body.items.find((i: { deviceId: string }) => i.deviceId === id);
    expect(incident).toMatchObject({ type: 'sos', priority: 'P1', status: 'open' });
    const full = (await t.api('GET', `/api/incidents/${incident.id}`)).body;
    expect(full.stamps.durable).toBeLessThanOrEqual(ackAt);
    expect(full.position ?? full.events.find((e: { type: string }) => e.type === 'opened')?.data?.position).toMatchObject({ lat: 22.543096, lon: 114.057865 });

    const op = await t.api('POST', '/api/users', { username: 'jt808op', password: 'operator-password-7', role: 'operator' });
    expect(op.status).toBe(201);
    const token = await t.token('jt808op', 'operator-password-7');
    expect((await t.api('POST', `/api/incidents/${incident.id}/acknowledge`, {}, token)).status).toBe(200);
    const help = await waitFor(() => term.received.find((c) => c.type === 'acknowledge-alarm'), 'the 0x8300 help-is-coming text at the terminal', 15_000);
    expect(help.params).toMatchObject({ text: 'Help is coming' });
    expect(help.raw).toMatch(/^7e8300/);

    const cmd = await t.api('POST', `/api/devices/${id}/commands`, { type: 'call-back', params: { number: '+8613800138000' } }, token);
    expect(cmd.status).toBe(202);
    const call = await waitFor(() => term.received.find((c) => c.type === 'call-back'), '0x8400 at the terminal', 15_000);
    expect(call.params).toEqual({ number: '+8613800138000', monitor: false });
    const commandStatus = (cid: string, status: string) => waitFor(async () => {
      const items = (await t.api('GET', `/api/devices/${id}/commands`)).body.items as { id: string; status: string; error: string | null }[];
      return items.find((c) => c.id === cid && c.status === status);
    }, `command ${cid} ${status}`, 15_000);
    await commandStatus(cmd.body.id, 'acked');

    const locate = await t.api('POST', `/api/devices/${id}/commands`, { type: 'locate-now' }, token);
    await commandStatus(locate.body.id, 'acked');
    expect(term.received.map((c) => c.type)).toEqual(expect.arrayContaining(['acknowledge-alarm', 'call-back', 'locate-now']));

    // Chinese text reaches the terminal in GBK (the sim hands the body's bytes as latin1) and its 0x0001 closes it;
    // a character GBK cannot carry fails the command with the reason
    const text = await t.api('POST', `/api/devices/${id}/commands`, { type: 'send-text', params: { text: '救援人员正在赶来' } }, token);
    const shown = await waitFor(() => term.received.find((c) => c.type === 'send-text'), '0x8300 send-text at the terminal', 15_000);
    expect(Buffer.from(shown.params.text as string, 'latin1').toString('hex')).toBe('bec8d4aec8cbd4b1d5fdd4dab8cfc0b4');
    expect(iconv.decode(Buffer.from(shown.params.text as string, 'latin1'), 'gbk')).toBe('救援人员正在赶来');
    await commandStatus(text.body.id, 'acked');
    const emoji = await t.api('POST', `/api/devices/${id}/commands`, { type: 'send-text', params: { text: '救护车 🚑' } }, token);
    expect((await commandStatus(emoji.body.id, 'failed')).error).toMatch(/GBK.*U\+1F691/);
    expect(await term.heartbeat()).toBeGreaterThan(0);
  });

  it('a location before authentication is refused and counted (0x8001 failure); a wrong check code too; the terminal then authenticates and is heard', { timeout: 30_000 }, async () => {
    const { id } = await t.provision('jt808', '13800138002');
    const notAuth = await refusedCount(t, 'not-authenticated');
    const badCheck = await refusedCount(t, 'bad-checksum');
    const c = await raw();
    c.s.write(jt808SimFrame(0x0200, '13800138002', 1, jt808SimLocation(0, { lat: 22.5, lon: 114 }, Date.now(), 70)));
    const nak = await waitFor(() => c.got.find((m) => m.msgId === 0x8001), 'the 0x8001 answer to an unauthenticated location');
    expect([nak.body.readUInt16BE(0), nak.body.readUInt16BE(2), nak.body[4]]).toEqual([1, 0x0200, 1]);
    const bad = jt808SimFrame(0x0002, '13800138002', 2, Buffer.alloc(0));
    bad[bad.length - 2]! ^= 0x55;
    c.s.write(bad);
    await waitFor(async () => (await refusedCount(t, 'bad-checksum')) === badCheck + 1, 'the bad check code counted');
    expect(await refusedCount(t, 'not-authenticated')).toBe(notAuth + 1);

    // the same phone, now a proper terminal: heard
    const term = sim('13800138002');
    await term.connect();
    await term.position(22.5, 114);
    const device = await waitFor(async () => {
      const d = (await t.api('GET', `/api/devices/${id}`)).body;
      return d.live?.position ? d : undefined;
    }, 'the position on the device');
    expect(device.live.position).toMatchObject({ lat: 22.5, lon: 114 });
  });

  it('an unprovisioned phone gets 0x8100 result 4 and is counted', { timeout: 30_000 }, async () => {
    const before = await refusedCount(t, 'unprovisioned');
    const c = await raw();
    c.s.write(jt808SimFrame(0x0100, '13999999999', 7, Buffer.alloc(37)));
    const r = await waitFor(() => c.got.find((m) => m.msgId === 0x8100), 'the 0x8100 answer');
    expect([r.body.readUInt16BE(0), r.body[2]]).toEqual([7, 4]);
    expect(await refusedCount(t, 'unprovisioned')).toBe(before + 1);
  });

  it('a registered phone cannot be registered again (0x8100 result 3) until an admin rotates the secret', { timeout: 30_000 }, async () => {
    const { id } = await t.provision('jt808', '13800138003');
    const term = sim('13800138003');
    await term.connect();
    const c = await raw();
    c.s.write(jt808SimFrame(0x0100, '13800138003', 1, Buffer.alloc(37)));
    const r = await waitFor(() => c.got.find((m) => m.msgId === 0x8100), 'the 0x8100 answer to a second registration');
    expect([r.body[2], r.body.length]).toEqual([3, 3]);
    expect(await term.heartbeat()).toBeGreaterThan(0); // the real terminal is undisturbed, its code still works

    expect((await t.api('POST', `/api/devices/${id}/rotate-secret`)).status).toBe(200);
    const replaced = sim('13800138003');
    await replaced.connect();
    expect(replaced.authCode).not.toBe(term.authCode);
    await replaced.heartbeat();
    // the old code no longer authenticates
    await expect(sim('13800138003', { authCode: term.authCode! }).connect()).rejects.toThrow(/authentication refused/);
    // its refusal is kept for diagnosis on the device, without the code it carried (a secret, even an old one)
    const rejects = await waitFor(async () => {
      const items = (await t.api('GET', `/api/devices/${id}/rejects`)).body.items as { reason: string; raw: string }[];
      return items.some((x) => x.reason.startsWith('bad-auth-code')) ? items : undefined;
    }, 'the bad-auth-code reject');
    const bad = rejects.find((x) => x.reason.startsWith('bad-auth-code'))!;
    expect(bad.raw).toMatch(/^hex:7e0102/);
    for (const code of [term.authCode!, replaced.authCode!]) {
      expect(JSON.stringify(rejects)).not.toContain(Buffer.from(code, 'latin1').toString('hex'));
      expect(JSON.stringify(rejects)).not.toContain(code);
    }
  });

  it('2019 header: registers, authenticates, SOS answered', { timeout: 30_000 }, async () => {
    const { id } = await t.provision('jt808', '13800138004');
    const term = sim('13800138004', { edition: 2019 });
    await term.connect();
    await term.sos({ lat: -33.8688, lon: 151.2093 });
    const list = await t.api('GET', `/api/incidents?deviceId=${id}`);
    expect(list.body.items.map((i: { type: string }) => i.type)).toContain('sos');
  });
});

async function refusedCount(t: TestGateway, reason: string): Promise<number> {
  const text = await fetch(`${t.http}/metrics`).then((r) => r.text());
  const m = new RegExp(`eldergate_protocol_refused_total\\{[^}]*protocol="jt808"[^}]*reason="${reason}"[^}]*\\} (\\d+)|eldergate_protocol_refused_total\\{[^}]*reason="${reason}"[^}]*protocol="jt808"[^}]*\\} (\\d+)`).exec(text);
  return m ? Number(m[1] ?? m[2]) : 0;
}
