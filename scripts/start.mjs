#!/usr/bin/env node
// `npm start`: the gateway as compiled JavaScript (production runs no TypeScript loader: tsx's helpers alone were
// 6.7 % of the ingest profile). dist/ is built first when it is missing or a source file is newer than the last
// build, so a fresh clone still needs only `npm install && npm start`. Runs in this process (no wrapper: signals
// from a supervisor reach the gateway itself).
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const stamp = join(root, 'dist', '.built');
const SKIP = new Set(['node_modules', 'dist', 'test', 'bench', 'docs', 'data', '.git', 'scripts']);

/** newest modification time of the sources the build compiles */
function newest(dir) {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name.startsWith('.') || SKIP.has(e.name)) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) t = Math.max(t, newest(p));
    else if (e.name.endsWith('.ts') || e.name === 'tsconfig.json' || e.name === 'tsconfig.build.json') t = Math.max(t, statSync(p).mtimeMs);
  }
  return t;
}

// --build-only: build if needed and stop (`npm run build`, at install and upgrade); --no-build: run what was built
// (a service whose checkout is read-only to it: ops/eldergate.service)
const buildOnly = process.argv.includes('--build-only');
const noBuild = process.argv.includes('--no-build');
process.argv = process.argv.filter((a) => a !== '--build-only' && a !== '--no-build');
const built = existsSync(stamp) && existsSync(join(root, 'dist', 'main.js')) ? statSync(stamp).mtimeMs : 0;
if (noBuild) {
  if (!built) {
    process.stderr.write('eldergate cannot start: dist/ was not built. Run `npm run build` in the checkout (as its owner), then start again.\n');
    process.exit(78);
  }
  if (built < newest(root)) process.stderr.write('eldergate: warning: sources are newer than dist/; run `npm run build` to run them\n');
} else if (built < newest(root)) {
  process.stderr.write('eldergate: compiling to dist/ (once after each change of the sources)…\n');
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], { stdio: 'inherit' });
  if (r.status !== 0) {
    process.stderr.write('eldergate cannot start: the TypeScript build failed (above). Run `npm install`, then `npm start` again.\n');
    process.exit(1);
  }
  writeFileSync(stamp, new Date().toISOString() + '\n');
}
if (!buildOnly) await import(pathToFileURL(join(root, 'dist', 'main.js')).href);
