// JT/T 808 alarm flags (the location body's first DWORD, 2013 Table 24 / 2019 Table 25) → the shared vocabulary.
//
// The standard has two kinds of bits: those the terminal clears once the platform answered (emergency, area in/out)
// and those held while the condition lasts (power cut, under-voltage, module faults). Life-safety bits raise an
// observation in every report that carries them — the incident service joins repeats to the open incident, and no
// filter may ever swallow one. Held technical bits raise on their rising edge and restore on their falling edge
// (edges kept per device in memory: after a restart a held bit raises once more, which joins the open card).
import type { Observation, Position } from '../../../core/contracts.js';
import type { Jt808Location } from './location.js';

export type AlarmMapping = 'sos' | 'fall' | 'wander' | 'device-fault' | 'battery' | 'power-lost' | null;

/** bit → the standard's name and what eldergate makes of it (docs/protocols/jt808.md has the same table). */
export const ALARM_BITS: readonly { bit: number; name: string; maps: AlarmMapping }[] = [
  { bit: 0, name: 'emergency alarm', maps: 'sos' },
  { bit: 1, name: 'overspeed alarm', maps: null },
  { bit: 2, name: 'fatigue driving', maps: null },
  { bit: 3, name: 'danger warning', maps: null },
  { bit: 4, name: 'GNSS module fault', maps: 'device-fault' },
  { bit: 5, name: 'GNSS antenna not connected or cut', maps: 'device-fault' },
  { bit: 6, name: 'GNSS antenna short circuit', maps: 'device-fault' },
  { bit: 7, name: 'terminal main power under-voltage', maps: 'battery' },
  { bit: 8, name: 'terminal main power cut', maps: 'power-lost' },
  { bit: 9, name: 'LCD or display fault', maps: 'device-fault' },
  { bit: 10, name: 'TTS module fault', maps: 'device-fault' },
  { bit: 11, name: 'camera fault', maps: 'device-fault' },
  { bit: 12, name: 'road transport IC card module fault', maps: null },
  { bit: 13, name: 'overspeed warning', maps: null },
  { bit: 14, name: 'fatigue driving warning', maps: null },
  { bit: 18, name: 'driving time exceeded today', maps: null },
  { bit: 19, name: 'parking overtime', maps: null },
  { bit: 20, name: 'in/out area', maps: 'wander' },
  { bit: 21, name: 'in/out route', maps: null },
  { bit: 22, name: 'route driving time too short/long', maps: null },
  { bit: 23, name: 'route deviation', maps: null },
  { bit: 24, name: 'vehicle VSS fault', maps: null },
  { bit: 25, name: 'abnormal fuel level', maps: null },
  { bit: 26, name: 'vehicle stolen', maps: null },
  { bit: 27, name: 'illegal ignition', maps: null },
  { bit: 28, name: 'illegal displacement', maps: null },
  { bit: 29, name: 'collision warning', maps: 'fall' },
  { bit: 30, name: 'rollover warning', maps: 'fall' },
  { bit: 31, name: 'illegal door opening', maps: null },
];

const NAME_OF = new Map(ALARM_BITS.map((a) => [a.bit, a.name]));
const bitsOf = (m: AlarmMapping) => ALARM_BITS.filter((a) => a.maps === m).reduce((mask, a) => (mask | (1 << a.bit)) >>> 0, 0);
export const MASK = {
  sos: bitsOf('sos'), fall: bitsOf('fall'), wander: bitsOf('wander'),
  fault: bitsOf('device-fault'), battery: bitsOf('battery'), power: bitsOf('power-lost'),
};
/** the held technical bits whose edges are tracked */
export const HELD_MASK = (MASK.fault | MASK.battery | MASK.power) >>> 0;

export function alarmNames(word: number): string[] {
  const out: string[] = [];
  for (let bit = 0; bit < 32; bit++) if (word & (1 << bit)) out.push(NAME_OF.get(bit) ?? `reserved bit ${bit}`);
  return out;
}

export interface ObservationContext {
  deviceId: string;
  receivedAt: number;
  /** flags every observation of this report carries (the peer's, `buffered`) */
  flags: readonly string[];
  /** first seq for this report's observations (flow serial × 1024 + index in the frame), or undefined */
  seq?: number;
  detail: Record<string, unknown>;
  /** the held technical bits as last stored for this device, or undefined when not known */
  previousHeld: number | undefined;
}

/** Accuracy given to a report without a GNSS fix (m): large, so no map draws it as a precise point. */
export const UNLOCATED_ACCURACY_M = 10_000;

/**
 * One location report → observations, life-safety first. Never empty: a report with nothing usable is at least a
 * heartbeat (the terminal is alive).
 */
export function locationObservations(loc: Jt808Location, c: ObservationContext): Observation[] {
  const base = {
    deviceId: c.deviceId, receivedAt: c.receivedAt, source: 'jt808' as const,
    ...(loc.time !== undefined && { deviceTs: loc.time }),
  };
  const flags = [...c.flags];
  const position = positionOf(loc);
  if (loc.located === false) flags.push('unlocated');
  if (loc.lat === undefined || loc.problems.some((p) => p.startsWith('location body'))) flags.push('invalid:position');
  if (loc.problems.some((p) => p.startsWith('time'))) flags.push('invalid:time');
  if (loc.problems.some((p) => p.startsWith('extra item'))) flags.push('invalid:extras');
  const detail: Record<string, unknown> = {
    ...c.detail,
    ...(loc.alarm !== 0 && { alarm: `0x${loc.alarm.toString(16).padStart(8, '0')}`, alarms: alarmNames(loc.alarm) }),
    ...(loc.status !== undefined && { status: `0x${loc.status.toString(16).padStart(8, '0')}` }),
    fix: loc.located ? 'gnss' : 'none',
    ...(loc.speedKmh !== undefined && { speedKmh: loc.speedKmh, course: loc.course, altitudeM: loc.altitudeM }),
    ...(loc.mileageKm !== undefined && { mileageKm: loc.mileageKm }),
    ...(loc.satellites !== undefined && { satellites: loc.satellites }),
    ...(loc.csq !== undefined && { csq: loc.csq }),
    ...(loc.charging !== undefined && { charging: loc.charging }),
    ...(loc.area && { area: loc.area }),
    ...(loc.otherItems && { otherItems: loc.otherItems.map((i) => `0x${i.toString(16)}`) }),
    ...(loc.problems.length > 0 && { problems: loc.problems.slice(0, 8) }),
  };
  const out: Observation[] = [];
  const withFlags = (extra: string[] = []) => {
    const all = [...flags, ...extra];
    return all.length ? { flags: all } : {};
  };
  const at = (o: Observation): void => {
    const seq = c.seq !== undefined && base.deviceTs !== undefined ? { seq: c.seq + out.length } : {};
    out.push({ ...o, ...seq } as Observation);
  };
  const pos = position ? { position } : {};
  const a = loc.alarm;

  // life-safety: every report that carries the bit
  if (a & MASK.sos) at({ ...base, type: 'sos', ...pos, ...withFlags(), detail: { ...detail, standardName: 'emergency alarm' } });
  if (a & MASK.fall) {
    at({ ...base, type: 'fall', ...pos, ...withFlags(), detail: { ...detail, standardName: alarmNames(a & MASK.fall).join(', ') } });
  }
  if (a & MASK.wander) {
    // 0x12 says in or out; an area alarm without it may be an exit, so it is raised (flagged) rather than swallowed
    if (!loc.area) at({ ...base, type: 'wander', ...pos, ...withFlags(['area-direction-unknown']), detail: { ...detail, standardName: 'in/out area' } });
    else if (loc.area.direction === 'out') at({ ...base, type: 'wander', ...pos, ...withFlags(), detail: { ...detail, standardName: 'in/out area (out)' } });
  }

  // held technical bits: edges
  const held = (a & HELD_MASK) >>> 0;
  const prev = c.previousHeld ?? 0;
  const rising = (held & ~prev) >>> 0;
  const falling = (prev & ~held) >>> 0;
  if (rising & MASK.power) at({ ...base, type: 'power-lost', ...withFlags(), detail: { ...detail, standardName: 'terminal main power cut' } });
  if (falling & MASK.power) at({ ...base, type: 'power-restored', ...withFlags(), detail: { ...detail, standardName: 'terminal main power cut (ended)' } });
  if (rising & MASK.fault) at({ ...base, type: 'device-fault', ...withFlags(), detail: { ...detail, standardName: alarmNames(rising & MASK.fault).join(', ') } });
  if (falling & MASK.fault && !(held & MASK.fault)) {
    at({ ...base, type: 'device-fault', restore: true, ...withFlags(), detail: { ...detail, standardName: alarmNames(falling & MASK.fault).join(', ') } });
  }
  if (rising & MASK.battery) {
    // the level, when an extra item gave it; otherwise 0 flagged: the terminal says its supply is low, the rule must see it
    const level = loc.battery ?? 0;
    at({ ...base, type: 'battery', level, ...withFlags(loc.battery === undefined ? ['level-unknown'] : []), detail: { ...detail, standardName: 'terminal main power under-voltage' } });
  }
  if (falling & MASK.battery && loc.battery !== undefined) {
    at({ ...base, type: 'battery', level: loc.battery, restore: true, ...withFlags(), detail: { ...detail, standardName: 'terminal main power under-voltage (ended)' } });
  }

  // the report itself
  const battery = loc.battery !== undefined ? { battery: loc.battery } : {};
  if (position) {
    at({ ...base, type: 'position', position, ...battery, ...withFlags(), detail });
  } else {
    const signal = loc.csq !== undefined && loc.csq <= 31 ? { signal: -113 + 2 * loc.csq } : {};
    at({ ...base, type: 'heartbeat', ...battery, ...signal, ...withFlags(), detail });
  }
  return out;
}

/**
 * The report's position: a fix, or — without one — the coordinates the terminal still sent (its last fix), marked
 * stale with a large accuracy. 0,0 without a fix is no position at all (it would be drawn off the coast of Africa).
 */
function positionOf(loc: Jt808Location): Position | undefined {
  if (loc.lat === undefined || loc.lon === undefined) return undefined;
  if (loc.located) return { lat: loc.lat, lon: loc.lon, ...(loc.time !== undefined && { at: loc.time }) };
  if (loc.lat === 0 && loc.lon === 0) return undefined;
  return { lat: loc.lat, lon: loc.lon, accuracy: UNLOCATED_ACCURACY_M, stale: true, ...(loc.time !== undefined && { at: loc.time }) };
}
