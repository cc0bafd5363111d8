// The harness's view of where processes run and how much they waited (bench/lib/sched.ts), and the noise rule:
// read from this machine's real /proc, never timed.
import { describe, it, expect } from 'vitest';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { LoadMeter, NOISE_RULE, PROBE_NICE, TASKSET, affinityOf, allowedCpus, cpuPlan, expandList, judge, pinned, runQueueWaitMs, setCpuPlan, threadSched, waitPerWakeMs, type LoadConditions } from '../../bench/lib/sched.js';
import { BEFORE_READING_MAX_AGE_MS, HostSpeed, timeHost, type HostTimes } from '../../bench/lib/host-speed.js';
import { parseRetentionSize } from '../../bench/figures/dbgrowth.js';

const quiet: LoadConditions = {
  wallMs: 1000, sutWaitMsPerS: 1, probeWaitMsPerS: 2, stealPct: 0, sutCoreStealPct: 0, sutCoreOtherPct: 0, pinnedAs: '1', noisy: false, why: null,
};

describe('bench pinning and load conditions', () => {
  it('reads core lists as the kernel writes them', () => {
    expect(expandList('0-3,6,8-9')).toEqual([0, 1, 2, 3, 6, 8, 9]);
    expect(expandList('1')).toEqual([1]);
  });

  it('puts the system under test on a core of its own and the load on the rest (taskset from util-linux)', () => {
    expect(TASKSET, 'taskset is in util-linux: apt-get install -y util-linux').not.toBeNull();
    const cpus = allowedCpus();
    const plan = cpuPlan();
    if (cpus.length >= 2) {
      expect(plan.sut).toBe(String(cpus.at(-1)));
      expect(plan.load).toBe(cpus.slice(0, -1).join(','));
    } else expect(plan.note).toMatch(/only 1 core/);
    expect(cpuPlan(true)).toEqual({ sut: null, load: null, note: 'pinning turned off (--no-pin)', probeFirst: false });
    // a process started through the plan is where the plan says, every thread of it
    const core = String(cpus[0]);
    const [cmd, args] = pinned(core, 'sh', ['-c', 'grep Cpus_allowed_list /proc/self/status']);
    const r = spawnSync(cmd, args, { encoding: 'utf8' });
    expect(r.stdout.trim()).toBe(`Cpus_allowed_list:\t${core}`);
    expect(pinned(null, 'sh', ['-c', 'true'])).toEqual(['sh', ['-c', 'true']]);
    expect(affinityOf(process.pid)).toMatch(/^[\d,-]+$/);
  });

  it('reads the run-queue wait of every thread of a process from schedstat', () => {
    const w = runQueueWaitMs(process.pid);
    expect(Number.isFinite(w)).toBe(true);
    expect(w).toBeGreaterThanOrEqual(0);
    expect(runQueueWaitMs(2 ** 22 + 12345)).toBe(0); // a pid that is not there
  });

  it('starts the P1 probe ahead of the rest of the load (nice) when the plan allows, and reads its wait per wake-up', () => {
    const plan = cpuPlan();
    // the bench runs as root here: raising a priority must work, or the probe's clock waits behind the load
    expect(plan.probeFirst, 'raising a priority was refused (needs root or CAP_SYS_NICE)').toBe(true);
    setCpuPlan(plan);
    try {
      // relative to the runner's own niceness (nice -n adds to it)
      const own = Number(readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ')[16]);
      const [cmd, args] = pinned(plan.load, 'sh', ['-c', 'cut -d" " -f19 /proc/self/stat'], true);
      expect(Number(spawnSync(cmd, args, { encoding: 'utf8' }).stdout.trim())).toBe(Math.max(-20, own + PROBE_NICE));
      const [cmd2, args2] = pinned(plan.load, 'sh', ['-c', 'cut -d" " -f19 /proc/self/stat']);
      expect(Number(spawnSync(cmd2, args2, { encoding: 'utf8' }).stdout.trim())).toBe(own);
    } finally {
      setCpuPlan({ sut: null, load: null, note: 'not planned yet', probeFirst: false });
    }
    const a = threadSched(process.pid);
    const until = Date.now() + 30;
    while (Date.now() < until) spawnSync('true');
    const b = threadSched(process.pid);
    expect(a && b && b.slices).toBeGreaterThan(a!.slices);
    const perWake = waitPerWakeMs(a, b);
    expect(perWake).not.toBeNull();
    expect(perWake!).toBeGreaterThanOrEqual(0);
    expect(threadSched(2 ** 22 + 12345)).toBeNull();
  });

  it('discards a repetition by the stated rule and says why', () => {
    expect(judge(quiet, NOISE_RULE).noisy).toBe(false);
    const busy = judge({ ...quiet, sutWaitMsPerS: NOISE_RULE.maxSutWaitMsPerS + 1, sutCoreOtherPct: NOISE_RULE.minOtherPct + 1 }, NOISE_RULE);
    expect(busy.noisy).toBe(true);
    expect(busy.why).toMatch(/system waited \d+ ms\/s for a CPU with other work on/);
    // its own threads queueing on its one core is the system's cost, not noise
    expect(judge({ ...quiet, sutWaitMsPerS: 200, sutCoreOtherPct: 0.2 }, NOISE_RULE).noisy).toBe(false);
    expect(judge({ ...quiet, sutCoreOtherPct: NOISE_RULE.maxOtherPct + 1 }, NOISE_RULE).why).toMatch(/other work took/);
    // unpinned: any wait counts
    expect(judge({ ...quiet, sutWaitMsPerS: 200, sutCoreOtherPct: null }, NOISE_RULE).noisy).toBe(true);
    // the probe is judged by its clock's wait per wake-up, not by the sum over its threads per second
    expect(judge({ ...quiet, probeWaitMsPerS: 90, probeWaitPerWakeMs: 0.06 }, NOISE_RULE).noisy).toBe(false);
    expect(judge({ ...quiet, probeWaitPerWakeMs: NOISE_RULE.maxProbeWaitPerWakeMs + 0.1 }, NOISE_RULE).why).toMatch(/probe's clock waited \d+ µs per wake-up/);
    expect(judge({ ...quiet, stealPct: NOISE_RULE.maxStealPct + 0.5 }, NOISE_RULE).why).toMatch(/steal/);
    // a host that ran the system's core slow (steal this VM does not report)
    expect(judge({ ...quiet, hostSlowerPct: NOISE_RULE.maxHostSlowerPct + 1 }, NOISE_RULE).why).toMatch(/host ran the system's core \d+ % slower than at its fastest/);
    expect(judge({ ...quiet, hostSlowerPct: NOISE_RULE.maxHostSlowerPct - 1 }, NOISE_RULE).noisy).toBe(false);
    expect(judge({ ...quiet, hostSlowerPct: null }, NOISE_RULE).noisy).toBe(false);
    // a host whose memory was slow on that core (the arithmetic loop does not see it)
    expect(judge({ ...quiet, hostSlowerPct: 0, hostMemSlowerPct: NOISE_RULE.maxHostMemSlowerPct + 1 }, NOISE_RULE).why).toMatch(/host's memory on the system's core \d+ % slower/);
    expect(judge({ ...quiet, hostMemSlowerPct: NOISE_RULE.maxHostMemSlowerPct - 1 }, NOISE_RULE).noisy).toBe(false);
  });

  it('times a fixed loop and table lookups on a core in CPU time, and judges each reading against the fastest of the run', () => {
    const core = String(allowedCpus()[0]);
    const t = timeHost(core);
    expect(t, 'node pinned with taskset ran the loops').not.toBeNull();
    expect(t!.loopMs).toBeGreaterThan(0);
    expect(t!.memMs).toBeGreaterThan(0);
    expect(timeHost('99999')).toBeNull(); // no such core: taskset refuses, nothing to judge by
    const readings: (HostTimes | null)[] = [
      { loopMs: 30, memMs: 50 }, { loopMs: 27, memMs: 52 }, { loopMs: 33, memMs: 85 }, null, { loopMs: 27, memMs: 40 },
    ];
    let clock = 1000;
    const speed = new HostSpeed(() => readings.shift() ?? null, () => clock);
    expect(speed.check(core)).toEqual({ loopMs: 30, slowerPct: 0, memMs: 50, memSlowerPct: 0, at: 1000 });
    expect(speed.check(core)).toMatchObject({ loopMs: 27, slowerPct: 0, memMs: 52 });
    const third = speed.check(core)!;
    expect(third.slowerPct).toBeCloseTo((100 * 6) / 27, 5);
    expect(third.memSlowerPct).toBeCloseTo(70, 5);
    expect(speed.check(core)).toBeNull();
    // the last reading that ran stands for the host before what begins within BEFORE_READING_MAX_AGE_MS of it
    expect(speed.before(core, 1000 + BEFORE_READING_MAX_AGE_MS)).toBe(third);
    expect(speed.before(core, 1001 + BEFORE_READING_MAX_AGE_MS)).toBeNull();
    expect(speed.before(core, 999)).toBeNull(); // taken after it began: not a reading before it
    expect(speed.before(String(Number(core) + 1), 1000)).toBeNull(); // another core's
    speed.ready(core); // recent enough: no new reading (the last one left would be taken)
    expect(readings).toHaveLength(1);
    clock += BEFORE_READING_MAX_AGE_MS + 1;
    speed.ready(core);
    expect(readings).toHaveLength(0);
    expect(speed.before(core, clock)).toMatchObject({ slowerPct: 0, memSlowerPct: 0, at: clock });
  });

  it('judges a repetition by the host readings before and after it, on the system\'s core only', () => {
    const core = String(allowedCpus()[0]);
    const plan = { sut: core, load: null, note: '', probeFirst: false };
    const quick = { loopMs: 27, memMs: 50 };
    const timed = (...r: HostTimes[]) => {
      const seen: string[] = [];
      return { seen, speed: new HostSpeed((c) => { seen.push(c); return r.shift() ?? null; }) };
    };
    // only the reading after: the arithmetic loop slow
    const a = timed({ loopMs: 20, memMs: 50 }, { loopMs: 29.6, memMs: 50 });
    a.speed.check(core);
    const l = new LoadMeter([process.pid], null, plan, () => 0, new HostSpeed(() => ({ loopMs: 40, memMs: 50 }))).read(NOISE_RULE);
    expect(l.hostSlowerPct).toBe(0); // the first reading of its own run is the fastest
    const slowAfter = new LoadMeter([process.pid], null, plan, () => 0, a.speed).read(NOISE_RULE);
    expect(a.seen).toEqual([core, core]);
    expect(slowAfter.hostSlowerPct).toBeCloseTo(48, 5);
    expect(slowAfter.hostReadings).toBe('before and after');
    expect(slowAfter.noisy).toBe(true);
    // the memory slow before the repetition and quick after it: the slow spell ended inside it — noisy, and said so
    const b = timed(quick, { loopMs: 27, memMs: 85 }, quick);
    b.speed.check(core);
    b.speed.check(core);
    const m = new LoadMeter([process.pid], null, plan, () => 0, b.speed).read(NOISE_RULE);
    expect(m.hostMemSlowerPct).toBeCloseTo(70, 5);
    expect(m.hostReadings).toBe('before and after');
    expect(m.why).toMatch(/host's memory on the system's core 70 % slower than at its fastest/);
    // no reading before (none recent): judged by the one after
    const c = timed(quick);
    const after = new LoadMeter([process.pid], null, plan, () => 0, c.speed).read(NOISE_RULE);
    expect(after.hostReadings).toBe('after');
    expect(after.hostSlowerPct).toBe(0);
    expect(after.why ?? '').not.toMatch(/host/); // (this process's own conditions on a busy test machine are real ones)
    // not pinned to a core of its own: nothing timed, nothing judged by it
    const d = timed(quick);
    const unpinned = new LoadMeter([process.pid], null, { ...plan, sut: null }, () => 0, d.speed).read(NOISE_RULE);
    expect(unpinned.hostSlowerPct).toBeNull();
    expect(unpinned.hostMemSlowerPct).toBeNull();
    expect(unpinned.hostReadings).toBeNull();
    expect(d.seen).toHaveLength(0);
  });

  it('reads bench/retention-size.ts\'s report into growth per 1,000 terminals per day, one result per database', () => {
    const g = parseRetentionSize([
      'a row per heartbeat (ingest.heartbeatHistoryMs = 0): 500 terminals, a heartbeat every 15 min (48000 heartbeats/day), retention 3 days; empty DB 0.25 MB',
      '  day 1: 48000 heartbeat rows written, 10.3 MB after the day, pruned 0 rows (1 ms), 48000 rows kept, file 10.3 MB',
      '  day 2: 48000 heartbeat rows written, 20.1 MB after the day, pruned 0 rows (1 ms), 96000 rows kept, file 20.1 MB',
      '  growth per 500 terminals per day (day 1, before any pruning): 10.05 MB',
      'state, rows downsampled (ingest.heartbeatHistoryMs = 1 h): 500 terminals, a heartbeat every 15 min (48000 heartbeats/day), retention 3 days; empty DB 0.25 MB',
      '  day 1: 12000 heartbeat rows written, 2.8 MB after the day, pruned 0 rows (1 ms), 12000 rows kept, file 2.8 MB',
    ], { terminals: 500, heartbeatMin: 15, retentionDays: 3, days: 2 });
    expect(g.runs.map((r) => r.label)).toEqual(['a row per heartbeat (ingest.heartbeatHistoryMs = 0)', 'state, rows downsampled (ingest.heartbeatHistoryMs = 1 h)']);
    expect(g.runs[0]!.perDay).toHaveLength(2);
    expect(g.runs[0]!.mbPerThousandPerDay).toBeCloseTo((10.3 - 0.25) * 2, 5);
    expect(g.runs[0]!.steadyMBPerThousand).toBeCloseTo(40.2, 5);
    expect(g.runs[1]!.mbPerThousandPerDay).toBeCloseTo((2.8 - 0.25) * 2, 5);
    // the format before issue 10 (one database, unindented)
    const old = parseRetentionSize(['1000 terminals, a heartbeat every 15 min (96000 rows/day), retention 3 days; empty DB 0.26 MB',
      'day 1: 12.0 MB after inserting, pruned 0 rows in 1 batches (1 ms), 96000 rows kept, 0 free pages, file 12.0 MB'], { terminals: 1000, heartbeatMin: 15, retentionDays: 3, days: 1 });
    expect(old.runs).toHaveLength(1);
    expect(old.runs[0]!.mbPerThousandPerDay).toBeCloseTo(11.74, 5);
  });
});
