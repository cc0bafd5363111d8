// `eldergate-sim modbus-server` and `eldergate-sim serial-receiver`: the field-device simulators written in
// firmware-sim/modbus and firmware-sim/serial, behind the one CLI. The Modbus one has its own stdin-driven main;
// the serial receiver gets a small line-driven front end here over its library.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseDuration } from '../core/duration.js';
import { UsageError } from '../core/errors.js';
import { parse } from './common.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const SIM_ROOT = join(HERE, '..');

export const MODBUS_HELP = `eldergate-sim modbus-server — a simulated Modbus device (TCP or RTU) with a register map

Usage:
  eldergate-sim modbus-server --map pull-cord-panel --tcp-port 5020 [--host 127.0.0.1] [--unit 1] [--trace]
  eldergate-sim modbus-server --map gas-smoke-detector --rtu-path /dev/pts/7 [--baud 19200] [--parity even]

--map takes a shipped map name (gateway/adapters/modbus/maps) or a JSON file. It prints {"event":"ready",…}
when serving, then reads commands on stdin, one per line, answering each with a JSON line:
  set <coil|discrete|holding|input> <address> <value>    bit <holding|input> <address> <bit> <0|1>
  point <name> <value>    fail <table> <address> [code]    unfail <table> <address> | unfail all
  silence on|off          get <table> <address>            state            stop`;

export async function modbusCommand(args: string[]): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(MODBUS_HELP + '\n');
    return 0;
  }
  const main = join(SIM_ROOT, 'modbus', 'main.ts');
  if (!existsSync(main)) throw new UsageError('the Modbus simulator (firmware-sim/modbus/main.ts) is not in this checkout');
  // its own process: it owns stdin and exits when stdin closes, as its main documents
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', main, ...args], { stdio: 'inherit' });
    const forward = (sig: NodeJS.Signals) => child.kill(sig);
    process.on('SIGINT', forward);
    process.on('SIGTERM', forward);
    child.on('exit', (code, signal) => {
      process.off('SIGINT', forward);
      process.off('SIGTERM', forward);
      resolve(code ?? (signal ? 130 : 1));
    });
  });
}

export const SERIAL_HELP = `eldergate-sim serial-receiver — a simulated Sur-Gard/DSC alarm receiver on a serial line

Usage:
  eldergate-sim serial-receiver --pty                       make a socat pseudo-terminal pair; point the gateway's
                                                            serial adapter at the printed path
  eldergate-sim serial-receiver --path /dev/pts/7 [--baud 19200] [--data-bits 7] [--parity even]
                                [--format mlr2|system3] [--receiver 01] [--line 1] [--heartbeat 30s]

Then type one command per line:
  event <account> <code> [E|R|P] [zone] [group]   a Contact ID event, e.g. "event 1234 101" (personal emergency)
  heartbeat                                       one heartbeat now
  quit
Each answer (ACK, NAK or timeout, with its delay) is printed as it comes.`;

export async function serialCommand(args: string[]): Promise<number> {
  const { values } = parse(args, {
    help: { type: 'boolean', short: 'h' },
    path: { type: 'string' },
    pty: { type: 'boolean' },
    baud: { type: 'string' },
    'data-bits': { type: 'string' },
    parity: { type: 'string' },
    format: { type: 'string' },
    receiver: { type: 'string' },
    line: { type: 'string' },
    heartbeat: { type: 'string' },
  });
  if (values.help) {
    process.stdout.write(SERIAL_HELP + '\n');
    return 0;
  }
  const lib = join(SIM_ROOT, 'serial', 'receiver-sim.ts');
  if (!existsSync(lib)) throw new UsageError('the serial receiver simulator (firmware-sim/serial) is not in this checkout');
  if (!values.path && !values.pty) throw new UsageError('give --path /dev/pts/N, or --pty to make a pseudo-terminal pair');
  const format = (values.format ?? 'mlr2') as 'mlr2' | 'system3';
  if (format !== 'mlr2' && format !== 'system3') throw new UsageError('--format must be mlr2 or system3');
  const parity = (values.parity ?? 'even') as 'none' | 'even' | 'odd';
  if (!['none', 'even', 'odd'].includes(parity)) throw new UsageError('--parity must be none, even or odd');
  const heartbeatMs = values.heartbeat !== undefined ? parseDuration(values.heartbeat) : 30_000;
  if (heartbeatMs === undefined) throw new UsageError(`--heartbeat "${values.heartbeat}" is not a duration`);

  let path = values.path;
  let socat: ReturnType<typeof spawn> | undefined;
  if (values.pty) {
    if (spawnSync('socat', ['-V'], { stdio: 'ignore' }).error) throw new UsageError('--pty needs socat: apt-get install -y socat');
    socat = spawn('socat', ['-d', '-d', 'pty,raw,echo=0', 'pty,raw,echo=0'], { stdio: ['ignore', 'ignore', 'pipe'] });
    const ptys = await new Promise<string[]>((resolve, reject) => {
      const found: string[] = [];
      socat!.stderr!.on('data', (d: Buffer) => {
        for (const m of d.toString().matchAll(/PTY is (\S+)/g)) found.push(m[1] as string);
        if (found.length === 2) resolve(found);
      });
      socat!.on('exit', () => reject(new Error('socat exited before making the pseudo-terminals')));
    });
    path = ptys[0];
    process.stdout.write(`pseudo-terminal pair ready: the receiver is on ${ptys[0]}; point the gateway's serial adapter at ${ptys[1]}\n`);
  }
  const { ReceiverSim } = await import('../serial/receiver-sim.js');
  const sim = await ReceiverSim.open({
    path: path as string,
    baudRate: values.baud ? Number(values.baud) : 19200,
    dataBits: (values['data-bits'] ? Number(values['data-bits']) : 7) as 7 | 8,
    parity,
    format,
    receiver: values.receiver,
    line: values.line,
  });
  sim.on('error', (err: Error) => process.stderr.write(`serial error: ${err.message}\n`));
  const say = (s: string) => process.stdout.write(`${new Date().toISOString().slice(11, 23)} ${s}\n`);
  if (heartbeatMs > 0) sim.startHeartbeat(heartbeatMs);
  say(`receiver open on ${path} (${format}); type "event 1234 101", "heartbeat" or "quit"`);
  const rl = createInterface({ input: process.stdin });
  const show = (o: { delivered: boolean; buffered: boolean; answers: { answer: string; delayMs: number; attempt: number }[] }) =>
    say(`${o.delivered ? 'ACKed' : o.buffered ? 'not ACKed: buffered until a heartbeat is ACKed' : 'not ACKed'} — ${o.answers.map((a) => `#${a.attempt} ${a.answer} ${a.delayMs.toFixed(0)} ms`).join(', ')}`);
  await new Promise<void>((resolve) => {
    rl.on('line', (line) => {
      const [cmd, ...a] = line.trim().split(/\s+/);
      if (!cmd) return;
      if (cmd === 'quit' || cmd === 'q') return rl.close();
      if (cmd === 'heartbeat') return void sim.sendHeartbeat().then(show, (e: Error) => say(e.message));
      if (cmd === 'event' && a[0] && a[1]) {
        const q = (a[2] ?? 'E').toUpperCase() as 'E' | 'R' | 'P';
        return void sim.sendEvent({ account: a[0], code: a[1], qualifier: q, zone: a[3] ?? '001', group: a[4] ?? '01' }).then(show, (e: Error) => say(e.message));
      }
      say('commands: event <account> <code> [E|R|P] [zone] [group] · heartbeat · quit');
    });
    rl.on('close', () => resolve());
  });
  await sim.idle?.().catch(() => undefined);
  await sim.close();
  socat?.kill();
  return 0;
}
