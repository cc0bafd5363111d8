// The DC-09 handler with a fake peer and a recording sink: what is answered when, what is refused (with which reason
// slug), what observations are made, and that nothing bad blocks the next good message.
import { afterEach, describe, expect, it } from 'vitest';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDc09Protocol, type Dc09Handler } from '../../../gateway/protocols/dc09/index.js';
import { encodeDc09, decodeDc09Answer, type Dc09Message } from '../../../firmware-sim/protocols/dc09.js';
import { answerText, fakePeer, recordingServices, type Recorded } from './fakes.js';
import type { ListenerSettings } from '../../../gateway/protocols/types.js';

const listener: ListenerSettings = {
  enabled: true, host: '127.0.0.1', port: 0, udp: true, maxConnections: 10, maxConnectionsPerAddress: 10,
  idleTimeoutMs: 60_000, maxFrameBytes: 1024, bindTimeoutMs: 60_000,
};
const KEY = '000102030405060708090a0b0c0d0e0f';

let handlers: Dc09Handler[] = [];
afterEach(async () => {
  await Promise.all(handlers.map((h) => h.close?.()));
  handlers = [];
});

function setup(devices: Record<string, object> = { '1234': {}, ABC123: {} }, extra: Record<string, unknown> = {}) {
  const r = recordingServices(devices);
  const h = createDc09Protocol(r.services, { ...listener, ...extra });
  handlers.push(h);
  const peer = fakePeer();
  // one framer for the peer, as on a TCP connection
  const framer = h.framer();
  /** feed bytes through the framer and the handler, as the listener does (refusing what the framer refuses) */
  const feed = async (bytes: Buffer) => {
    for (const f of framer.push(bytes)) {
      if (f.ok) await h.onFrame(peer, f.frame, f.raw);
      else r.services.refuse(peer, f.reason, 'framer', f.raw);
    }
  };
  const msg = (m: Partial<Dc09Message>) => encodeDc09({ token: 'ADM-CID', seq: 1, account: '1234', data: '#1234|1101 00 001', ts: r.clock.now, ...m });
  const answers = () => peer.sent.map((s) => decodeDc09Answer(answerText(s), KEY)!);
  return { r, h, peer, feed, msg, answers };
}

const keysFile = (content: object, mode = 0o600) => {
  const dir = mkdtempSync(join(tmpdir(), 'dc09-keys-'));
  const p = join(dir, 'keys.json');
  writeFileSync(p, JSON.stringify(content));
  chmodSync(p, mode);
  return p;
};

describe('a good message', () => {
  it('ADM-CID 1101 → sos observation; ACK echoes seq/receiver/prefix/account and comes only once durable', async () => {
    const { r, peer, feed, msg, answers } = setup();
    let release!: () => void;
    r.hold.promise = new Promise<void>((res) => (release = res));
    const done = feed(msg({ seq: 42 }));
    await new Promise((res) => setTimeout(res, 30));
    expect(peer.sent).toEqual([]); // not durable yet: no answer
    release();
    r.hold.promise = undefined;
    await done;
    expect(answers().map((a) => [a.kind, a.seq, a.account, a.crcOk, a.lengthOk])).toEqual([['ACK', '0042', '1234', true, true]]);
    expect(answerText(peer.sent[0]!)).toMatch(/^[0-9A-F]{4}[0-9A-F]{4}"ACK"0042R0L0#1234\[\]$/);
    const sos = r.observations.find((o) => o.type === 'sos')!;
    expect(sos).toMatchObject({ deviceId: 'dev-1234', source: 'dc09', seq: 42, detail: { token: 'ADM-CID', code: '101', qualifier: 'E', account: '1234' } });
    expect(sos.deviceTs).toBeDefined();
    expect(peer.bound).toEqual(['dev-1234']);
  });

  it('a failed write is answered NAK (the panel sends again), the next write ACK', async () => {
    const { r, feed, msg, answers } = setup();
    r.failSubmit.on = true;
    await feed(msg({ seq: 5 }));
    r.failSubmit.on = false;
    await feed(msg({ seq: 5 }));
    expect(answers().map((a) => a.kind)).toEqual(['NAK', 'ACK']);
    expect(r.observations.filter((o) => o.type === 'sos')).toHaveLength(1);
    // counted at the event for Prometheus (eldergate_protocol_replies_total, _store_failures_total)
    expect(r.counted).toEqual({ replies: ['NAK', 'ACK'], ignored: [], storeFailures: 1 });
  });

  it('qualifier 3 is a restore, 6 a previous event; SIA-DCS goes through the SIA table', async () => {
    const { r, feed, msg } = setup();
    await feed(msg({ data: '#1234|3301 00 000' }));
    await feed(msg({ data: '#1234|6101 00 001', seq: 2 }));
    await feed(msg({ token: 'SIA-DCS', data: '#1234|Nri1/PA001', seq: 3 }));
    await feed(msg({ token: 'SIA-DCS', data: '#1234|Nri1/ZZ001', seq: 4 }));
    const events = r.observations.filter((o) => !o.type.startsWith('comm'));
    expect(events.map((o) => [o.type, o.restore ?? false])).toEqual([
      ['power-restored', true], ['sos', false], ['panic', false], ['unknown', false],
    ]);
    expect(events[1]!.detail).toMatchObject({ qualifier: 'P', stillPresent: true });
  });

  it("the simulated panel's fall (ADM-CID 1102) is a fall on a Climax/Vesta unit (vendor table by the device's model), supervision elsewhere", async () => {
    const { r, feed, msg } = setup({ '1234': { model: 'Climax MP-3G' }, '5678': {} });
    await feed(msg({ data: '#1234|1102 00 001' }));
    await feed(msg({ account: '5678', data: '#5678|1102 00 001' }));
    const events = r.observations.filter((o) => !o.type.startsWith('comm'));
    expect(events.map((o) => [o.deviceId, o.type])).toEqual([['dev-1234', 'fall'], ['dev-5678', 'supervision']]);
  });

  it('unreadable ADM-CID data from a provisioned, CRC-checked panel is stored as unknown and ACKed', async () => {
    const { r, feed, msg, answers } = setup();
    await feed(msg({ data: '#1234|garbled' }));
    expect(answers().map((a) => a.kind)).toEqual(['ACK']);
    expect(r.observations[0]).toMatchObject({ type: 'unknown', code: 'ADM-CID', flags: ['unreadable-data'] });
  });

  it('NULL poll: ACK at once, then a heartbeat; the account may also be matched in lower case', async () => {
    const { r, feed, msg, answers } = setup({ abc123: {} });
    await feed(msg({ token: 'NULL', account: 'ABC123', data: '', seq: 0 }));
    expect(answers().map((a) => [a.kind, a.account])).toEqual([['ACK', 'ABC123']]);
    expect(r.observations.map((o) => o.type)).toContain('heartbeat');
  });
});

describe('accounts', () => {
  it('one registry lookup per message and per supervision check: the registry itself matches the account\'s spellings', async () => {
    const s = setup({ abc123: {} }, { pollIntervalS: 0.05, pollMissFactor: 1 });
    const asked: string[] = [];
    const lookup = s.r.services.lookup;
    s.r.services.lookup = (id) => { asked.push(id); return lookup(id); };
    await s.feed(s.msg({ account: 'ABC123', data: '#ABC123|1101 00 001' }));
    expect(s.r.observations.map((o) => [o.type, o.deviceId])).toContainEqual(['sos', 'dev-abc123']);
    await s.feed(s.msg({ account: 'DEF456', data: '#DEF456|1101 00 001', seq: 2 })); // not provisioned
    expect(asked).toEqual(['ABC123', 'DEF456']);
    // the supervisor asks whether a silent panel is still supervised: once
    s.r.services.lookup = (id) => { asked.push(id); return undefined; };
    s.h.supervisor.tick();
    await new Promise((r) => setTimeout(r, 120));
    s.h.supervisor.tick();
    expect(asked.slice(2)).toEqual(['ABC123']);
  });
});

describe('bad input: refused with a reason, counted, never blocking the next good message', () => {
  const cases: [string, (s: ReturnType<typeof setup>) => Buffer, string, string][] = [
    ['garbage', () => Buffer.from('GET / HTTP/1.1 Host: x'), 'garbage', 'none'],
    ['truncated', (s) => s.msg({}).subarray(0, 20), 'truncated', 'none'],
    ['oversized', () => Buffer.concat([Buffer.from('\n'), Buffer.alloc(5000, 0x41), Buffer.from('\r')]), 'oversized', 'none'],
    ['wrong CRC', (s) => { const b = Buffer.from(s.msg({})); b.write('0000', 1, 'latin1'); return b; }, 'bad-crc', 'NAK'],
    ['wrong length', (s) => { const t = s.msg({}).toString('latin1'); return Buffer.from(`${t.slice(0, 5)}0FFF${t.slice(9)}`, 'latin1'); }, 'bad-length', 'NAK'],
    ['unprovisioned account', (s) => s.msg({ account: '9999', data: '#9999|1101 00 001' }), 'unprovisioned', 'NAK'],
    ['timestamp too old', (s) => s.msg({ ts: s.r.clock.now - 60_000 }), 'timestamp-window', 'NAK'],
    ['timestamp too far ahead', (s) => s.msg({ ts: s.r.clock.now + 120_000 }), 'timestamp-window', 'NAK'],
    ['unknown token', (s) => s.msg({ token: 'CID-XYZ' }), 'unsupported-token', 'DUH'],
    ['encrypted without a key', (s) => s.msg({ key: KEY }), 'no-key', 'DUH'],
    ['binary junk inside LF…CR', () => Buffer.from([0x0a, 0x01, 0x02, 0xff, 0x22, 0x0d]), 'malformed', 'NAK'],
  ];
  for (const [name, make, reason, reply] of cases) {
    it(name, async () => {
      const s = setup();
      await s.feed(make(s));
      // the next good message is taken (and shows the end of a message cut short)
      await s.feed(s.msg({ seq: 77 }));
      expect(s.r.refusals.map((x) => x.reason)).toEqual([reason]);
      const kinds = s.answers().map((a) => a.kind);
      expect(kinds).toEqual(reply === 'none' ? ['ACK'] : [reply, 'ACK']);
      expect(s.answers().at(-1)).toMatchObject({ kind: 'ACK', seq: '0077' });
      if (reply === 'NAK') {
        // the NAK: never encrypted, seq 0000, the receiver's own time
        expect(answerText(s.peer.sent[0]!)).toMatch(/^[0-9A-F]{8}"NAK"0000R0L0A0\[\]_\d\d:\d\d:\d\d,\d\d-\d\d-\d{4}$/);
        expect(s.answers()[0]!.ts).toBe(Math.floor(s.r.clock.now / 1000) * 1000);
      }
      expect(s.r.observations.map((o) => o.type).filter((t) => !t.startsWith('comm'))).toEqual(['sos']);
    });
  }

  it('garbage and a good message in one chunk: the good one is answered', async () => {
    const s = setup();
    await s.feed(Buffer.concat([Buffer.from('\x16\x16junk'), s.msg({ seq: 9 }), Buffer.from('more junk')]));
    expect(s.answers().map((a) => [a.kind, a.seq])).toEqual([['ACK', '0009']]);
  });

  it('a suspended device is refused with NAK', async () => {
    const s = setup({ '1234': { state: 'suspended' } });
    await s.feed(s.msg({}));
    expect(s.r.refusals.map((x) => x.reason)).toEqual(['suspended']);
    expect(s.answers().map((a) => a.kind)).toEqual(['NAK']);
  });

  it('plaintext timestamps outside the window may be let through by setting (encrypted never)', async () => {
    const s = setup(undefined, { plaintextTimestampWindow: false });
    await s.feed(s.msg({ ts: s.r.clock.now - 3600_000 }));
    expect(s.answers().map((a) => a.kind)).toEqual(['ACK']);
  });
});

describe('encrypted lines', () => {
  it('an encrypted SOS is decrypted with the account key and answered by an encrypted ACK with our timestamp', async () => {
    const s = setup(undefined, { keysFile: keysFile({ '1234': KEY }) });
    await s.feed(s.msg({ key: KEY, seq: 11 }));
    const [a] = s.answers();
    expect(a).toMatchObject({ kind: 'ACK', encrypted: true, seq: '0011', account: '1234', crcOk: true, lengthOk: true });
    expect(a!.ts).toBe(Math.floor(s.r.clock.now / 1000) * 1000);
    expect(s.r.observations[0]).toMatchObject({ type: 'sos', detail: { encrypted: true } });
  });

  it('AES-256 too; a key file change is picked up without a restart', async () => {
    const key256 = 'ff'.repeat(32);
    const path = keysFile({ '1234': KEY });
    const s = setup(undefined, { keysFile: path });
    writeFileSync(path, JSON.stringify({ '1234': key256 }));
    s.r.clock.now += 10_000;
    await s.feed(s.msg({ key: key256 }));
    expect(s.peer.sent.length).toBe(1);
    expect(decodeDc09Answer(answerText(s.peer.sent[0]!), key256)).toMatchObject({ kind: 'ACK', encrypted: true });
  });

  it('plaintext for an account with a key is a downgrade: refused (DUH), nothing stored', async () => {
    const s = setup(undefined, { keysFile: keysFile({ '1234': KEY }) });
    await s.feed(s.msg({}));
    expect(s.r.refusals.map((x) => x.reason)).toEqual(['plaintext-downgrade']);
    expect(s.answers().map((a) => a.kind)).toEqual(['DUH']);
    expect(s.r.observations).toEqual([]);
  });

  it('the wrong key: DUH (decrypt-failed); no timestamp: NAK', async () => {
    const s = setup(undefined, { keysFile: keysFile({ '1234': KEY }) });
    await s.feed(s.msg({ key: 'aa'.repeat(16) }));
    await s.feed(s.msg({ key: KEY, ts: undefined }));
    expect(s.r.refusals.map((x) => x.reason)).toEqual(['decrypt-failed', 'no-timestamp']);
    expect(s.answers().map((a) => a.kind)).toEqual(['DUH', 'NAK']);
  });

  it('refusals of a provisioned account name its device (its "unreadable messages" card); a stranger\'s do not', async () => {
    const s = setup({ '1234': {}, '5678': { state: 'suspended' } }, { keysFile: keysFile({ '1234': KEY }) });
    await s.feed(s.msg({ key: 'aa'.repeat(16) })); // decrypt-failed
    await s.feed(s.msg({})); // plaintext-downgrade
    await s.feed(s.msg({ key: KEY, ts: s.r.clock.now - 3600_000 })); // timestamp-window
    await s.feed(s.msg({ account: '5678', data: '#5678|1101 00 001' })); // suspended
    await s.feed(s.msg({ account: '5678', data: '#5678|1101 00 001', key: KEY })); // suspended, encrypted
    await s.feed(s.msg({ account: '9999', data: '#9999|1101 00 001' })); // unprovisioned: nobody's
    expect(s.r.refusals.map((x) => [x.reason, x.deviceId])).toEqual([
      ['decrypt-failed', 'dev-1234'], ['plaintext-downgrade', 'dev-1234'], ['timestamp-window', 'dev-1234'],
      ['suspended', 'dev-5678'], ['suspended', 'dev-5678'], ['unprovisioned', undefined],
    ]);
    const noKey = setup({ '1234': {} });
    await noKey.feed(noKey.msg({ key: KEY }));
    expect(noKey.r.refusals.map((x) => [x.reason, x.deviceId])).toEqual([['no-key', 'dev-1234']]);
  });

  it('a message that decrypts but is not a DC-09 body: refused without its decrypted text (rejects are never decrypted)', async () => {
    const s = setup(undefined, { keysFile: keysFile({ '1234': KEY }) });
    await s.feed(s.msg({ key: KEY, data: '#1234|1101 00 001 [SECRET-PLAINTEXT' }));
    expect(s.answers().map((a) => a.kind)).toEqual(['NAK']);
    expect(s.r.refusals).toHaveLength(1);
    expect(s.r.refusals[0]).toMatchObject({ reason: 'malformed', deviceId: 'dev-1234' });
    expect(s.r.refusals[0]!.detail).toMatch(/account 1234.*decrypt/);
    expect(JSON.stringify([s.r.refusals, s.r.logs])).not.toContain('SECRET-PLAINTEXT');
  });

  it('keys never reach logs, refusals or observations', async () => {
    const s = setup(undefined, { keysFile: keysFile({ '1234': KEY }) });
    await s.feed(s.msg({ key: 'aa'.repeat(16) }));
    await s.feed(s.msg({}));
    await s.feed(s.msg({ key: KEY }));
    const everything = JSON.stringify([s.r.logs, s.r.refusals, s.r.observations]).toLowerCase();
    expect(everything).not.toContain(KEY);
    expect(everything).not.toContain('aa'.repeat(16));
  });

  it('a keys file readable by others, a bad key or bad JSON stops start-up with a message naming the fix (no key in it)', () => {
    const r = recordingServices({});
    expect(() => createDc09Protocol(r.services, { ...listener, keysFile: keysFile({ '1234': KEY }, 0o644) })).toThrow(/chmod 600/);
    const bad = keysFile({ '1234': 'abcd' });
    expect(() => createDc09Protocol(r.services, { ...listener, keysFile: bad })).toThrow(/key of account 1234 is not 32, 48 or 64 hex digits/);
    const secretish = keysFile({ '1234': KEY });
    writeFileSync(secretish, `{"1234": "${KEY}",`);
    chmodSync(secretish, 0o600);
    let msg = '';
    try {
      createDc09Protocol(r.services, { ...listener, keysFile: secretish });
    } catch (err) {
      msg = (err as Error).message;
    }
    expect(msg).toMatch(/not valid JSON/);
    expect(msg).not.toContain(KEY);
    expect(() => createDc09Protocol(r.services, { ...listener, keysFile: '/nonexistent/keys.json' })).toThrow(/cannot read/);
  });
});

describe('supervision of the polling interval', () => {
  const wait = (ms: number) => new Promise((res) => setTimeout(res, ms));
  const until = async (f: () => boolean, what: string) => {
    for (let i = 0; i < 400; i++) {
      if (f()) return;
      await wait(25);
    }
    throw new Error(`timed out waiting for ${what}`);
  };

  it('first contact after start reports comm-restored (clears a card left open); silence → comm-lost once; next poll → comm-restored', async () => {
    const s = setup({ '1234': { config: { pollIntervalS: 0.2 } } }, { pollMissFactor: 2 });
    const types = () => s.r.observations.map((o) => o.type).filter((t) => t.startsWith('comm'));
    await s.feed(s.msg({ token: 'NULL', data: '' }));
    expect(types()).toEqual(['comm-restored']);
    expect(s.r.observations.find((o) => o.type === 'comm-restored')!.detail).toMatchObject({ afterStart: true });
    await until(() => types().length === 2, 'comm-lost');
    expect(types()).toEqual(['comm-restored', 'comm-lost']);
    await wait(600); // still silent: no second comm-lost
    expect(types()).toEqual(['comm-restored', 'comm-lost']);
    s.r.clock.now = Date.now();
    await s.feed(s.msg({ token: 'NULL', data: '', seq: 2 }));
    expect(types()).toEqual(['comm-restored', 'comm-lost', 'comm-restored']);
    expect(s.h.supervisor.state('dev-1234')).toBe('ok');
  });

  it('a comm-lost that cannot be stored is tried again', async () => {
    const s = setup({ '1234': { config: { pollIntervalS: 0.1 } } });
    await s.feed(s.msg({ token: 'NULL', data: '' }));
    s.r.failSubmit.on = true;
    await wait(500);
    s.r.failSubmit.on = false;
    await until(() => s.r.observations.some((o) => o.type === 'comm-lost'), 'comm-lost after the failure');
  });

  it('panels the gateway lists at start are supervised from start, without a poll', async () => {
    const r = recordingServices({});
    const services = Object.assign(r.services, {
      provisioned: () => [{ identifier: '5678', device: { deviceId: 'dev-5678', kind: 'dc09' as const, state: 'in-service' as const, model: null, config: { pollIntervalS: 0.1 } } }],
    });
    r.devices.set('5678', { deviceId: 'dev-5678', kind: 'dc09', state: 'in-service', model: null, config: { pollIntervalS: 0.1 } });
    const h = createDc09Protocol(services, listener);
    handlers.push(h);
    await until(() => r.observations.some((o) => o.type === 'comm-lost' && o.deviceId === 'dev-5678'), 'comm-lost from start');
    expect(r.observations.find((o) => o.type === 'comm-lost')!.detail).toMatchObject({ sinceStart: true });
  });

  it('close() stops the timers', async () => {
    const s = setup({ '1234': { config: { pollIntervalS: 0.1 } } });
    await s.feed(s.msg({ token: 'NULL', data: '' }));
    await s.h.close?.();
    const n = s.r.observations.length;
    await wait(500);
    expect(s.r.observations.length).toBe(n);
  });
});

describe('accounts no device holds (unknownAccountsDeviceId)', () => {
  const stranger = (account: string, seq = 1) => ({ seq, account, data: `#${account}|1110 00 001` });

  it('are taken on the receiver standing in, with their account and no dedup key, without binding the connection; new ones beyond the minute\'s allowance are NAKed', async () => {
    const { r, peer, feed, msg, answers } = setup({ RCV1: { kind: 'receiver' } }, { unknownAccountsDeviceId: 'dev-RCV1', unknownAccountsPerMinute: 2 });
    await feed(msg(stranger('AAA1')));
    await feed(msg(stranger('AAA2')));
    await feed(msg(stranger('AAA3')));
    // an account taken lately always goes on
    await feed(msg(stranger('AAA1', 2)));
    expect(answers().map((a) => a.kind)).toEqual(['ACK', 'ACK', 'NAK', 'ACK']);
    expect(r.refusals.map((x) => x.reason)).toEqual(['unknown-accounts-limit']);
    expect(r.observations.map((o) => [o.deviceId, o.type, o.account, o.flags, o.seq])).toEqual([
      ['dev-RCV1', 'fire', 'AAA1', ['unknown-account'], undefined],
      ['dev-RCV1', 'fire', 'AAA2', ['unknown-account'], undefined],
      ['dev-RCV1', 'fire', 'AAA1', ['unknown-account'], undefined],
    ]);
    expect(peer.bound).toEqual([]);
  });

  it('a stand-in that is not a receiver takes nothing: NAK, as without the setting', async () => {
    const { r, feed, msg, answers } = setup({ '1234': { kind: 'dc09' } }, { unknownAccountsDeviceId: 'dev-1234' });
    await feed(msg(stranger('BBB1')));
    expect(answers().map((a) => a.kind)).toEqual(['NAK']);
    expect(r.refusals[0]).toMatchObject({ reason: 'unprovisioned', detail: expect.stringContaining('a dc09, not a receiver') });
    expect(r.observations).toEqual([]);
  });
});
