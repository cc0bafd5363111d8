// `eldergate-sim run <scenario>`: play a scenario file against a gateway and judge its expectations.
import { basename, extname, join } from 'node:path';
import { ScenarioError } from '../core/errors.js';
import { formatMs } from '../core/duration.js';
import { startProgress, type Output } from '../progress.js';
import { loadCredentials, saveCredentials } from '../provision.js';
import { writeReport } from '../report/html.js';
import { loadScenario } from '../scenario/parse.js';
import { runScenario } from '../scenario/run.js';
import type { Fleet } from '../fleet.js';
import { apiFor, CONNECTION_HELP, CONNECTION_OPTIONS, gatewayFrom, intOption, numOption, parse } from './common.js';
import { UsageError } from '../core/errors.js';
import { checkKeepForCredentials, finishTestRun, KEEP_HELP, onCtrlC } from './test-run.js';

export const RUN_HELP = `eldergate-sim run — play a scenario file and check its expectations

Usage:
  eldergate-sim run scenarios/sos.yaml --api http://gw:8080 --mqtt mqtt://gw:1883 --user admin --password …
  eldergate-sim run scenarios/storm.yaml --scale 10 --report out/storm
  eldergate-sim run my.yaml --check          only validate the file (every problem, with its line)

Options:
  --seed N              override the scenario's seed
  --scale N             multiply the groups marked "scale: true" (storm sized for CI → for real)
  --report DIR          where report.json and report.html go (default .tmp/sim-reports/<name>-<time>)
  --check               validate the file and exit (0 valid, 1 invalid)
${KEEP_HELP}
  --save-credentials F  write the provisioned devices' credentials there for reuse (needs --keep)
  --terminal-host HOST  connect watch / jt808 / dc09 terminals to HOST instead of the host their provisioning
                        answer names (the gateway's publicHost); the port is always the listener's, from the answer

Groups of kind watch, jt808 or dc09 speak the gateway's own protocols to its listeners: each must be on
(protocols.<name>.port), or the run stops before it starts, naming the setting.

A run is a test run: its devices and residents are provisioned with "test": true, so their incidents are shown
apart on the board ("Test runs"), never escalated or notified, and left out of the KPIs.
Ctrl-C stops the run: the report so far and the summary are written, then the run cleans up (unless --keep) and
exits with 130; a second Ctrl-C quits at once, without cleaning up.

${CONNECTION_HELP}
  (--credentials reuses devices, but checking incidents still needs --user/--password)

Exit code 0 when every expectation passed, 1 when one failed or the file is invalid, 2 on bad usage, 130 when
stopped with Ctrl-C.
The file format is described in docs/simulator.md.`;

export async function runCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(
    args,
    {
      ...CONNECTION_OPTIONS,
      seed: { type: 'string' },
      scale: { type: 'string' },
      report: { type: 'string' },
      check: { type: 'boolean' },
      keep: { type: 'boolean' },
      'save-credentials': { type: 'string' },
      'terminal-host': { type: 'string' },
    },
    true,
  );
  if (values.help) {
    process.stdout.write(RUN_HELP + '\n');
    return 0;
  }
  const file = positionals[0];
  if (!file || positionals.length > 1) throw new UsageError('run takes one scenario file: eldergate-sim run scenarios/sos.yaml');
  const scale = numOption(values.scale, 'scale', 1, 0.001);
  let scenario;
  try {
    scenario = await loadScenario(file, { scale });
  } catch (err) {
    if (err instanceof ScenarioError) {
      process.stderr.write(err.message + '\n');
      return 1;
    }
    throw err;
  }
  const devices = scenario.groups.reduce((n, g) => n + g.count, 0);
  if (values.check) {
    process.stdout.write(`${file}: valid — ${scenario.groups.length} group(s), ${devices} device(s), ${scenario.steps.length} step(s), ` +
      `${scenario.steps.reduce((n, s) => n + s.expect.length, 0) + scenario.expect.length} expectation(s)\n`);
    return 0;
  }
  checkKeepForCredentials(values['save-credentials'], values.keep);
  const gw = gatewayFrom(values);
  const api = await apiFor(gw, 'run (provisioning and incident checks)');
  const credentials = values.credentials ? (await loadCredentials(values.credentials)).devices : undefined;
  const seed = values.seed !== undefined ? intOption(values.seed, 'seed', 1) : undefined;

  let fleet: Fleet | null = null;
  const progress: Output = startProgress(() => (fleet ? { s: fleet.stats, total: fleet.size } : null));
  progress.line(`scenario "${scenario.name}" (${file}), ${devices} device(s)`);
  // Ctrl-C: stop the timeline, write what happened so far, clean up, exit 130; a second Ctrl-C quits at once
  const stop = new AbortController();
  const ctrlC = onCtrlC(
    () => stop.abort(new Error('Ctrl-C')),
    'Ctrl-C: stopping the run; the report so far is written, then the run cleans up (Ctrl-C again quits at once)',
    (l) => progress.line(l),
  );
  try {
    const { report, credentials: used, cleanup } = await runScenario({
      scenario,
      api,
      mqttUrl: gw.mqttUrl,
      seed,
      scale: scale !== 1 ? scale : undefined,
      credentials,
      onFleet: (f) => (fleet = f),
      log: (l) => progress.line(l),
      keep: values.keep === true,
      deferCleanup: true,
      signal: stop.signal,
      ...(values['terminal-host'] ? { terminalHost: values['terminal-host'] } : {}),
    });
    progress.stop();
    if (values['save-credentials']) await saveCredentials(values['save-credentials'], { api: gw.apiUrl, mqtt: gw.mqttUrl, devices: used });

    for (const e of report.expectations) {
      process.stdout.write(`${e.passed ? '✓' : '✗'} ${e.line ? `line ${e.line}: ` : ''}${e.text} — ${e.detail}\n`);
    }
    for (const n of report.notes) process.stdout.write(`! ${n}\n`);
    const p = report.latency.puback.summary;
    const i = report.latency.incident.summary;
    process.stdout.write(
      `latency: PUBACK p50 ${formatMs(p.p50)} p99 ${formatMs(p.p99)} (n=${p.count}); incident p50 ${formatMs(i.p50)} p99 ${formatMs(i.p99)} (n=${i.count})\n`,
    );
    const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-');
    const dir = values.report ?? join('.tmp', 'sim-reports', `${basename(file, extname(file))}-${stamp}`);
    const paths = await writeReport(dir, report);
    const interrupted = report.testRun?.interrupted;
    process.stdout.write(`${interrupted ? 'STOPPED' : report.passed ? 'PASSED' : 'FAILED'} — report: ${paths.html}\n`);
    // then, with the report safely written, take away what the run created (and add that to the report)
    const c = await finishTestRun({ runId: report.testRun?.id ?? '', keep: values.keep === true, cleanup, say: (l) => process.stdout.write(l + '\n') });
    if (c) await writeReport(dir, report);
    if (interrupted) return 130;
    return report.passed ? 0 : 1;
  } finally {
    ctrlC.dispose();
  }
}
