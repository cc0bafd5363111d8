#!/usr/bin/env node
// `npm start`: the gateway as compiled JavaScript (production runs no TypeScript loader: tsx's helpers alone were
// 6.7 % of the ingest profile). dist/ is built first when it is missing or a source file is newer than the last
// build, so a fresh clone still needs only `npm install && npm start`. Runs in this process (no wrapper: signals
// from a supervisor reach the gateway itself).
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createRequire } from 'node:module';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const stamp = join(root, 'dist', '.built');
const { newestSource } = createRequire(import.meta.url)('./newest-source.cjs');

// --build-only: build if needed and stop (`npm run build`, at install and upgrade); --no-build: run what was built
// (a service whose checkout is read-only to it: ops/eldergate.service)
// Each module file costs node a resolution, a stat and an open when a process or thread starts: the gateway's main
// thread loaded ~1,300 files (500 of them @sinclair/typebox's, 230 drizzle-orm's) and every writer thread ~650 again.
// So the thread entry points are bundled over their tsc output: our modules and these two libraries become one file
// each; every other package stays external and loads from node_modules as before (native addons, worker files,
// static assets found beside a package's own code). `import.meta.url` in each module keeps naming the module's own
// compiled file, so paths found from it (migrations, register maps, the writer's worker file) are unchanged, and a
// module's "am I the program?" check stays false inside the bundle.
const BUNDLED_PACKAGES = ['@sinclair/typebox', 'drizzle-orm'];
const ENTRIES = ['main.js', 'gateway/writer/worker.js', 'gateway/writer/checkpointer.js', 'response/kpi-thread.js'];

async function bundleEntries() {
  const { build } = await import('esbuild');
  const dist = join(root, 'dist');
  for (const entry of ENTRIES) {
    const file = join(dist, entry);
    const out = dirname(file);
    const classes = new Set();
    const result = await build({
      entryPoints: [file],
      bundle: true,
      write: false,
      format: 'esm',
      platform: 'node',
      target: 'node20',
      logLevel: 'silent',
      plugins: [{
        name: 'eldergate-bundle',
        setup(b) {
          b.onResolve({ filter: /^[^./]/ }, (args) => {
            if (args.path.startsWith('node:')) return { external: true };
            const pkg = args.path.startsWith('@') ? args.path.split('/').slice(0, 2).join('/') : args.path.split('/')[0];
            return BUNDLED_PACKAGES.includes(pkg) ? undefined : { external: true };
          });
          b.onLoad({ filter: /\.js$/ }, async (args) => {
            if (!args.path.startsWith(dist + '/')) return undefined;
            let contents = await readFile(args.path, 'utf8');
            for (const m of contents.matchAll(/^export class (\w+)/gm)) classes.add(m[1]);
            if (contents.includes('import.meta.url')) {
              const rel = relative(out, args.path).split('\\').join('/');
              contents = contents.replaceAll('import.meta.url', `new URL(${JSON.stringify(rel.startsWith('.') ? rel : './' + rel)}, import.meta.url).href`);
            }
            return { contents, loader: 'js' };
          });
        },
      }],
    });
    const text = result.outputFiles[0].text;
    // an error's name is its class's (core/errors.ts: this.name = new.target.name) and crosses the thread boundary by
    // name: a class esbuild renamed for a clash between modules (Foo → Foo2) would change it, so that fails the build
    for (const name of classes) {
      if (text.includes(`${name}2 = class`) || text.includes(`class ${name}2 `)) {
        throw new Error(`bundling ${entry}: two modules declare a class ${name}, and esbuild renamed one (${name}2), which changes its .name: rename one of them`);
      }
    }
    writeFileSync(file, text);
  }
}

const buildOnly = process.argv.includes('--build-only');
const noBuild = process.argv.includes('--no-build');
process.argv = process.argv.filter((a) => a !== '--build-only' && a !== '--no-build');
const built = existsSync(stamp) && existsSync(join(root, 'dist', 'main.js')) ? statSync(stamp).mtimeMs : 0;
if (noBuild) {
  if (!built) {
    process.stderr.write('eldergate cannot start: dist/ was not built. Run `npm run build` in the checkout (as its owner), then start again.\n');
    process.exit(78);
  }
  if (built < newestSource(root)) process.stderr.write('eldergate: warning: sources are newer than dist/; run `npm run build` to run them\n');
} else if (built < newestSource(root)) {
  process.stderr.write('eldergate: compiling to dist/ (once after each change of the sources)…\n');
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], { stdio: 'inherit' });
  if (r.status !== 0) {
    process.stderr.write('eldergate cannot start: the TypeScript build failed (above). Run `npm install`, then `npm start` again.\n');
    process.exit(1);
  }
  try {
    await bundleEntries();
  } catch (err) {
    process.stderr.write(`eldergate cannot start: bundling dist/ failed: ${err.message}\nRun \`npm install\`, then \`npm start\` again.\n`);
    process.exit(1);
  }
  writeFileSync(stamp, new Date().toISOString() + '\n');
}
if (!buildOnly) await import(pathToFileURL(join(root, 'dist', 'main.js')).href);
