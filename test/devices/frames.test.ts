// Golden tests of devices/frames.ts: frames as terminals send them, good and broken, and exactly what comes out.
// The rule they hold: a frame whose life-safety type can still be read is raised, with a flag for each thing dropped;
// anything else that cannot be read exactly is refused with a reason (and a fixed code, safe as a metric label).
import { describe, expect, it } from 'vitest';
import { decodeCommandAck, decodeFrame, decodeStatus, relaxedParse, type Channel, type FrameResult } from '../../devices/frames.js';
import type { DeviceKind } from '../../core/contracts.js';

const RX = 1718000000123; // gateway clock when the frame arrived
const TS = 1718000000000; // device clock
const MAX = 4096;

type Golden = [name: string, kind: DeviceKind, channel: Channel, payload: string | Buffer, expected: FrameResult];

const ok = (deviceId: string, fields: Record<string, unknown>): FrameResult =>
  ({ ok: true, obs: { deviceId, receivedAt: RX, source: 'mqtt', ...fields } }) as FrameResult;
const no = (code: string, reason: string | RegExp): FrameResult =>
  ({ ok: false, code, reason: typeof reason === 'string' ? reason : expect.stringMatching(reason) }) as unknown as FrameResult;
/** JSON.parse's own message differs between V8 versions: only its prefix is ours */
const MALFORMED = /^malformed JSON: /;

const run = (cases: Golden[]) =>
  it.each(cases)('%s', (_name, kind, channel, payload, expected) => {
    const bytes = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
    const id = `${kind.slice(0, 2)}-0001`;
    expect(decodeFrame(kind, id, channel, bytes, RX, MAX)).toStrictEqual(expected);
  });

describe('good frames, one per message of each kind', () => {
  run([
    ['call-phone SOS', 'call-phone', 'events', `{"ts":${TS},"seq":41,"type":"sos"}`,
      ok('ca-0001', { type: 'sos', deviceTs: TS, seq: 41 })],
    ['locator SOS with its fix', 'locator', 'events',
      `{"ts":${TS},"seq":7,"type":"sos","position":{"lat":39.9087,"lon":116.3975,"accuracy":15,"at":1717999990000}}`,
      ok('lo-0001', { type: 'sos', deviceTs: TS, seq: 7, position: { lat: 39.9087, lon: 116.3975, accuracy: 15, at: 1717999990000 } })],
    ['fall-sensor fall with confidence', 'fall-sensor', 'events', `{"ts":${TS},"seq":102,"type":"fall","confidence":0.93}`,
      ok('fa-0001', { type: 'fall', deviceTs: TS, seq: 102, confidence: 0.93 })],
    ['locator position (fix folded into position, stamped with the device clock)', 'locator', 'telemetry',
      `{"ts":${TS},"seq":8,"type":"position","lat":39.9087,"lon":116.3975,"accuracy":25,"battery":64}`,
      ok('lo-0001', { type: 'position', deviceTs: TS, seq: 8, battery: 64, position: { lat: 39.9087, lon: 116.3975, accuracy: 25, at: TS } })],
    ['locator position without accuracy has no accuracy key', 'locator', 'telemetry',
      `{"ts":${TS},"seq":9,"type":"position","lat":-33.8688,"lon":151.2093}`,
      ok('lo-0001', { type: 'position', deviceTs: TS, seq: 9, position: { lat: -33.8688, lon: 151.2093, at: TS } })],
    ['call-phone heartbeat', 'call-phone', 'telemetry', `{"ts":${TS},"seq":9,"type":"heartbeat","battery":87,"signal":-71,"mains":true}`,
      ok('ca-0001', { type: 'heartbeat', deviceTs: TS, seq: 9, battery: 87, signal: -71, mains: true })],
    ['fall-sensor heartbeat with no fields', 'fall-sensor', 'telemetry', `{"ts":${TS},"seq":10,"type":"heartbeat"}`,
      ok('fa-0001', { type: 'heartbeat', deviceTs: TS, seq: 10 })],
    ['locator battery', 'locator', 'telemetry', `{"ts":${TS},"seq":11,"type":"battery","level":18}`,
      ok('lo-0001', { type: 'battery', deviceTs: TS, seq: 11, level: 18 })],
    ['trailing CR LF is whitespace, not garbage', 'call-phone', 'events', `{"ts":${TS},"seq":42,"type":"sos"}\r\n`,
      ok('ca-0001', { type: 'sos', deviceTs: TS, seq: 42 })],
    ['unknown extra fields are ignored, however deep', 'call-phone', 'telemetry',
      `{"ts":${TS},"seq":12,"type":"heartbeat","battery":80,"debug":{"stack":[[[{"pc":"0x4001"}]]]}}`,
      ok('ca-0001', { type: 'heartbeat', deviceTs: TS, seq: 12, battery: 80 })],
    ['a fall from a phone (not its kind) is still raised, flagged', 'call-phone', 'events', `{"ts":${TS},"seq":43,"type":"fall"}`,
      ok('ca-0001', { type: 'fall', deviceTs: TS, seq: 43, flags: ['unexpected-type-for-call-phone'] })],
    ['an SOS with no envelope at all', 'call-phone', 'events', '{"type":"sos"}',
      ok('ca-0001', { type: 'sos', flags: ['no-dedup-key'] })],
  ]);
});

describe('wrong case: the type is read case-insensitively', () => {
  run([
    ['"SOS"', 'call-phone', 'events', '{"type":"SOS"}',
      ok('ca-0001', { type: 'sos', flags: ['normalized:type', 'no-dedup-key'] })],
    ['"Fall" with its envelope', 'fall-sensor', 'events', `{"ts":${TS},"seq":103,"type":"Fall","confidence":0.8}`,
      ok('fa-0001', { type: 'fall', deviceTs: TS, seq: 103, confidence: 0.8, flags: ['normalized:type'] })],
    ['a "Type" key and a padded value', 'locator', 'events', `{"ts":${TS},"seq":5,"Type":" Sos "}`,
      ok('lo-0001', { type: 'sos', deviceTs: TS, seq: 5, flags: ['normalized:type'] })],
    ['"HEARTBEAT"', 'call-phone', 'telemetry', `{"ts":${TS},"seq":13,"type":"HEARTBEAT","battery":90}`,
      ok('ca-0001', { type: 'heartbeat', deviceTs: TS, seq: 13, battery: 90, flags: ['normalized:type'] })],
    ['"Position"', 'locator', 'telemetry', `{"ts":${TS},"seq":14,"type":"Position","lat":39.9,"lon":116.4}`,
      ok('lo-0001', { type: 'position', deviceTs: TS, seq: 14, position: { lat: 39.9, lon: 116.4, at: TS }, flags: ['normalized:type'] })],
    ['"Battery"', 'fall-sensor', 'telemetry', `{"ts":${TS},"seq":15,"type":"Battery","level":50}`,
      ok('fa-0001', { type: 'battery', deviceTs: TS, seq: 15, level: 50, flags: ['normalized:type'] })],
    ['an unknown type is refused, quoted as sent', 'call-phone', 'events', '{"type":"HELP"}',
      no('unknown-type', 'unknown events type "HELP" for a call-phone')],
  ]);
});

describe('single quotes (and other JSON5-ish writing): alarms are salvaged, the rest refused', () => {
  run([
    ["{'type':'sos'}", 'call-phone', 'events', "{'type':'sos'}",
      ok('ca-0001', { type: 'sos', flags: ['malformed-json', 'no-dedup-key'] })],
    ['a locator SOS keeps its envelope and its fix', 'locator', 'events',
      `{'ts':${TS},'seq':7,'type':'SOS','position':{'lat':39.9087,'lon':116.3975}}`,
      ok('lo-0001', { type: 'sos', deviceTs: TS, seq: 7, position: { lat: 39.9087, lon: 116.3975 }, flags: ['malformed-json', 'normalized:type'] })],
    ['a fall', 'fall-sensor', 'events', `{'ts':${TS},'seq':5,'type':'fall','confidence':0.9}`,
      ok('fa-0001', { type: 'fall', deviceTs: TS, seq: 5, confidence: 0.9, flags: ['malformed-json'] })],
    ['bare keys and a bare value', 'call-phone', 'events', `{type: sos, ts: ${TS}, seq: 44}`,
      ok('ca-0001', { type: 'sos', deviceTs: TS, seq: 44, flags: ['malformed-json'] })],
    ["an escaped quote inside a single-quoted string", 'fall-sensor', 'events', `{'ts':${TS},'seq':6,'type':'fall','note':'it\\'s "bad"'}`,
      ok('fa-0001', { type: 'fall', deviceTs: TS, seq: 6, flags: ['malformed-json'] })],
    ['an SOS on the telemetry channel is an SOS too (not a telemetry message of the kind: flagged)', 'call-phone', 'telemetry', "{'type':'sos'}",
      ok('ca-0001', { type: 'sos', flags: ['malformed-json', 'unexpected-type-for-call-phone', 'no-dedup-key'] })],
    ['a truncated fall on the telemetry channel too', 'fall-sensor', 'telemetry', `{"ts":${TS},"seq":1,"type":"fall","conf`,
      ok('fa-0001', { type: 'fall', flags: ['malformed-json', 'no-dedup-key'] })],
    ['a heartbeat', 'call-phone', 'telemetry', `{'ts':${TS},'seq':16,'type':'heartbeat','battery':80}`, no('malformed-json', MALFORMED)],
    ['a position', 'locator', 'telemetry', `{'ts':${TS},'seq':17,'type':'position','lat':39.9,'lon':116.4}`, no('malformed-json', MALFORMED)],
    ['a battery report', 'locator', 'telemetry', `{'ts':${TS},'seq':18,'type':'battery','level':20}`, no('malformed-json', MALFORMED)],
  ]);
});

describe('trailing garbage', () => {
  run([
    ['NULs after an SOS: the object is whole, kept with its envelope', 'call-phone', 'events', `{"ts":${TS},"seq":45,"type":"sos"}\u0000\u0000`,
      ok('ca-0001', { type: 'sos', deviceTs: TS, seq: 45, flags: ['malformed-json', 'trailing-garbage'] })],
    ['a second closing brace after a fall', 'fall-sensor', 'events', `{"ts":${TS},"seq":106,"type":"fall","confidence":0.7}}`,
      ok('fa-0001', { type: 'fall', deviceTs: TS, seq: 106, confidence: 0.7, flags: ['malformed-json', 'trailing-garbage'] })],
    ['two frames glued together: the first is read', 'locator', 'events', `{"ts":${TS},"seq":8,"type":"sos"}{"ts":${TS + 1},"seq":9,"type":"cancel"}`,
      ok('lo-0001', { type: 'sos', deviceTs: TS, seq: 8, flags: ['malformed-json', 'trailing-garbage'] })],
    ['after a heartbeat', 'call-phone', 'telemetry', `{"ts":${TS},"seq":19,"type":"heartbeat"}AT+OK`, no('malformed-json', MALFORMED)],
    ['after a position', 'locator', 'telemetry', `{"ts":${TS},"seq":20,"type":"position","lat":1,"lon":2}\u0000`, no('malformed-json', MALFORMED)],
  ]);
});

describe('truncated JSON: an alarm whose type was sent is raised with its type alone', () => {
  run([
    ['an SOS cut inside a later field', 'call-phone', 'events', `{"ts":${TS},"seq":46,"type":"sos","posi`,
      ok('ca-0001', { type: 'sos', flags: ['malformed-json', 'no-dedup-key'] })],
    ['a locator SOS cut inside its fix (no half position is guessed)', 'locator', 'events', `{"ts":${TS},"seq":10,"type":"sos","position":{"lat":39.90`,
      ok('lo-0001', { type: 'sos', flags: ['malformed-json', 'no-dedup-key'] })],
    ['a fall cut after its confidence', 'fall-sensor', 'events', `{"ts":${TS},"seq":104,"type":"fall","confidence":0.9`,
      ok('fa-0001', { type: 'fall', flags: ['malformed-json', 'no-dedup-key'] })],
    ['cut before the type', 'call-phone', 'events', `{"ts":${TS},"seq":47,"ty`, no('malformed-json', MALFORMED)],
    ['cut inside the type', 'call-phone', 'events', `{"ts":${TS},"seq":48,"type":"so`, no('malformed-json', MALFORMED)],
    ['a heartbeat', 'fall-sensor', 'telemetry', `{"ts":${TS},"seq":21,"type":"heartbeat","batt`, no('malformed-json', MALFORMED)],
    ['a position', 'locator', 'telemetry', `{"ts":${TS},"seq":22,"type":"position","lat":39.9`, no('malformed-json', MALFORMED)],
    ['a battery report', 'call-phone', 'telemetry', `{"ts":${TS},"seq":23,"type":"battery","lev`, no('malformed-json', MALFORMED)],
    ['empty', 'call-phone', 'events', '', no('malformed-json', MALFORMED)],
  ]);
});

describe('a UTF-8 byte order mark is ignored (RFC 8259 §8.1)', () => {
  const bom = (s: string) => Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(s)]);
  run([
    ['an SOS', 'call-phone', 'events', bom(`{"ts":${TS},"seq":49,"type":"sos"}`), ok('ca-0001', { type: 'sos', deviceTs: TS, seq: 49 })],
    ['a fall', 'fall-sensor', 'events', bom(`{"ts":${TS},"seq":107,"type":"fall"}`), ok('fa-0001', { type: 'fall', deviceTs: TS, seq: 107 })],
    ['a heartbeat', 'call-phone', 'telemetry', bom(`{"ts":${TS},"seq":24,"type":"heartbeat","battery":70}`),
      ok('ca-0001', { type: 'heartbeat', deviceTs: TS, seq: 24, battery: 70 })],
    ['a position', 'locator', 'telemetry', bom(`{"ts":${TS},"seq":25,"type":"position","lat":1.5,"lon":2.5}`),
      ok('lo-0001', { type: 'position', deviceTs: TS, seq: 25, position: { lat: 1.5, lon: 2.5, at: TS } })],
    ['a battery report', 'fall-sensor', 'telemetry', bom(`{"ts":${TS},"seq":26,"type":"battery","level":99}`),
      ok('fa-0001', { type: 'battery', deviceTs: TS, seq: 26, level: 99 })],
  ]);
});

describe('wrong types of fields: dropped and flagged on an alarm, refused otherwise', () => {
  run([
    ['an SOS whose position is strings', 'locator', 'events', `{"ts":${TS},"seq":11,"type":"sos","position":{"lat":"39.9","lon":"116.4"}}`,
      ok('lo-0001', { type: 'sos', deviceTs: TS, seq: 11, flags: ['invalid:position'] })],
    ['an SOS whose ts is a string', 'call-phone', 'events', `{"ts":"2024-06-10T06:13:20Z","seq":50,"type":"sos"}`,
      ok('ca-0001', { type: 'sos', flags: ['invalid:ts', 'no-dedup-key'] })],
    ['an SOS with a negative seq keeps its ts', 'call-phone', 'events', `{"ts":${TS},"seq":-1,"type":"sos"}`,
      ok('ca-0001', { type: 'sos', deviceTs: TS, flags: ['invalid:seq', 'no-dedup-key'] })],
    ['a fall whose confidence is a word', 'fall-sensor', 'events', `{"ts":${TS},"seq":108,"type":"fall","confidence":"high"}`,
      ok('fa-0001', { type: 'fall', deviceTs: TS, seq: 108, flags: ['invalid:confidence'] })],
    ['a fall whose confidence is a percentage', 'fall-sensor', 'events', `{"ts":${TS},"seq":109,"type":"fall","confidence":93}`,
      ok('fa-0001', { type: 'fall', deviceTs: TS, seq: 109, flags: ['invalid:confidence'] })],
    ['a heartbeat whose battery is a string', 'call-phone', 'telemetry', `{"ts":${TS},"seq":27,"type":"heartbeat","battery":"87"}`,
      no('invalid-field', '"battery" is invalid for heartbeat: Expected integer')],
    ['a heartbeat whose mains is "yes"', 'call-phone', 'telemetry', `{"ts":${TS},"seq":28,"type":"heartbeat","mains":"yes"}`,
      no('invalid-field', '"mains" is invalid for heartbeat: Expected boolean')],
    ['a position with a negative accuracy', 'locator', 'telemetry', `{"ts":${TS},"seq":29,"type":"position","lat":1,"lon":2,"accuracy":-1}`,
      no('invalid-field', '"accuracy" is invalid for position: Expected number to be greater or equal to 0')],
    ['a position without lon', 'locator', 'telemetry', `{"ts":${TS},"seq":30,"type":"position","lat":1}`,
      no('missing-field', '"lon" is required for position')],
    ['a battery report without level', 'fall-sensor', 'telemetry', `{"ts":${TS},"seq":31,"type":"battery"}`,
      no('missing-field', '"level" is required for battery')],
    ['a heartbeat whose ts is a string', 'call-phone', 'telemetry', `{"ts":"now","seq":32,"type":"heartbeat"}`,
      no('invalid-envelope', '"ts" must be a non-negative integer (device ms)')],
    ['a type that is a number', 'call-phone', 'events', `{"ts":${TS},"seq":51,"type":1}`,
      no('no-type', 'no usable "type" field: the envelope is {"ts": <ms>, "seq": <n>, "type": "..."}')],
  ]);
});

describe('huge numbers', () => {
  run([
    ['an SOS with ts 1e400 (Infinity) and a seq past 2^53 (no dedup key rather than a false duplicate)', 'call-phone', 'events',
      '{"ts":1e400,"seq":99999999999999999999,"type":"sos"}',
      ok('ca-0001', { type: 'sos', flags: ['invalid:ts', 'invalid:seq', 'no-dedup-key'] })],
    ['a locator SOS at latitude 1e308', 'locator', 'events', `{"ts":${TS},"seq":12,"type":"sos","position":{"lat":1e308,"lon":116.4}}`,
      ok('lo-0001', { type: 'sos', deviceTs: TS, seq: 12, flags: ['invalid:position'] })],
    ['a fall with confidence 1e400', 'fall-sensor', 'events', `{"ts":${TS},"seq":110,"type":"fall","confidence":1e400}`,
      ok('fa-0001', { type: 'fall', deviceTs: TS, seq: 110, flags: ['invalid:confidence'] })],
    ['a heartbeat with battery 1e400', 'call-phone', 'telemetry', `{"ts":${TS},"seq":33,"type":"heartbeat","battery":1e400}`,
      no('invalid-field', '"battery" is invalid for heartbeat: Expected integer')],
    ['a battery level of 99999999999999999999', 'locator', 'telemetry', `{"ts":${TS},"seq":34,"type":"battery","level":99999999999999999999}`,
      no('invalid-field', '"level" is invalid for battery: Expected integer to be less or equal to 100')],
    ['a position at longitude -1e308', 'locator', 'telemetry', `{"ts":${TS},"seq":35,"type":"position","lat":1,"lon":-1e308}`,
      no('invalid-field', '"lon" is invalid for position: Expected number to be greater or equal to -180')],
    ['a heartbeat with seq 2^60', 'fall-sensor', 'telemetry', `{"ts":${TS},"seq":1152921504606846976,"type":"heartbeat"}`,
      no('invalid-envelope', '"seq" must be a non-negative integer')],
  ]);
});

describe('NaN and Infinity (not JSON): an alarm keeps its envelope, the field is dropped', () => {
  run([
    ['a fall with confidence NaN', 'fall-sensor', 'events', `{"ts":${TS},"seq":111,"type":"fall","confidence":NaN}`,
      ok('fa-0001', { type: 'fall', deviceTs: TS, seq: 111, flags: ['malformed-json', 'invalid:confidence'] })],
    ['a locator SOS at lat NaN, lon -Infinity', 'locator', 'events', `{"ts":${TS},"seq":13,"type":"sos","position":{"lat":NaN,"lon":-Infinity}}`,
      ok('lo-0001', { type: 'sos', deviceTs: TS, seq: 13, flags: ['malformed-json', 'invalid:position'] })],
    ['an SOS with seq NaN', 'call-phone', 'events', `{"ts":${TS},"seq":NaN,"type":"sos"}`,
      ok('ca-0001', { type: 'sos', deviceTs: TS, flags: ['malformed-json', 'invalid:seq', 'no-dedup-key'] })],
    ['a heartbeat with signal NaN', 'call-phone', 'telemetry', `{"ts":${TS},"seq":36,"type":"heartbeat","signal":NaN}`, no('malformed-json', MALFORMED)],
    ['a position at lat Infinity', 'locator', 'telemetry', `{"ts":${TS},"seq":37,"type":"position","lat":Infinity,"lon":1}`, no('malformed-json', MALFORMED)],
    ['a battery level NaN', 'fall-sensor', 'telemetry', `{"ts":${TS},"seq":38,"type":"battery","level":NaN}`, no('malformed-json', MALFORMED)],
  ]);
});

describe('nested junk', () => {
  run([
    ['an SOS whose position is an operator object and an array', 'locator', 'events',
      `{"ts":${TS},"seq":14,"type":"sos","position":{"lat":{"$gt":""},"lon":[1,2,{"x":null}]}}`,
      ok('lo-0001', { type: 'sos', deviceTs: TS, seq: 14, flags: ['invalid:position'] })],
    ['an SOS position with keys of its own: only lat/lon/accuracy/at are kept (stale is the gateway\'s word)', 'locator', 'events',
      `{"ts":${TS},"seq":15,"type":"sos","position":{"lat":39.9,"lon":116.4,"stale":true,"__proto__":{"x":1},"note":"gps cold"}}`,
      ok('lo-0001', { type: 'sos', deviceTs: TS, seq: 15, position: { lat: 39.9, lon: 116.4 } })],
    ['a fall whose confidence is an object', 'fall-sensor', 'events', `{"ts":${TS},"seq":112,"type":"fall","confidence":{"value":0.9}}`,
      ok('fa-0001', { type: 'fall', deviceTs: TS, seq: 112, flags: ['invalid:confidence'] })],
    ['a fall inside a wrapper object', 'fall-sensor', 'events', `{"ts":${TS},"seq":113,"event":{"type":"fall","confidence":0.9}}`,
      ok('fa-0001', { type: 'fall', flags: ['malformed-envelope', 'no-dedup-key'] })],
    ['an SOS inside an array', 'call-phone', 'events', `[{"ts":${TS},"seq":52,"type":"sos"}]`,
      ok('ca-0001', { type: 'sos', flags: ['malformed-envelope', 'no-dedup-key'] })],
    ['a type that is an array', 'call-phone', 'events', '{"type":["sos"]}',
      no('no-type', 'no usable "type" field: the envelope is {"ts": <ms>, "seq": <n>, "type": "..."}')],
    ['a heartbeat whose battery is an array', 'call-phone', 'telemetry', `{"ts":${TS},"seq":39,"type":"heartbeat","battery":[87]}`,
      no('invalid-field', '"battery" is invalid for heartbeat: Expected integer')],
    ['a position whose lat is an object', 'locator', 'telemetry', `{"ts":${TS},"seq":40,"type":"position","lat":{"deg":39},"lon":116}`,
      no('invalid-field', '"lat" is invalid for position: Expected number')],
    ['a heartbeat inside an array', 'call-phone', 'telemetry', `[{"ts":${TS},"seq":41,"type":"heartbeat"}]`,
      no('not-an-object', 'payload is not a JSON object {"ts","seq","type",...}')],
    ['a "subtype" is not a type', 'call-phone', 'events', '{"subtype":"sos"}',
      no('no-type', 'no usable "type" field: the envelope is {"ts": <ms>, "seq": <n>, "type": "..."}')],
  ]);
});

describe('size', () => {
  const pad = 'x'.repeat(MAX);
  const big = `{"ts":${TS},"seq":42,"type":"heartbeat","log":"${pad}"}`;
  run([
    ['an oversized SOS is raised, envelope only', 'locator', 'events',
      `{"ts":${TS},"seq":16,"type":"sos","position":{"lat":1,"lon":2},"log":"${pad}"}`,
      ok('lo-0001', { type: 'sos', deviceTs: TS, seq: 16, flags: ['oversized'] })],
    ['an oversized heartbeat is refused', 'call-phone', 'telemetry', big,
      no('oversized', `payload of ${Buffer.byteLength(big)} bytes exceeds the limit of ${MAX}`)],
    ['a long unknown type is cut short in the reason', 'call-phone', 'events', `{"type":"${'z'.repeat(500)}"}`,
      no('unknown-type', `unknown events type "${'z'.repeat(40)}…" for a call-phone`)],
  ]);
});

describe('relaxedParse', () => {
  it('reads what it can and nothing it has to guess', () => {
    expect(relaxedParse("{'a':'b'}")).toStrictEqual({ value: { a: 'b' }, flags: [] });
    expect(relaxedParse('{a: 1e3, b: -2.5, c: true, d: null, e: undefined}')).toStrictEqual({ value: { a: 1000, b: -2.5, c: true, d: null, e: null }, flags: [] });
    expect(relaxedParse('{"a":1} trailing')).toStrictEqual({ value: { a: 1 }, flags: ['trailing-garbage'] });
    expect(relaxedParse('{"a":[1,2')).toBeNull();
    expect(relaxedParse("{'a':'unterminated")).toBeNull();
    expect(relaxedParse('not an object')).toBeNull();
    expect(relaxedParse('{"a":0x10}')).toBeNull();
  });
});

describe('status and command acks', () => {
  it('decodes a Last Will and refuses what is not one', () => {
    expect(decodeStatus('ca-0001', Buffer.from('{"online":false}'), RX)).toStrictEqual(
      { ok: true, obs: { deviceId: 'ca-0001', type: 'status', online: false, receivedAt: RX, source: 'mqtt' } });
    expect(decodeStatus('ca-0001', Buffer.from('{"online":"no"}'), RX)).toStrictEqual(
      { ok: false, code: 'invalid-field', reason: 'status must be {"online": true|false}' });
    expect(decodeStatus('ca-0001', Buffer.from('{online'), RX)).toStrictEqual({ ok: false, code: 'malformed-json', reason: expect.stringMatching(MALFORMED) });
  });

  it('decodes a command ack, its error bounded', () => {
    expect(decodeCommandAck('ca-0001', Buffer.from(`{"id":"cmd-1","ok":false,"error":"${'e'.repeat(300)}"}`), RX)).toStrictEqual({
      ok: true, obs: { deviceId: 'ca-0001', type: 'command-ack', commandId: 'cmd-1', ok: false, error: 'e'.repeat(200), receivedAt: RX, source: 'mqtt' },
    });
    expect(decodeCommandAck('ca-0001', Buffer.from('{"ok":true}'), RX)).toStrictEqual(
      { ok: false, code: 'invalid-field', reason: 'command ack must be {"id": "<command id>", "ok": true}' });
  });
});
