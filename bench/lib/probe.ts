// Loaded with `--import` into every bench process (the gateway included, without touching its code): event-loop
// delay and garbage-collection pauses, answered over IPC as `probe.stats` / `probe.reset`. A process started
// without an IPC channel ignores it.
import { monitorEventLoopDelay, PerformanceObserver, constants } from 'node:perf_hooks';
import { Session } from 'node:inspector';
import { writeFileSync } from 'node:fs';

if (process.send) {
  const eld = monitorEventLoopDelay({ resolution: 10 });
  eld.enable();
  let gcMax = 0;
  let gcTotal = 0;
  let gcCount = 0;
  let gcMajorMax = 0;
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      gcCount++;
      gcTotal += e.duration;
      if (e.duration > gcMax) gcMax = e.duration;
      const kind = (e as unknown as { detail?: { kind?: number } }).detail?.kind;
      if (kind === constants.NODE_PERFORMANCE_GC_MAJOR && e.duration > gcMajorMax) gcMajorMax = e.duration;
    }
  });
  obs.observe({ entryTypes: ['gc'] });
  // an orphaned bench process (the harness crashed) stops itself the way an operator would stop it
  process.on('disconnect', () => process.kill(process.pid, 'SIGTERM'));
  const cpu0 = { at: performance.now(), usage: process.cpuUsage() };
  let since = cpu0;
  process.on('message', (m: { id: number; cmd: string }) => {
    if (!m || typeof m.cmd !== 'string' || !m.cmd.startsWith('probe.')) return;
    const now = { at: performance.now(), usage: process.cpuUsage() };
    if (m.cmd === 'probe.cpuprofile.start' || m.cmd === 'probe.cpuprofile.stop') {
      // V8's sampling profiler — what `node --cpu-prof` runs — over the loaded window only, so start-up and module
      // loading do not dilute the summary
      cpuProfile(m.cmd === 'probe.cpuprofile.start', (m as unknown as { args?: { file?: string } }).args?.file).then(
        (result) => process.send!({ id: m.id, ok: true, result }),
        (err: Error) => process.send!({ id: m.id, ok: false, error: err.message }),
      );
      return;
    }
    if (m.cmd === 'probe.gc') {
      // needs --expose-gc; without it the reading includes garbage, and says nothing wrong
      (globalThis as { gc?: () => void }).gc?.();
      (globalThis as { gc?: () => void }).gc?.();
      process.send!({ id: m.id, ok: true, result: Boolean((globalThis as { gc?: () => void }).gc) });
      return;
    }
    if (m.cmd === 'probe.reset') {
      eld.reset();
      gcMax = gcTotal = gcCount = gcMajorMax = 0;
      since = now;
      process.send!({ id: m.id, ok: true, result: null });
      return;
    }
    const d = process.cpuUsage(since.usage);
    const mem = process.memoryUsage();
    process.send!({
      id: m.id,
      ok: true,
      result: {
        wallMs: now.at - since.at,
        cpuMs: (d.user + d.system) / 1000,
        rss: mem.rss,
        heapUsed: mem.heapUsed,
        heapTotal: mem.heapTotal,
        external: mem.external,
        eldMaxMs: eld.max / 1e6,
        eldP99Ms: eld.percentile(99) / 1e6,
        gcMaxMs: gcMax,
        gcMajorMaxMs: gcMajorMax,
        gcTotalMs: gcTotal,
        gcCount,
      } satisfies ProbeStats,
    });
  });
}

let session: Session | null = null;

function post<T>(method: string, params?: object): Promise<T> {
  return new Promise((resolve, reject) => session!.post(method, params ?? {}, (err, res) => (err ? reject(err) : resolve(res as T))));
}

async function cpuProfile(start: boolean, file?: string): Promise<string | null> {
  if (start) {
    session = new Session();
    session.connect();
    await post('Profiler.enable');
    await post('Profiler.setSamplingInterval', { interval: 500 });
    await post('Profiler.start');
    return null;
  }
  if (!session) throw new Error('no CPU profile was started');
  const { profile } = await post<{ profile: unknown }>('Profiler.stop');
  session.disconnect();
  session = null;
  if (!file) throw new Error('probe.cpuprofile.stop needs a file');
  writeFileSync(file, JSON.stringify(profile));
  return file;
}

export interface ProbeStats {
  wallMs: number;
  cpuMs: number;
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  eldMaxMs: number;
  eldP99Ms: number;
  gcMaxMs: number;
  gcMajorMaxMs: number;
  gcTotalMs: number;
  gcCount: number;
}
