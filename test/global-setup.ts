// Before any test: dist/ built from exactly these sources (a no-op when it is fresh). Tests run the gateway's child
// processes as `npm start` does, on the compiled JavaScript (test/helpers/child-gateway.ts GATEWAY_ARGV), and the
// writer thread starts from it; a test run straight after an edit (`npx vitest run`, without `npm test`) must not run
// the build from before the edit.
import { spawnSync } from 'node:child_process';
import { readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pidsMentioning } from '../ops/cluster/processes.js';

export default function setup(): () => void {
  const root = resolve(import.meta.dirname, '..');
  const r = spawnSync(process.execPath, [resolve(root, 'scripts', 'start.mjs'), '--build-only'], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) throw new Error('the build of dist/ failed (above): the tests run the compiled gateway; fix the build first');
  return removeIdleChromiumProfiles;
}

/**
 * After the run: the profile directories playwright made for Chromium (~5 MB each) that no Chromium uses any more.
 * The console tests keep one browser per worker until the worker exits (test/console/browser.ts); the worker is
 * stopped before playwright can remove its browser's directory. One in use, or made in the last minute (another run's
 * browser starting), is left for a later run.
 */
function removeIdleChromiumProfiles(): void {
  const tmp = tmpdir();
  for (const name of readdirSync(tmp)) {
    const dir = join(tmp, name);
    if (!name.startsWith('playwright_chromiumdev_profile-') || pidsMentioning(`--user-data-dir=${dir}`).length > 0) continue;
    try {
      if (Date.now() - statSync(dir).mtimeMs > 60_000) rmSync(dir, { recursive: true, force: true });
    } catch {
      // gone meanwhile
    }
  }
}
