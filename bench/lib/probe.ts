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

/**
 * The process's worker threads (the gateway's writer and checkpointer), reached through the main thread's inspector
 * session (the NodeWorker domain, as DevTools attaches to workers): each is profiled with the main thread, and
 * nothing is loaded into the threads themselves.
 */
interface WorkerSession { sessionId: string; url: string; pending: Map<number, (msg: { result?: unknown; error?: { message: string } }) => void>; nextId: number }
let workers = new Map<string, WorkerSession>();

/** a call into a worker's inspector; a worker that exits (or never answers) fails it after 10 s, not the harness */
function toWorker<T>(w: WorkerSession, method: string, params: object = {}): Promise<T> {
  const id = w.nextId++;
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => { w.pending.delete(id); reject(new Error(`${method}: the thread did not answer`)); }, 10_000);
    w.pending.set(id, (msg) => {
      clearTimeout(timer);
      if (msg.error) reject(new Error(msg.error.message));
      else resolve(msg.result as T);
    });
    post('NodeWorker.sendMessageToWorker', { sessionId: w.sessionId, message: JSON.stringify({ id, method, params }) }).catch((err: Error) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

async function startWorkerProfiles(): Promise<void> {
  workers = new Map();
  const attached: Promise<unknown>[] = [];
  session!.on('NodeWorker.attachedToWorker', (m) => {
    const p = m.params as { sessionId: string; workerInfo: { url: string } };
    const w: WorkerSession = { sessionId: p.sessionId, url: p.workerInfo.url, pending: new Map(), nextId: 1 };
    workers.set(p.sessionId, w);
    const started = toWorker(w, 'Profiler.enable').then(() => toWorker(w, 'Profiler.setSamplingInterval', { interval: 500 })).then(() => toWorker(w, 'Profiler.start'));
    started.catch(() => undefined); // a thread attached later (a restarted writer) is profiled if it can be
    attached.push(started);
  });
  session!.on('NodeWorker.receivedMessageFromWorker', (m) => {
    const p = m.params as { sessionId: string; message: string };
    const msg = JSON.parse(p.message) as { id?: number; result?: unknown; error?: { message: string } };
    const w = workers.get(p.sessionId);
    if (w && msg.id !== undefined) { w.pending.get(msg.id)?.(msg); w.pending.delete(msg.id); }
  });
  session!.on('NodeWorker.detachedFromWorker', (m) => {
    // a thread that exits mid-profile: its calls fail now, the other threads' profiles are still written
    const sessionId = (m.params as { sessionId: string }).sessionId;
    const w = workers.get(sessionId);
    workers.delete(sessionId);
    for (const settle of w?.pending.values() ?? []) settle({ error: { message: 'the thread exited' } });
  });
  await post('NodeWorker.enable', { waitForDebuggerOnStart: false });
  // the threads already running are announced at once
  await new Promise((r) => setTimeout(r, 100));
  await Promise.allSettled(attached);
}

/** start: null; stop: the main thread's file, then one per worker thread (`<file>.thread-<n>.cpuprofile`) */
async function cpuProfile(start: boolean, file?: string): Promise<string[] | null> {
  if (start) {
    session = new Session();
    session.connect();
    await post('Profiler.enable');
    await post('Profiler.setSamplingInterval', { interval: 500 });
    await post('Profiler.start');
    await startWorkerProfiles();
    return null;
  }
  if (!session) throw new Error('no CPU profile was started');
  if (!file) throw new Error('probe.cpuprofile.stop needs a file');
  const threads = [...workers.values()].map(async (w, i) => {
    const { profile } = await toWorker<{ profile: unknown }>(w, 'Profiler.stop');
    const name = `${file}.thread-${i + 1}.cpuprofile`;
    // the thread's script, for the report to say which thread this is
    writeFileSync(name, JSON.stringify({ ...(profile as object), workerUrl: w.url }));
    return name;
  });
  const { profile } = await post<{ profile: unknown }>('Profiler.stop');
  writeFileSync(file, JSON.stringify(profile));
  const others = (await Promise.allSettled(threads)).flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  await post('NodeWorker.disable').catch(() => undefined);
  session.disconnect();
  session = null;
  return [file, ...others];
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
