// A simulated Modbus device (bed-exit controller, pull-cord panel, gas/smoke detector) served over Modbus TCP
// (modbus-serial's ServerTCP) or RTU on a serial port (its ServerSerial). It speaks only Modbus: it reads the
// same JSON register maps as the gateway, by path, and never imports eldergate code (STYLE: firmware-sim drives
// eldergate from outside, so it can drive a rival too).
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { sourceDir } from '../../core/paths.js';
import { ServerSerial, ServerTCP, type IServiceVector } from 'modbus-serial';

export type SimTable = 'coil' | 'discrete' | 'holding' | 'input';
export const SIM_TABLES: readonly SimTable[] = ['coil', 'discrete', 'holding', 'input'];

/** The part of a register map the simulator needs (the gateway's full schema lives with the gateway). */
export interface SimPoint {
  name: string;
  table: SimTable;
  address: number;
  bit?: number;
  scale?: number;
  offset?: number;
  signed?: boolean;
  trigger?: unknown;
  normal?: number;
  reset?: { table: 'coil' | 'holding'; address: number; value: number };
}
export interface SimMap {
  name: string;
  model?: string;
  points: SimPoint[];
}

/** Where eldergate ships its maps; read as data files, by path (in the source tree, also when run compiled from dist/). */
export const SHIPPED_MAPS_DIR = resolve(sourceDir(import.meta.url), '..', '..', 'gateway', 'adapters', 'modbus', 'maps');

export function loadSimMap(nameOrPath: string, mapsDir = SHIPPED_MAPS_DIR): SimMap {
  const file = /[/\\]|\.json$/.test(nameOrPath) ? nameOrPath : join(mapsDir, `${nameOrPath}.json`);
  const json = JSON.parse(readFileSync(file, 'utf8')) as Partial<SimMap>;
  if (typeof json.name !== 'string' || !Array.isArray(json.points)) throw new Error(`${file}: not a register map (needs name and points)`);
  for (const [i, p] of json.points.entries()) {
    if (!SIM_TABLES.includes(p.table) || !Number.isInteger(p.address)) throw new Error(`${file}: /points/${i} needs a table and an integer address`);
  }
  return json as SimMap;
}

const isBit = (table: SimTable) => table === 'coil' || table === 'discrete';

/** Modbus exception codes (Modbus Application Protocol v1.1b3 §7) */
export const ILLEGAL_ADDRESS = 0x02;
export const DEVICE_FAILURE = 0x04;

export interface SimEvents {
  /** a read or write answered with an exception */
  exception: [{ table: SimTable; address: number; code: number; at: number }];
  /** a client wrote a coil or a register */
  write: [{ table: SimTable; address: number; value: number; at: number }];
}

export class ModbusDeviceSim extends EventEmitter<SimEvents> {
  readonly unitId: number;
  private readonly values: Record<SimTable, Uint16Array>;
  private readonly failures = new Map<string, number>();
  private silent = false;
  private tcp: ServerTCP | undefined;
  private serial: ServerSerial | undefined;

  /**
   * Table sizes follow the map (highest mapped address + 1, or `size` if larger); anything beyond answers
   * exception 02, as a real device does. Every point starts at its `normal` value.
   */
  constructor(
    readonly map: SimMap,
    opts: { unitId?: number; size?: Partial<Record<SimTable, number>> } = {},
  ) {
    super();
    this.unitId = opts.unitId ?? 1;
    // a point's reset register exists on the device too, even though nobody polls it
    const addresses = map.points.flatMap((p) => [{ table: p.table, address: p.address }, ...(p.reset ? [p.reset] : [])]);
    const size = (t: SimTable) =>
      Math.max(opts.size?.[t] ?? 0, ...addresses.filter((a) => a.table === t).map((a) => a.address + 1), 0);
    this.values = {
      coil: new Uint16Array(size('coil')),
      discrete: new Uint16Array(size('discrete')),
      holding: new Uint16Array(size('holding')),
      input: new Uint16Array(size('input')),
    };
    for (const p of map.points) this.setPoint(p.name, p.normal ?? (p.trigger === 'falling' ? 1 : 0));
  }

  private check(table: SimTable, address: number) {
    if (address < 0 || address >= this.values[table].length) throw new RangeError(`${table} ${address} does not exist on this device (size ${this.values[table].length})`);
  }

  /** A coil or discrete input (bit omitted), or one bit of a register. */
  setBit(table: SimTable, address: number, value: boolean | number, bit?: number): void {
    this.check(table, address);
    const on = value === true || value === 1;
    if (isBit(table)) {
      if (bit !== undefined) throw new RangeError(`a ${table} is one bit: give no bit number`);
      this.values[table][address] = on ? 1 : 0;
      return;
    }
    if (bit === undefined || bit < 0 || bit > 15) throw new RangeError(`give the bit (0–15) of ${table} ${address}`);
    const old = this.values[table][address]!;
    this.values[table][address] = on ? old | (1 << bit) : old & ~(1 << bit);
  }

  setRegister(table: SimTable, address: number, value: number): void {
    this.check(table, address);
    if (isBit(table)) throw new RangeError(`${table} is a bit table: use setBit`);
    if (!Number.isInteger(value) || value < -0x8000 || value > 0xffff) throw new RangeError(`a register holds 0–65535 (or -32768–32767), not ${value}`);
    this.values[table][address] = value & 0xffff;
  }

  /** Set a point by name: 0/1 for bits, the engineering value (before scale/offset) for whole registers. */
  setPoint(name: string, value: number): void {
    const p = this.map.points.find((q) => q.name === name);
    if (!p) throw new RangeError(`map ${this.map.name} has no point "${name}"`);
    if (isBit(p.table) || p.bit !== undefined) return this.setBit(p.table, p.address, value, p.bit);
    const raw = Math.round((value - (p.offset ?? 0)) / (p.scale ?? 1));
    this.setRegister(p.table, p.address, raw);
  }

  get(table: SimTable, address: number): number {
    this.check(table, address);
    return this.values[table][address]!;
  }

  /** Answer `code` for any request that touches this address, until cleared. */
  failAddress(table: SimTable, address: number, code = ILLEGAL_ADDRESS): void {
    this.failures.set(`${table}:${address}`, code);
  }

  clearFailure(table?: SimTable, address?: number): void {
    if (table === undefined) this.failures.clear();
    else this.failures.delete(`${table}:${address}`);
  }

  /** A silent device receives requests and never answers (a unit that hung, a wrong unit id on a gateway). */
  setSilent(on: boolean): void {
    this.silent = on;
  }

  private answer<T>(table: SimTable, address: number, value: () => T): T | Promise<T> {
    if (this.silent) return new Promise<T>(() => undefined);
    const code = address >= this.values[table].length ? ILLEGAL_ADDRESS : this.failures.get(`${table}:${address}`);
    if (code !== undefined) {
      this.emit('exception', { table, address, code, at: Date.now() });
      // modbus-serial's server turns `modbusErrorCode` into an exception response
      throw { modbusErrorCode: code, msg: `${table} ${address}` };
    }
    return value();
  }

  private write(table: 'coil' | 'holding', address: number, value: number): void | Promise<void> {
    if (this.silent) return new Promise<void>(() => undefined);
    this.answer(table, address, () => undefined);
    this.values[table][address] = value & 0xffff;
    this.emit('write', { table, address, value, at: Date.now() });
    // the device's own reset logic, declared in the map: a write to a point's reset clears its latched alarm
    for (const p of this.map.points) {
      if (p.reset && p.reset.table === table && p.reset.address === address && p.reset.value === value) {
        const quiet = p.normal ?? (p.trigger === 'falling' ? 1 : 0);
        if (!(p.table === table && p.address === address && p.bit === undefined)) this.setPoint(p.name, quiet);
      }
    }
  }

  private vector(): IServiceVector {
    return {
      getCoil: (addr: number) => this.answer('coil', addr, () => this.values.coil[addr] === 1),
      getDiscreteInput: (addr: number) => this.answer('discrete', addr, () => this.values.discrete[addr] === 1),
      getHoldingRegister: (addr: number) => this.answer('holding', addr, () => this.values.holding[addr]!),
      getInputRegister: (addr: number) => this.answer('input', addr, () => this.values.input[addr]!),
      setCoil: (addr: number, value: boolean) => this.write('coil', addr, value ? 1 : 0),
      setRegister: (addr: number, value: number) => this.write('holding', addr, value),
    };
  }

  /** Serve Modbus TCP. Port 0 picks a free port. Resolves with the port. */
  async listenTcp(opts: { host?: string; port?: number } = {}): Promise<number> {
    const host = opts.host ?? '127.0.0.1';
    for (let attempt = 1; ; attempt++) {
      // ServerTCP reads port 0 as "unset" and listens on 502: pick a free port ourselves
      const port = opts.port || (await freePort(host));
      try {
        this.tcp = await new Promise<ServerTCP>((resolve, reject) => {
          const server = new ServerTCP(this.vector(), { host, port, unitID: this.unitId });
          server.on('initialized', () => resolve(server));
          server.on('serverError', (err: Error | null) => reject(err));
          server.on('socketError', () => undefined);
          server.on('error', () => undefined);
        });
        return port;
      } catch (err) {
        if (opts.port || (err as NodeJS.ErrnoException)?.code !== 'EADDRINUSE' || attempt >= 5) throw err;
      }
    }
  }

  /** Serve Modbus RTU on a serial port (a pseudo-terminal in tests). */
  async openRtu(opts: { path: string; baudRate?: number; parity?: 'none' | 'even' | 'odd'; dataBits?: 7 | 8; stopBits?: 1 | 2 }): Promise<void> {
    this.serial = await new Promise<ServerSerial>((resolve, reject) => {
      const server: ServerSerial = new ServerSerial(this.vector(), {
        path: opts.path,
        baudRate: opts.baudRate ?? 19200,
        parity: opts.parity ?? 'even',
        dataBits: opts.dataBits ?? 8,
        stopBits: opts.stopBits ?? 1,
        unitID: this.unitId,
        openCallback: (err: Error | null) => (err ? reject(err) : resolve(server)),
      } as ConstructorParameters<typeof ServerSerial>[1]);
      server.on('error', () => undefined);
      server.on('socketError', () => undefined);
    });
  }

  async stop(): Promise<void> {
    const tcp = this.tcp;
    const serial = this.serial;
    this.tcp = undefined;
    this.serial = undefined;
    if (tcp) await new Promise<void>((resolve) => tcp.close(() => resolve()));
    if (serial) await new Promise<void>((resolve) => serial.close(() => resolve()));
  }
}

function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}
