// The CPU profile of the gateway under load, one for each bottleneck the figures can hit: telemetry ingest at
// saturation (figure 2), the P1 path under the highest background rate (figure 1), closed-loop durable alarms
// (figure 5), the reconnect storm (figure 4: the whole fleet dropped and back) and figure 1's load with figure 7's
// consoles attached and acking. It is V8's sampling profiler,
// the one `node --cpu-prof` runs, started and stopped through the probe around the loaded window only (with
// --cpu-prof the gateway's start-up and tsx's module loading would dilute a short window).
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Generators } from '../lib/generators.js';
import { ROOT, type Child } from '../lib/ipc.js';
import { summariseProfile, type ProfileSummary } from '../lib/cpuprof.js';
import { sleep } from '../lib/sys.js';
import { startTarget } from '../lib/targets.js';
import type { Profile } from '../lib/profile.js';
import { attachConsoles, detachConsoles, probeRun, type Log } from './traffic.js';

export type ProfiledLoad = 'ingest' | 'latency' | 'durable' | 'storm' | 'consoles';

/** The main thread's summary first, then each other thread's that answered (the writer thread, the checkpointer). */
export async function profileGateway(load: ProfiledLoad, p: Profile, log: Log): Promise<ProfileSummary[] | { error: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'eldergate-cpuprof-'));
  let target;
  try {
    target = await startTarget('eldergate');
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    return { error: (err as Error).message };
  }
  const gens = load === 'storm' ? Generators.forDevices(p.storm.devices, p.generators) : Generators.spawn(p.generators);
  let files: string[] = [];
  let consoles: Child | undefined;
  try {
    const file = join(dir, `CPU.${load}.0.cpuprofile`);
    // the profiler runs while `during` does, and only then
    const capture = async (during: () => Promise<unknown>) => {
      await target.node.call('probe.cpuprofile.start');
      await during();
      files = await target.node.call<string[]>('probe.cpuprofile.stop', { file });
    };
    const window = () => sleep(p.profileMs);
    if (load === 'storm') {
      // figure 4's fleet, connected as there, then its network dropped: the profile covers the drops (Last Wills),
      // the reconnects with credentials and nothing else
      const creds = await target.provision(p.storm.devices, 'prof-storm');
      await gens.connect(target.mqtt, creds, { keepaliveS: 120, concurrency: 200 });
      await sleep(1000);
      await capture(() => gens.storm(p.storm.backoff, p.storm.connectTimeoutMs, p.storm.maxMs));
    } else {
      const creds = await target.provision(Math.max(p.ingest.publishers, p.latency.backgroundDevices), 'prof');
      await gens.connect(target.mqtt, creds);
      if (load === 'ingest') {
        const flood = gens.flood(p.ingest.publishers, p.profileMs + 1000);
        await sleep(500);
        await capture(window);
        await flood;
      } else if (load === 'durable') {
        const alarms = gens.alarms(p.profileMs + 1000, 0, Math.min(p.durable.devices, creds.length));
        await sleep(500);
        await capture(window);
        await alarms;
      } else {
        // figure 7's consoles (the probe's own is the last of them), attached as there
        if (load === 'consoles') consoles = await attachConsoles(target, Math.max(0, p.consoles - 1));
        const probeDevices = await target.provision(p.latency.probeDevices, 'prof-p1');
        const { result } = await probeRun(target, probeDevices, { ratePerS: p.latency.probeRatePerS, durationMs: p.profileMs + 1000, warmupMs: 0 });
        await sleep(300);
        const bg = gens.rate(Math.max(...p.latency.ratesPerS), p.profileMs + 1000);
        await sleep(500);
        await capture(window);
        await bg;
        await result;
      }
    }
  } catch (err) {
    log(`  profile (${load}): ERROR ${(err as Error).message}`);
  } finally {
    if (consoles) await detachConsoles(consoles);
    await gens.close();
    await target.close();
  }
  try {
    if (!files.length) return { error: 'the gateway wrote no .cpuprofile' };
    // BENCH_KEEP_PROFILES=DIR keeps the .cpuprofile files (open them in Chrome DevTools' Performance panel)
    const keep = process.env.BENCH_KEEP_PROFILES;
    if (keep) {
      mkdirSync(keep, { recursive: true });
      for (const f of files) copyFileSync(f, join(keep, f.slice(dir.length + 1)));
    }
    return files.map((f) => summariseProfile(f, ROOT));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
