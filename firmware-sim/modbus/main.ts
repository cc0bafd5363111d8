// Run one simulated Modbus device as its own process, driven through stdin:
//   npx tsx firmware-sim/modbus/main.ts --map pull-cord-panel --tcp-port 0 [--host 127.0.0.1] [--unit 1] [--trace]
//   npx tsx firmware-sim/modbus/main.ts --map gas-smoke-detector --rtu-path /dev/pts/7 [--baud 19200] [--parity even]
// It prints one JSON line {"event":"ready",...,"port":N} when serving, then answers each stdin command with one
// JSON line ({"event":"ok"} / {"event":"error","message"} / {"event":"value"}). Commands:
//   set <coil|discrete|holding|input> <address> <value>     bit <holding|input> <address> <bit> <0|1>
//   point <name> <value>        fail <table> <address> [code]        unfail <table> <address> | unfail all
//   silence on|off              get <table> <address>                state                stop
// With --trace it also prints {"event":"exception"} and {"event":"write"} lines as they happen.
// It exits when stdin closes, so a test that dies takes its simulator with it.
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { loadSimMap, ModbusDeviceSim, SIM_TABLES, type SimTable } from './server.js';

const print = (o: Record<string, unknown>) => process.stdout.write(JSON.stringify(o) + '\n');

function table(word: string | undefined): SimTable {
  if (!SIM_TABLES.includes(word as SimTable)) throw new Error(`table must be one of ${SIM_TABLES.join(', ')} (got ${word})`);
  return word as SimTable;
}
function int(word: string | undefined, what: string): number {
  const n = Number(word);
  if (word === undefined || !Number.isFinite(n)) throw new Error(`${what} must be a number (got ${word})`);
  return n;
}

function run(sim: ModbusDeviceSim, line: string): Record<string, unknown> | 'stop' {
  const [cmd, ...a] = line.trim().split(/\s+/);
  switch (cmd) {
    case 'set': {
      const t = table(a[0]);
      if (t === 'coil' || t === 'discrete') sim.setBit(t, int(a[1], 'address'), int(a[2], 'value'));
      else sim.setRegister(t, int(a[1], 'address'), int(a[2], 'value'));
      return { event: 'ok' };
    }
    case 'bit':
      sim.setBit(table(a[0]), int(a[1], 'address'), int(a[3], 'value'), int(a[2], 'bit'));
      return { event: 'ok' };
    case 'point':
      if (!a[0]) throw new Error('point <name> <value>');
      sim.setPoint(a[0], int(a[1], 'value'));
      return { event: 'ok' };
    case 'fail':
      sim.failAddress(table(a[0]), int(a[1], 'address'), a[2] === undefined ? undefined : int(a[2], 'code'));
      return { event: 'ok' };
    case 'unfail':
      if (a[0] === 'all') sim.clearFailure();
      else sim.clearFailure(table(a[0]), int(a[1], 'address'));
      return { event: 'ok' };
    case 'silence':
      if (a[0] !== 'on' && a[0] !== 'off') throw new Error('silence on|off');
      sim.setSilent(a[0] === 'on');
      return { event: 'ok' };
    case 'get': {
      const t = table(a[0]);
      const address = int(a[1], 'address');
      return { event: 'value', table: t, address, value: sim.get(t, address) };
    }
    case 'state': {
      const state: Record<string, number[]> = {};
      for (const t of SIM_TABLES) {
        const size = sim.map.points.filter((p) => p.table === t).reduce((m, p) => Math.max(m, p.address + 1), 0);
        state[t] = Array.from({ length: size }, (_, i) => sim.get(t, i));
      }
      return { event: 'state', ...state };
    }
    case 'stop':
      return 'stop';
    default:
      throw new Error(`unknown command "${cmd}": set, bit, point, fail, unfail, silence, get, state, stop`);
  }
}

async function main() {
  const { values } = parseArgs({
    options: {
      map: { type: 'string' },
      'tcp-port': { type: 'string' },
      host: { type: 'string', default: '127.0.0.1' },
      'rtu-path': { type: 'string' },
      baud: { type: 'string', default: '19200' },
      parity: { type: 'string', default: 'even' },
      unit: { type: 'string', default: '1' },
      trace: { type: 'boolean', default: false },
    },
  });
  if (!values.map || (values['tcp-port'] === undefined) === (values['rtu-path'] === undefined)) {
    process.stderr.write('usage: main.ts --map <name|file.json> (--tcp-port N | --rtu-path /dev/pts/X) [--unit 1] [--trace]\n');
    process.exit(2);
  }
  const map = loadSimMap(values.map);
  const sim = new ModbusDeviceSim(map, { unitId: Number(values.unit) });
  if (values.trace) {
    sim.on('exception', (e) => print({ event: 'exception', ...e }));
    sim.on('write', (e) => print({ event: 'write', ...e }));
  }
  const stop = async (code = 0) => {
    await sim.stop().catch(() => undefined);
    process.exit(code);
  };
  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => void stop());

  const ready: Record<string, unknown> = { event: 'ready', map: map.name, unitId: sim.unitId, pid: process.pid };
  if (values['tcp-port'] !== undefined) {
    const port = await sim.listenTcp({ host: values.host, port: Number(values['tcp-port']) });
    Object.assign(ready, { transport: 'tcp', host: values.host, port });
  } else {
    const path = values['rtu-path']!;
    await sim.openRtu({ path, baudRate: Number(values.baud), parity: values.parity as 'none' | 'even' | 'odd' });
    Object.assign(ready, { transport: 'rtu', path });
  }
  print(ready);

  const rl = createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    if (!line.trim()) return;
    try {
      const out = run(sim, line);
      if (out === 'stop') return void stop();
      print({ ...out, cmd: line.trim() });
    } catch (err) {
      print({ event: 'error', cmd: line.trim(), message: (err as Error).message });
    }
  });
  rl.on('close', () => void stop());
}

main().catch((err: Error) => {
  print({ event: 'fatal', message: err.message });
  process.exit(1);
});
