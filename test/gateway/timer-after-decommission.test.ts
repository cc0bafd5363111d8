// A rule timer that fires just after a device was taken out of service opens no card. Seen in a loaded suite run: a
// simulator's cleanup decommissioned its watch, the watch's offline timer fired before the writer thread's copy of the
// registry heard of it, and an offline incident for a decommissioned device stayed open on the board, with nothing
// that could ever clear it. The decommissioning here is written straight into the database, as committed but not yet
// passed on to the writer thread (the window of that race, held open).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { publishAsync, startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';

describe('rule timers of a device taken out of service', () => {
  let t: TestGateway;
  // supervision scaled down so that a call phone (1 h interval) is offline after ~2 s of silence
  beforeAll(async () => { t = await startTestGateway({ supervision: { intervalScale: 0.0002 } }); });
  afterAll(async () => t.stop());

  const incidents = (deviceId: string) =>
    t.gw.store.sqlite.prepare("select type, status from incidents where device_id = ? and type = 'offline'").all(deviceId);

  async function silentPhone(): Promise<string> {
    const { id, secret } = await t.provision('call-phone');
    const c = await t.connectDevice(id, secret);
    await publishAsync(c, `devices/${id}/telemetry`, JSON.stringify({ ts: Date.now(), seq: 1, type: 'heartbeat', battery: 80 }));
    c.end(true);
    return id;
  }

  it.each(['decommissioned', 'suspended'])('an offline timer firing after the device was %s (committed) raises nothing', async (state) => {
    const control = await silentPhone();
    const gone = await silentPhone();
    t.gw.store.sqlite.prepare('update devices set state = ? where id = ?').run(state, gone);
    // the control device's timer fires: the other's had the same interval and has fired too
    expect(await waitFor(() => incidents(control)[0], 'the control device\'s offline incident', 15_000)).toMatchObject({ status: 'open' });
    await new Promise((r) => setTimeout(r, 500));
    expect(incidents(gone)).toEqual([]);
  }, 30_000);
});
