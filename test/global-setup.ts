// Before any test: dist/ built from exactly these sources (a no-op when it is fresh). Tests run the gateway's child
// processes as `npm start` does, on the compiled JavaScript (test/helpers/child-gateway.ts GATEWAY_ARGV), and the
// writer thread starts from it; a test run straight after an edit (`npx vitest run`, without `npm test`) must not run
// the build from before the edit.
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';

export default function setup(): void {
  const root = resolve(import.meta.dirname, '..');
  const r = spawnSync(process.execPath, [resolve(root, 'scripts', 'start.mjs'), '--build-only'], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) throw new Error('the build of dist/ failed (above): the tests run the compiled gateway; fix the build first');
}
