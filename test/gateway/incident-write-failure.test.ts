// An SOS whose incident cannot be written is not acknowledged: the observation is rolled back alone (the rest of the
// batch is kept), the device gets no PUBACK, and its resend opens the incident once the fault is gone.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { publishAsync, startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';

describe('an incident write that fails', () => {
  let t: TestGateway;
  beforeAll(async () => { t = await startTestGateway(); });
  afterAll(async () => t.stop());

  it('withholds the PUBACK and keeps nothing of that SOS; the resend succeeds once the fault is gone', async () => {
    const db = t.gw.store.sqlite;
    const { id, secret } = await t.provision('call-phone');
    const other = await t.provision('fall-sensor');
    // a real failure inside SQLite, for this device's SOS only
    db.exec(`create trigger fail_sos before insert on incidents when new.device_id = '${id}'
      begin select raise(abort, 'injected: the incident write fails'); end`);
    const c = await t.connectDevice(id, secret);
    const o = await t.connectDevice(other.id, other.secret);
    const closed = new Promise<void>((r) => c.once('close', () => r()));
    let acked = false;
    const frame = JSON.stringify({ ts: 1_700_000_000_000, seq: 1, type: 'sos' });
    c.publish(`devices/${id}/events`, frame, { qos: 1 }, (err) => { if (!err) acked = true; });
    // the other device's alarm in the same moment goes through
    await publishAsync(o, `devices/${other.id}/events`, JSON.stringify({ ts: 1, seq: 1, type: 'fall' }));
    await closed;
    expect(acked).toBe(false);
    expect(db.prepare('select count(*) n from observations where device_id = ?').get(id)).toEqual({ n: 0 });
    // the `opened` event was appended before the projection failed: it went back with the SOS (no event of no incident)
    expect(db.prepare('select count(*) n from incident_events e where not exists (select 1 from incidents i where i.id = e.incident_id)').get()).toEqual({ n: 0 });
    expect((db.prepare("select count(*) n from incidents where device_id = ?").get(other.id) as { n: number }).n).toBe(1);
    c.end(true);
    o.end(true);

    db.exec('drop trigger fail_sos');
    const again = await t.connectDevice(id, secret);
    await publishAsync(again, `devices/${id}/events`, frame);
    again.end(true);
    const inc = await waitFor(() => db.prepare("select type, priority, count from incidents where device_id = ?").get(id), 'the incident');
    expect(inc).toEqual({ type: 'sos', priority: 'P1', count: 1 });
    expect(db.prepare('select count(*) n from observations where device_id = ?').get(id)).toEqual({ n: 1 });
  });
});
