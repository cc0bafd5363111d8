// The watch protocol end to end through a running gateway on real TCP: a simulated watch (firmware-sim, its own
// codec) connects, raises SOS → a P1 incident, whose AL reply comes only after it is durable; an operator's
// acknowledgement reaches the watch as the "help is coming" MESSAGE; a call-back from the console reaches it as CALL
// and its echo marks the command acked; an unprovisioned watch id is refused and counted.
import { createConnection } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, waitFor, type TestGateway } from '../../helpers/gateway.js';
import { WatchSimTerminal } from '../../../firmware-sim/protocols/watch.js';

describe('watch protocol through the running gateway', () => {
  let t: TestGateway;
  let port: number;
  const sims: WatchSimTerminal[] = [];
  const sim = (identifier: string) => {
    const s = new WatchSimTerminal({ host: '127.0.0.1', port, identifier, ackTimeoutMs: 3000 });
    sims.push(s);
    return s;
  };

  beforeAll(async () => {
    t = await startTestGateway({ protocols: { watch: { port: 0, host: '127.0.0.1' } } });
    port = t.gw.protocols.port('watch')!;
    expect(port).toBeGreaterThan(0);
  });
  afterAll(async () => {
    for (const s of sims) s.drop();
    await t?.stop();
  });

  it('SOS → P1 incident, AL only after durable; acknowledgement → help-is-coming MESSAGE; call-back → CALL, acked by its echo', { timeout: 60_000 }, async () => {
    const { id } = await t.provision('watch', '8800000015');
    const w = sim('8800000015');
    await w.connect();

    const sentAt = Date.now();
    const ackAt = await w.sos({ lat: 22.571707, lon: 113.8613968 });
    expect(ackAt).toBeGreaterThanOrEqual(sentAt);
    // the AL reply came once the alarm was durable: the incident is there, stamped durable before the reply arrived
    const list = await t.api('GET', '/api/incidents?status=open');
    const incident = list.body.items.find((i: { deviceId: string }) => i.deviceId === id);
    expect(incident).toMatchObject({ type: 'sos', priority: 'P1', status: 'open' });
    const full = (await t.api('GET', `/api/incidents/${incident.id}`)).body;
    expect(full.stamps.durable).toBeLessThanOrEqual(ackAt);
    expect(full.position ?? full.events.find((e: { type: string }) => e.type === 'opened')?.data?.position).toMatchObject({ lat: 22.571707, lon: 113.861397 }); // the sim sends six decimals

    const op = await t.api('POST', '/api/users', { username: 'watchop', password: 'operator-password-7', role: 'operator' });
    expect(op.status).toBe(201);
    const token = await t.token('watchop', 'operator-password-7');
    expect((await t.api('POST', `/api/incidents/${incident.id}/acknowledge`, {}, token)).status).toBe(200);
    const help = await waitFor(() => w.received.find((c) => c.type === 'acknowledge-alarm'), 'the help-is-coming MESSAGE at the watch', 15_000);
    expect(help.params).toEqual({ text: 'Help is coming' });
    expect(help.raw).toMatch(/^\[SG\*8800000015\*[0-9a-f]{4}\*MESSAGE,/);

    const cmd = await t.api('POST', `/api/devices/${id}/commands`, { type: 'call-back', params: { number: '+8613800138000' } }, token);
    expect(cmd.status).toBe(202);
    expect(cmd.body.queued).toBe(false);
    const call = await waitFor(() => w.received.find((c) => c.type === 'call-back'), 'CALL at the watch', 15_000);
    expect(call.params).toEqual({ number: '+8613800138000' });
    await waitFor(async () => {
      const items = (await t.api('GET', `/api/devices/${id}/commands`)).body.items as { id: string; status: string }[];
      return items.find((c) => c.id === cmd.body.id && c.status === 'acked');
    }, 'the call-back command acked by the watch\'s echo', 15_000);

    // a bad number is refused by the watch protocol with the reason, on the command's record
    const bad = await t.api('POST', `/api/devices/${id}/commands`, { type: 'call-back', params: { number: 'call me' } }, token);
    const failed = await waitFor(async () => {
      const items = (await t.api('GET', `/api/devices/${id}/commands`)).body.items as { id: string; status: string; error: string | null }[];
      return items.find((c) => c.id === bad.body.id && c.status === 'failed');
    }, 'the bad call-back failed', 15_000);
    expect(failed.error).toMatch(/phone number/);
  });

  it('heartbeat and position reach the gateway; a locate-now is answered with CR echo and a UD', { timeout: 30_000 }, async () => {
    const { id } = await t.provision('watch', '9059011020');
    const w = sim('9059011020');
    await w.connect();
    expect(await w.heartbeat()).toBeGreaterThan(0);
    await w.position(22.5, 113.9);
    const cmd = await t.api('POST', `/api/devices/${id}/commands`, { type: 'locate-now' });
    expect(cmd.status).toBe(202);
    await waitFor(async () => {
      const items = (await t.api('GET', `/api/devices/${id}/commands`)).body.items as { id: string; status: string }[];
      return items.find((c) => c.id === cmd.body.id && c.status === 'acked');
    }, 'locate-now acked', 15_000);
    expect(w.received.map((c) => c.type)).toContain('locate-now');
  });

  it('an unprovisioned id is refused, counted, and its connection closed after a few frames; a good watch is not disturbed', { timeout: 30_000 }, async () => {
    const before = await refusedCount(t, 'unprovisioned');
    const closed = await new Promise<{ replies: string }>((resolve, reject) => {
      const s = createConnection({ host: '127.0.0.1', port }, () => {
        for (let i = 0; i < 3; i++) s.write('[3G*0000000001*0002*LK]');
      });
      let replies = '';
      s.on('data', (d) => { replies += d.toString('latin1'); });
      s.on('error', reject);
      s.on('close', () => resolve({ replies }));
      setTimeout(() => reject(new Error('the connection of an unprovisioned watch was not closed')), 20_000).unref();
    });
    expect(closed.replies).toBe('');
    expect(await refusedCount(t, 'unprovisioned')).toBeGreaterThanOrEqual(before + 3);

    // garbage and a bad LEN on a provisioned watch's connection: refused and counted, the next SOS still answered
    const { id } = await t.provision('watch', '3104326058');
    const w = sim('3104326058');
    await w.connect();
    const garbage = await refusedCount(t, 'garbage');
    const badLength = await refusedCount(t, 'bad-length');
    w.sendRaw('\x00\x01junk[3G*3104326058*00zz*LK]');
    await w.sos();
    // counted by the framer's own reason, kept with the raw bytes
    expect(await refusedCount(t, 'garbage')).toBe(garbage + 1);
    expect(await refusedCount(t, 'bad-length')).toBe(badLength + 1);
    const rejects = (await t.api('GET', `/api/devices/${id}/rejects`)).body.items as { reason: string; raw: string }[];
    expect(rejects.map((r) => r.reason)).toEqual(expect.arrayContaining([expect.stringMatching(/bad-length/), expect.stringMatching(/garbage/)]));
    const list = await t.api('GET', `/api/incidents?deviceId=${id}`);
    expect(list.body.items.map((i: { type: string }) => i.type)).toContain('sos');
  });
});

async function refusedCount(t: TestGateway, reason: string): Promise<number> {
  const text = await fetch(`${t.http}/metrics`).then((r) => r.text());
  const m = new RegExp(`eldergate_protocol_refused_total\\{[^}]*protocol="watch"[^}]*reason="${reason}"[^}]*\\} (\\d+)|eldergate_protocol_refused_total\\{[^}]*reason="${reason}"[^}]*protocol="watch"[^}]*\\} (\\d+)`).exec(text);
  return m ? Number(m[1] ?? m[2]) : 0;
}
