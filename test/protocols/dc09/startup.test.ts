// A keys file that others can read stops start-up (exit 78, the configuration-error code) with a message that names
// the file and the fix and holds no key.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { GATEWAY_ARGV } from '../../helpers/child-gateway.js';

const ROOT = resolve(import.meta.dirname, '..', '..', '..');
const KEY = '00112233445566778899aabbccddeeff';

describe('DC-09 keys file at start-up', () => {
  it('readable by others: the gateway does not start, says chmod 600, shows no key', { timeout: 90_000 }, () => {
    const dir = mkdtempSync(join(tmpdir(), 'dc09-start-'));
    try {
      const keysFile = join(dir, 'keys.json');
      writeFileSync(keysFile, JSON.stringify({ '1234': KEY }));
      chmodSync(keysFile, 0o644);
      const config = join(dir, 'config.json');
      writeFileSync(config, JSON.stringify({ dataDir: join(dir, 'data'), protocols: { dc09: { port: 0, host: '127.0.0.1', keysFile } } }));
      const r = spawnSync(GATEWAY_ARGV[0]!, GATEWAY_ARGV.slice(1), {
        cwd: ROOT,
        env: { ...process.env, ELDERGATE_CONFIG: config, ELDERGATE_MQTT_PORT: '0', ELDERGATE_HTTP_PORT: '0', ELDERGATE_ADMIN_PASSWORD: 'dc09-start-admin-password-1' },
        encoding: 'utf8', timeout: 60_000,
      });
      expect(r.status).toBe(78);
      expect(r.stderr).toMatch(/protocols\.dc09\.keysFile/);
      expect(r.stderr).toMatch(/chmod 600/);
      expect(r.stderr + r.stdout).not.toContain(KEY);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
