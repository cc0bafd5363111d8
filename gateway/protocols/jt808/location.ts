// The location information body (0x0200, each item of 0x0704, the tail of 0x0201), JT/T 808-2013 §8.18 / 2019 §8.20:
//   alarm flags DWORD | status DWORD | latitude DWORD | longitude DWORD (1e-6 degrees) | altitude WORD (m) |
//   speed WORD (1/10 km/h) | course WORD (0-359) | time BCD[6] YYMMDDhhmmss (GMT+8) | extra items (id BYTE, len BYTE, …)
// Decoding is forgiving where it must be: an alarm word that can be read is an alarm, whatever is wrong after it.

/** What the basic location fields and extra items said; `problems` names every field that could not be used. */
export interface Jt808Location {
  alarm: number;
  status?: number;
  /** status bit 1: the terminal has a fix */
  located?: boolean;
  lat?: number;
  lon?: number;
  altitudeM?: number;
  speedKmh?: number;
  course?: number;
  /** epoch ms (the terminal's clock, converted from its time zone) */
  time?: number;
  mileageKm?: number;
  /** 0x30: wireless signal strength as the terminal gives it (CSQ 0-31 on most) */
  csq?: number;
  satellites?: number;
  battery?: number;
  charging?: boolean;
  /** 0x12: in/out area alarm detail */
  area?: { kind: number; id: number; direction: 'in' | 'out' };
  /** extra item ids we keep no meaning for (bounded) */
  otherItems?: number[];
  problems: string[];
}

const BASIC = 28;
const MAX_OTHER_ITEMS = 32;

/** BCD YYMMDDhhmmss in the terminal's zone → epoch ms, or undefined when a digit or a field is out of range. */
export function bcdTime(b: Buffer, utcOffsetMinutes: number): number | undefined {
  if (b.length !== 6) return undefined;
  const f: number[] = [];
  for (const x of b) {
    const hi = x >> 4;
    const lo = x & 0x0f;
    if (hi > 9 || lo > 9) return undefined;
    f.push(hi * 10 + lo);
  }
  const [yy, mo, dd, hh, mi, ss] = f as [number, number, number, number, number, number];
  if (mo < 1 || mo > 12 || dd < 1 || dd > 31 || hh > 23 || mi > 59 || ss > 59) return undefined;
  const utc = Date.UTC(2000 + yy, mo - 1, dd, hh, mi, ss);
  // 31 February would roll into March: not a date
  if (new Date(utc).getUTCDate() !== dd) return undefined;
  return utc - utcOffsetMinutes * 60_000;
}

/** Epoch ms → BCD YYMMDDhhmmss in the zone `utcOffsetMinutes` (for tests and the simulator's counterpart). */
export function timeToBcd(ms: number, utcOffsetMinutes: number): Buffer {
  const d = new Date(ms + utcOffsetMinutes * 60_000);
  const parts = [d.getUTCFullYear() % 100, d.getUTCMonth() + 1, d.getUTCDate(), d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds()];
  return Buffer.from(parts.map((n) => ((Math.floor(n / 10) << 4) | (n % 10))));
}

export function decodeLocation(body: Buffer, utcOffsetMinutes: number): Jt808Location | undefined {
  if (body.length < 4) return undefined;
  const loc: Jt808Location = { alarm: body.readUInt32BE(0), problems: [] };
  if (body.length < BASIC) {
    loc.problems.push(`location body of ${body.length} bytes: the basic fields need ${BASIC}`);
    return loc;
  }
  const status = body.readUInt32BE(4);
  loc.status = status;
  loc.located = (status & 0x02) !== 0;
  const lat = body.readUInt32BE(8) / 1e6;
  const lon = body.readUInt32BE(12) / 1e6;
  // status bit 2: south latitude, bit 3: west longitude
  const sLat = status & 0x04 ? -lat : lat;
  const sLon = status & 0x08 ? -lon : lon;
  if (Math.abs(sLat) <= 90 && Math.abs(sLon) <= 180) {
    loc.lat = sLat;
    loc.lon = sLon;
  } else {
    loc.problems.push(`position ${sLat},${sLon} is outside the globe`);
  }
  loc.altitudeM = body.readInt16BE(16);
  loc.speedKmh = body.readUInt16BE(18) / 10;
  loc.course = body.readUInt16BE(20);
  const time = bcdTime(body.subarray(22, 28), utcOffsetMinutes);
  if (time === undefined) loc.problems.push(`time ${body.subarray(22, 28).toString('hex')} is not a BCD date YYMMDDhhmmss`);
  else loc.time = time;
  decodeExtras(body.subarray(BASIC), loc);
  return loc;
}

/**
 * Extra items (id BYTE, length BYTE, value). Standard ones: 0x01 mileage DWORD 1/10 km, 0x12 in/out area alarm
 * (position type BYTE, area id DWORD, direction BYTE 0 in / 1 out), 0x30 signal BYTE, 0x31 GNSS satellites BYTE.
 * Vendor battery items, as Traccar's Jt808ProtocolDecoder reads them for the trackers it serves: 0x06 (1 byte, %),
 * 0xD4 / 0xE1 (1 byte, %; 0xFF = charging), 0xE4 (2 bytes: 0 = charging, then %), 0x56 (2 bytes: tenths of the level, reserved).
 */
function decodeExtras(b: Buffer, loc: Jt808Location): void {
  let at = 0;
  while (at < b.length) {
    if (at + 2 > b.length) {
      loc.problems.push(`extra item header cut at byte ${at}`);
      return;
    }
    const id = b[at]!;
    const len = b[at + 1]!;
    const v = b.subarray(at + 2, at + 2 + len);
    if (v.length < len) {
      loc.problems.push(`extra item 0x${id.toString(16)} says ${len} bytes, ${v.length} left`);
      return;
    }
    at += 2 + len;
    switch (id) {
      case 0x01:
        if (len === 4) loc.mileageKm = v.readUInt32BE(0) / 10;
        break;
      case 0x12:
        if (len === 6) loc.area = { kind: v[0]!, id: v.readUInt32BE(1), direction: v[5] === 1 ? 'out' : 'in' };
        break;
      case 0x30:
        if (len === 1) loc.csq = v[0]!;
        break;
      case 0x31:
        if (len === 1) loc.satellites = v[0]!;
        break;
      case 0x06:
        if (len === 1) setBattery(loc, v[0]!);
        break;
      case 0xd4:
      case 0xe1:
        if (len === 1) {
          if (v[0] === 0xff) loc.charging = true;
          else setBattery(loc, v[0]!);
        }
        break;
      case 0xe4:
        if (len === 2) {
          if (v[0] === 0) loc.charging = true;
          setBattery(loc, v[1]!);
        }
        break;
      case 0x56:
        if (len === 2) setBattery(loc, v[0]! * 10);
        break;
      default:
        (loc.otherItems ??= []).length < MAX_OTHER_ITEMS && loc.otherItems.push(id);
    }
  }
}

function setBattery(loc: Jt808Location, pct: number): void {
  if (pct <= 100) loc.battery = pct;
  else loc.problems.push(`battery ${pct} % is not a percentage`);
}
