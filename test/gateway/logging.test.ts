// Secrets never reach the logs: device secrets, passwords, tokens.
import { describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../core/config.js';
import { createLogger } from '../../core/logger.js';
import { startEldergate } from '../../eldergate.js';
import { connectDevice } from '../helpers/gateway.js';

describe('logging', () => {
  it('redacts passwords, secrets and tokens, and never logs the device secret', async () => {
    const lines: string[] = [];
    const sink = new Writable({ write(chunk, _enc, cb) { lines.push(chunk.toString()); cb(); } });
    const log = createLogger('debug', sink as never);
    const password = 'the-admin-password-xyz';
    const config = loadConfig({}, { dataDir: mkdtempSync(join(tmpdir(), 'eg-log-')), adminPassword: password, logLevel: 'debug', mqtt: { port: 0, host: '127.0.0.1' }, http: { port: 0, host: '127.0.0.1' } });
    const gw = await startEldergate({ config, log });
    try {
      // values no id, time or port can contain by chance ('p2' once matched a random device id, cp-f7cv2p28e6q8)
      const probe = { p1: 'probe-password-one', s1: 'probe-secret-one', t1: 'probe-token-one', p2: 'probe-password-two', t2: 'probe-token-two' };
      log.info({ password: probe.p1, secret: probe.s1, token: probe.t1, body: { password: probe.p2 }, req: { headers: { authorization: `Bearer ${probe.t2}` } } }, 'probe');
      const http = `http://127.0.0.1:${gw.httpPort}`;
      const { token } = await (await fetch(`${http}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password }) })).json() as { token: string };
      const dev = await (await fetch(`${http}/api/devices`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ kind: 'call-phone', serial: 'LOG-1' }) })).json() as { id: string; secret: string };
      await connectDevice(`mqtt://127.0.0.1:${gw.mqttPort}`, dev.id, dev.secret + 'x').catch(() => undefined);
      (await connectDevice(`mqtt://127.0.0.1:${gw.mqttPort}`, dev.id, dev.secret)).end(true);
      await fetch(`${http}/api/devices`, { headers: { authorization: `Bearer ${token}x` } });
      const all = lines.join('');
      expect(all).toMatch(/"probe"/);
      expect(all).toMatch(/device provisioned/);
      expect(all).toMatch(/bad-secret/);
      for (const s of [password, dev.secret, token, ...Object.values(probe)]) expect(all).not.toContain(s);
    } finally {
      await gw.close();
    }
  });
});
