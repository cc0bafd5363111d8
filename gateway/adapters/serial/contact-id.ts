// Contact ID (SIA DC-05) and SIA (DC-03) event codes → eldergate observations.
// The table is data: the built-in defaults below, overridden per receiver, per device model and per account from
// configuration, because telecare vendors reuse codes (one uses 102 "fail to report in" for a fall).
// Unknown codes become `unknown` observations: stored and shown, never dropped.
import type { Observation, ObservationType } from '../../../core/contracts.js';
import type { ContactIdFrame, SiaFrame } from './frames.js';

/**
 * Observation types a code can map to. position, command-ack and status need fields a Contact ID event cannot
 * carry (a fix, a command id, an online flag), so they are not offered.
 */
export const MAPPABLE_TYPES = [
  'sos', 'panic', 'medical', 'fire', 'gas', 'smoke', 'pull-cord', 'fall', 'bed-exit', 'call-request', 'removed',
  'no-movement', 'wander', 'cancel', 'check-in', 'heartbeat', 'battery', 'power-lost', 'power-restored', 'signal', 'tamper',
  'device-fault', 'comm-lost', 'comm-restored', 'test', 'presence', 'supervision', 'unknown',
] as const satisfies readonly ObservationType[];
export type MappableType = (typeof MAPPABLE_TYPES)[number];

export interface CodeEntry {
  type: MappableType;
  /** what the code means, shown to operators */
  label?: string;
  /** the type a restore (qualifier R/3) of this code becomes, e.g. power-lost → power-restored */
  restoreType?: MappableType;
  /** the code itself reports a restore (SIA codes such as AR "AC restoral") */
  restore?: boolean;
}

/** code (Contact ID `XYZ`, or a two-letter SIA code) → entry */
export type CodeTable = Readonly<Record<string, CodeEntry>>;

/**
 * Overrides from configuration; the most specific wins: account > model (configured) > the shipped vendor table of
 * the device's model > receiver-wide > built-in.
 */
export interface CodeTableConfig {
  codes?: CodeTable;
  byModel?: Readonly<Record<string, CodeTable>>;
  byAccount?: Readonly<Record<string, CodeTable>>;
  /**
   * A shipped vendor table for a model whose name does not say its vendor (`{"HSGW-G8": "climax"}`); a model that
   * names its vendor (`Climax MP-3G`, `VESTA HSGW`) finds its table without this.
   */
  vendorByModel?: Readonly<Record<string, VendorName>>;
}

const e = (type: MappableType, label: string, restoreType?: MappableType): CodeEntry =>
  restoreType ? { type, label, restoreType } : { type, label };

/** Built-in Contact ID table: PROTOCOLS.md plus the unambiguous SIA DC-05 codes of the same families. */
export const CONTACT_ID_CODES: CodeTable = {
  '100': e('medical', 'medical'),
  '101': e('sos', 'personal emergency'),
  '102': e('supervision', 'fail to report in'),
  '110': e('fire', 'fire'),
  '111': e('smoke', 'smoke'),
  '112': e('fire', 'combustion'),
  '114': e('fire', 'heat'),
  '115': e('fire', 'fire pull station'),
  '117': e('fire', 'flame'),
  '120': e('panic', 'panic'),
  '121': e('panic', 'duress'),
  '122': e('panic', 'silent panic'),
  '123': e('panic', 'audible panic'),
  // a break-in at an elder's home is a threat to the person: the panic card (P1), labelled burglary
  '130': e('panic', 'burglary'),
  '137': e('tamper', 'tamper'),
  '144': e('tamper', 'sensor tamper'),
  '145': e('tamper', 'expansion module tamper'),
  '147': e('supervision', 'sensor supervision failure'),
  '151': e('gas', 'gas detected'),
  '162': e('gas', 'carbon monoxide detected'),
  '300': e('device-fault', 'system trouble'),
  '301': e('power-lost', 'AC loss', 'power-restored'),
  '302': e('battery', 'low system battery'),
  '309': e('supervision', 'battery test failure'),
  '311': e('battery', 'battery missing or dead'),
  '350': e('supervision', 'communication trouble'),
  '354': e('supervision', 'failure to communicate event'),
  '373': e('device-fault', 'fire trouble'),
  '380': e('device-fault', 'sensor trouble'),
  '381': e('supervision', 'loss of RF supervision'),
  '383': e('tamper', 'sensor tamper'),
  '384': e('battery', 'RF low battery'),
  // E401 = opening (disarmed: someone is home), R401 = closing (armed: the resident went out); activity either way
  '401': e('presence', 'open/close by user'),
  '601': e('test', 'manual test'),
  '602': e('test', 'periodic test'),
  '603': e('test', 'periodic RF transmission'),
  // SIA DC-05 616 "service request": the resident asks to be called
  '616': e('call-request', 'service request (call request)'),
  // SIA DC-05 641 "senior watch trouble": the unit's inactivity timer expired
  '641': e('no-movement', 'senior watch trouble (inactivity)'),
  // not a DC-05 code: telecare units send it for a wanderer (door exit of a resident with dementia); no standard
  // code it could be confused with, so it is mapped for every device (wander, P2, like a safe-zone exit)
  '732': e('wander', 'wanderer (telecare vendor code)'),
};

const r = (type: MappableType, label: string): CodeEntry => ({ type, label, restore: true });

/** Built-in SIA (DC-03) table for the codes that matter here; others become unknown, stored and shown. */
export const SIA_CODES: CodeTable = {
  BA: e('panic', 'burglary alarm'),
  BH: r('panic', 'burglary alarm restore'),
  BR: r('panic', 'burglary restoral'),
  // closing = armed (the resident went out), opening = disarmed (someone came home): presence, and activity
  CL: r('presence', 'closing (armed)'),
  OP: e('presence', 'opening (disarmed)'),
  FA: e('fire', 'fire alarm'),
  FH: r('fire', 'fire alarm restore'),
  FR: r('fire', 'fire restoral'),
  KA: e('fire', 'heat alarm'),
  KH: r('fire', 'heat alarm restore'),
  MA: e('medical', 'medical alarm'),
  MH: r('medical', 'medical alarm restore'),
  MR: r('medical', 'medical restoral'),
  PA: e('panic', 'panic alarm'),
  PH: r('panic', 'panic alarm restore'),
  PR: r('panic', 'panic restoral'),
  HA: e('panic', 'holdup alarm'),
  QA: e('sos', 'emergency alarm'),
  QH: r('sos', 'emergency alarm restore'),
  QR: r('sos', 'emergency restoral'),
  GA: e('gas', 'gas alarm'),
  GH: r('gas', 'gas alarm restore'),
  GR: r('gas', 'gas restoral'),
  AT: e('power-lost', 'AC trouble'),
  AR: r('power-restored', 'AC restoral'),
  YT: e('battery', 'system battery trouble'),
  YR: r('battery', 'system battery restoral'),
  XT: e('battery', 'transmitter battery trouble'),
  XR: r('battery', 'transmitter battery restoral'),
  TA: e('tamper', 'tamper alarm'),
  TR: r('tamper', 'tamper restoral'),
  RP: e('test', 'automatic test'),
  RX: e('test', 'manual test'),
  YC: e('supervision', 'communications fail'),
  YK: r('supervision', 'communications restoral'),
};

/**
 * Codes one telecare vendor family uses (PROTOCOLS.md): 102 is a fall, not "fail to report in". Applied to a model
 * by `vendorByModel: { "<model>": "telecare" }` or `byModel: { "<model>": TELECARE_VENDOR_CODES }`.
 * 732 "wanderer" is the shared vocabulary's `wander` (P2, like a safe-zone exit).
 */
export const TELECARE_VENDOR_CODES: CodeTable = {
  '102': e('fall', 'fall detected'),
  '616': e('call-request', 'call request'),
  '641': e('no-movement', 'inactivity'),
  '732': e('wander', 'wanderer'),
  '733': e('bed-exit', 'bed exit'),
  '734': e('bed-exit', 'out of bed'),
};

/**
 * Climax Technology telecare units (Mobile PERS, MX series), from the vendor's Contact ID list (Climax Technology,
 * "Mobile PERS User's Manual", 2013, appendix 7.1 "Contact ID Event Codes"). Only where Climax differs from DC-05
 * or says more: 102 is sent when the wearer has not moved after a detected fall, 120 is the fall sensor (DC-05:
 * panic), 662 "help still needed" is a new call for help; the follow-on and nurse codes are kept as information.
 */
export const CLIMAX_CODES: CodeTable = {
  '100': e('sos', 'base station emergency (help button)'),
  '101': e('sos', 'personal emergency (pendant, wrist transmitter)'),
  '102': e('fall', 'no movement after a detected fall'),
  '120': e('fall', 'fall emergency (fall sensor)'),
  '130': e('panic', 'burglary'),
  '147': e('supervision', 'sensor supervision failure'),
  '162': e('gas', 'carbon monoxide'),
  '344': e('device-fault', 'radio jamming detected'),
  '383': e('tamper', 'IR tamper open'),
  '384': e('battery', 'devices low on battery'),
  '602': e('test', 'auto check-in report'),
  '606': e('heartbeat', 'follow-on operation (speech channel opened)'),
  '641': e('no-movement', 'inactivity timer expired'),
  '661': e('heartbeat', 'nurse or help has arrived / job completed'),
  '662': e('sos', 'help still needed'),
  '663': e('heartbeat', 'case closed by the nurse'),
  // wanderer and call request as other telecare units send them
  '616': e('call-request', 'call request'),
  '732': e('wander', 'wanderer'),
};

/** The vendor tables eldergate ships, by name. */
export const VENDOR_TABLES = {
  climax: CLIMAX_CODES,
  // VESTA is Climax Technology's product line: the same Contact ID list
  vesta: CLIMAX_CODES,
  telecare: TELECARE_VENDOR_CODES,
} as const satisfies Record<string, CodeTable>;
export type VendorName = keyof typeof VENDOR_TABLES;
export const VENDOR_NAMES = Object.keys(VENDOR_TABLES) as VendorName[];

/**
 * The shipped vendor table a device model speaks: configured by model name, else the vendor named in the model
 * itself (`Climax MP-3G`, `vesta-hsgw`), whole word, any case.
 */
export function vendorOf(model: string | undefined, cfg?: CodeTableConfig): VendorName | undefined {
  if (model === undefined) return undefined;
  const configured = cfg?.vendorByModel?.[model];
  if (configured) return configured;
  for (const name of ['climax', 'vesta'] as const) {
    if (new RegExp(`(^|[^a-z])${name}([^a-z]|$)`, 'i').test(model)) return name;
  }
  return undefined;
}

export interface LookupContext {
  account?: string | undefined;
  model?: string | undefined;
}

/** The entry for a code, the most specific table first; `source` says which table answered (for `detail`). */
export function lookupCode(
  code: string,
  builtIn: CodeTable,
  cfg: CodeTableConfig | undefined,
  ctx: LookupContext,
): { entry: CodeEntry; source: string } | undefined {
  const key = code.toUpperCase();
  const acct = ctx.account !== undefined ? cfg?.byAccount?.[ctx.account.toUpperCase()] ?? cfg?.byAccount?.[ctx.account] : undefined;
  if (acct?.[key]) return { entry: acct[key]!, source: 'account' };
  const model = ctx.model !== undefined ? cfg?.byModel?.[ctx.model] : undefined;
  if (model?.[key]) return { entry: model[key]!, source: 'model' };
  const vendor = vendorOf(ctx.model, cfg);
  if (vendor && VENDOR_TABLES[vendor][key]) return { entry: VENDOR_TABLES[vendor][key]!, source: `vendor:${vendor}` };
  if (cfg?.codes?.[key]) return { entry: cfg.codes[key]!, source: 'receiver' };
  if (builtIn[key]) return { entry: builtIn[key]!, source: 'built-in' };
  return undefined;
}

export interface MapContext {
  deviceId: string;
  receivedAt: number;
  codeTable?: CodeTableConfig | undefined;
  model?: string | undefined;
  flags?: string[];
  /** extra detail (receiverDeviceId, port path) merged into every observation's detail */
  detail?: Record<string, unknown>;
  /**
   * The panels' clock as an offset from UTC in minutes (+480 for Beijing), to read a SIA `ti` / `da` time; undefined:
   * the gateway host's local time zone.
   */
  utcOffsetMinutes?: number | undefined;
}

/**
 * Build an observation of `type`, filling the fields the contract requires for it. Contact ID carries no battery
 * level: a low-battery event is level 0 and its restore level 100, with `detail.level` saying so.
 */
export function makeObservation(
  type: MappableType,
  base: {
    deviceId: string;
    receivedAt: number;
    restore: boolean;
    code: string;
    flags?: string[] | undefined;
    detail: Record<string, unknown>;
  },
): Observation {
  const common = {
    deviceId: base.deviceId,
    receivedAt: base.receivedAt,
    source: 'serial' as const,
    detail: base.detail,
    ...(base.restore ? { restore: true } : {}),
    ...(base.flags && base.flags.length ? { flags: [...base.flags] } : {}),
  };
  switch (type) {
    case 'battery':
      base.detail.level = base.restore ? 'restored (estimated 100)' : 'low (estimated 0)';
      return { ...common, type, level: base.restore ? 100 : 0 };
    case 'signal':
      base.detail.level = base.restore ? 'restored (estimated 100)' : 'low (estimated 0)';
      return { ...common, type, level: base.restore ? 100 : 0 };
    case 'presence':
      return { ...common, type, present: !base.restore };
    case 'supervision':
      return { ...common, type, code: base.code };
    case 'unknown':
      return { ...common, type, code: base.code };
    default:
      return { ...common, type };
  }
}

/** One Contact ID event → one observation. Never throws; an unmapped code is `unknown`. */
export function contactIdToObservation(frame: ContactIdFrame, ctx: MapContext): Observation {
  const found = lookupCode(frame.code, CONTACT_ID_CODES, ctx.codeTable, { account: frame.account, model: ctx.model });
  const restore = frame.qualifier === 'R';
  const detail: Record<string, unknown> = {
    ...ctx.detail,
    protocol: 'contact-id',
    format: frame.format,
    messageType: frame.messageType,
    code: frame.code,
    qualifier: frame.qualifier,
    group: frame.group,
    zone: frame.zone,
    account: frame.account,
    receiver: frame.receiver,
    line: frame.line,
    raw: frame.raw,
  };
  if (frame.qualifierRaw !== frame.qualifier) detail.qualifierRaw = frame.qualifierRaw;
  if (frame.qualifier === 'P') detail.stillPresent = true;
  let type: MappableType = 'unknown';
  if (found) {
    detail.label = found.entry.label;
    detail.table = found.source;
    type = restore && found.entry.restoreType ? found.entry.restoreType : found.entry.type;
  }
  return makeObservation(type, {
    deviceId: ctx.deviceId,
    receivedAt: ctx.receivedAt,
    restore: restore || Boolean(found?.entry.restore),
    code: frame.code,
    flags: ctx.flags,
    detail,
  });
}

/**
 * One SIA frame → one observation per event code in it (a frame may carry several). A frame with no readable
 * event still gives one `unknown` observation so that it is stored and shown.
 */
export function siaToObservations(frame: SiaFrame, ctx: MapContext): Observation[] {
  const common = {
    ...ctx.detail,
    protocol: 'sia',
    account: frame.account,
    receiver: frame.receiver,
    line: frame.line,
    qualifier: frame.qualifier,
    modifiers: frame.modifiers,
    group: frame.modifiers.ri,
    raw: frame.raw,
    ...(frame.issues.length ? { issues: frame.issues } : {}),
  };
  if (frame.events.length === 0) {
    return [
      makeObservation('unknown', {
        deviceId: ctx.deviceId,
        receivedAt: ctx.receivedAt,
        restore: false,
        code: 'SIA',
        flags: ctx.flags,
        detail: { ...common, code: 'SIA' },
      }),
    ];
  }
  const deviceTs = siaTime(frame.modifiers, ctx.receivedAt, ctx.utcOffsetMinutes);
  return frame.events.map((ev) => {
    const found = lookupCode(ev.code, SIA_CODES, ctx.codeTable, { account: frame.account, model: ctx.model });
    const detail: Record<string, unknown> = { ...common, code: ev.code, zone: ev.zone };
    if (found) {
      detail.label = found.entry.label;
      detail.table = found.source;
    }
    const obs = makeObservation(found ? found.entry.type : 'unknown', {
      deviceId: ctx.deviceId,
      receivedAt: ctx.receivedAt,
      restore: Boolean(found?.entry.restore),
      code: ev.code,
      flags: ctx.flags,
      detail,
    });
    return deviceTs === undefined ? obs : { ...obs, deviceTs };
  });
}

/**
 * The panel's own time of the event, from the SIA `ti` modifier (`hh:mm` or `hh:mm:ss`, the panel's clock) and,
 * when given, the `da` date (`MM-DD-YY`); epoch ms. The panel's clock is local time: `utcOffsetMinutes` says which
 * (the receiver's `panelUtcOffsetMinutes`); undefined reads it in the gateway host's time zone. Without a date the
 * event is on the day it arrived, or the day before when that time is still ahead (an event at 23:59 arriving at
 * 00:01). Undefined when there is no readable time: the arrival time stands.
 */
export function siaTime(modifiers: Readonly<Record<string, string>>, receivedAt: number, utcOffsetMinutes?: number): number | undefined {
  const t = /^(\d{1,2}):(\d{2})(?::(\d{2}))?$/.exec(modifiers.ti ?? '');
  if (!t) return undefined;
  const [h, m, sec] = [Number(t[1]), Number(t[2]), Number(t[3] ?? 0)];
  if (h > 23 || m > 59 || sec > 59) return undefined;
  const d = /^(\d{1,2})-(\d{1,2})-(\d{2}|\d{4})$/.exec(modifiers.da ?? '');
  if (utcOffsetMinutes !== undefined) {
    // a fixed offset: the wall clock of the panel is UTC shifted by it (no daylight-saving changes)
    const shift = utcOffsetMinutes * 60_000;
    if (d) {
      const year = d[3]!.length === 2 ? 2000 + Number(d[3]) : Number(d[3]);
      const at = Date.UTC(year, Number(d[1]) - 1, Number(d[2]), h, m, sec) - shift;
      return Number.isFinite(at) ? at : undefined;
    }
    const local = new Date(receivedAt + shift);
    let at = Date.UTC(local.getUTCFullYear(), local.getUTCMonth(), local.getUTCDate(), h, m, sec) - shift;
    // more than a minute ahead of arrival: the panel's clock is not that far ahead, it is yesterday's event
    if (at > receivedAt + 60_000) at -= 86_400_000;
    return at;
  }
  if (d) {
    const year = d[3]!.length === 2 ? 2000 + Number(d[3]) : Number(d[3]);
    const at = new Date(year, Number(d[1]) - 1, Number(d[2]), h, m, sec).getTime();
    return Number.isFinite(at) ? at : undefined;
  }
  const day = new Date(receivedAt);
  day.setHours(h, m, sec, 0);
  // more than a minute ahead of arrival: the panel's clock is not that far ahead, it is yesterday's event
  if (day.getTime() > receivedAt + 60_000) day.setDate(day.getDate() - 1);
  return day.getTime();
}
