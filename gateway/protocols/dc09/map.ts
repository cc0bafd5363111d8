// DC-09 data → observations, through the serial receiver's Contact ID and SIA tables (one vocabulary for a code,
// whatever wire it came on). A thin adapter: it builds the frames those mapping functions take and then makes the
// result a DC-09 observation (source, detail).
import type { Observation } from '../../../core/contracts.js';
import { contactIdToObservation, siaToObservations, type CodeTableConfig } from '../../adapters/serial/contact-id.js';
import { decodeFrame, type ContactIdFrame, type SiaFrame } from '../../adapters/serial/frames.js';
import type { AdmCid } from './message.js';

export interface MapInput {
  deviceId: string;
  receivedAt: number;
  account: string;
  model: string | null;
  flags: string[];
  codeTable?: CodeTableConfig | undefined;
  /** what every observation of the message shows: token, seq, receiver, prefix, transport, … */
  detail: Record<string, unknown>;
}

const QUALIFIER = { '1': 'E', '3': 'R', '6': 'P' } as const;

function asDc09(obs: Observation, detail: Record<string, unknown>): Observation {
  // the serial mapper describes its own framing (format, messageType, raw): replaced by the DC-09 message's
  const { format: _f, messageType: _m, raw: _r, receiver: _rc, line: _l, ...kept } = obs.detail ?? {};
  return { ...obs, source: 'dc09', detail: { ...kept, ...detail } };
}

/** ADM-CID `Qeee gg zzz` → one observation (qualifier 1 new, 3 restore, 6 previous event still present). */
export function admCidToObservation(ev: AdmCid, data: string, m: MapInput): Observation {
  const frame: ContactIdFrame = {
    kind: 'contact-id',
    format: 'account10',
    receiver: '',
    line: '',
    messageType: '18',
    account: m.account,
    qualifier: QUALIFIER[ev.qualifier],
    qualifierRaw: ev.qualifier,
    code: ev.code,
    group: ev.group,
    zone: ev.zone,
    raw: data,
  };
  const obs = contactIdToObservation(frame, {
    deviceId: m.deviceId, receivedAt: m.receivedAt, model: m.model ?? undefined, codeTable: m.codeTable, flags: m.flags,
  });
  return asDc09(obs, { ...m.detail, protocol: 'dc09', format: 'ADM-CID', data });
}

/**
 * SIA-DCS data (`Nri1/BA001`, `Nri01/FA129/…`, text between carets) → one observation per event code, read by the
 * serial receiver's SIA parser: the data is given to it as a SIA frame of its own format.
 */
export function siaDcsToObservations(data: string, m: MapInput): Observation[] {
  // free text between carets (`Nri1CL0^VX FRONTE ^`) made an item of its own, so the code before it is read
  const items = data.replace(/\^([^^]*)\^?/g, '/^$1^');
  const decoded = decodeFrame(`S000[#${m.account}|${items}]`);
  const frame: SiaFrame =
    decoded.ok && decoded.frame.kind === 'sia'
      ? decoded.frame
      : { kind: 'sia', receiver: '', line: '', account: m.account, events: [], modifiers: {}, body: data, issues: ['unreadable SIA data'], raw: data };
  frame.account = m.account;
  return siaToObservations(frame, {
    deviceId: m.deviceId, receivedAt: m.receivedAt, model: m.model ?? undefined, codeTable: m.codeTable, flags: m.flags,
  }).map((o) => asDc09(o, { ...m.detail, protocol: 'dc09', format: 'SIA-DCS', data }));
}
