// The voice path hand-off: on a watch's SOS incident, the operator presses "Call back" with a number and the watch
// receives CALL,<number> over its own protocol connection; the command is confirmed when the watch echoes it.
import { describe, expect, it, afterAll, beforeAll } from 'vitest';
import { launchBrowser, type TestBrowser, loginAs, watchErrors } from './browser.js';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { WatchSimTerminal } from '../../firmware-sim/protocols/watch.js';

describe('call back through a watch, from the incident page', () => {
  let t: TestGateway;
  let browser: TestBrowser;
  let watch: WatchSimTerminal | undefined;
  beforeAll(async () => {
    browser = await launchBrowser();
    t = await startTestGateway({ protocols: { watch: { port: 0, host: '127.0.0.1' } } });
  }, 60_000);
  afterAll(async () => {
    watch?.drop();
    await browser?.close();
    await t?.stop();
  });

  it('an operator calls back: the watch dials the number given, and the command is confirmed', { timeout: 90_000 }, async () => {
    const { id } = await t.provision('watch', '3104300999');
    watch = new WatchSimTerminal({ host: '127.0.0.1', port: t.gw.protocols.port('watch')!, identifier: '3104300999', ackTimeoutMs: 3000 });
    await watch.connect();
    await watch.sos({ lat: 30.5928, lon: 114.3055 });
    const incident = await waitFor(async () => (await t.api('GET', `/api/incidents?deviceId=${id}`)).body.items.find((i: { type: string }) => i.type === 'sos'), 'the SOS incident');

    const page = await browser.newPage();
    const errors = watchErrors(page);
    await loginAs(page, t.http, 'admin', t.adminPassword);
    await page.goto(`${t.http}/#/incident/${incident.id}`);
    await page.waitForSelector('.panel.callback');
    await page.fill('input[name=callback-number]', '+86 138-0013-8000');
    await page.click('button[data-action=call-back]');
    const call = await waitFor(() => watch!.received.find((c) => c.type === 'call-back'), 'CALL at the watch');
    expect(call.params).toMatchObject({ number: '+8613800138000' });
    const cmds = await waitFor(async () => {
      const list = (await t.api('GET', `/api/devices/${id}/commands`)).body.items as { type: string; status: string }[];
      return list.find((c) => c.type === 'call-back' && c.status === 'acked');
    }, 'the call-back command acknowledged by the watch');
    expect(cmds.status).toBe('acked');
    // a number that is not one is refused on the page, nothing is sent
    await page.fill('input[name=callback-number]', 'grandson');
    await page.click('button[data-action=call-back]');
    await page.waitForSelector('text=give the number the terminal should dial');
    expect(watch.received.filter((c) => c.type === 'call-back')).toHaveLength(1);
    expect(errors).toEqual([]);
    await page.close();
  });
});
