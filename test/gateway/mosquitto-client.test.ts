// A client we did not write: Debian's mosquitto_pub, exactly as the README's walk-through uses it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';

const run = promisify(execFile);

describe('mosquitto_pub as a device', () => {
  let t: TestGateway;
  beforeAll(async () => { t = await startTestGateway(); });
  afterAll(async () => t.stop());

  it('publishes an SOS with QoS 1 that is stored; a wrong secret is refused', async () => {
    const { id, secret } = await t.provision('call-phone');
    const args = (pw: string) => ['-h', '127.0.0.1', '-p', String(t.gw.mqttPort), '-i', id, '-u', id, '-P', pw, '-q', '1', '-V', 'mqttv311',
      '-t', `devices/${id}/events`, '-m', JSON.stringify({ ts: Date.now(), seq: 1, type: 'sos' })];
    try {
      await run('mosquitto_pub', args(secret));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new Error('mosquitto_pub is missing: apt-get install -y mosquitto-clients');
      throw err;
    }
    const obs = await t.api('GET', `/api/observations?deviceId=${id}`);
    expect(obs.body.items.map((o: { type: string }) => o.type)).toEqual(['sos']);
    await expect(run('mosquitto_pub', args('not-the-secret-at-all-0000'))).rejects.toMatchObject({ stderr: expect.stringMatching(/not authori[sz]ed|bad user name or password/i) });
  });
});
