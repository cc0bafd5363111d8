// The watch handler with a fake peer and a recording sink: captured frames → observations, replies only once durable,
// identity (unprovisioned, suspended, id-changed), commands and their echoes.
import { describe, expect, it } from 'vitest';
import { CAPTURED, ZJ_LK } from './frames.js';
import { fakePeer, rig, NOW } from './rig.js';

const serial = (frame: string) => frame.slice(1).split('*')[1]!;
const watchRig = (...frames: string[]) => rig(Object.fromEntries(frames.map((f) => [serial(f), {}])));
const run = async (frame: string) => {
  const r = watchRig(frame);
  const peer = fakePeer();
  await r.feed(peer, frame);
  return { r, peer, obs: r.submitted, sent: peer.sentText() };
};
/** a frame from watch 1234567890 with the right LEN */
const w = (content: string) => `[3G*1234567890*${Buffer.byteLength(content).toString(16).padStart(4, '0')}*${content}]`;

describe('watch handler: captured frames → observations and replies', () => {
  it(`LK with steps, rolls, battery → heartbeat, LK reply (${CAPTURED.lkFull.source})`, async () => {
    const { obs, sent, peer } = await run(CAPTURED.lkFull.frame);
    expect(obs).toEqual([expect.objectContaining({ type: 'heartbeat', battery: 100, source: 'watch', deviceId: 'dev-4700186508', receivedAt: NOW, detail: expect.objectContaining({ steps: 0, rolls: 10 }) })]);
    expect(sent).toEqual(['[3G*4700186508*0002*LK]']);
    expect(peer.bound).toEqual(['dev-4700186508']);
  });

  it(`bare LK → heartbeat without battery (${CAPTURED.lkBare.source}); two fields are not read as a battery (${CAPTURED.lkTwoFields.source})`, async () => {
    for (const c of [CAPTURED.lkBare, CAPTURED.lkTwoFields]) {
      const { obs, sent } = await run(c.frame);
      expect(obs).toHaveLength(1);
      expect(obs[0]).toMatchObject({ type: 'heartbeat' });
      expect(obs[0]).not.toHaveProperty('battery');
      expect(sent).toEqual([`[SG*${serial(c.frame)}*0002*LK]`]);
    }
  });

  it(`ZJ keepalive in the index form is answered in it (${ZJ_LK.source})`, async () => {
    const { sent, obs } = await run(ZJ_LK.frame);
    expect(obs[0]).toMatchObject({ type: 'heartbeat', battery: 19 });
    expect(sent).toEqual(['[ZJ*014111001350304*0034*0002*LK]']);
  });

  it(`AL_LTE with the SOS bit, no fix → sos without a made-up position, AL reply (${CAPTURED.alLteSos.source})`, async () => {
    const { obs, sent } = await run(CAPTURED.alLteSos.frame);
    expect(obs).toHaveLength(1);
    expect(obs[0]).toMatchObject({ type: 'sos', deviceTs: Date.UTC(2025, 4, 17, 21, 41, 18), detail: { fix: 'none', status: '00010000', keyword: 'AL_LTE' } });
    expect(obs[0]).not.toHaveProperty('position');
    expect(sent).toEqual(['[3G*6907919734*0002*AL]']);
  });

  it(`AL with the SOS bit and seven cells → sos with the cells kept, fix lbs (${CAPTURED.alSosCells.source})`, async () => {
    const { obs } = await run(CAPTURED.alSosCells.frame);
    expect(obs[0]).toMatchObject({ type: 'sos', detail: { fix: 'lbs' } });
    const cells = obs[0]!.detail!.cells as unknown[];
    expect(cells).toHaveLength(7);
    expect(cells[0]).toEqual({ mcc: 460, mnc: 0, lac: '9336', cid: '3981', rssi: 141 });
  });

  it(`AL with the fall bit and a GPS fix → fall at the fix (${CAPTURED.alFall.source})`, async () => {
    const { obs, sent } = await run(CAPTURED.alFall.frame);
    expect(obs).toEqual([expect.objectContaining({ type: 'fall', position: { lat: 47.08395, lon: 15.482185, at: Date.UTC(2017, 7, 23, 9, 53, 46) } })]);
    expect(sent).toEqual(['[3G*8308373902*0002*AL]']);
  });

  it(`removed from the wrist (ZJ index form ${CAPTURED.zjIndexAlRemoved.source}; ALCUSTOMER1 ${CAPTURED.alCustomerRemoved.source})`, async () => {
    const a = await run(CAPTURED.zjIndexAlRemoved.frame);
    expect(a.obs.map((o) => o.type)).toEqual(['removed']);
    expect(a.obs[0]!.detail!.fix).toBe('wifi');
    expect(a.sent).toEqual(['[ZJ*689466020014198*0003*0002*AL]']);
    const b = await run(CAPTURED.alCustomerRemoved.frame);
    expect(b.obs.map((o) => o.type)).toEqual(['removed']);
    expect(b.sent).toEqual(['[3G*358839237678820*0002*AL]']);
    const c = await run(CAPTURED.zjIndexAlGps.frame);
    expect(c.obs).toEqual([expect.objectContaining({ type: 'removed', position: expect.objectContaining({ lat: 22.536207, lon: 113.938673 }) })]);
  });

  it(`AL with no known bit is still raised, as an SOS flagged alarm-unclassified, at the last fix marked stale (${CAPTURED.alNoBits.source})`, async () => {
    const { obs, sent } = await run(CAPTURED.alNoBits.frame);
    expect(obs).toEqual([expect.objectContaining({ type: 'sos', flags: ['alarm-unclassified'], position: expect.objectContaining({ lat: 54.427538, lon: -6.409275, stale: true, accuracy: 1000 }) })]);
    expect(sent).toEqual(['[SG*9059011020*0002*AL]']);
  });

  it(`AL whose LEN is off is raised and flagged length-mismatch (${CAPTURED.alSgLenOff.source})`, async () => {
    const { obs, sent } = await run(CAPTURED.alSgLenOff.frame);
    expect(obs[0]).toMatchObject({ type: 'sos', flags: ['length-mismatch', 'alarm-unclassified'] });
    expect(sent).toEqual(['[SG*9051004074*0002*AL]']);
  });

  it(`AL with the low-battery state bit → battery at the reported level, no SOS (${CAPTURED.alLowBatteryState.source})`, async () => {
    const { obs, sent } = await run(CAPTURED.alLowBatteryState.frame);
    expect(obs).toEqual([expect.objectContaining({ type: 'battery', level: 90 })]);
    expect(sent).toHaveLength(1);
  });

  it(`UD with a GPS fix → position with battery and cells; UD is never answered (${CAPTURED.udSgGps.source})`, async () => {
    const { obs, sent } = await run(CAPTURED.udSgGps.frame);
    expect(obs).toEqual([expect.objectContaining({
      type: 'position', battery: 90, deviceTs: Date.UTC(2014, 3, 22, 13, 46, 52),
      position: { lat: 22.571707, lon: 113.8613968, at: Date.UTC(2014, 3, 22, 13, 46, 52) },
      detail: expect.objectContaining({ fix: 'gps', satellites: 7, gsmSignal: 60, steps: 1000, rolls: 50, speedKmh: 0.1 }),
      flags: ['length-mismatch'],
    })]);
    expect(sent).toEqual([]);
  });

  it(`UD2 is a buffered ("blind spot") report with the watch's own time (${CAPTURED.ud2Gps.source})`, async () => {
    const { obs, sent } = await run(CAPTURED.ud2Gps.frame);
    expect(obs[0]).toMatchObject({ type: 'position', deviceTs: Date.UTC(2022, 2, 22, 5, 51, 5), detail: { buffered: true, fix: 'gps' } });
    expect(sent).toEqual([]);
  });

  it(`V with coordinates is the last fix: a stale position (${CAPTURED.udSgStale.source}, ${CAPTURED.ud2NegativeCoords.source})`, async () => {
    const a = await run(CAPTURED.udSgStale.frame);
    expect(a.obs[0]).toMatchObject({ type: 'position', position: { lat: 28.435142, lon: -81.354333, stale: true, accuracy: 1000 }, detail: { fix: 'lbs' } });
    const b = await run(CAPTURED.ud2NegativeCoords.frame);
    expect(b.obs[0]).toMatchObject({ type: 'position', position: { lat: -33.480366, lon: -70.7630692, stale: true } });
  });

  it(`V at 0,0 makes up no position: a heartbeat carrying the Wi-Fi and cells (${CAPTURED.udNoFixWifiOnly.source}, ${CAPTURED.udLteNoFixWifi.source}, ${CAPTURED.udWcdmaNoFix.source})`, async () => {
    const a = await run(CAPTURED.udNoFixWifiOnly.frame);
    expect(a.obs).toEqual([expect.objectContaining({ type: 'heartbeat', battery: 98, detail: expect.objectContaining({ fix: 'wifi', validity: 'V' }) })]);
    expect(a.obs[0]!.detail!.wifi).toHaveLength(5);
    expect((a.obs[0]!.detail!.wifi as unknown[])[0]).toEqual({ ssid: 'eduroam', mac: 'f4:db:e6:d2:a8:00', rssi: -53 });
    const b = await run(CAPTURED.udLteNoFixWifi.frame);
    expect(b.obs[0]).toMatchObject({ type: 'heartbeat', detail: { fix: 'wifi' } });
    expect(b.obs[0]!.detail!.cells).toHaveLength(2);
    expect(b.obs[0]!.detail!.wifi).toHaveLength(3);
    const c = await run(CAPTURED.udWcdmaNoFix.frame);
    expect(c.obs[0]).toMatchObject({ type: 'heartbeat', detail: { fix: 'wifi', keyword: 'UD_WCDMA' } });
  });

  it('every other captured position frame gives exactly one observation, none throws', async () => {
    for (const k of ['ud2Sg', 'ud2SgLenOff', 'udSgLenOff', 'udLteGpsWifi', 'wt'] as const) {
      const { obs, r } = await run(CAPTURED[k].frame);
      expect(obs, k).toHaveLength(1);
      expect(['position', 'heartbeat']).toContain(obs[0]!.type);
      expect(r.refused).toEqual([]);
    }
  });

  it(`TKQ is answered with TKQ (${CAPTURED.tkq.source}); PULSE is ignored politely and counted (${CAPTURED.pulse.source})`, async () => {
    const a = await run(CAPTURED.tkq.frame);
    expect(a.sent).toEqual(['[3G*8800000015*0003*TKQ]']);
    const b = await run(CAPTURED.pulse.frame);
    expect(b.sent).toEqual([]);
    expect(b.obs).toEqual([]);
    expect(b.r.refused).toEqual([]);
    expect(b.r.handler.stats().ignored).toEqual({ PULSE: 1 });
  });
});

describe('watch handler: acknowledged only once durable', () => {
  it('the AL reply waits for every observation of the frame; life-safety first', async () => {
    // SOS + low battery + power cut in one status word
    const frame = w('AL,010125,120000,A,22.5,N,113.9,E,0,0,0,5,80,10,0,0,00034000,0,0');
    const r = rig({ '1234567890': {} });
    const peer = fakePeer();
    r.hold();
    const done = r.feed(peer, frame);
    await new Promise((res) => setTimeout(res, 20));
    expect(peer.sent).toEqual([]);
    r.release();
    await done;
    expect(r.submitted.map((o) => o.type)).toEqual(['sos', 'battery', 'power-lost']);
    expect(peer.sentText()).toEqual(['[3G*1234567890*0002*AL]']);
  });

  it('a failed submit is not answered (the watch sends again), and the next frame is served', async () => {
    const r = rig({ '1234567890': {} });
    const peer = fakePeer();
    r.failing = true;
    await r.feed(peer, '[3G*1234567890*0002*LK]');
    await r.feed(peer, w('AL,010125,120000,A,22.5,N,113.9,E,0,0,0,5,80,10,0,0,00010000,0,0'));
    expect(peer.sent).toEqual([]);
    expect(r.handler.stats().submitFailures).toBe(2);
    r.failing = false;
    await r.feed(peer, w('AL,010125,120000,A,22.5,N,113.9,E,0,0,0,5,80,10,0,0,00010000,0,0'));
    expect(peer.sentText()).toEqual(['[3G*1234567890*0002*AL]']);
  });

  it('an AL whose body is unreadable, or empty, still raises an SOS and is answered', async () => {
    const r = rig({ '1234567890': {} });
    const peer = fakePeer();
    await r.feed(peer, '[3G*1234567890*000b*AL,garbage]');
    await r.feed(peer, '[3G*1234567890*0002*AL]');
    expect(r.submitted.map((o) => [o.type, o.flags])).toEqual([
      ['sos', expect.arrayContaining(['invalid:deviceTs', 'invalid:position', 'invalid:status', 'alarm-unclassified'])],
      ['sos', expect.arrayContaining(['alarm-unclassified'])],
    ]);
    expect(peer.sentText()).toEqual(['[3G*1234567890*0002*AL]', '[3G*1234567890*0002*AL]']);
  });

  it('fence exit → wander, fence entry → wander restore; the peer\'s flags are on every observation', async () => {
    const r = rig({ '1234567890': {} });
    const peer = fakePeer(['identity-conflict']);
    await r.feed(peer, w('AL,010125,120000,A,22.5,N,113.9,E,0,0,0,5,80,10,0,0,00040000,0,0'));
    await r.feed(peer, w('AL,010125,121000,A,22.5,N,113.9,E,0,0,0,5,80,10,0,0,00080000,0,0'));
    expect(r.submitted).toEqual([
      expect.objectContaining({ type: 'wander', flags: ['identity-conflict'], position: expect.objectContaining({ lat: 22.5 }) }),
      expect.objectContaining({ type: 'wander', restore: true, flags: ['identity-conflict'] }),
    ]);
  });

  it('a UD carrying an alarm bit raises it too (never swallowed), its state bits do not', async () => {
    const r = rig({ '1234567890': {} });
    const peer = fakePeer();
    await r.feed(peer, w('UD,010125,120000,A,22.5,N,113.9,E,0,0,0,5,80,10,0,0,00010007,0,0'));
    expect(r.submitted.map((o) => o.type)).toEqual(['sos', 'position']);
    expect(peer.sent).toEqual([]);
  });
});

describe('watch handler: identity', () => {
  it('an unprovisioned id is refused and the connection closed after refusalsBeforeClose', async () => {
    const r = rig({});
    const peer = fakePeer();
    for (let i = 0; i < 3; i++) await r.feed(peer, '[3G*9999999999*0002*LK]');
    expect(r.refused.map((x) => x.reason)).toEqual(['unprovisioned', 'unprovisioned', 'unprovisioned']);
    expect(r.refused[0]!.detail).toMatch(/not provisioned.*POST \/api\/devices/);
    expect(peer.closed).toHaveLength(1);
    expect(peer.sent).toEqual([]);
    expect(peer.bound).toEqual([]);
  });

  it('suspended watches and serials of other kinds are refused', async () => {
    const r = rig({ '1111111111': { state: 'suspended' }, '2222222222': { kind: 'jt808' } });
    const peer = fakePeer();
    await r.feed(peer, '[3G*1111111111*0002*LK]');
    await r.feed(peer, '[3G*2222222222*0002*LK]');
    expect(r.refused.map((x) => x.reason)).toEqual(['suspended', 'unprovisioned']);
    expect(r.refused[1]!.detail).toMatch(/jt808/);
    // the suspended watch is a known device: its refusal names it (its "unreadable messages" card); the other is nobody's
    expect(r.refused.map((x) => x.deviceId)).toEqual(['dev-1111111111', undefined]);
    expect(r.submitted).toEqual([]);
  });

  it('a frame for another id on a bound connection is refused (id-changed); the bound watch is still served', async () => {
    const r = rig({ '1234567890': {}, '1234567891': {} });
    const peer = fakePeer();
    await r.feed(peer, '[3G*1234567890*0002*LK]');
    await r.feed(peer, '[3G*1234567891*0002*LK]');
    await r.feed(peer, '[3G*1234567890*0002*LK]');
    expect(r.refused.map((x) => x.reason)).toEqual(['id-changed']);
    expect(peer.bound).toEqual(['dev-1234567890']);
    expect(r.submitted.map((o) => o.deviceId)).toEqual(['dev-1234567890', 'dev-1234567890']);
  });

  it('garbage, truncation and a bad LEN on a bound connection do not stop the next alarm', async () => {
    const r = rig({ '1234567890': {} });
    const peer = fakePeer();
    await r.feed(peer, '\x00\xffjunk[3G*1234567890*00zz*LK][3G*1234567890*0030*UD,1203');
    await r.feed(peer, w('AL,010125,120000,A,22.5,N,113.9,E,0,0,0,5,80,10,0,0,00010000,0,0'));
    expect(r.refused.map((x) => x.reason)).toEqual(['garbage', 'bad-length', 'truncated']);
    expect(r.submitted.map((o) => o.type)).toEqual(['sos']);
    expect(peer.sentText()).toEqual(['[3G*1234567890*0002*AL]']);
  });
});

describe('watch handler: commands', () => {
  const connected = async (frame = '[3G*1234567890*0002*LK]') => {
    const r = rig({ [serial(frame)]: {} });
    const peer = fakePeer();
    await r.feed(peer, frame);
    peer.sent.length = 0;
    return { r, peer, enc: (type: string, params?: Record<string, unknown>, id = 'c1') => r.handler.encodeCommand!(peer, { id, type: type as never, ts: NOW, ...(params ? { params } : {}) }) };
  };
  const text = (x: { bytes: Buffer } | { error: string }) => ('bytes' in x ? x.bytes.toString('latin1') : x.error);

  it('locate-now → CR; its echo acknowledges the command (3G watches are sent SG, as Traccar does)', async () => {
    const { r, peer, enc } = await connected();
    expect(text(enc('locate-now'))).toBe('[SG*1234567890*0002*CR]');
    await r.feed(peer, '[3G*1234567890*0002*CR]');
    expect(r.answered).toEqual([{ deviceId: 'dev-1234567890', commandId: 'c1', ok: true }]);
  });

  it('call-back → CALL,<number>; bad numbers are refused with the reason', async () => {
    const { r, peer, enc } = await connected();
    expect(text(enc('call-back', { number: '+8613800138000' }))).toBe('[SG*1234567890*0013*CALL,+8613800138000]');
    for (const bad of [undefined, '', '12', '+86 138', '123456789012345678901', '1;RESET', 12345]) {
      expect(text(enc('call-back', { number: bad }))).toMatch(/^call-back: params.number must be a phone number/);
    }
    await r.feed(peer, '[3G*1234567890*0004*CALL]');
    expect(r.answered).toEqual([{ deviceId: 'dev-1234567890', commandId: 'c1', ok: true }]);
  });

  it(`send-text and acknowledge-alarm → MESSAGE in UTF-16BE hex (format of ${'traccar WatchProtocolEncoderTest.java:50'})`, async () => {
    const { enc } = await connected('[CS*123456789012345*0002*LK]');
    expect(text(enc('send-text', { text: 'text' }))).toBe('[CS*123456789012345*0018*MESSAGE,0074006500780074]');
    const help = text(enc('acknowledge-alarm'));
    expect(help).toBe(`[CS*123456789012345*${(8 + 14 * 4).toString(16).padStart(4, '0')}*MESSAGE,${Buffer.from('Help is coming', 'utf16le').swap16().toString('hex')}]`);
    expect(text(enc('send-text', { text: 'x'.repeat(101) }))).toMatch(/at most 100/);
    expect(text(enc('send-text', {}))).toMatch(/params.text must be a non-empty string/);
  });

  it('set-contacts → SOS,n1,n2,n3 and PHB; acknowledged once both echoes came', async () => {
    const { r, peer, enc } = await connected();
    const out = text(enc('set-contacts', { sos: ['+8613800138000', '120'], family: [{ number: '13800138001', name: 'Li' }, '13800138002'] }));
    expect(out).toBe('[SG*1234567890*0017*SOS,+8613800138000,120,][SG*1234567890*0025*PHB,13800138001,004c0069,13800138002,]');
    await r.feed(peer, '[3G*1234567890*0003*SOS]');
    expect(r.answered).toEqual([]);
    await r.feed(peer, '[3G*1234567890*0003*PHB]');
    expect(r.answered).toEqual([{ deviceId: 'dev-1234567890', commandId: 'c1', ok: true }]);
    expect(text(enc('set-contacts', { sos: ['1', '2', '3', '4'] }))).toMatch(/up to 3/);
    expect(text(enc('set-contacts', {}))).toMatch(/needs params.sos/);
  });

  it('a command resent on reconnect waits for one echo, not two; unknown types fail with the reason', async () => {
    const { r, peer, enc } = await connected();
    enc('locate-now', undefined, 'c7');
    enc('locate-now', undefined, 'c7');
    await r.feed(peer, '[3G*1234567890*0002*CR]');
    await r.feed(peer, '[3G*1234567890*0002*CR]');
    expect(r.answered.map((a) => a.commandId)).toEqual(['c7']);
    expect(text(enc('configure'))).toMatch(/no command for configure/);
  });

  it('the index form is kept for commands (index 0001)', async () => {
    const { enc } = await connected(ZJ_LK.frame);
    expect(text(enc('locate-now'))).toBe('[ZJ*014111001350304*0001*0002*CR]');
  });

  it('a peer that has not identified itself gets no command', () => {
    const r = rig({});
    expect(r.handler.encodeCommand!(fakePeer(), { id: 'x', type: 'locate-now', ts: NOW })).toEqual({ error: expect.stringMatching(/not identified/) });
  });
});
