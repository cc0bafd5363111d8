import { describe, it, expect } from 'vitest';
import { validateSerialConfig, validateSerialReceiverConfig } from '../../gateway/adapters/serial/config.js';

describe('serial receiver configuration', () => {
  it('applies the MLR2 defaults (19200 7E1) to a minimal entry', () => {
    const r = validateSerialReceiverConfig({ path: '/dev/ttyUSB0', receiverDeviceId: 'rcv-1' });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.value).toMatchObject({
      path: '/dev/ttyUSB0',
      receiverDeviceId: 'rcv-1',
      baudRate: 19200,
      dataBits: 7,
      parity: 'even',
      stopBits: 1,
      heartbeatTimeoutMs: 90_000,
      acceptUnreadableAfter: 3,
      reportHeartbeats: true,
    });
  });

  it('frames by DC4 by default; CR / LF variants, an inter-byte timeout and shipped vendor tables are configurable, each checked', () => {
    const d = validateSerialReceiverConfig({ path: '/dev/ttyUSB0', receiverDeviceId: 'rcv-1' });
    expect(d.ok && d.value).toMatchObject({ terminators: ['DC4'], interByteTimeoutMs: 500 });
    const v = validateSerialReceiverConfig({
      path: '/dev/ttyUSB0', receiverDeviceId: 'rcv-1', terminators: ['CR', 'LF'], interByteTimeoutMs: 300,
      codeTable: { vendorByModel: { 'HSGW-G8': 'climax' } },
    });
    expect(v.ok).toBe(true);
    const bad = validateSerialReceiverConfig({
      path: '/dev/ttyUSB0', receiverDeviceId: 'rcv-1', terminators: ['ETX'], codeTable: { vendorByModel: { X: 'acme' } },
    });
    expect(bad.ok).toBe(false);
    if (bad.ok) return;
    expect(bad.errors.join('\n')).toMatch(/terminators\[0\]: must be one of "DC4", "CR", "LF"/);
    expect(bad.errors.join('\n')).toMatch(/vendorByModel\.X: must be one of "climax", "vesta", "telecare"/);
  });

  it('accepts a code table with receiver, model and account overrides', () => {
    const r = validateSerialReceiverConfig({
      path: '/dev/ttyS0',
      receiverDeviceId: 'rcv-1',
      baudRate: 9600,
      dataBits: 8,
      parity: 'none',
      codeTable: {
        codes: { '641': { type: 'no-movement', label: 'inactivity' }, FA: { type: 'fire' } },
        byModel: { 'vendor-x': { '102': { type: 'fall' } } },
        byAccount: { '1234': { '301': { type: 'power-lost', restoreType: 'power-restored' } } },
      },
    });
    expect(r).toMatchObject({ ok: true });
  });

  it('lists every error at once, each naming its field', () => {
    const r = validateSerialReceiverConfig(
      {
        path: '',
        baudRate: 'fast',
        dataBits: 9,
        parity: 'sometimes',
        heartbeatTimeoutMs: 5,
        colour: 'red',
        codeTable: {
          codes: { '1O2': { type: 'fall' }, '101': { type: 'explosion' } },
          byAccount: { 'not-hex': {} },
        },
      },
      'serial[2]',
    );
    expect(r.ok).toBe(false);
    if (r.ok) return;
    const all = r.errors.join('\n');
    expect(all).toMatch(/serial\[2\]\.receiverDeviceId: .*required/i);
    expect(all).toMatch(/serial\[2\]\.path: .*length/i);
    expect(all).toMatch(/serial\[2\]\.baudRate: .*integer.*"fast"/i);
    expect(all).toMatch(/serial\[2\]\.dataBits: must be one of 5, 6, 7, 8/);
    expect(all).toMatch(/serial\[2\]\.parity: must be one of "none", "even", "odd", "mark", "space"/);
    expect(all).toMatch(/serial\[2\]\.heartbeatTimeoutMs: /);
    expect(all).toMatch(/serial\[2\]\.colour: /);
    expect(all).toMatch(/serial\[2\]\.codeTable\.codes\.1O2: /);
    expect(all).toMatch(/serial\[2\]\.codeTable\.codes\.101\.type: must be one of .*"fall"/);
    expect(all).toMatch(/serial\[2\]\.codeTable\.byAccount\.not-hex: /);
  });

  it('refuses a non-object entry and duplicates across entries', () => {
    const r = validateSerialConfig([
      'COM1',
      { path: '/dev/ttyUSB0', receiverDeviceId: 'rcv-1' },
      { path: '/dev/ttyUSB0', receiverDeviceId: 'rcv-1' },
    ]);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.errors).toEqual([
      'serial[0]: must be an object with at least "path" and "receiverDeviceId"',
      'serial[2].path: "/dev/ttyUSB0" is already used by serial[1]',
      'serial[2].receiverDeviceId: "rcv-1" is already used by serial[1]',
    ]);
  });
});
