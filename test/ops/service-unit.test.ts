// The systemd unit shipped in ops/ is one systemd accepts, runs what the repo has, and its example environment file
// holds only real settings (an unknown ELDERGATE_* stops start-up).
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadConfig } from '../../core/config.js';
import { GATEWAY_ARGV } from '../helpers/child-gateway.js';
import { NODE_FLAGS } from '../../core/node-flags.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
const unit = readFileSync(join(ROOT, 'ops', 'eldergate.service'), 'utf8');

describe('ops/eldergate.service', () => {
  it('systemd-analyze verify accepts it (with the checkout and node of this machine in place of /opt/eldergate)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'eg-unit-'));
    const envFile = join(dir, 'eldergate.env');
    writeFileSync(envFile, readFileSync(join(ROOT, 'ops', 'eldergate.env.example')));
    const local = unit
      .replaceAll('/opt/eldergate', ROOT)
      .replace('/usr/bin/node', process.execPath)
      .replace('/etc/eldergate/eldergate.env', envFile);
    const file = join(dir, 'eldergate.service');
    writeFileSync(file, local);
    const r = spawnSync('systemd-analyze', ['verify', '--man=no', file], { encoding: 'utf8', timeout: 60_000 });
    expect(r.error, 'systemd-analyze is part of Debian\'s systemd package: apt-get install systemd').toBeUndefined();
    // verify reports problems of this unit by its path; other units of the host are not our business
    const ours = `${r.stdout}\n${r.stderr}`.split('\n').filter((l) => l.includes('eldergate.service'));
    expect(ours).toEqual([]);
    expect(r.status).toBe(0);
  });

  it('runs the compiled gateway without building (the checkout is read-only to the service) and never retries a config error', () => {
    expect(unit).toMatch(new RegExp(`^ExecStart=/usr/bin/node ${NODE_FLAGS.join(' ')} /opt/eldergate/scripts/start\\.mjs --no-build$`, 'm'));
    expect(unit).toMatch(/^RestartPreventExitStatus=78$/m);
    expect(unit).toMatch(/^ProtectSystem=strict$/m);
    expect(unit).toMatch(/^StateDirectory=eldergate$/m);
    // the data directory the example env sets is inside the StateDirectory, the only place the service may write
    const env = readFileSync(join(ROOT, 'ops', 'eldergate.env.example'), 'utf8');
    expect(env).toMatch(/^ELDERGATE_DATA_DIR=\/var\/lib\/eldergate\//m);
  });

  it('npm start, the service, cluster mode, the tests and the bench run node with the same V8 flags (core/node-flags.ts)', () => {
    expect(NODE_FLAGS.length).toBeGreaterThan(0);
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    expect(pkg.scripts.start).toBe(`node ${NODE_FLAGS.join(' ')} scripts/start.mjs`);
    expect(unit).toContain(`/usr/bin/node ${NODE_FLAGS.join(' ')} /opt/eldergate/scripts/start.mjs`);
    expect(GATEWAY_ARGV.slice(1, 1 + NODE_FLAGS.length)).toEqual(NODE_FLAGS);
    // cluster mode and the bench take them from the same file
    expect(readFileSync(join(ROOT, 'ops', 'cluster', 'cli.ts'), 'utf8')).toContain('...NODE_FLAGS');
    expect(readFileSync(join(ROOT, 'bench', 'lib', 'targets.ts'), 'utf8')).toContain('...NODE_FLAGS');
  });

  it('ops/eldergate.env.example holds only real settings, commented ones included', () => {
    const env: Record<string, string> = {};
    for (const line of readFileSync(join(ROOT, 'ops', 'eldergate.env.example'), 'utf8').split('\n')) {
      const m = /^#?(ELDERGATE_[A-Z0-9_]+)=(.*)$/.exec(line);
      if (!m) continue;
      // a commented variable with no value gets a plausible one so that its name is checked too
      env[m[1]!] = m[2] || (m[1]!.endsWith('_FILE') || m[1] === 'ELDERGATE_CONFIG' ? '' : 'Example-Admin-Password-1');
    }
    delete env.ELDERGATE_CONFIG;
    delete env.ELDERGATE_TLS_CERT_FILE;
    delete env.ELDERGATE_TLS_KEY_FILE;
    expect(Object.keys(env).length).toBeGreaterThan(8);
    const config = loadConfig(env);
    expect(config.protocols.watch.port).toBe(5093);
    expect(config.publicHost).toBe('gateway.example.city');
  });
});

describe('scripts/start.mjs --no-build', () => {
  it('refuses to start (exit 78, saying what to run) when dist/ was never built', () => {
    const dir = mkdtempSync(join(tmpdir(), 'eg-nobuild-'));
    // a copy of the start script in a checkout-shaped folder without dist/
    const scripts = join(dir, 'scripts');
    spawnSync('mkdir', ['-p', scripts]);
    for (const f of ['start.mjs', 'newest-source.cjs']) writeFileSync(join(scripts, f), readFileSync(join(ROOT, 'scripts', f)));
    const r = spawnSync(process.execPath, [join(scripts, 'start.mjs'), '--no-build'], { encoding: 'utf8', timeout: 30_000 });
    expect(r.status).toBe(78);
    expect(r.stderr).toMatch(/npm run build/);
  });
});
