// patches/mqtt-packet+9.0.2.patch (applied by `npm install`'s postinstall, patch-package): mqtt-packet's parser and
// writer call `debug(...)` dozens of times per packet, and each call checks whether DEBUG enabled it. With DEBUG not
// naming the module when it loads, the patched module's debug is a no-op: parsing a PUBLISH took 0.88 µs before and
// 0.66 µs after (measured alone, pinned; bench/analysis.md). Proved here in real node processes: the patch is
// installed, a packet parses and is written the same, and DEBUG still turns the module's logging on.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

/** parse a PUBLISH and write a PUBACK in a fresh node process (the module reads DEBUG as it loads) */
function run(env: Record<string, string>) {
  const script = `
    const mp = require('mqtt-packet');
    const { PassThrough } = require('node:stream');
    const raw = mp.generate({ cmd: 'publish', topic: 'devices/d1/telemetry', payload: Buffer.from('{"type":"heartbeat"}'), qos: 1, messageId: 7 });
    const parser = mp.parser({ protocolVersion: 4 });
    parser.on('packet', (p) => {
      const out = new PassThrough();
      const chunks = [];
      out.on('data', (c) => chunks.push(c));
      mp.writeToStream({ cmd: 'puback', messageId: p.messageId }, out);
      out.end(() => process.stdout.write(JSON.stringify({ topic: p.topic, payload: p.payload.toString(), ack: Buffer.concat(chunks).toString('hex') })));
    });
    parser.parse(raw);
  `;
  const { DEBUG: _unset, ...base } = process.env;
  return spawnSync(process.execPath, ['-e', script], { env: { ...base, ...env }, encoding: 'utf8', timeout: 20_000 });
}

describe('mqtt-packet with the debug patch', () => {
  it('is installed', async () => {
    const { readFileSync } = await import('node:fs');
    const { createRequire } = await import('node:module');
    const file = createRequire(import.meta.url).resolve('mqtt-packet/parser.js');
    expect(readFileSync(file, 'utf8')).toContain('const debug = debugLog.enabled ? debugLog : function () {}');
  });

  it('parses and writes as before, silent without DEBUG', () => {
    const r = run({});
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ topic: 'devices/d1/telemetry', payload: '{"type":"heartbeat"}', ack: '40020007' });
    expect(r.stderr).toBe('');
  });

  it('still logs when DEBUG names it as the process starts', () => {
    const r = run({ DEBUG: 'mqtt-packet:*' });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).ack).toBe('40020007');
    expect(r.stderr).toContain('mqtt-packet:parser');
    expect(r.stderr).toContain('mqtt-packet:writeToStream');
  });
});
