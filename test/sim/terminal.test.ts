import { afterEach, describe, expect, it } from 'vitest';
import { Rng } from '../../firmware-sim/core/prng.js';
import { RealScheduler } from '../../firmware-sim/core/scheduler.js';
import { CallPhone, FallSensor, Locator } from '../../firmware-sim/devices/kinds.js';
import type { Terminal, TerminalObserver } from '../../firmware-sim/devices/terminal.js';
import { startBroker, until, type TestBroker } from './helpers/broker.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function setup(observer: TerminalObserver = {}) {
  const broker = await startBroker();
  const scheduler = new RealScheduler();
  cleanups.push(() => broker.close());
  cleanups.push(() => scheduler.clear());
  const base = {
    mqttUrl: broker.url,
    scheduler,
    observer,
    backoff: { initialMs: 100, maxMs: 1000, factor: 2 },
  };
  const stopAll: Terminal[] = [];
  cleanups.push(async () => {
    for (const t of stopAll) await t.stop();
  });
  const track = <T extends Terminal>(t: T) => (stopAll.push(t), t);
  return { broker, scheduler, base, track };
}

const payloads = (b: TestBroker, id: string, channel: string) =>
  b.seen.filter((s) => s.topic === `devices/${id}/${channel}`).map((s) => JSON.parse(s.payload) as Record<string, unknown>);

describe('simulated terminal against a real MQTT broker', () => {
  it('connects as clientId = username = id, says it is online, sends an SOS at QoS 1 and sees the PUBACK', async () => {
    const pubacks: number[] = [];
    const { broker, base, track } = await setup({ onPuback: (_t, _m, ms) => pubacks.push(ms) });
    const phone = track(new CallPhone({ ...base, creds: { id: 'dev-1', secret: 's3cret', kind: 'call-phone' }, rng: new Rng(1) }));
    phone.start();
    await until(() => phone.online, 10_000, 'online');
    await until(() => broker.seen.some((s) => s.topic === 'devices/dev-1/status'), 5000, 'status');
    expect(JSON.parse(broker.seen.find((s) => s.topic === 'devices/dev-1/status')!.payload)).toEqual({ online: true });
    const m = phone.sos()!;
    await until(() => m.acked, 5000, 'PUBACK');
    const sent = payloads(broker, 'dev-1', 'events');
    expect(sent).toEqual([{ ts: m.ts, seq: m.seq, type: 'sos' }]);
    expect(broker.seen.find((s) => s.topic === 'devices/dev-1/events')!.qos).toBe(1);
    expect(pubacks).toHaveLength(1);
    expect(phone.outbox.size).toBe(0);
  });

  it('resends an alarm with the same seq and ts until it is PUBACKed', async () => {
    const { broker, base, track } = await setup();
    let held = 0;
    broker.gate = (p) => (p.topic.endsWith('/events') && held++ < 2 ? 'hold' : 'ack');
    const s = track(new FallSensor({ ...base, ackTimeoutMs: 200, creds: { id: 'fs-1', secret: 'x', kind: 'fall-sensor' }, rng: new Rng(2) }));
    s.start();
    await until(() => s.online, 10_000, 'online');
    const m = s.fall(0.95)!;
    await until(() => m.acked, 10_000, 'PUBACK after resends');
    const sent = broker.seen.filter((x) => x.topic === 'devices/fs-1/events').map((x) => x.payload);
    expect(sent.length).toBe(3);
    expect(new Set(sent).size).toBe(1); // identical bytes: same seq, same ts
    expect(JSON.parse(sent[0]!)).toMatchObject({ type: 'fall', confidence: 0.95, seq: m.seq, ts: m.ts });
  });

  it('buffers while the gateway is down and flushes in order on reconnect, alarms exactly as created', async () => {
    const { broker, base, track } = await setup();
    const phone = track(new CallPhone({ ...base, creds: { id: 'p-2', secret: 'x', kind: 'call-phone' }, rng: new Rng(3) }));
    phone.start();
    await until(() => phone.online, 10_000, 'online');
    await broker.kill();
    await until(() => !phone.online, 10_000, 'offline');
    const made = [phone.sos()!, phone.cancel()!, phone.sos()!];
    expect(phone.outbox.size).toBe(3);
    broker.seen.length = 0;
    await broker.revive();
    await until(() => made.every((m) => m.acked), 15_000, 'flush');
    const events = payloads(broker, 'p-2', 'events');
    expect(events.map((e) => e.seq)).toEqual(made.map((m) => m.seq));
    expect(events.map((e) => e.type)).toEqual(['sos', 'cancel', 'sos']);
  });

  it('publishes its Last Will when the network dies under it, and comes back after the outage', async () => {
    const { broker, base, track } = await setup();
    const phone = track(new CallPhone({ ...base, creds: { id: 'p-3', secret: 'x', kind: 'call-phone' }, rng: new Rng(4) }));
    phone.start();
    await until(() => phone.online, 10_000, 'online');
    const connects = phone.connects;
    phone.disconnect(300);
    const isWill = (s: { topic: string; payload: string }) => s.topic === 'devices/p-3/status' && s.payload === '{"online":false}';
    await until(() => broker.seen.some(isWill), 10_000, 'will');
    expect(broker.seen.find(isWill)!.retain).toBe(true);
    await until(() => phone.online && phone.connects === connects + 1, 10_000, 'reconnect');
  });

  it('obeys commands and answers each on commands/ack', async () => {
    const acks: { cmd: string; latency: number | null }[] = [];
    const { broker, base, track } = await setup({ onCommand: (_t, c, _r, _a, l) => acks.push({ cmd: c.type, latency: l }) });
    const watch = track(new Locator({ ...base, creds: { id: 'loc-1', secret: 'x', kind: 'locator' }, rng: new Rng(5) }));
    watch.start();
    await until(() => watch.online, 10_000, 'online');
    await until(() => broker.seen.some((s) => s.topic === 'devices/loc-1/status'), 5000, 'subscribed');
    const sos = watch.sos()!;
    await until(() => sos.acked, 5000, 'sos acked');
    await broker.publish('devices/loc-1/commands', { id: 'c1', type: 'acknowledge-alarm', ts: Date.now() });
    await broker.publish('devices/loc-1/commands', { id: 'c2', type: 'configure', params: { heartbeatS: 30 } });
    await broker.publish('devices/loc-1/commands', { id: 'c3', type: 'locate-now' });
    await broker.publish('devices/loc-1/commands', { id: 'c4', type: 'test-alarm' });
    await broker.publish('devices/loc-1/commands', { id: 'c5', type: 'configure', params: { heartbeatS: -1 } });
    await broker.publish('devices/loc-1/commands', { id: 'c6', type: 'self-destruct' });
    await until(() => payloads(broker, 'loc-1', 'commands/ack').length >= 6, 10_000, 'acks');
    const answered = payloads(broker, 'loc-1', 'commands/ack');
    expect(answered).toEqual([
      { id: 'c1', ok: true },
      { id: 'c2', ok: true },
      { id: 'c3', ok: true },
      { id: 'c4', ok: true },
      { id: 'c5', ok: false, error: 'heartbeatS must be a number of seconds in 1..86400' },
      { id: 'c6', ok: false, error: 'unknown command type "self-destruct"' },
    ]);
    expect(watch.heartbeatS).toBe(30);
    expect(sos.ackCommandAt).not.toBeNull();
    expect(acks[0]).toMatchObject({ cmd: 'acknowledge-alarm' });
    expect(acks[0]!.latency).toBeGreaterThanOrEqual(0);
    await until(() => payloads(broker, 'loc-1', 'events').some((e) => e.type === 'test'), 5000, 'test event');
    const pos = payloads(broker, 'loc-1', 'telemetry').find((e) => e.type === 'position')!;
    expect(pos).toMatchObject({ lat: expect.any(Number), lon: expect.any(Number) });
    expect(payloads(broker, 'loc-1', 'events')[0]).toMatchObject({ type: 'sos', position: { lat: expect.any(Number) } });
  });

  it('backs off with jitter while the gateway refuses it, then connects', async () => {
    const failures: number[] = [];
    const { broker, base, track } = await setup({ onConnectFailed: (_t, _e, ms) => failures.push(ms) });
    const port = broker.port;
    await broker.kill();
    const phone = track(new CallPhone({ ...base, creds: { id: 'p-4', secret: 'x', kind: 'call-phone' }, rng: new Rng(6) }));
    phone.start();
    await until(() => failures.length >= 3, 10_000, 'failures');
    expect(failures[0]).toBeGreaterThanOrEqual(50);
    expect(failures[0]).toBeLessThan(100);
    expect(failures[1]).toBeGreaterThanOrEqual(100);
    expect(failures[2]).toBeGreaterThanOrEqual(200);
    await broker.revive();
    expect(broker.port).toBe(port);
    await until(() => phone.online, 15_000, 'online after revive');
  });
});
