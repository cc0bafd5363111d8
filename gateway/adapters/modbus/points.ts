// What a polled value means: reading a point out of a block, deciding whether its condition is active, and the
// observation a change of that condition is. Pure functions, so the edge cases are tested without a device.
import type { Observation } from '../../../core/contracts.js';
import { isBitPoint, type ModbusTable, type RegisterMap, type RegisterPoint } from './register-map.js';

/** Largest read per request (Modbus Application Protocol v1.1b3 §6.1–6.4: 2000 bits, 125 registers). */
export const MAX_READ: Record<ModbusTable, number> = { coil: 2000, discrete: 2000, holding: 125, input: 125 };
const TABLE_ORDER: ModbusTable[] = ['coil', 'discrete', 'holding', 'input'];

export interface ReadBlock {
  table: ModbusTable;
  start: number;
  length: number;
}

/**
 * The fewest requests that read every mapped address: per table, runs of contiguous addresses (split at the
 * protocol maximum). Gaps are never bridged: an unmapped address may not exist on the device (exception 02).
 */
export function planBlocks(points: readonly Pick<RegisterPoint, 'table' | 'address'>[]): ReadBlock[] {
  const blocks: ReadBlock[] = [];
  for (const table of TABLE_ORDER) {
    const addresses = [...new Set(points.filter((p) => p.table === table).map((p) => p.address))].sort((a, b) => a - b);
    let current: ReadBlock | undefined;
    for (const address of addresses) {
      if (current && address === current.start + current.length && current.length < MAX_READ[table]) {
        current.length++;
      } else {
        current = { table, start: address, length: 1 };
        blocks.push(current);
      }
    }
  }
  return blocks;
}

export const blockOf = (blocks: readonly ReadBlock[], p: Pick<RegisterPoint, 'table' | 'address'>) =>
  blocks.findIndex((b) => b.table === p.table && p.address >= b.start && p.address < b.start + b.length);

/** The point's value: 0/1 for bits, the scaled engineering value for whole registers. */
export function pointValue(p: RegisterPoint, raw: number | boolean): number {
  if (typeof raw === 'boolean') return raw ? 1 : 0;
  if (p.bit !== undefined) return (raw >> p.bit) & 1;
  const n = p.signed && raw >= 0x8000 ? raw - 0x10000 : raw;
  const scaled = n * (p.scale ?? 1) + (p.offset ?? 0);
  // 105 × 0.1 is 10.500000000000002 in binary floating point; keep what the device meant
  return Number(scaled.toPrecision(12));
}

/** Whether the point's condition holds; `wasActive` applies the hysteresis of a threshold. */
export function isActive(p: RegisterPoint, value: number, wasActive: boolean | undefined): boolean {
  const t = p.trigger;
  if (t === 'rising' || t === 'change') return value !== 0;
  if (t === 'falling') return value === 0;
  const h = p.hysteresis ?? 0;
  if ('above' in t) return wasActive ? value > t.above - h : value > t.above;
  return wasActive ? value < t.below + h : value < t.below;
}

/** What the gateway remembers of a point between polls; absent until the first successful read. */
export interface PointState {
  value: number;
  active: boolean;
}

export type Emission = { restore: boolean; active: boolean } | null;

/**
 * Compare a new value with the remembered state. The first read sets the baseline — except that a condition
 * already active is raised: a resident on the floor when the gateway restarts must not be missed.
 */
export function evaluate(p: RegisterPoint, prev: PointState | undefined, value: number): { next: PointState; emit: Emission } {
  const active = isActive(p, value, prev?.active);
  const next = { value, active };
  if (p.trigger === 'change') {
    return { next, emit: prev !== undefined && prev.value !== value ? { restore: false, active } : null };
  }
  if (prev === undefined) return { next, emit: active ? { restore: false, active } : null };
  if (prev.active === active) return { next, emit: null };
  if (active) return { next, emit: { restore: false, active } };
  return { next, emit: p.restore === false ? null : { restore: true, active } };
}

export interface ObservationContext {
  deviceId: string;
  unitId: number;
  map: RegisterMap;
  receivedAt: number;
}

/** The observation an emission is, in the shared vocabulary; transport detail kept for diagnosis. */
export function toObservation(p: RegisterPoint, ctx: ObservationContext, value: number, raw: number | boolean, emit: NonNullable<Emission>): Observation {
  const detail: Record<string, unknown> = {
    register: p.address,
    table: p.table,
    value,
    unitId: ctx.unitId,
    point: p.name,
    map: ctx.map.name,
  };
  if (p.bit !== undefined) detail.bit = p.bit;
  if (!isBitPoint(p)) detail.raw = raw;
  if (p.unit !== undefined) detail.unit = p.unit;
  if (p.channel !== undefined) detail.channel = p.channel;
  const base = { deviceId: ctx.deviceId, receivedAt: ctx.receivedAt, source: 'modbus' as const, detail };
  const restore = emit.restore ? { restore: true } : {};
  switch (p.observation) {
    case 'battery':
    case 'signal':
      return { ...base, ...restore, type: p.observation, level: value };
    case 'presence':
      // presence carries its own state; it is never a "restore"
      return { ...base, type: 'presence', present: emit.active };
    default:
      return { ...base, ...restore, type: p.observation } as Observation;
  }
}
