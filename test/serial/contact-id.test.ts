import { describe, it, expect } from 'vitest';
import { decodeFrame, type ContactIdFrame, type SiaFrame } from '../../gateway/adapters/serial/frames.js';
import {
  contactIdToObservation,
  siaToObservations,
  siaTime,
  vendorOf,
  TELECARE_VENDOR_CODES,
  type CodeTableConfig,
} from '../../gateway/adapters/serial/contact-id.js';
import { isLifeSafety } from '../../core/contracts.js';

const cid = (s: string) => {
  const r = decodeFrame(s);
  if (!r.ok || r.frame.kind !== 'contact-id') throw new Error(`not a Contact ID frame: ${s}`);
  return r.frame as ContactIdFrame;
};
const map = (code: string, q = 'E', extra: { codeTable?: CodeTableConfig; model?: string; account?: string } = {}) =>
  contactIdToObservation(cid(`5011 18${extra.account ?? '1234'}${q}${code}01007`), {
    deviceId: 'dev-1',
    receivedAt: 1000,
    codeTable: extra.codeTable,
    model: extra.model,
  });

describe('Contact ID → observations', () => {
  it.each([
    ['100', 'medical'],
    ['101', 'sos'],
    ['110', 'fire'],
    ['120', 'panic'],
    ['102', 'supervision'],
    ['147', 'supervision'],
    ['309', 'supervision'],
    ['350', 'supervision'],
    ['354', 'supervision'],
    ['381', 'supervision'],
    ['301', 'power-lost'],
    ['302', 'battery'],
    ['384', 'battery'],
    ['383', 'tamper'],
    ['601', 'test'],
    ['602', 'test'],
    ['603', 'test'],
  ])('%s → %s', (code, type) => {
    const o = map(code);
    expect(o.type).toBe(type);
    expect(o.source).toBe('serial');
    expect(o.restore).toBeUndefined();
  });

  it('life-safety codes become life-safety observations', () => {
    for (const code of ['100', '101', '110', '120']) expect(isLifeSafety(map(code).type)).toBe(true);
    for (const code of ['301', '302', '602']) expect(isLifeSafety(map(code).type)).toBe(false);
  });

  it('puts the full detail on every observation', () => {
    const o = map('101');
    expect(o).toMatchObject({ deviceId: 'dev-1', receivedAt: 1000, type: 'sos' });
    expect(o.detail).toMatchObject({
      protocol: 'contact-id',
      code: '101',
      qualifier: 'E',
      group: '01',
      zone: '007',
      account: '1234',
      receiver: '01',
      line: '1',
      raw: '5011 181234E10101007',
      label: 'personal emergency',
      table: 'built-in',
    });
  });

  it('a restore sets restore: true; AC loss restores as power-restored', () => {
    const r = map('101', 'R');
    expect([r.type, r.restore]).toEqual(['sos', true]);
    const ac = map('301', 'R');
    expect([ac.type, ac.restore]).toEqual(['power-restored', true]);
    const three = map('301', '3');
    expect([three.type, three.restore, three.detail?.qualifierRaw]).toEqual(['power-restored', true, '3']);
  });

  it('"previous event still present" keeps the type and says so', () => {
    const p = map('110', 'P');
    expect([p.type, p.restore, p.detail?.stillPresent]).toEqual(['fire', undefined, true]);
  });

  it('low battery has an estimated level 0, its restore 100', () => {
    const low = map('302');
    expect(low.type === 'battery' && low.level).toBe(0);
    const back = map('384', 'R');
    expect(back.type === 'battery' && back.level).toBe(100);
    expect(back.restore).toBe(true);
  });

  it('an unknown code is an unknown observation, never dropped', () => {
    const o = map('999');
    expect(o).toMatchObject({ type: 'unknown', code: '999' });
    expect(o.detail).toMatchObject({ code: '999', raw: '5011 181234E99901007' });
    expect(o.detail?.label).toBeUndefined();
  });

  it('the code table is overridable per receiver, model and account, most specific first', () => {
    const codeTable: CodeTableConfig = {
      codes: { '641': { type: 'no-movement', label: 'inactivity (receiver-wide)' } },
      byModel: { 'vendor-x': TELECARE_VENDOR_CODES },
      byAccount: { '4321': { '102': { type: 'sos', label: 'account says sos' } } },
    };
    // built-in: 102 fail to report in
    expect(map('102').type).toBe('supervision');
    // telecare model: 102 is a fall
    const fall = map('102', 'E', { codeTable, model: 'vendor-x' });
    expect([fall.type, fall.detail?.label, fall.detail?.table]).toEqual(['fall', 'fall detected', 'model']);
    // account beats model
    const acct = map('102', 'E', { codeTable, model: 'vendor-x', account: '4321' });
    expect([acct.type, acct.detail?.table]).toEqual(['sos', 'account']);
    // receiver-wide override for every account
    const inact = map('641', 'E', { codeTable });
    expect([inact.type, inact.detail?.table]).toEqual(['no-movement', 'receiver']);
    // the vendor codes
    expect(map('616', 'E', { codeTable, model: 'vendor-x' }).type).toBe('call-request');
    expect(map('733', 'E', { codeTable, model: 'vendor-x' }).type).toBe('bed-exit');
    expect(map('734', 'E', { codeTable, model: 'vendor-x' }).type).toBe('bed-exit');
    const wander = map('732', 'E', { codeTable, model: 'vendor-x' });
    expect(wander).toMatchObject({ type: 'wander' });
    expect(wander.detail?.label).toBe('wanderer');
    // other models keep the built-in table
    expect(map('102', 'E', { codeTable, model: 'other' }).type).toBe('supervision');
  });

  it('standard codes a telecare network meets: 130 burglary, 616 service request, 641 inactivity, 732 wanderer, 401 open/close', () => {
    expect(map('130')).toMatchObject({ type: 'panic', detail: { label: 'burglary' } });
    expect(map('616').type).toBe('call-request');
    expect(map('641').type).toBe('no-movement');
    expect(map('732').type).toBe('wander');
    for (const code of ['130', '616', '641', '732']) expect(isLifeSafety(map(code).type)).toBe(true);
    expect(map('401')).toMatchObject({ type: 'presence', present: true });
    expect(map('401', 'R')).toMatchObject({ type: 'presence', present: false });
  });

  it("the device's own model picks the shipped vendor table: 102 and 120 are falls on a Climax or Vesta unit", () => {
    // Climax Technology, Mobile PERS user's manual (2013), appendix 7.1: 102 "inactivity after fall detection", 120 "fall emergency"
    for (const model of ['Climax MP-3G', 'climax-gx90', 'VESTA HSGW-G8']) {
      const fall = map('102', '1', { model });
      expect([fall.type, fall.detail?.table]).toEqual(['fall', `vendor:${vendorOf(model)}`]);
      expect(map('120', 'E', { model }).type).toBe('fall');
      expect(map('662', 'E', { model }).type).toBe('sos');
    }
    // other devices keep DC-05: 102 fail to report in, 120 panic
    expect(map('102', '1', { model: 'Acme panel' }).type).toBe('supervision');
    expect(map('120', 'E', { model: 'Acme panel' }).type).toBe('panic');
    // a model whose name does not say its vendor: told in configuration
    const codeTable: CodeTableConfig = { vendorByModel: { 'HSGW-G8': 'climax', 'TX-1': 'telecare' } };
    expect(map('102', 'E', { model: 'HSGW-G8', codeTable }).type).toBe('fall');
    expect(map('733', 'E', { model: 'TX-1', codeTable }).type).toBe('bed-exit');
    // a configured byModel entry still beats the shipped table
    const over: CodeTableConfig = { byModel: { 'Climax MP-3G': { '102': { type: 'supervision' } } } };
    expect(map('102', 'E', { model: 'Climax MP-3G', codeTable: over }).detail?.table).toBe('model');
  });

  it('each unmapped code is its own unknown observation with its own code', () => {
    const a = map('987');
    const b = map('654');
    expect([a.type, a.type === 'unknown' && a.code]).toEqual(['unknown', '987']);
    expect([b.type, b.type === 'unknown' && b.code]).toEqual(['unknown', '654']);
  });

  it('passes flags (unknown-account) through', () => {
    const o = contactIdToObservation(cid('5011 18FFFFE10101001'), {
      deviceId: 'receiver-1',
      receivedAt: 1,
      flags: ['unknown-account'],
    });
    expect(o).toMatchObject({ deviceId: 'receiver-1', type: 'sos', flags: ['unknown-account'] });
    expect(o.detail?.account).toBe('FFFF');
  });
});

describe('SIA → observations', () => {
  const sia = (s: string) => {
    const r = decodeFrame(s);
    if (!r.ok || r.frame.kind !== 'sia') throw new Error(`not SIA: ${s}`);
    return r.frame as SiaFrame;
  };
  it('maps the codes it knows, one observation per event, unknown ones kept', () => {
    const list = siaToObservations(sia('S011[#1234|Nri01/FA129/AR00/ZZ001]'), { deviceId: 'd', receivedAt: 5 });
    expect(list.map((o) => [o.type, o.restore])).toEqual([
      ['fire', undefined],
      ['power-restored', true],
      ['unknown', undefined],
    ]);
    expect(list[0]!.detail).toMatchObject({ protocol: 'sia', code: 'FA', zone: '129', account: '1234', group: '01' });
    expect(list[2]).toMatchObject({ type: 'unknown', code: 'ZZ' });
  });

  it('BA burglary, CL closing (armed: out), OP opening (in)', () => {
    const list = siaToObservations(sia('S011[#1234|NBA003/CL001/OP001/BR003]'), { deviceId: 'd', receivedAt: 5 });
    expect(list.map((o) => [o.type, o.restore, o.type === 'presence' ? o.present : null])).toEqual([
      ['panic', undefined, null],
      ['presence', true, false],
      ['presence', undefined, true],
      ['panic', true, null],
    ]);
    expect(list[0]!.detail?.label).toBe('burglary alarm');
  });

  it('keeps the ti modifier as the event time (deviceTs), and as text in detail', () => {
    const at = new Date(2026, 4, 17, 10, 30, 5).getTime();
    const [fire] = siaToObservations(sia('S011[#1234|Nti10:23/ri01/FA129]'), { deviceId: 'd', receivedAt: at });
    expect(fire!.deviceTs).toBe(new Date(2026, 4, 17, 10, 23, 0).getTime());
    expect(fire!.detail?.modifiers).toMatchObject({ ti: '10:23' });
    // an event just before midnight that arrives just after it is yesterday's
    const midnight = new Date(2026, 4, 18, 0, 1, 0).getTime();
    expect(siaTime({ ti: '23:59:30' }, midnight)).toBe(new Date(2026, 4, 17, 23, 59, 30).getTime());
    expect(siaTime({ ti: '10:23', da: '05-16-26' }, at)).toBe(new Date(2026, 4, 16, 10, 23, 0).getTime());
    // no readable time: the arrival time stands
    expect(siaTime({ ti: '25:99' }, at)).toBeUndefined();
    const [noTi] = siaToObservations(sia('S011[#1234|NFA129]'), { deviceId: 'd', receivedAt: at });
    expect(noTi!.deviceTs).toBeUndefined();
  });

  it('reads ti / da in the panels\' configured zone, not the process\'s (TZ)', () => {
    const tz = process.env.TZ;
    process.env.TZ = 'America/New_York'; // the gateway host's zone: UTC-4 in May
    try {
      expect(new Date(Date.UTC(2026, 4, 17, 2, 30)).getTimezoneOffset()).toBe(240); // the zone took effect
      // 10:30:05 in Beijing (+480) is 02:30:05 UTC; the panel in Beijing says the fire was at 10:23
      const at = Date.UTC(2026, 4, 17, 2, 30, 5);
      const [fire] = siaToObservations(sia('S011[#1234|Nti10:23/ri01/FA129]'), { deviceId: 'd', receivedAt: at, utcOffsetMinutes: 480 });
      expect(fire!.deviceTs).toBe(Date.UTC(2026, 4, 17, 2, 23, 0));
      expect(siaTime({ ti: '10:23:30' }, at, 480)).toBe(Date.UTC(2026, 4, 17, 2, 23, 30));
      // with a date: 05-16-26 10:23 in Beijing
      expect(siaTime({ ti: '10:23', da: '05-16-26' }, at, 480)).toBe(Date.UTC(2026, 4, 16, 2, 23, 0));
      // just before the panel's midnight, arriving just after it (00:01 in Beijing is 16:01 UTC the day before)
      const midnight = Date.UTC(2026, 4, 17, 16, 1, 0);
      expect(siaTime({ ti: '23:59:30' }, midnight, 480)).toBe(Date.UTC(2026, 4, 17, 15, 59, 30));
      // west of UTC too: 22:10 in Los Angeles (-420 in May) is 05:10 UTC the next day
      expect(siaTime({ ti: '22:05' }, Date.UTC(2026, 4, 18, 5, 10), -420)).toBe(Date.UTC(2026, 4, 18, 5, 5));
      // without a configured zone: the host's (New York), as before
      expect(siaTime({ ti: '10:23' }, Date.UTC(2026, 4, 17, 14, 30))).toBe(Date.UTC(2026, 4, 17, 14, 23));
    } finally {
      if (tz === undefined) delete process.env.TZ;
      else process.env.TZ = tz;
    }
  });

  it('a SIA frame with no readable event is still one unknown observation', () => {
    const list = siaToObservations(sia('S011[#1234|??]'), { deviceId: 'd', receivedAt: 5 });
    expect(list).toHaveLength(1);
    expect(list[0]).toMatchObject({ type: 'unknown', code: 'SIA' });
    expect(list[0]!.detail?.raw).toBe('S011[#1234|??]');
  });
});
