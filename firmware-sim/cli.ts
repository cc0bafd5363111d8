// eldergate-sim: simulated terminals, fleets and scenarios that drive an eldergate gateway from outside.
import { SimError, UsageError } from './core/errors.js';
import { deviceCommand, DEVICE_HELP } from './cli/device.js';
import { fleetCommand, FLEET_HELP } from './cli/fleet.js';
import { modbusCommand, MODBUS_HELP, serialCommand, SERIAL_HELP } from './cli/field.js';
import { runCommand, RUN_HELP } from './cli/run.js';

const HELP = `eldergate-sim — simulated terminals, fleets and scenarios for eldergate

Usage: eldergate-sim <command> [options]      (eldergate-sim <command> --help for each)

Commands:
  fleet            N terminals of a mix of kinds, random alarms at a rate, live progress, a report
  run <scenario>   play a scenario file (timeline + expectations) and judge it; exit code 0/1
  device           one terminal at the keyboard: s SOS, f fall, c cancel, q quit
  modbus-server    a simulated Modbus TCP/RTU device with a register map
  serial-receiver  a simulated Sur-Gard/DSC alarm receiver on a serial line (pseudo-terminal)

Examples:
  eldergate-sim run scenarios/sos.yaml --api http://localhost:8080 --mqtt mqtt://localhost:1883 --user admin
  eldergate-sim fleet --devices 5000 --mix call-phone:50,fall-sensor:30,locator:20 --rate 60 --duration 5m

Scenario files and reports: docs/simulator.md`;

const COMMANDS: Record<string, { run: (args: string[]) => Promise<number>; help: string }> = {
  fleet: { run: fleetCommand, help: FLEET_HELP },
  run: { run: runCommand, help: RUN_HELP },
  device: { run: deviceCommand, help: DEVICE_HELP },
  'modbus-server': { run: modbusCommand, help: MODBUS_HELP },
  'serial-receiver': { run: serialCommand, help: SERIAL_HELP },
};

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    const topic = name === 'help' ? rest[0] : undefined;
    process.stdout.write((topic && COMMANDS[topic] ? COMMANDS[topic].help : HELP) + '\n');
    return 0;
  }
  const cmd = COMMANDS[name];
  if (!cmd) {
    process.stderr.write(`eldergate-sim: unknown command "${name}"\n\n${HELP}\n`);
    return 2;
  }
  try {
    return await cmd.run(rest);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`eldergate-sim ${name}: ${err.message}\n(eldergate-sim ${name} --help shows the options)\n`);
      return 2;
    }
    if (err instanceof SimError) {
      process.stderr.write(`eldergate-sim ${name}: ${err.message}\n`);
      return 1;
    }
    process.stderr.write(`eldergate-sim ${name} failed: ${(err as Error).stack ?? String(err)}\n`);
    return 1;
  }
}

// run when executed (bin.js imports this module), not when imported by tests
if (process.env['ELDERGATE_SIM_NO_MAIN'] !== '1') {
  main(process.argv.slice(2)).then(
    (code) => {
      // MQTT sockets and timers of a stopped fleet may linger a moment: the verdict is in, leave now
      process.exitCode = code;
      setTimeout(() => process.exit(code), 200).unref();
    },
    (err: unknown) => {
      process.stderr.write(`${String(err)}\n`);
      process.exit(1);
    },
  );
}
