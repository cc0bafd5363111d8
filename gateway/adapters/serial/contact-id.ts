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

/** Overrides from configuration; the most specific wins: account > model > receiver-wide > built-in. */
export interface CodeTableConfig {
  codes?: CodeTable;
  byModel?: Readonly<Record<string, CodeTable>>;
  byAccount?: Readonly<Record<string, CodeTable>>;
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
  '601': e('test', 'manual test'),
  '602': e('test', 'periodic test'),
  '603': e('test', 'periodic RF transmission'),
};

const r = (type: MappableType, label: string): CodeEntry => ({ type, label, restore: true });

/** Built-in SIA (DC-03) table for the codes that matter here; others become unknown, stored and shown. */
export const SIA_CODES: CodeTable = {
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
 * Codes one telecare vendor family uses (PROTOCOLS.md). Not applied by default — list it for the accounts or
 * models that speak it (`byModel: { "<model>": TELECARE_VENDOR_CODES }` in code, or the same entries in JSON).
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
  return frame.events.map((ev) => {
    const found = lookupCode(ev.code, SIA_CODES, ctx.codeTable, { account: frame.account, model: ctx.model });
    const detail: Record<string, unknown> = { ...common, code: ev.code, zone: ev.zone };
    if (found) {
      detail.label = found.entry.label;
      detail.table = found.source;
    }
    return makeObservation(found ? found.entry.type : 'unknown', {
      deviceId: ctx.deviceId,
      receivedAt: ctx.receivedAt,
      restore: Boolean(found?.entry.restore),
      code: ev.code,
      flags: ctx.flags,
      detail,
    });
  });
}
