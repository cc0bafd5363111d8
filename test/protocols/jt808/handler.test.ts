// The JT/T 808 handler (gateway/protocols/jt808/index.ts) with a fake connection and a recording sink: registration
// and authentication, nothing heard before it, reports answered only once durable, alarm mapping, commands.
import { describe, expect, it } from 'vitest';
import type { Observation, Position } from '../../../core/contracts.js';
import { buildFrame } from '../../../gateway/protocols/jt808/codec.js';
import { timeToBcd } from '../../../gateway/protocols/jt808/location.js';
import { CAPTURED, hex } from './frames.js';
import { FakePeer, fixture, harness, type Fixture } from './fakes.js';

const PHONE = '13511221122'; // the captured 2013 terminal's number, as a technician provisions it
const T = Date.UTC(2026, 0, 15, 2, 30, 0);

/** A location body (the handler's own codec is not used: built field by field here). */
function locationBody(o: { alarm?: number; status?: number; lat?: number; lon?: number; time?: number; extras?: Buffer } = {}): Buffer {
  const b = Buffer.alloc(28);
  b.writeUInt32BE(o.alarm ?? 0, 0);
  b.writeUInt32BE(o.status ?? 0x02, 4);
  b.writeUInt32BE(Math.round(Math.abs(o.lat ?? 22.5) * 1e6), 8);
  b.writeUInt32BE(Math.round(Math.abs(o.lon ?? 113.9) * 1e6), 12);
  b.writeUInt16BE(12, 16);
  b.writeUInt16BE(35, 18);
  b.writeUInt16BE(90, 20);
  timeToBcd(o.time ?? T, 480).copy(b, 22);
  return o.extras ? Buffer.concat([b, o.extras]) : b;
}
/** the body of the captured 2013 registration (province, city, maker, model, terminal id, plate colour, plate) */
const CAPTURED_REGISTER_BODY = Buffer.alloc(37);
const frame = (msgId: number, body: Buffer, serial: number, phone = '013511221122') => buildFrame({ msgId, edition: 2013, phone, serial }, body);

async function authenticated(f: Fixture = fixture()) {
  const h = harness(f);
  const d = f.provision(PHONE);
  const peer = new FakePeer();
  await h.feed(peer, CAPTURED.register2013);
  const reg = peer.replies()[0]!;
  const code = reg.body.subarray(3).toString('latin1');
  await h.feed(peer, frame(0x0102, Buffer.from(code, 'latin1'), 6));
  peer.sent.length = 0;
  return { f, h, d, peer, code };
}

describe('jt808 registration and authentication', () => {
  it('registers a provisioned phone (captured 0x0100) with a code issued by the registry, then authenticates', async () => {
    const f = fixture();
    const h = harness(f);
    const d = f.provision(PHONE);
    const peer = new FakePeer();
    await h.feed(peer, CAPTURED.register2013);
    const [reg] = peer.replies();
    expect(reg).toMatchObject({ msgId: 0x8100, edition: 2013, phone: '013511221122' });
    expect(reg!.body.readUInt16BE(0)).toBe(5); // answers the register's serial
    expect(reg!.body[2]).toBe(0);
    const code = reg!.body.subarray(3).toString('latin1');
    expect(code).toBe(f.secrets.get(d.deviceId));
    expect(peer.deviceId).toBeUndefined();
    await h.feed(peer, frame(0x0102, Buffer.from(code, 'latin1'), 6));
    expect(peer.deviceId).toBe(d.deviceId);
    const ok = peer.replies()[1]!;
    expect(ok.msgId).toBe(0x8001);
    expect([ok.body.readUInt16BE(0), ok.body.readUInt16BE(2), ok.body[4]]).toEqual([6, 0x0102, 0]);
    expect(f.refused).toEqual([]);
  });

  it('an unprovisioned phone gets 0x8100 result 4 (no such terminal) and is refused', async () => {
    const f = fixture();
    const h = harness(f);
    const peer = new FakePeer();
    await h.feed(peer, CAPTURED.register2013);
    expect(peer.replies()[0]!.body[2]).toBe(4);
    expect(f.refused.map((r) => r.reason)).toEqual(['unprovisioned']);
    // the captured 0x0102 ("authentication") of an unprovisioned terminal: 0x8001 failure
    await h.feed(peer, CAPTURED.auth2013);
    const r = peer.replies()[1]!;
    expect([r.msgId, r.body[4]]).toEqual([0x8001, 1]);
    expect(peer.deviceId).toBeUndefined();
  });

  it('a second registration (someone who knows the phone number) is refused while the terminal holds its code; a rotation opens it', async () => {
    const { f, h, d, code } = await authenticated();
    const attacker = new FakePeer();
    await h.feed(attacker, CAPTURED.register2013);
    expect(attacker.replies()[0]!.body[2]).toBe(3); // terminal already registered
    expect(attacker.replies()[0]!.body.length).toBe(3); // and no code
    expect(f.refused.map((r) => r.reason)).toEqual(['already-registered']);
    expect(f.secrets.get(d.deviceId)).toBe(code); // the terminal's code still works
    // the admin rotates the secret (terminal replaced): registration is open again
    f.rotate(d.deviceId);
    const replaced = new FakePeer();
    await h.feed(replaced, CAPTURED.register2013);
    expect(replaced.replies()[0]!.body[2]).toBe(0);
  });

  it('a lost 0x8100 (the terminal registers again before it authenticated) does not lock it out: the newest code lets it in, then registration closes', async () => {
    const f = fixture();
    const h = harness(f);
    const d = f.provision(PHONE);
    // the first answer never reached the terminal (or it reset): it registers again on a new connection
    const first = new FakePeer();
    await h.feed(first, CAPTURED.register2013);
    const lost = first.replies()[0]!.body.subarray(3).toString('latin1');
    const peer = new FakePeer();
    await h.feed(peer, CAPTURED.register2013);
    const reg = peer.replies()[0]!;
    expect(reg.body[2]).toBe(0);
    const code = reg.body.subarray(3).toString('latin1');
    expect(code).not.toBe(lost);
    expect(d.config).toEqual({}); // nothing closed yet: no terminal has proved it holds a code
    await h.feed(peer, frame(0x0102, Buffer.from(code, 'latin1'), 6));
    expect(peer.deviceId).toBe(d.deviceId);
    expect(d.config).toEqual({ authCodeIssuedAt: 1 }); // recorded through services.confirmSecret
    expect(f.refused).toEqual([]);
    // once it authenticated, its number is closed to registration
    const again = new FakePeer();
    await h.feed(again, CAPTURED.register2013);
    expect(again.replies()[0]!.body[2]).toBe(3);
    expect(f.secrets.get(d.deviceId)).toBe(code);
  });

  it('without a registry record (confirmSecret absent), an authenticated code still closes registration in this process', async () => {
    const f = fixture();
    delete f.services.confirmSecret;
    const { h, d, code } = await authenticated(f);
    const again = new FakePeer();
    await h.feed(again, CAPTURED.register2013);
    expect(again.replies()[0]!.body[2]).toBe(3);
    expect(f.secrets.get(d.deviceId)).toBe(code);
  });

  it('a wrong code is answered failure, refused and counted; the connection is closed after repeated failures', async () => {
    const f = fixture();
    const h = harness(f);
    f.provision(PHONE);
    const peer = new FakePeer();
    for (let i = 0; i < 3; i++) await h.feed(peer, CAPTURED.auth2013);
    expect(peer.replies().map((r) => r.body[4])).toEqual([1, 1, 1]);
    expect(f.refused.map((r) => r.reason)).toEqual(['bad-auth-code', 'bad-auth-code', 'bad-auth-code']);
    expect(peer.deviceId).toBeUndefined();
    expect(peer.closed).toMatch(/3 failed authentications/);
  });

  it('refusals of a provisioned terminal name its device (its "unreadable messages" card): bad code, already registered, suspended', async () => {
    const { f, h, d } = await authenticated();
    const other = new FakePeer();
    await h.feed(other, CAPTURED.register2013); // already-registered
    await h.feed(other, frame(0x0102, Buffer.from('not-the-code', 'latin1'), 7)); // bad-auth-code
    const s = f.provision('13900001111', { state: 'suspended' });
    await h.feed(other, frame(0x0100, CAPTURED_REGISTER_BODY, 8, '013900001111')); // suspended
    await h.feed(other, frame(0x0102, Buffer.from('x', 'latin1'), 9, '013900001111')); // suspended
    await h.feed(other, frame(0x0102, Buffer.from('x', 'latin1'), 10, '013900002222')); // unprovisioned: nobody's
    expect(f.refused.map((r) => [r.reason, r.deviceId])).toEqual([
      ['already-registered', d.deviceId], ['bad-auth-code', d.deviceId], ['suspended', s.deviceId], ['suspended', s.deviceId], ['unprovisioned', undefined],
    ]);
  });

  it('a refused authentication keeps only its header: the code (a device secret) never reaches the rejects', async () => {
    const { f, h, code } = await authenticated();
    f.provision('13900001111', { state: 'suspended' });
    const other = new FakePeer();
    const guess = Buffer.from('GUESSED-CODE-0123456789', 'latin1');
    await h.feed(other, frame(0x0102, guess, 7)); // bad-auth-code
    await h.feed(other, frame(0x0102, Buffer.from(code, 'latin1'), 8, '013900001111')); // suspended
    await h.feed(other, frame(0x0102, Buffer.from(code, 'latin1'), 9, '013900002222')); // unprovisioned
    const twice = new FakePeer();
    await h.feed(twice, frame(0x0102, Buffer.from(code, 'latin1'), 10));
    f.provision('13900003333');
    await h.feed(twice, frame(0x0102, Buffer.from(code, 'latin1'), 11, '013900003333')); // identity-mismatch
    expect(f.refused.map((r) => r.reason)).toEqual(['bad-auth-code', 'suspended', 'unprovisioned', 'identity-mismatch']);
    for (const r of f.refused) {
      // 7E, id 0102, properties, BCD phone, serial: 13 bytes, and nothing of the body
      expect(r.raw!.length).toBe(13);
      expect(r.raw!.readUInt16BE(1)).toBe(0x0102);
      const hex = r.raw!.toString('hex');
      expect(hex).not.toContain(Buffer.from(code, 'latin1').toString('hex'));
      expect(hex).not.toContain(guess.toString('hex'));
    }
    expect(f.refused[0]!.raw!.subarray(5, 11).toString('hex')).toBe('013511221122');
  });

  it('2019: the captured register, then 0x0102 with code length, code, IMEI and software version', async () => {
    const f = fixture();
    const h = harness(f);
    const d = f.provision('866496077582164');
    const peer = new FakePeer();
    await h.feed(peer, CAPTURED.register2019);
    const reg = peer.replies()[0]!;
    expect(reg).toMatchObject({ msgId: 0x8100, edition: 2019, protocolVersion: 1, phone: '00000866496077582164' });
    const code = reg.body.subarray(3);
    const body = Buffer.concat([Buffer.from([code.length]), code, Buffer.from('866496077582164'), Buffer.alloc(20, 0x20)]);
    await h.feed(peer, buildFrame({ msgId: 0x0102, edition: 2019, phone: '00000866496077582164', serial: 2 }, body));
    expect(peer.deviceId).toBe(d.deviceId);
    expect(peer.replies()[1]).toMatchObject({ msgId: 0x8001, edition: 2019 });
    // the captured 2019 batch is heard now: one position, 14 satellites
    await h.feed(peer, CAPTURED.batch2019);
    expect(f.stored).toHaveLength(1);
    expect(f.stored[0]).toMatchObject({ type: 'position', deviceId: d.deviceId, source: 'jt808', detail: { satellites: 14, batch: { count: 1, type: 0 } } });
    const ack = peer.replies()[2]!;
    expect([ack.msgId, ack.body.readUInt16BE(0), ack.body.readUInt16BE(2), ack.body[4]]).toEqual([0x8001, 0x881d, 0x0704, 0]);
  });
});

describe('jt808: nothing is heard before authentication', () => {
  it('a location before 0x0102 is refused, answered failure and counted; a heartbeat too; the next good frame is heard', async () => {
    const f = fixture();
    const h = harness(f);
    f.provision(PHONE);
    const peer = new FakePeer();
    await h.feed(peer, frame(0x0200, locationBody(), 9));
    await h.feed(peer, frame(0x0002, Buffer.alloc(0), 10));
    expect(f.refused.map((r) => r.reason)).toEqual(['not-authenticated', 'not-authenticated']);
    expect(peer.replies().map((r) => [r.msgId, r.body.readUInt16BE(2), r.body[4]])).toEqual([[0x8001, 0x0200, 1], [0x8001, 0x0002, 1]]);
    expect(f.stored).toEqual([]);
    // register + authenticate on the same connection, and it is heard
    await h.feed(peer, CAPTURED.register2013);
    const code = peer.replies()[2]!.body.subarray(3);
    await h.feed(peer, frame(0x0102, code, 11));
    await h.feed(peer, frame(0x0002, Buffer.alloc(0), 12));
    expect(f.stored.map((o) => o.type)).toEqual(['heartbeat']);
  });

  it('an SOS before authentication is refused but left unanswered, so the terminal keeps it and sends it again', async () => {
    const f = fixture();
    const h = harness(f);
    f.provision(PHONE);
    const peer = new FakePeer();
    await h.feed(peer, frame(0x0200, locationBody({ alarm: 1 }), 9));
    expect(f.refused).toMatchObject([{ reason: 'not-authenticated', detail: expect.stringMatching(/emergency alarm/) }]);
    expect(peer.sent).toEqual([]);
  });

  it('an authenticated connection cannot speak for another phone number', async () => {
    const { f, h, peer } = await authenticated();
    f.provision('13900000000');
    await h.feed(peer, frame(0x0200, locationBody({ alarm: 1 }), 20, '013900000000'));
    expect(f.refused.map((r) => r.reason)).toEqual(['identity-mismatch']);
    expect(f.stored).toEqual([]);
  });
});

describe('jt808 reports', () => {
  it('the captured SOS (alarm bit 0, west longitude) becomes sos + position, answered only once durable', async () => {
    const { f, h, d, peer } = await authenticated();
    f.gate.hold = true;
    const sos = hex(CAPTURED.sos2013);
    // the captured frame is from another terminal: re-framed under this one's phone with the captured body
    const body = sos.subarray(13, sos.length - 2);
    const done = h.feed(peer, frame(0x0200, body, 0x0a));
    await new Promise((r) => setTimeout(r, 20));
    expect(peer.sent).toEqual([]); // nothing answered while the store has not confirmed
    while (f.gate.waiting.length) { f.gate.waiting.shift()!.resolve(); await new Promise((r) => setImmediate(r)); }
    await done;
    expect(f.stored.map((o) => o.type)).toEqual(['sos', 'position']);
    const [s, p] = f.stored as [Observation & { position?: Position }, Observation];
    expect(s.position).toMatchObject({ lat: 50.871735, lon: -1.255923 });
    expect(s.deviceTs).toBe(Date.parse('2013-04-12T08:49:52Z'));
    expect(s).toMatchObject({ deviceId: d.deviceId, source: 'jt808', receivedAt: 1_700_000_000_000, seq: 0x0a * 1024 });
    expect(p).toMatchObject({ seq: 0x0a * 1024 + 1, detail: { mileageKm: 1.8, fix: 'gnss' } });
    const ack = peer.replies()[0]!;
    expect([ack.msgId, ack.body.readUInt16BE(0), ack.body.readUInt16BE(2), ack.body[4]]).toEqual([0x8001, 0x0a, 0x0200, 0]);
  });

  it('a report the store could not take is not answered (the terminal resends it)', async () => {
    const { f, h, peer } = await authenticated();
    f.gate.hold = true;
    const done = h.feed(peer, frame(0x0200, locationBody({ alarm: 1 }), 30));
    await new Promise((r) => setTimeout(r, 10));
    // the frame's observations were all handed to the writer: none of them could be stored
    for (const w of f.gate.waiting.splice(0)) w.reject(new Error('disk full'));
    await done;
    expect(peer.sent).toEqual([]);
    // counted at the event: registration and authentication answered ok, then one store failure and no answer
    expect(f.counted).toEqual({ replies: ['0x8100-ok', '0x8001-ok'], storeFailures: 1 });
  });

  it('vendor battery items (captured 0x06, 0xE4) ride on the position; signal and satellites in the detail', async () => {
    const { f, h, peer } = await authenticated();
    for (const [i, c] of [CAPTURED.battery06, CAPTURED.batteryE4].entries()) {
      const w = hex(c);
      await h.feed(peer, frame(0x0200, w.subarray(13, w.length - 2), 40 + i));
    }
    expect(f.stored.map((o) => (o.type === 'position' ? o.battery : undefined))).toEqual([62, 99]);
    expect(f.stored[1]).toMatchObject({ detail: { csq: 28, satellites: 9, charging: true } });
  });

  it('a report without a fix is still reported: stale, large accuracy, flagged; 0,0 without a fix becomes a heartbeat', async () => {
    const { f, h, peer } = await authenticated();
    await h.feed(peer, frame(0x0200, locationBody({ status: 0, lat: 22.5, lon: 113.9 }), 50));
    await h.feed(peer, frame(0x0200, locationBody({ status: 0, lat: 0, lon: 0, extras: Buffer.from([0x30, 1, 20]) }), 51));
    expect(f.stored[0]).toMatchObject({ type: 'position', position: { lat: 22.5, lon: 113.9, stale: true, accuracy: 10_000 }, flags: ['unlocated'], detail: { fix: 'none' } });
    expect(f.stored[1]).toMatchObject({ type: 'heartbeat', signal: -73, flags: ['unlocated'] });
    expect(peer.replies().map((r) => r.body[4])).toEqual([0, 0]);
  });

  it('an alarm word whose position fields are cut is still raised, flagged', async () => {
    const { f, h, peer } = await authenticated();
    await h.feed(peer, frame(0x0200, Buffer.from([0, 0, 0, 1, 0, 0]), 60));
    expect(f.stored.map((o) => [o.type, o.flags])).toEqual([['sos', ['invalid:position']], ['heartbeat', ['invalid:position']]]);
    expect(peer.replies()[0]!.body[4]).toBe(0);
  });

  it('alarm bits: fall (collision/rollover), area exit → wander, entry ignored; power cut and faults on their edges', async () => {
    const { f, h, peer } = await authenticated();
    const area = (dir: number) => Buffer.from([0x12, 6, 1, 0, 0, 0, 7, dir]);
    await h.feed(peer, frame(0x0200, locationBody({ alarm: 1 << 29 }), 70));
    await h.feed(peer, frame(0x0200, locationBody({ alarm: 1 << 20, extras: area(1) }), 71));
    await h.feed(peer, frame(0x0200, locationBody({ alarm: 1 << 20, extras: area(0) }), 72));
    await h.feed(peer, frame(0x0200, locationBody({ alarm: 1 << 20 }), 73));
    f.stored.length = 0;
    await h.feed(peer, frame(0x0200, locationBody({ alarm: (1 << 8) | (1 << 5) }), 74));
    await h.feed(peer, frame(0x0200, locationBody({ alarm: (1 << 8) | (1 << 5) }), 75));
    await h.feed(peer, frame(0x0200, locationBody({ alarm: 0 }), 76));
    await h.feed(peer, frame(0x0200, locationBody({ alarm: 1 << 7, extras: Buffer.from([0x06, 1, 9]) }), 77));
    await h.feed(peer, frame(0x0200, locationBody({ alarm: 0, extras: Buffer.from([0x06, 1, 40]) }), 78));
    const seen = f.stored.map((o) => `${o.type}${o.restore ? ':restore' : ''}${o.type === 'battery' ? `:${o.level}` : ''}`);
    expect(seen).toEqual([
      'power-lost', 'device-fault', 'position', // rising edges
      'position', // held: nothing new
      'power-restored', 'device-fault:restore', 'position', // falling edges
      'battery:9', 'position',
      'battery:restore:40', 'position',
    ]);
    expect(f.stored.find((o) => o.type === 'device-fault')).toMatchObject({ detail: { standardName: 'GNSS antenna not connected or cut' } });
  });

  it('fall, wander: the bits and the area direction', async () => {
    const { f, h, peer } = await authenticated();
    const area = (dir: number) => Buffer.from([0x12, 6, 1, 0, 0, 0, 7, dir]);
    await h.feed(peer, frame(0x0200, locationBody({ alarm: (1 << 29) | (1 << 30) }), 80));
    await h.feed(peer, frame(0x0200, locationBody({ alarm: 1 << 20, extras: area(1) }), 81));
    await h.feed(peer, frame(0x0200, locationBody({ alarm: 1 << 20, extras: area(0) }), 82));
    await h.feed(peer, frame(0x0200, locationBody({ alarm: 1 << 20 }), 83));
    expect(f.stored.map((o) => o.type)).toEqual(['fall', 'position', 'wander', 'position', 'position', 'wander', 'position']);
    expect(f.stored[5]).toMatchObject({ flags: ['area-direction-unknown'] });
  });

  it('a blind-area batch: each item its own observations, flagged buffered, one answer', async () => {
    const { f, h, peer } = await authenticated();
    const items = [locationBody({ time: T - 60_000 }), locationBody({ alarm: 1, time: T - 30_000 }), locationBody({ time: T })];
    const body = Buffer.concat([Buffer.from([0, 3, 1]), ...items.flatMap((b) => [Buffer.from([0, b.length]), b])]);
    await h.feed(peer, frame(0x0704, body, 90));
    expect(f.stored.map((o) => o.type)).toEqual(['position', 'sos', 'position', 'position']);
    expect(f.stored.every((o) => o.flags?.includes('buffered'))).toBe(true);
    expect(new Set(f.stored.map((o) => o.seq)).size).toBe(4);
    expect(peer.replies().map((r) => [r.body.readUInt16BE(2), r.body[4]])).toEqual([[0x0704, 0]]);
  });

  it('heartbeat 0x0002 → heartbeat observation, answered', async () => {
    const { f, h, peer } = await authenticated();
    await h.feed(peer, frame(0x0002, Buffer.alloc(0), 100));
    expect(f.stored).toMatchObject([{ type: 'heartbeat', source: 'jt808' }]);
    expect(peer.replies()[0]!.body.readUInt16BE(2)).toBe(0x0002);
  });

  it('garbage, truncated, oversized and a wrong check code between good frames: refused, the good ones heard', async () => {
    const { f, h, peer } = await authenticated();
    await h.feed(peer, 'deadbeef');
    await h.feed(peer, frame(0x0002, Buffer.alloc(0), 1).subarray(0, 8));
    await h.feed(peer, Buffer.concat([frame(0x0002, Buffer.alloc(0), 2), Buffer.from([0x7e]), Buffer.alloc(9000, 0x11), Buffer.from([0x7e])]));
    await h.feed(peer, CAPTURED.locationBadCheck2013);
    await h.feed(peer, frame(0x0002, Buffer.alloc(0), 3));
    expect(f.refused.map((r) => r.reason)).toEqual(['garbage', 'truncated', 'oversized', 'bad-checksum']);
    expect(f.stored.map((o) => o.type)).toEqual(['heartbeat', 'heartbeat']);
  });

  it('encrypted and subpackaged messages are refused with a reason and answered "not supported"', async () => {
    const { f, h, peer } = await authenticated();
    const w = frame(0x0200, locationBody(), 110);
    const { escape, unescape } = await import('../../../gateway/protocols/jt808/codec.js');
    const plain = unescape(w.subarray(1, -1)) as Buffer;
    plain.writeUInt16BE(plain.readUInt16BE(2) | 0x0400, 2);
    plain[plain.length - 1] = plain.subarray(0, -1).reduce((a, b) => a ^ b, 0);
    await h.feed(peer, Buffer.concat([Buffer.from([0x7e]), escape(plain), Buffer.from([0x7e])]));
    expect(f.refused.map((r) => r.reason)).toEqual(['encrypted']);
    expect(peer.replies()[0]!.body[4]).toBe(3);
  });
});

describe('jt808 commands', () => {
  it('locate-now → 0x8201, answered by 0x0201: a position and the command acknowledged', async () => {
    const { f, h, d, peer } = await authenticated();
    const enc = h.handler.encodeCommand!(peer, { id: 'cmd-1', type: 'locate-now', ts: 0 });
    if (!('bytes' in enc)) throw new Error(enc.error);
    peer.send(enc.bytes);
    const q = peer.replies()[0]!;
    expect([q.msgId, q.body.length, q.phone]).toEqual([0x8201, 0, '013511221122']);
    const reply = Buffer.concat([Buffer.alloc(2), locationBody()]);
    reply.writeUInt16BE(q.serial, 0);
    await h.feed(peer, frame(0x0201, reply, 120));
    expect(f.stored.map((o) => o.type)).toEqual(['position']);
    expect(f.answers).toEqual([{ deviceId: d.deviceId, commandId: 'cmd-1', ok: true }]);
  });

  it('acknowledge-alarm → 0x8300 "Help is coming" (emergency, display, read aloud); call-back → 0x8400; 0x0001 answers them', async () => {
    const { f, h, d, peer } = await authenticated();
    const ack = h.handler.encodeCommand!(peer, { id: 'cmd-ack', type: 'acknowledge-alarm', ts: 0 });
    const call = h.handler.encodeCommand!(peer, { id: 'cmd-call', type: 'call-back', ts: 0, params: { number: '+8613800138000' } });
    if (!('bytes' in ack) || !('bytes' in call)) throw new Error('not encoded');
    peer.send(ack.bytes);
    peer.send(call.bytes);
    const [t, c] = peer.replies();
    expect(t!.msgId).toBe(0x8300);
    expect(t!.body[0]).toBe(0x0d);
    expect(t!.body.subarray(1).toString('latin1')).toBe('Help is coming');
    expect(c!.msgId).toBe(0x8400);
    expect([c!.body[0], c!.body.subarray(1).toString('latin1')]).toEqual([0, '+8613800138000']);
    const answer = (serial: number, id: number, result: number) => {
      const b = Buffer.alloc(5);
      b.writeUInt16BE(serial, 0);
      b.writeUInt16BE(id, 2);
      b[4] = result;
      return b;
    };
    await h.feed(peer, frame(0x0001, answer(t!.serial, 0x8300, 0), 130));
    await h.feed(peer, frame(0x0001, answer(c!.serial, 0x8400, 1), 131));
    await h.feed(peer, frame(0x0001, answer(999, 0x8400, 0), 132)); // answers nothing we sent: ignored
    expect(f.answers).toEqual([
      { deviceId: d.deviceId, commandId: 'cmd-ack', ok: true },
      { deviceId: d.deviceId, commandId: 'cmd-call', ok: false, error: 'the terminal answered 0x8400: failure' },
    ]);
    expect(peer.replies().length).toBe(2); // a terminal's general response is not answered
  });

  it('set-contacts → 0x8401 phone book; text GBK cannot carry, bad numbers and unknown types are errors with a reason', async () => {
    const { h, peer } = await authenticated();
    const book = h.handler.encodeCommand!(peer, { id: 'c1', type: 'set-contacts', ts: 0, params: { sos: ['112', '13800138000'], family: ['13900139000'] } });
    if (!('bytes' in book)) throw new Error(book.error);
    peer.send(book.bytes);
    const b = peer.replies()[0]!.body;
    expect([b[0], b[1], b[2], b[3]]).toEqual([1, 3, 3, 3]);
    expect(b.subarray(4, 7).toString()).toBe('112');
    expect(h.handler.encodeCommand!(peer, { id: 'c2', type: 'send-text', ts: 0, params: { text: '救命 🆘' } })).toMatchObject({ error: expect.stringMatching(/GBK/) });
    expect(h.handler.encodeCommand!(peer, { id: 'c3', type: 'call-back', ts: 0, params: { number: 'call me' } })).toMatchObject({ error: expect.stringMatching(/not a phone number/) });
    expect(h.handler.encodeCommand!(peer, { id: 'c4', type: 'configure', ts: 0 })).toMatchObject({ error: 'JT/T 808 has no configure command' });
    expect(h.handler.encodeCommand!(new FakePeer(), { id: 'c5', type: 'locate-now', ts: 0 })).toMatchObject({ error: expect.stringMatching(/not authenticated/) });
  });
});
