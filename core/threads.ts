// Starting the gateway's worker threads (the writer, the checkpointer, the KPI reports) from wherever the gateway runs.
import { Worker } from 'node:worker_threads';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const NOT_BUILT = new Set(['node_modules', 'dist', 'test', 'bench', 'docs', 'data', 'scripts']);

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
  const newest = (dir: string): number => {
    let t = 0;
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.name.startsWith('.') || NOT_BUILT.has(e.name)) continue;
      const p = join(dir, e.name);
      if (e.isDirectory()) t = Math.max(t, newest(p));
      else if (e.name.endsWith('.ts') || e.name === 'tsconfig.json' || e.name === 'tsconfig.build.json') t = Math.max(t, statSync(p).mtimeMs);
    }
    return t;
  };
  try {
    const stamp = join(REPO_ROOT, 'dist', '.built');
    fresh = existsSync(stamp) && existsSync(join(REPO_ROOT, 'dist', 'gateway', 'writer', 'worker.js')) && statSync(stamp).mtimeMs >= newest(REPO_ROOT);
  } catch {
    fresh = false;
  }
  return fresh;
}
