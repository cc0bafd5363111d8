// Figure 6: SOS latency while the largest CSV import runs (issue 14: a 50,000-line import once held the event loop
// for 13 s). One terminal sends an SOS (QoS 1) every few tens of ms; the PUBACK time is measured first without any
// import, then while a `profile.importStall.rows`-line import runs over HTTP. The gateway is its own process.
import mqtt from 'mqtt';
import { startTarget } from '../lib/targets.js';
import { summarize, type LatencySummary } from '../lib/stats.js';
import type { Profile } from '../lib/profile.js';

export interface ImportStallResult {
  rows: number;
  /** how long the import request took, ms (request sent → whole answer read) */
  importMs: number;
  importStatus: number;
  baseline: LatencySummary;
  during: LatencySummary;
  error: string | null;
}

export async function runImportStall(p: Profile, log: (l: string) => void): Promise<ImportStallResult> {
  const { rows, everyMs, baselineMs } = p.importStall;
  const target = await startTarget('eldergate');
  const out: ImportStallResult = { rows, importMs: NaN, importStatus: 0, baseline: summarize([]), during: summarize([]), error: null };
  try {
    const [dev] = await target.provision(1, 'sos');
    const api = target.api!;
    const client = await mqtt.connectAsync(`mqtt://${target.mqtt.host}:${target.mqtt.port}`, {
      clientId: dev!.id, username: dev!.id, password: dev!.secret, reconnectPeriod: 0, protocolVersion: 4,
    });
    let seq = 0;
    // one SOS at a time, the next `everyMs` after the previous PUBACK: the figure is the wait for each PUBACK
    const sample = async (until: () => boolean): Promise<number[]> => {
      const lat: number[] = [];
      while (!until()) {
        const t0 = performance.now();
        await client.publishAsync(`devices/${dev!.id}/events`, JSON.stringify({ ts: Date.now(), seq: ++seq, type: 'sos' }), { qos: 1 });
        lat.push(performance.now() - t0);
        await new Promise((r) => setTimeout(r, everyMs));
      }
      return lat;
    };
    const t0 = Date.now();
    out.baseline = summarize(await sample(() => Date.now() - t0 > baselineMs));
    const csv = 'serial,kind,model,firmware\n' + Array.from({ length: rows }, (_, i) => `STALL-${i},call-phone,K1,1.${i % 10}`).join('\n') + '\n';
    let done = false;
    const i0 = performance.now();
    const imported = fetch(`${api.http}/api/devices/import`, {
      method: 'POST', headers: { authorization: `Bearer ${api.token}`, 'content-type': 'text/csv' }, body: csv,
    }).then(async (r) => { out.importStatus = r.status; await r.text(); }).finally(() => { done = true; out.importMs = performance.now() - i0; });
    out.during = summarize(await sample(() => done));
    await imported;
    if (out.importStatus !== 201) out.error = `the import answered ${out.importStatus}`;
    log(`  ${rows} rows imported in ${Math.round(out.importMs)} ms; SOS PUBACK p50 ${out.during.p50.toFixed(1)} ms, max ${out.during.max.toFixed(1)} ms over ${out.during.n} alarms (without import: p50 ${out.baseline.p50.toFixed(1)}, max ${out.baseline.max.toFixed(1)})`);
    await client.endAsync(true);
  } catch (err) {
    out.error = (err as Error).message;
  } finally {
    await target.close();
  }
  return out;
}
