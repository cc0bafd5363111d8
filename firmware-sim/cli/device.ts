// `eldergate-sim device`: one simulated terminal at the keyboard — press SOS, fall, cancel — and see what the
// gateway answers (PUBACKs, commands). Handy when commissioning a console or demonstrating the alarm path.
import { join } from 'node:path';
import { emitKeypressEvents } from 'node:readline';
import { createInterface } from 'node:readline';
import { UsageError } from '../core/errors.js';
import { formatMs, parseDuration } from '../core/duration.js';
import { Rng } from '../core/prng.js';
import { RealScheduler } from '../core/scheduler.js';
import { createTerminal } from '../devices/kinds.js';
import { FallSensor } from '../devices/fall-sensor.js';
import { Locator } from '../devices/locator.js';
import type { Terminal } from '../devices/terminal.js';
import { isSimKind, SIM_KINDS, type Credentials } from '../devices/types.js';
import { loadCredentials, provisionDevices, saveCredentials } from '../provision.js';
import { apiFor, CONNECTION_HELP, CONNECTION_OPTIONS, gatewayFrom, intOption, parse } from './common.js';

export const DEVICE_HELP = `eldergate-sim device — one simulated terminal at the keyboard

Usage:
  eldergate-sim device --kind call-phone --api http://gw:8080 --mqtt mqtt://gw:1883 --user admin --password …
  eldergate-sim device --credentials .tmp/sim-credentials.json --id <deviceId>

Keys:  s SOS · f fall · c cancel · t test alarm · w walk out of the safe zone · h walk home
       d drop the network for 10 s · b battery to 15 % · q quit
(When stdin is not a terminal, the same letters are read one per line.)

Options:
  --kind KIND           ${SIM_KINDS.join(' | ')} (default call-phone)
  --id ID               which device of the credentials file
  --heartbeat DUR       heartbeat interval (default: the kind's)
  --seed N
${CONNECTION_HELP}`;

export async function deviceCommand(args: string[]): Promise<number> {
  const { values } = parse(args, {
    ...CONNECTION_OPTIONS,
    kind: { type: 'string' },
    id: { type: 'string' },
    heartbeat: { type: 'string' },
    seed: { type: 'string' },
  });
  if (values.help) {
    process.stdout.write(DEVICE_HELP + '\n');
    return 0;
  }
  const kind = values.kind ?? 'call-phone';
  if (!isSimKind(kind)) throw new UsageError(`--kind must be one of ${SIM_KINDS.join(', ')}`);
  const gw = gatewayFrom(values);
  const seed = intOption(values.seed, 'seed', Date.now() % 100000);
  let creds: Credentials;
  if (values.credentials) {
    const all = (await loadCredentials(values.credentials)).devices;
    const found = values.id ? all.find((d) => d.id === values.id) : all.find((d) => d.kind === kind);
    if (!found) throw new UsageError(values.id ? `no device ${values.id} in ${values.credentials}` : `no ${kind} in ${values.credentials}`);
    creds = found;
  } else {
    const api = await apiFor(gw, 'device (provisioning a new one)');
    [creds] = (await provisionDevices({ api, rng: new Rng(seed), requests: [{ kind, count: 1, resident: kind === 'locator' ? {} : null, label: 'interactive' }] })) as [Credentials];
    const file = join('.tmp', `sim-device-${creds.id}.json`);
    await saveCredentials(file, { api: gw.apiUrl, mqtt: gw.mqttUrl, devices: [creds] });
    process.stdout.write(`provisioned ${creds.kind} ${creds.id} (credentials in ${file})\n`);
  }
  const hb = values.heartbeat !== undefined ? parseDuration(values.heartbeat) : undefined;
  if (values.heartbeat !== undefined && hb === undefined) throw new UsageError(`--heartbeat "${values.heartbeat}" is not a duration`);

  const say = (s: string) => process.stdout.write(`${new Date().toISOString().slice(11, 23)} ${s}\n`);
  const scheduler = new RealScheduler();
  const t: Terminal = createTerminal({
    creds,
    mqttUrl: gw.mqttUrl,
    scheduler,
    rng: new Rng(seed),
    profile: hb ? { heartbeatS: hb / 1000 } : {},
    observer: {
      onConnected: () => say(`connected to ${gw.mqttUrl} as ${creds.id}`),
      onDisconnected: (_t, why) => say(`disconnected: ${why}`),
      onConnectFailed: (_t, err, ms) => say(`connection failed (${err}); retrying in ${formatMs(ms)}`),
      onSent: (_t, m, resend) => {
        if (m.channel === 'events') say(`${resend ? 'resent' : 'sent'} ${m.type} seq ${m.seq}`);
      },
      onPuback: (_t, m, ms) => say(`PUBACK for ${m.type} seq ${m.seq} after ${formatMs(ms)} (durable at the gateway)`),
      onCommand: (_t, cmd, r, _a, ms) =>
        say(`command ${cmd.type}${cmd.params ? ` ${JSON.stringify(cmd.params)}` : ''} → ${r.ok ? 'ok' : `refused: ${r.error}`}${ms !== null ? ` (${formatMs(ms)} after the alarm)` : ''}`),
      onDropped: (_t, d) => say(`buffer full: dropped ${d.message.type} seq ${d.message.seq}`),
    },
  });
  t.start();
  say(`${kind} ${creds.id}: s SOS · f fall · c cancel · t test · w walk out · h home · d drop network 10 s · b battery 15 % · q quit`);

  const press = (key: string): boolean => {
    try {
      switch (key) {
        case 's':
          if (t.profile.events.includes('sos')) t.event('sos');
          else say(`a ${kind} has no SOS button (try f)`);
          break;
        case 'f':
          if (t instanceof FallSensor) {
            if (!t.fall()) say('fall below the sensitivity threshold: not reported');
          } else say(`a ${kind} does not detect falls`);
          break;
        case 'c':
          t.event('cancel');
          break;
        case 't':
          t.event('test');
          break;
        case 'w':
          if (t instanceof Locator) t.walkOutOfZone(10_000);
          else say('only a locator walks');
          break;
        case 'h':
          if (t instanceof Locator) t.returnHome(10_000);
          else say('only a locator walks');
          break;
        case 'd':
          t.disconnect(10_000);
          say('network down for 10 s (alarms are buffered)');
          break;
        case 'b':
          t.setBattery(15);
          break;
        case 'q':
          return false;
        default:
          break;
      }
    } catch (err) {
      say((err as Error).message);
    }
    return true;
  };

  await new Promise<void>((resolve) => {
    const stdin = process.stdin;
    if (stdin.isTTY) {
      emitKeypressEvents(stdin);
      stdin.setRawMode(true);
      stdin.on('keypress', (str: string | undefined, key: { ctrl?: boolean; name?: string }) => {
        if ((key.ctrl && key.name === 'c') || !press((str ?? '').toLowerCase())) {
          stdin.setRawMode(false);
          stdin.pause();
          resolve();
        }
      });
    } else {
      const rl = createInterface({ input: stdin });
      rl.on('line', (line) => {
        if (!press(line.trim().toLowerCase())) rl.close();
      });
      rl.on('close', () => resolve());
    }
  });
  // let what was just pressed reach the gateway before switching off (scripts pipe "s" then "q")
  const until = Date.now() + 5000;
  while (t.outbox.all().some((m) => m.channel === 'events') && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
  say('switching off');
  await t.stop();
  scheduler.clear();
  return 0;
}
