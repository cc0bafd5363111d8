// JT/T 808 text is GBK (gateway/protocols/jt808/messages.ts): 0x8300 send-text and the "help is coming"
// acknowledgement, 0x8401 contact names. Checked against frames published by another JT/T 808 implementation
// (frames.ts names the source), against iconv-lite's own decoder, and byte by byte against the GB 2312 code table.
import { describe, expect, it } from 'vitest';
import iconv from 'iconv-lite';
import { ConfigError } from '../../../core/errors.js';
import { buildFrame } from '../../../gateway/protocols/jt808/codec.js';
import { gbk, phoneBookBody, textBody, TEXT_FLAG } from '../../../gateway/protocols/jt808/messages.js';
import { createJt808Protocol } from '../../../gateway/protocols/jt808/index.js';
import { CAPTURED, hex } from './frames.js';
import { FakePeer, fixture, listenerSettings } from './fakes.js';

/** "Rescuers are on their way": each character's GBK (= GB 2312 for these) code, from the GB 2312 table by hand */
const HELP = '救援人员正在赶来';
const HELP_GBK = ['bec8', 'd4ae', 'c8cb', 'd4b1', 'd5fd', 'd4da', 'b8cf', 'c0b4'].join('');

describe('jt808 GBK text', () => {
  it('0x8300 with Chinese text is byte for byte the published 2013 and 2019 frames', () => {
    const t13 = textBody(0x01, 'HelloWorld 汉字 GBK 编码', 2013);
    const t19 = textBody(0x01, 'HelloWorld 汉字 GBK 编码', 2019);
    if (typeof t13 === 'string' || typeof t19 === 'string') throw new Error('not encoded');
    expect(buildFrame({ msgId: 0x8300, edition: 2013, phone: '013912344323', serial: 0 }, t13).toString('hex')).toBe(CAPTURED.text8300Gbk2013);
    expect(buildFrame({ msgId: 0x8300, edition: 2019, protocolVersion: 1, phone: '00000000013912344329', serial: 0 }, t19).toString('hex')).toBe(CAPTURED.text8300Gbk2019);
  });

  it(`"${HELP}" is the GBK bytes of the code table, and decodes back`, () => {
    const b = gbk(HELP, 'text');
    if (typeof b === 'string') throw new Error(b);
    expect(b.toString('hex')).toBe(HELP_GBK);
    expect(iconv.decode(b, 'gbk')).toBe(HELP);
    // ASCII is the same bytes in GBK: the Traccar-captured ASCII frame (framer.test.ts) is unchanged
    expect(gbk('Help is coming', 'text')).toEqual(Buffer.from('Help is coming', 'latin1'));
  });

  it('a contact name is GBK too: the published 0x8401 entry for "张三"', () => {
    const body = phoneBookBody([{ number: '13911112222', name: '张三' }]);
    if (typeof body === 'string') throw new Error(body);
    // type 1 (replace), count 1, then the entry exactly as in the published frame (whose first entry is flag 3 too)
    expect(body.toString('hex')).toBe('0101' + '030b313339313131313232323204d5c5c8fd');
    expect(CAPTURED.phoneBook8401Gbk2019).toContain('030b313339313131313232323204d5c5c8fd');
  });

  it('refuses what GBK cannot carry, naming it, rather than sending "?"', () => {
    expect(textBody(0x04, 'Ambulance 🚑 coming', 2013)).toMatch(/cannot show.*U\+1F691 "🚑"/);
    expect(textBody(0x04, 'bell\x07', 2013)).toMatch(/U\+0007/);
    expect(textBody(0x04, '', 2013)).toMatch(/empty/);
    expect(textBody(0x04, 'line one\nline two', 2013)).toBeInstanceOf(Buffer);
  });

  it('bounds the text: 1024 bytes by the standard, and one unsplit message (1022 bytes in 2013, 1021 in 2019)', () => {
    const han = (n: number) => '救'.repeat(n);
    expect(textBody(0x04, han(511), 2013)).toBeInstanceOf(Buffer); // 1022 bytes
    expect(textBody(0x04, han(512), 2013)).toMatch(/1024 bytes in GBK \(512 characters.*at most 1022/);
    expect(textBody(0x04, han(510) + 'a', 2019)).toBeInstanceOf(Buffer); // 1021 bytes
    expect(textBody(0x04, han(511), 2019)).toMatch(/at most 1021/);
  });

  it('send-text and the acknowledgement reach the terminal in GBK; an ackText GBK cannot carry stops start-up', async () => {
    const f = fixture();
    const handler = createJt808Protocol(f.services, { ...listenerSettings(), ackText: HELP });
    const d = f.provision('13511221122');
    const peer = new FakePeer();
    const feed = async (bytes: Buffer) => {
      for (const out of handler.framer().push(bytes)) if (out.ok) await handler.onFrame(peer, out.frame, out.raw);
    };
    await feed(hex(CAPTURED.register2013));
    const code = peer.replies()[0]!.body.subarray(3);
    await feed(buildFrame({ msgId: 0x0102, edition: 2013, phone: '013511221122', serial: 6 }, code));
    expect(peer.deviceId).toBe(d.deviceId);
    peer.sent.length = 0;
    const ack = handler.encodeCommand!(peer, { id: 'a', type: 'acknowledge-alarm', ts: 0 });
    const text = handler.encodeCommand!(peer, { id: 't', type: 'send-text', ts: 0, params: { text: '救护车已出发' } });
    if (!('bytes' in ack) || !('bytes' in text)) throw new Error('not encoded');
    peer.send(ack.bytes);
    peer.send(text.bytes);
    const [a, t] = peer.replies();
    expect(a!.body[0]).toBe(TEXT_FLAG.emergency | TEXT_FLAG.display | TEXT_FLAG.tts);
    expect(a!.body.subarray(1).toString('hex')).toBe(HELP_GBK);
    expect(iconv.decode(t!.body.subarray(1), 'gbk')).toBe('救护车已出发');
    expect(handler.encodeCommand!(peer, { id: 'e', type: 'send-text', ts: 0, params: { text: '😀' } })).toMatchObject({ error: expect.stringMatching(/GBK/) });

    expect(() => createJt808Protocol(fixture().services, { ...listenerSettings(), ackText: 'Help 🚑' })).toThrow(ConfigError);
    expect(() => createJt808Protocol(fixture().services, { ...listenerSettings(), ackText: 'Help 🚑' })).toThrow(/protocols\.jt808\.ackText.*U\+1F691/);
  });
});
