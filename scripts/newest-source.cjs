// The newest modification time of the sources `npm run build` compiles. scripts/start.mjs builds dist/ when it is older;
// core/threads.ts starts a worker thread from dist/ (instead of through tsx) only when it is not. One list of what the
// build reads, for both. CommonJS, so that both can read it synchronously, before anything is built.
const { readdirSync, statSync } = require('node:fs');
const { join } = require('node:path');

/** folders the build does not compile (names starting with a dot are skipped too) */
const NOT_BUILT = new Set(['node_modules', 'dist', 'test', 'bench', 'docs', 'data', 'scripts']);

/** newest mtime (ms) of the TypeScript sources and tsconfig files under `dir` */
function newestSource(dir) {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name.startsWith('.') || NOT_BUILT.has(e.name)) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) t = Math.max(t, newestSource(p));
    else if (e.name.endsWith('.ts') || e.name === 'tsconfig.json' || e.name === 'tsconfig.build.json') t = Math.max(t, statSync(p).mtimeMs);
  }
  return t;
}

module.exports = { newestSource };
