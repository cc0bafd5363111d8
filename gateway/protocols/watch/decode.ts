// Watch frame CONTENT → what it says (no observations yet: index.ts maps them). Field by field, never one regex, so
// an AL whose position is garbled still yields its status bits, and nothing here throws.
//
// UD / UD2 / UD_LTE / UD_WCDMA / UD3 / WT / AL / AL_LTE / ALCUSTOMER1 … share one body:
//   date DDMMYY, time HHMMSS (UTC), A|V, lat, N|S, lon, E|W, speed km/h, course, altitude, satellites, GSM signal,
//   battery %, steps, rolls, status (hex), then cells: count, timing advance, MCC, MNC, count × (LAC, CID, RSSI),
//   then Wi-Fi: count, count × (SSID, MAC, RSSI), then a trailing value (the watch's accuracy estimate, not used).
// (field order as Traccar's WatchProtocolDecoder reads it; frames in test/protocols/watch/frames.ts)

/** Bounds on what one frame may add to an observation's detail. */
export const MAX_CELLS = 8;
export const MAX_WIFI = 8;
const MAX_SSID = 32;

export interface Cell { mcc: number; mnc: number; lac: string; cid: string; rssi?: number }
export interface WifiAp { ssid: string; mac: string; rssi?: number }

export interface Report {
  /** epoch ms of the watch's clock (UTC), when the date and time are readable */
  deviceTs?: number;
  /** 'A' GPS fix, 'V' none */
  validity?: 'A' | 'V';
  lat?: number;
  lon?: number;
  speedKmh?: number;
  course?: number;
  altitude?: number;
  satellites?: number;
  gsmSignal?: number;
  battery?: number;
  steps?: number;
  rolls?: number;
  /** the status word (hex), when readable */
  status?: number;
  statusHex?: string;
  cells: Cell[];
  wifi: WifiAp[];
  /** what was unreadable and left out, e.g. `invalid:position` */
  flags: string[];
}

const num = (s: string | undefined): number | undefined => {
  if (s === undefined) return undefined;
  const t = s.trim();
  if (!/^-?\d+(\.\d+)?$/.test(t)) return undefined;
  const v = Number(t);
  return Number.isFinite(v) ? v : undefined;
};
const int = (s: string | undefined): number | undefined => {
  const v = num(s);
  return v !== undefined && Number.isInteger(v) ? v : undefined;
};

/** DDMMYY + HHMMSS, UTC → epoch ms, or undefined when not a real date */
export function parseDateTime(date: string | undefined, time: string | undefined): number | undefined {
  if (!date || !time || !/^\d{6}$/.test(date) || !/^\d{6}$/.test(time)) return undefined;
  const d = +date.slice(0, 2), mo = +date.slice(2, 4), y = 2000 + +date.slice(4, 6);
  const h = +time.slice(0, 2), mi = +time.slice(2, 4), s = +time.slice(4, 6);
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 59) return undefined;
  const ts = Date.UTC(y, mo - 1, d, h, mi, s);
  // Date.UTC rolls 31 February into March: refuse what does not round-trip
  return new Date(ts).getUTCDate() === d ? ts : undefined;
}

/** degrees with a hemisphere letter: S and W make it negative (a value already negative stays so) */
function coordinate(value: string | undefined, hemisphere: string | undefined, limit: number): number | undefined {
  const v = num(value);
  if (v === undefined || Math.abs(v) > limit) return undefined;
  const h = (hemisphere ?? '').trim();
  if (h !== '' && h !== 'N' && h !== 'S' && h !== 'E' && h !== 'W') return undefined;
  return h === 'S' || h === 'W' ? -Math.abs(v) : v;
}

/** The body of a UD / AL frame (CONTENT after `KEYWORD,`). */
export function parseReport(body: string): Report {
  const f = body.split(',');
  const r: Report = { cells: [], wifi: [], flags: [] };

  const ts = parseDateTime(f[0], f[1]);
  if (ts !== undefined) r.deviceTs = ts;
  else r.flags.push('invalid:deviceTs');

  if (f[2] === 'A' || f[2] === 'V') r.validity = f[2];
  const lat = coordinate(f[3], f[4], 90);
  const lon = coordinate(f[5], f[6], 180);
  if (lat !== undefined && lon !== undefined) {
    r.lat = lat;
    r.lon = lon;
  } else {
    r.flags.push('invalid:position');
  }
  const set = <K extends keyof Report>(k: K, v: Report[K] | undefined) => {
    if (v !== undefined) r[k] = v;
  };
  set('speedKmh', num(f[7]));
  set('course', num(f[8]));
  set('altitude', num(f[9]));
  set('satellites', int(f[10]));
  set('gsmSignal', int(f[11]));
  const battery = int(f[12]);
  if (battery !== undefined && battery >= 0 && battery <= 100) r.battery = battery;
  else if (f[12] !== undefined) r.flags.push('invalid:battery');
  set('steps', int(f[13]));
  set('rolls', int(f[14]));
  const st = (f[15] ?? '').trim();
  if (/^[0-9a-fA-F]{1,8}$/.test(st)) {
    r.status = parseInt(st, 16);
    r.statusHex = st;
  } else {
    r.flags.push('invalid:status');
  }
  if (f.length > 16) readNetwork(f, 16, r);
  return r;
}

function readNetwork(f: string[], start: number, r: Report): void {
  let i = start;
  const cellCount = int(f[i++]);
  if (cellCount === undefined || cellCount < 0) {
    r.flags.push('invalid:cells');
    return;
  }
  if (cellCount > 0) {
    i++; // timing advance
    const mcc = int(f[i++]) ?? 0;
    const mnc = int(f[i++]) ?? 0;
    for (let k = 0; k < cellCount; k++) {
      const lac = f[i++], cid = f[i++], rssi = f[i++];
      if (lac === undefined || cid === undefined) {
        r.flags.push('invalid:cells');
        return;
      }
      if (r.cells.length < MAX_CELLS && /^[0-9A-Fa-f]{1,10}$/.test(lac) && /^[0-9A-Fa-f]{1,12}$/.test(cid)) {
        const c: Cell = { mcc, mnc, lac, cid };
        const s = int(rssi);
        if (s !== undefined) c.rssi = s;
        r.cells.push(c);
      }
    }
  }
  const wifiCount = int(f[i]);
  if (wifiCount === undefined || f[i] === '') return;
  i++;
  for (let k = 0; k < wifiCount && i + 1 < f.length; k++) {
    const ssid = f[i++] ?? '', mac = (f[i++] ?? '').trim(), rssi = f[i++];
    if (r.wifi.length < MAX_WIFI && /^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$/.test(mac)) {
      const ap: WifiAp = { ssid: ssid.slice(0, MAX_SSID), mac: mac.toLowerCase() };
      const s = int(rssi);
      if (s !== undefined) ap.rssi = s;
      r.wifi.push(ap);
    }
  }
}

/** `LK` or `LK,steps,rolls,battery`: only with all three is the third the battery (Traccar reads it so). */
export function parseKeepalive(body: string | undefined): { steps?: number; rolls?: number; battery?: number; flags: string[] } {
  const out: { steps?: number; rolls?: number; battery?: number; flags: string[] } = { flags: [] };
  if (body === undefined || body === '') return out;
  const f = body.split(',');
  if (f.length < 3) return out;
  const steps = int(f[0]), rolls = int(f[1]), battery = int(f[2]);
  if (steps !== undefined) out.steps = steps;
  if (rolls !== undefined) out.rolls = rolls;
  if (battery !== undefined && battery >= 0 && battery <= 100) out.battery = battery;
  else out.flags.push('invalid:battery');
  return out;
}

/**
 * The status word: the low 16 bits are the watch's state, the high 16 bits its alarms (bit map as Traccar's
 * WatchProtocolDecoder.decodeAlarm reads it). State bits 0-2 mean low battery / out of / into the fence zone; Traccar
 * reads them as alarms too, and so do we in an AL frame (the watch says it is an alarm). In a UD they are a standing
 * state repeated every report, so only the alarm bits raise there.
 */
export const STATUS = {
  lowBatteryState: 0,
  fenceOutState: 1,
  fenceInState: 2,
  /** Traccar reads it as "motion" */
  motion: 4,
  powerCut: 14,
  sos: 16,
  lowBattery: 17,
  fenceOut: 18,
  fenceIn: 19,
  removed: 20,
  fall: 21,
  /** a second fall bit some firmware uses */
  fall2: 22,
} as const;

export type Alarm = 'sos' | 'fall' | 'removed' | 'fence-out' | 'fence-in' | 'low-battery' | 'power-cut';

export function alarmsOf(status: number, inAlarmFrame: boolean): Alarm[] {
  const bit = (n: number) => ((status >>> n) & 1) === 1;
  const out = new Set<Alarm>();
  if (bit(STATUS.sos)) out.add('sos');
  if (bit(STATUS.fall) || bit(STATUS.fall2)) out.add('fall');
  if (bit(STATUS.removed)) out.add('removed');
  if (bit(STATUS.fenceOut) || (inAlarmFrame && bit(STATUS.fenceOutState))) out.add('fence-out');
  if (bit(STATUS.fenceIn) || (inAlarmFrame && bit(STATUS.fenceInState))) out.add('fence-in');
  if (bit(STATUS.lowBattery) || (inAlarmFrame && bit(STATUS.lowBatteryState))) out.add('low-battery');
  if (bit(STATUS.powerCut)) out.add('power-cut');
  return [...out];
}

/** a position frame's keyword (Traccar: UD…, AL…, WT…) */
export const isPositionKeyword = (k: string) => k.startsWith('UD') || k.startsWith('AL') || k.startsWith('WT');
export const isAlarmKeyword = (k: string) => k.startsWith('AL');
