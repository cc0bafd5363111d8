// `eldergate-sim fleet`: N simulated terminals of a mix of kinds, random alarms at a rate, a live progress line,
// a summary (and a report) at the end.
import { join } from 'node:path';
import { parseDuration } from '../core/duration.js';
import { summarize } from '../core/stats.js';
import { UsageError } from '../core/errors.js';
import { Rng } from '../core/prng.js';
import type { Credentials, SimKind } from '../devices/types.js';
import { Fleet, parseMix, waitFor } from '../fleet.js';
import { allIncidentsSince, incidentLatencies } from '../incident-latency.js';
import { startProgress } from '../progress.js';
import { loadCredentials, provisionDevices, saveCredentials, selectCredentials } from '../provision.js';
import { writeReport } from '../report/html.js';
import type { RunReport, Sample } from '../report/types.js';
import { PROFILES } from '../devices/kinds.js';
import { apiFor, CONNECTION_HELP, CONNECTION_OPTIONS, gatewayFrom, intOption, numOption, parse } from './common.js';
import type { GatewayApi } from '../api.js';
import { cleanUpRun, newRunId, type TestRunRecord } from '../scenario/cleanup.js';
import { checkKeepForCredentials, finishTestRun, KEEP_HELP, onCtrlC } from './test-run.js';

export const FLEET_HELP = `eldergate-sim fleet — a fleet of simulated terminals

Usage:
  eldergate-sim fleet --devices 5000 --mix call-phone:50,fall-sensor:30,locator:20 --rate 60 --duration 300 \\
                      --api http://gw:8080 --mqtt mqtt://gw:1883 --user admin --password …

Fleet:
  --devices N            how many terminals (default 100)
  --mix K:W,…            kinds and weights (default call-phone:50,fall-sensor:30,locator:20)
  --rate N               random alarms per minute over the whole fleet (default 0: heartbeats only)
  --cancel-share F       share of falls the resident cancels (default 0.3)
  --duration S           seconds to run after the fleet is up (default: until Ctrl-C); also 90s, 5m
  --seed N               same seed, same fleet behaviour (default 1)
  --connect-rate N       connections per second at power on (default 500)
  --heartbeat-scale F    multiply every heartbeat interval (0.1 = ten times as often)
  --residents WHO        provision a resident with home and safe zone for: none | locators | all (default locators)
  --save-credentials F   with --keep: where to write the provisioned credentials (default .tmp/sim-credentials.json)
  --report DIR           write report.json and report.html there at the end
${KEEP_HELP}

A fleet run is a test run, as a scenario run is: its devices and residents are provisioned with "test": true (serials
SIM-<run id>-…), so their incidents are shown apart on the board, never escalated or notified, and left out of the
KPIs; at the end it decommissions them and closes their test incidents, unless --keep. Ctrl-C (or --duration) ends
the run: the summary and the report are written first, then the run cleans up; a second Ctrl-C quits at once.

${CONNECTION_HELP}

Exit code 0 when every alarm was PUBACKed by the end, 1 otherwise.`;

export async function fleetCommand(args: string[]): Promise<number> {
  const { values } = parse(args, {
    ...CONNECTION_OPTIONS,
    devices: { type: 'string' },
    mix: { type: 'string' },
    rate: { type: 'string' },
    'cancel-share': { type: 'string' },
    duration: { type: 'string' },
    seed: { type: 'string' },
    'connect-rate': { type: 'string' },
    'heartbeat-scale': { type: 'string' },
    residents: { type: 'string' },
    'save-credentials': { type: 'string' },
    report: { type: 'string' },
    keep: { type: 'boolean' },
  });
  if (values.help) {
    process.stdout.write(FLEET_HELP + '\n');
    return 0;
  }
  const total = intOption(values.devices, 'devices', 100, 1);
  let counts: Record<SimKind, number>;
  try {
    counts = parseMix(values.mix ?? 'call-phone:50,fall-sensor:30,locator:20', total);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const rate = numOption(values.rate, 'rate', 0);
  const cancelShare = numOption(values['cancel-share'], 'cancel-share', 0.3);
  const seed = intOption(values.seed, 'seed', 1);
  const durationMs = values.duration !== undefined ? parseDuration(values.duration) : undefined;
  if (values.duration !== undefined && durationMs === undefined) throw new UsageError(`--duration "${values.duration}" is not a duration (300, 90s, 5m)`);
  const hbScale = numOption(values['heartbeat-scale'], 'heartbeat-scale', 1, 0.001);
  const residents = values.residents ?? 'locators';
  if (!['none', 'locators', 'all'].includes(residents)) throw new UsageError('--residents must be none, locators or all');
  checkKeepForCredentials(values['save-credentials'], values.keep);
  const keep = values.keep === true;
  const gw = gatewayFrom(values);
  const say = (s: string) => process.stdout.write(s + '\n');
  const runId = newRunId();
  // Ctrl-C from here on, provisioning included: the fleet stops, the summary is written, then the run cleans up
  let wake: () => void = () => {};
  let line: (l: string) => void = say;
  const ctrlC = onCtrlC(
    () => wake(),
    `Ctrl-C: stopping the fleet; the summary is written, then the run cleans up${keep ? ' (--keep: nothing is taken away)' : ''} (Ctrl-C again quits at once)`,
    (l) => line(l),
  );

  // ── devices ──
  let creds: Credentials[];
  let api: GatewayApi | null = null;
  if (gw.user && gw.password) api = await apiFor(gw, 'fleet');
  if (values.credentials) {
    const file = await loadCredentials(values.credentials);
    creds = selectCredentials(file.devices, counts);
    say(`using ${creds.length} device(s) from ${values.credentials}`);
  } else {
    if (!api) throw new UsageError('fleet needs devices: --user/--password to provision them, or --credentials FILE');
    say(`provisioning ${total} device(s) (${Object.entries(counts).filter(([, n]) => n).map(([k, n]) => `${n} ${k}`).join(', ')})…`);
    // test devices named after the run, as a scenario run's (issue 13 §4)
    creds = await provisionDevices({
      api,
      test: true,
      serialPrefix: `SIM-${runId}`,
      rng: new Rng(seed).fork('provision'),
      requests: (Object.entries(counts) as [SimKind, number][])
        .filter(([, n]) => n > 0)
        .map(([kind, count]) => ({
          kind,
          count,
          resident: residents === 'all' || (residents === 'locators' && kind === 'locator') ? {} : null,
        })),
      onProgress: (d, t) => say(`  ${d}/${t} provisioned`),
    });
    say(`test run ${runId}: ${creds.length} test device(s) created${keep ? ' (kept after the run: --keep)' : ', taken away at the end (--keep keeps them)'}`);
    if (keep) {
      const out = values['save-credentials'] ?? join('.tmp', 'sim-credentials.json');
      await saveCredentials(out, { api: gw.apiUrl, mqtt: gw.mqttUrl, devices: creds });
      say(`credentials saved to ${out} (reuse them with --credentials ${out})`);
    }
  }
  const run: TestRunRecord = {
    id: runId,
    createdDevices: values.credentials ? [] : creds.map((c) => c.id),
    createdResidents: values.credentials ? [] : creds.flatMap((c) => (c.residentId ? [c.residentId] : [])),
    devices: creds.map((c) => c.id),
  };

  // ── run ──
  const kinds = Object.fromEntries(
    (Object.keys(PROFILES) as SimKind[]).map((k) => [k, { heartbeatS: PROFILES[k].heartbeatS * hbScale, positionS: (PROFILES[k].positionS ?? 60) * hbScale }]),
  );
  const fleet = new Fleet({ devices: creds, mqttUrl: gw.mqttUrl, seed, connectRatePerS: numOption(values['connect-rate'], 'connect-rate', 500, 0.001), kinds });
  const startedAt = new Date();
  const progress = startProgress(() => ({ s: fleet.stats, total: fleet.size }));
  const samples: Sample[] = [];
  const t0 = performance.now();
  const sampler = setInterval(() => {
    const s = fleet.stats;
    samples.push({ t: Math.round(performance.now() - t0), connected: s.connected, alarmsSent: s.alarmsSent, alarmsAcked: s.alarmsAcked, ackCommands: s.ackCommands });
  }, 1000);
  line = (l) => progress.line(l);
  const runWall = Date.now();
  if (!ctrlC.stopped) {
    fleet.start();
    try {
      await Promise.race([fleet.waitConnected(fleet.size, 60_000 + fleet.size * 20), new Promise<void>((r) => (wake = r))]);
      if (!ctrlC.stopped) progress.line(`all ${fleet.size} device(s) online after ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    } catch (err) {
      progress.line(`${(err as Error).message} — carrying on with those online`);
    }
  }
  if (!ctrlC.stopped) {
    fleet.startTraffic({ ratePerMin: rate, cancelShare });
    await new Promise<void>((resolve) => {
      wake = resolve;
      if (durationMs !== undefined) setTimeout(resolve, durationMs).unref();
    });
  }
  fleet.stopTraffic();
  // give the last alarms their PUBACKs before judging
  await waitFor(() => fleet.pendingEvents() === 0, 10_000, () => '').catch(() => undefined);
  clearInterval(sampler);
  progress.stop();
  const pending = fleet.pendingEvents();
  const notes: string[] = [];
  if (pending) notes.push(`${pending} event(s) never PUBACKed`);
  if (fleet.stats.droppedAlarms) notes.push(`${fleet.stats.droppedAlarms} alarm(s) dropped from full buffers`);

  let incident: number[] = [];
  if (api) {
    try {
      incident = incidentLatencies(fleet.terminals, await allIncidentsSince(api, runWall));
    } catch (err) {
      notes.push(`incident latencies unavailable: ${(err as Error).message}`);
    }
  }
  await fleet.stop();
  const s = fleet.stats;
  say(`summary: ${s.alarmsSent} alarm(s) sent, ${s.alarmsAcked} PUBACKed, ${s.resends} resend(s), ${s.ackCommands} acknowledge-alarm command(s), ${incident.length} incident latency sample(s)`);
  for (const n of notes) say(`  ! ${n}`);
  let report: RunReport | undefined;
  if (values.report) {
    report = {
      tool: 'eldergate-sim',
      kind: 'fleet',
      name: `fleet of ${fleet.size}`,
      seed,
      gateway: { api: gw.apiUrl, mqtt: gw.mqttUrl },
      startedAt: startedAt.toISOString(),
      durationMs: Math.round(performance.now() - t0),
      passed: pending === 0 && s.droppedAlarms === 0,
      groups: (Object.entries(fleet.countByKind()) as [string, number][]).filter(([, n]) => n).map(([kind, count]) => ({
        name: kind, kind, count, sampleIds: fleet.terminals.filter((t) => t.kind === kind).slice(0, 5).map((t) => t.id),
      })),
      steps: [],
      expectations: [],
      stats: s.snapshot(),
      latency: {
        puback: { summary: s.puback.summary(), samples: s.puback.toArray() },
        incident: { summary: summarize(incident), samples: incident },
        ackCommand: { summary: s.ackCommand.summary(), samples: s.ackCommand.toArray() },
      },
      samples,
      notes,
      // without --duration Ctrl-C is how a fleet run ends; with one, a Ctrl-C before it is a run cut short
      testRun: { id: runId, keep, ...(ctrlC.stopped && durationMs !== undefined ? { interrupted: { atMs: Math.round(performance.now() - t0), reason: 'Ctrl-C' } } : {}) },
    };
    const paths = await writeReport(values.report, report);
    say(`report: ${paths.html}`);
  }
  // then, with the summary and the report written, take away what the run created (the same as a scenario run)
  try {
    const c = api
      ? await finishTestRun({ runId, keep, cleanup: () => cleanUpRun(api as GatewayApi, run), say })
      : (say(`test run ${runId}: no login, nothing to clean up (the devices came from --credentials)`), undefined);
    if (c && report && values.report) {
      report.testRun!.cleanup = c;
      await writeReport(values.report, report);
    }
  } finally {
    ctrlC.dispose();
  }
  return pending === 0 && s.droppedAlarms === 0 ? 0 : 1;
}
