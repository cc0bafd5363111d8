// A registered JT/T 808 phone number stays closed to registration across a gateway restart: the mark that a terminal
// holds the current authentication code (it authenticated with it) is in the device's record, not only in the
// process's memory. Only an admin's rotate-secret opens it again. A code issued but never used (its 0x8100 lost, the
// terminal reset before it authenticated) closes nothing: the terminal registers again and gets in.
import { createConnection } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startTestGateway, waitFor, type TestGateway } from '../../helpers/gateway.js';
import { Jt808SimReader, Jt808SimTerminal, jt808SimFrame, type SimMessage } from '../../../firmware-sim/protocols/jt808.js';

const PHONE = '13800138077';
// the same admin on both starts (the first start creates it)
const PASSWORD = 'Restart-' + Math.random().toString(36).slice(2) + '-Jt808';

/** A 0x0100 on a connection of its own: the 0x8100's result and the code it carried (if any) */
async function register(port: number): Promise<{ result: number; code: string | undefined }> {
  const reader = new Jt808SimReader();
  const got: SimMessage[] = [];
  const s = await new Promise<ReturnType<typeof createConnection>>((resolve, reject) => {
    const c = createConnection({ host: '127.0.0.1', port }, () => resolve(c));
    c.once('error', reject);
  });
  s.on('data', (d: Buffer) => got.push(...reader.push(d)));
  s.write(jt808SimFrame(0x0100, PHONE, 1, Buffer.alloc(37)));
  const r = await waitFor(() => got.find((m) => m.msgId === 0x8100), 'the 0x8100 answer to a registration');
  s.destroy();
  return { result: r.body[2]!, code: r.body.length > 3 ? r.body.subarray(3).toString('latin1') : undefined };
}
const registerAgain = async (port: number) => (await register(port)).result;

describe('JT/T 808 registration across a restart', () => {
  const dir = mkdtempSync(join(tmpdir(), 'eg-jt808-restart-'));
  let t: TestGateway | undefined;
  const start = async () => {
    t = await startTestGateway({ adminPassword: PASSWORD, protocols: { jt808: { port: 0, host: '127.0.0.1' } } }, dir);
    return { t, port: t.gw.protocols.port('jt808')! };
  };
  afterAll(async () => {
    await t?.gw.close();
    rmSync(dir, { recursive: true, force: true });
    rmSync(`${dir}-keys`, { recursive: true, force: true });
  });

  it('a lost 0x8100 locks nobody out; once the terminal authenticated, a second registration is refused (result 3), also after a restart; the terminal keeps its code; rotate-secret opens it', { timeout: 60_000 }, async () => {
    let g = await start();
    const { id } = await g.t.provision('jt808', PHONE);
    // the terminal's first answer is lost (it never authenticates with that code), and after a restart too
    expect((await register(g.port)).result).toBe(0);
    await g.t.gw.close();
    g = await start();
    const lost = await register(g.port);
    expect(lost.result).toBe(0); // not locked out
    // it registers once more and authenticates with the newest code
    const term = new Jt808SimTerminal({ host: '127.0.0.1', port: g.port, identifier: PHONE, ackTimeoutMs: 3000 });
    await term.connect();
    const code = term.authCode!;
    expect(code).not.toBe(lost.code);
    expect((await g.t.api('GET', `/api/devices/${id}`)).body.config.authCodeIssuedAt).toEqual(expect.any(Number));
    term.drop();
    expect(await registerAgain(g.port)).toBe(3);
    await g.t.gw.close();

    // it authenticated before the restart: after it, registration is still closed
    g = await start();
    expect(await registerAgain(g.port)).toBe(3);
    // the terminal, with the code it was given before the restart, is heard
    const back = new Jt808SimTerminal({ host: '127.0.0.1', port: g.port, identifier: PHONE, ackTimeoutMs: 3000, authCode: code });
    await back.connect();
    await back.sos();
    const list = await g.t.api('GET', `/api/incidents?deviceId=${id}`);
    expect(list.body.items.map((i: { type: string }) => i.type)).toContain('sos');
    back.drop();

    expect((await g.t.api('POST', `/api/devices/${id}/rotate-secret`)).status).toBe(200);
    expect(await registerAgain(g.port)).toBe(0);
  });
});
