// Starting the gateway's worker threads (the writer, the checkpointer, the KPI reports) from wherever the gateway runs.
import { Worker } from 'node:worker_threads';
import { existsSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

/**
 * The thread `name` in the folder of the module `callerUrl` (pass `import.meta.url`). Compiled (npm start): the .js
 * beside the caller; from source (tests, start:dev): through tsx, whose loader is registered inside the thread first (a
 * worker does not inherit the parent's hooks) — or, with a build of exactly these sources (npm test builds first), the
 * compiled thread, which starts in a fraction of the time tsx needs to load the domain again in every new thread.
 */
export function startThread(callerUrl: string, name: string, data: unknown, opts: { resourceLimits?: Worker['resourceLimits'] } = {}): Worker {
  const here = fileURLToPath(callerUrl);
  let fromSource = here.endsWith('.ts');
  let file = new URL(`./${name}.${fromSource ? 'ts' : 'js'}`, callerUrl);
  if (fromSource && freshBuild()) {
    fromSource = false;
    file = pathToFileURL(join(REPO_ROOT, 'dist', relative(REPO_ROOT, dirname(here)), `${name}.js`));
  }
  // execArgv []: the parent's own loaders (a benchmark's probe, tsx's --import) are not the thread's
  const options = { workerData: data, execArgv: [], ...(opts.resourceLimits ? { resourceLimits: opts.resourceLimits } : {}) };
  return fromSource
    ? new Worker(`import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((m) => { m.register(); return import(${JSON.stringify(file.href)}); })`,
      { eval: true, ...options })
    : new Worker(file, options);
}

let fresh: boolean | undefined;

/** dist/ was built after the last change of any source it compiles (scripts/start.mjs writes dist/.built) */
function freshBuild(): boolean {
  if (fresh !== undefined) return fresh;
  // the build's own list of what it compiles (scripts/newest-source.cjs, also read by scripts/start.mjs)
  const { newestSource } = createRequire(import.meta.url)(join(REPO_ROOT, 'scripts', 'newest-source.cjs')) as { newestSource(dir: string): number };
  try {
    const stamp = join(REPO_ROOT, 'dist', '.built');
    fresh = existsSync(stamp) && existsSync(join(REPO_ROOT, 'dist', 'gateway', 'writer', 'worker.js')) && statSync(stamp).mtimeMs >= newestSource(REPO_ROOT);
  } catch {
    fresh = false;
  }
  return fresh;
}
