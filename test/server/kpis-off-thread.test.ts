// GET /api/kpis over a year of a city's incidents: the report is computed in a thread of its own
// (response/kpi-reports.ts), so a device's SOS is acknowledged while it runs; computed on the main thread, the same
// report held every socket of the gateway for seconds (2.6–5 s for 300,000 incidents on this project's machine).
// A real gateway, real HTTP and MQTT; the incidents are written straight into its SQLite file before the report.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, publishAsync, type TestGateway } from '../helpers/gateway.js';

describe('KPI reports off the alarm path', () => {
  let t: TestGateway;
  beforeAll(async () => { t = await startTestGateway(); });
  afterAll(async () => t?.stop());

  it('acknowledges an SOS while a year of 150,000 incidents is being counted, and the report is the same as computed in place', async () => {
    const now = Date.now();
    const N = 150_000;
    const ins = t.gw.store.sqlite.prepare(`INSERT INTO incidents (id, device_id, type, priority, status, opened_at, last_at, stamps, last_seq)
      VALUES (?, ?, 'offline', ?, 'resolved', ?, ?, ?, 1)`);
    t.gw.store.sqlite.transaction(() => {
      for (let i = 0; i < N; i++) {
        const at = now - 1000 - ((i * 7919) % (360 * 86_400)) * 1000;
        ins.run(`inc_kpi_${i}`, `cp-kpi${i % 500}`, ['P1', 'P2', 'P3'][i % 3], at, at + 60_000,
          JSON.stringify({ opened: at, acknowledged: at + 20_000 + (i % 200) * 1000, onSite: at + 600_000, resolved: at + 1_800_000 }));
      }
    }).immediate();
    const dev = await t.provision('call-phone');
    const client = await t.connectDevice(dev.id, dev.secret);
    const from = now - 365 * 86_400_000;

    let answeredAt = 0;
    const report = t.api('GET', `/api/kpis?from=${from}&to=${now}`).then((r) => { answeredAt = performance.now(); return r; });
    // the request is in and being counted (the main thread, had it been counting there, would not read the SOS now)
    await new Promise((r) => setTimeout(r, 200));
    await publishAsync(client, `devices/${dev.id}/events`, JSON.stringify({ ts: Date.now(), seq: 1, type: 'sos' }), 1);
    const pubackAt = performance.now();
    const r = await report;
    expect(r.status).toBe(200);
    expect(answeredAt === 0 || pubackAt < answeredAt, 'the SOS was acknowledged only after the KPI report was answered').toBe(true);
    expect(r.body.total.incidents).toBe(N);
    expect(r.body.shifts).toHaveLength(731);
    // the thread's report is the one the same code gives in place
    const inPlace = t.gw.response.kpis({ from, to: now });
    expect(r.body.total).toEqual(inPlace.total);
    expect(r.body.shifts.map((s: { incidents: number }) => s.incidents)).toEqual(inPlace.shifts.map((s) => s.incidents));
    client.end(true);
  }, 120_000);

  it('a query it cannot answer is refused at once, saying why', async () => {
    const now = Date.now();
    const r = await t.api('GET', `/api/kpis?from=${now}&to=${now - 1}`);
    expect(r.status).toBe(400);
    expect(r.body.message).toMatch(/from < to/);
    const long = await t.api('GET', `/api/kpis?from=${now - 400 * 86_400_000}&to=${now}`);
    expect(long.status).toBe(400);
    expect(long.body.message).toMatch(/at most one year/);
  });
});
