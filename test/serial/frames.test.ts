import { describe, it, expect } from 'vitest';
import { decodeFrame, type ContactIdFrame, type SiaFrame, type HeartbeatFrame } from '../../gateway/adapters/serial/frames.js';

const ok = (s: string | Buffer) => {
  const r = decodeFrame(s);
  if (!r.ok) throw new Error(`expected a frame, got error: ${r.reason}`);
  return r.frame;
};
const bad = (s: string | Buffer) => {
  const r = decodeFrame(s);
  if (r.ok) throw new Error(`expected an error, got ${JSON.stringify(r.frame)}`);
  return r.reason;
};

describe('Sur-Gard frame decoder', () => {
  it('reads an MLR2 Contact ID event (5RRL 18AAAAQXYZGGCCC)', () => {
    const f = ok('5011 181234E10101015') as ContactIdFrame;
    expect(f).toEqual({
      kind: 'contact-id',
      format: 'mlr2',
      receiver: '01',
      line: '1',
      messageType: '18',
      account: '1234',
      qualifier: 'E',
      qualifierRaw: 'E',
      code: '101',
      group: '01',
      zone: '015',
      raw: '5011 181234E10101015',
    });
  });

  it('reads restores and "previous still present", and numeric qualifiers 1/3/6', () => {
    expect((ok('5021 18ABCDR30100000') as ContactIdFrame).qualifier).toBe('R');
    expect((ok('5021 18ABCDP30100000') as ContactIdFrame).qualifier).toBe('P');
    const three = ok('5021 18ABCD330100000') as ContactIdFrame;
    expect([three.qualifier, three.qualifierRaw, three.account, three.code]).toEqual(['R', '3', 'ABCD', '301']);
    expect((ok('5021 18ABCD610100000') as ContactIdFrame).qualifier).toBe('P');
    expect((ok('5021 18ABCD110100000') as ContactIdFrame).qualifier).toBe('E');
  });

  it('reads System II/III events with a 3-digit line, type 18 and 98', () => {
    const f = ok('501003 180042E11001007') as ContactIdFrame;
    expect([f.format, f.receiver, f.line, f.messageType, f.account, f.code, f.zone]).toEqual([
      'system3', '01', '003', '18', '0042', '110', '007',
    ]);
    const g = ok('512010 987777E60200000') as ContactIdFrame;
    expect([g.format, g.receiver, g.line, g.messageType, g.code]).toEqual(['system3', '12', '010', '98', '602']);
  });

  it('reads 10-digit accounts (5RRLLL 58AAAAAAAAAAQXYZGGCCC)', () => {
    const f = ok('501002 580012345678E10101001') as ContactIdFrame;
    expect([f.format, f.messageType, f.account, f.qualifier, f.code, f.group, f.zone]).toEqual([
      'account10', '58', '0012345678', 'E', '101', '01', '001',
    ]);
  });

  it('tolerates the DC4 terminator and CR/LF line noise around a frame', () => {
    expect((ok('5011 181234E10101015\x14') as ContactIdFrame).code).toBe('101');
    expect((ok(Buffer.from('\r\n5011 181234E10101015', 'latin1')) as ContactIdFrame).code).toBe('101');
  });

  it('reads the MLR2 and System II/III heartbeats', () => {
    const h = ok('1011' + ' '.repeat(11) + '@' + ' '.repeat(4)) as HeartbeatFrame;
    expect([h.kind, h.format, h.receiver, h.line]).toEqual(['heartbeat', 'mlr2', '01', '1']);
    const s = ok('107000' + ' '.repeat(11) + '@' + ' '.repeat(4)) as HeartbeatFrame;
    expect([s.kind, s.format, s.receiver]).toEqual(['heartbeat', 'system3', '07']);
  });

  it('keeps SIA frames, structured as far as they go', () => {
    const f = ok('S011[#1234|Nri01/FA129]') as SiaFrame;
    expect(f.kind).toBe('sia');
    expect([f.receiver, f.line, f.account, f.qualifier]).toEqual(['01', '1', '1234', 'N']);
    expect(f.modifiers).toEqual({ ri: '01' });
    expect(f.events).toEqual([{ code: 'FA', zone: '129' }]);
    expect(f.issues).toEqual([]);

    const multi = ok('S01003[#004321|NMA001/id12/AT00]') as SiaFrame;
    expect([multi.line, multi.account]).toEqual(['003', '004321']);
    expect(multi.events).toEqual([{ code: 'MA', zone: '001' }, { code: 'AT', zone: '00' }]);
    expect(multi.modifiers.id).toBe('12');

    // an event right after a modifier in the same item
    const glued = ok('S011[#1234|Nri1PA003]') as SiaFrame;
    expect(glued.events).toEqual([{ code: 'PA', zone: '003' }]);

    // the code NL is not "N" + "L001"
    const nl = ok('S011[#1234|NL001]') as SiaFrame;
    expect(nl.events).toEqual([{ code: 'NL', zone: '001' }]);
    expect(nl.qualifier).toBeUndefined();

    // not much to read, still a frame (stored and shown), with what was wrong
    const odd = ok('S011[#12x4|??]') as SiaFrame;
    expect(odd.events).toEqual([]);
    expect(odd.issues.join('; ')).toMatch(/account "12x4".*cannot read "\?\?".*no SIA event code/);
  });

  it.each([
    ['truncated event', '5011 181234E1010', /truncated: 11 of 15/],
    ['event cut before the space', '5011', /no space/],
    ['too long', '5011 181234E101010150', /too long/],
    ['bad qualifier', '5011 181234X10101015', /qualifier "X"/],
    ['non-hex zone', '5011 181234E101010G5', /not a hex digit/],
    ['unknown message type', '5011 411234E10101015', /message type "41"/],
    ['bad header', '50 181234E10101015', /header/],
    ['truncated heartbeat', '1011      @', /heartbeat/],
    ['heartbeat without @', '1011' + ' '.repeat(16), /heartbeat/],
    ['SIA without brackets', 'S011#1234|NFA129', /SIA frame/],
    ['SIA cut short', 'S011[#1234|NFA1', /SIA frame/],
    ['unknown frame type', 'X011 181234E10101015', /unknown frame type "X"/],
    ['empty', '', /empty/],
    ['binary noise', Buffer.from([0x35, 0x30, 0xff, 0x00, 0x31]), /non-printable.*<ff>/],
  ])('refuses %s with a reason', (_name, input, reason) => {
    expect(bad(input)).toMatch(reason);
  });
});
