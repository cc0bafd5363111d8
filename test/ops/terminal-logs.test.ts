// Issue 13 §3: a person running `npm start` in a terminal reads the log; a service manager or log shipper gets one
// JSON object a line. The gateway decides by whether stdout is a terminal: run main.ts under a pseudo-terminal
// (util-linux `script`) and through a pipe.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { createLogger } from '../../core/logger.js';
import { topLevelKeys } from '../helpers/log-lines.js';
import { GATEWAY_ARGV } from '../helpers/child-gateway.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
const GATEWAY = GATEWAY_ARGV;
const started: { proc: ChildProcess; dir: string }[] = [];

/** Start the gateway (optionally through `script`, which gives it a pty) and collect its output until `until` matches. */
function run(viaTerminal: boolean, until: RegExp, timeoutMs = 30_000): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'eldergate-tty-'));
  const env = {
    ...process.env, ELDERGATE_DATA_DIR: dir, ELDERGATE_MQTT_PORT: '0', ELDERGATE_HTTP_PORT: '0', ELDERGATE_MQTT_HOST: '127.0.0.1',
    ELDERGATE_HTTP_HOST: '127.0.0.1', ELDERGATE_LOG_LEVEL: 'info', ELDERGATE_ADMIN_PASSWORD: 'quartz-meadow-lantern-4', TERM: 'xterm',
  };
  const argv = viaTerminal ? ['script', '-qfec', GATEWAY.map((a) => `'${a}'`).join(' '), '/dev/null'] : GATEWAY;
  // its own process group, so that stopping it stops `script` and the gateway under it
  const proc = spawn(argv[0]!, argv.slice(1), { cwd: ROOT, env, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
  started.push({ proc, dir });
  let out = '';
  return new Promise((done, fail) => {
    const timer = setTimeout(() => fail(new Error(`no ${until} in ${timeoutMs} ms; output:\n${out.slice(-3000)}`)), timeoutMs);
    proc.stdout!.on('data', (b: Buffer) => {
      out += String(b);
      if (until.test(out)) {
        clearTimeout(timer);
        done(out);
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      fail(new Error(`exited (${code}) before ${until}; output:\n${out.slice(-3000)}`));
    });
  });
}

afterEach(async () => {
  for (const { proc, dir } of started.splice(0)) {
    if (proc.exitCode === null && proc.signalCode === null) {
      const exited = new Promise((r) => proc.once('exit', r));
      process.kill(-proc.pid!, 'SIGTERM');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  }
}, 20_000);

// eslint-disable-next-line no-control-regex
const ANSI = /\u001b\[[0-9;]*m/g;

describe('log format', () => {
  it('on a terminal: readable lines (level name, message, fields), no JSON', async () => {
    const out = await run(true, /eldergate ready[\s\S]*httpPort/);
    const plain = out.replace(ANSI, '').replace(/\r/g, '');
    const ready = plain.split('\n').find((l) => l.includes('eldergate ready'))!;
    expect(ready).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO.*: eldergate ready/);
    expect(plain).toMatch(/\n\s+httpPort: \d+/);
    expect(out).toMatch(ANSI); // coloured
    expect(plain.split('\n').filter((l) => l.trim().startsWith('{"level"'))).toEqual([]);
  }, 60_000);

  it('through a pipe: one JSON object a line, no key twice', async () => {
    const out = await run(false, /"eldergate ready"[^\n]*\n/);
    const lines = out.split('\n').filter(Boolean);
    expect(lines.length).toBeGreaterThan(1);
    for (const line of lines) {
      const parsed = JSON.parse(line) as Record<string, unknown>;
      expect(typeof parsed.level).toBe('number');
      const keys = topLevelKeys(line);
      expect(new Set(keys).size, line).toBe(keys.length);
    }
    expect(out).not.toMatch(ANSI);
  }, 60_000);

  it('a child repeating a key of its parent writes it once, the innermost value', () => {
    const lines: string[] = [];
    const sink = new Writable({ write(chunk, _e, cb) { lines.push(...String(chunk).split('\n').filter(Boolean)); cb(); } });
    const log = createLogger('info', sink as never);
    const notify = log.child({ module: 'notify' });
    notify.child({ module: 'notifier-webhook', url: 'https://x' }).child({ attempt: 1 }).warn({ incidentId: 'i1' }, 'sent unsigned');
    notify.info('plain');
    log.child({ service: 'other' }).info('base key');
    expect(lines).toHaveLength(3);
    for (const line of lines) {
      const keys = topLevelKeys(line);
      expect(new Set(keys).size, line).toBe(keys.length);
    }
    expect(JSON.parse(lines[0]!)).toMatchObject({ level: 40, module: 'notifier-webhook', url: 'https://x', attempt: 1, incidentId: 'i1', msg: 'sent unsigned' });
    expect(JSON.parse(lines[1]!)).toMatchObject({ module: 'notify', msg: 'plain' });
    expect(JSON.parse(lines[2]!)).toMatchObject({ service: 'other' });
  });
});
