// eldergate runs in the bench as an operator runs it: compiled JavaScript (`npm start` → dist/main.js, no tsx in the
// process; tsx's helpers alone were 6.7 % of the ingest profile). dist/ is built first when stale, by the same script
// `npm start` uses. The bench's probe (event-loop delay, GC, CPU profile over IPC) is TypeScript: it is transpiled once
// per run into a temporary .mjs so the gateway process loads no TypeScript tooling at all.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import ts from 'typescript';

const ROOT = resolve(import.meta.dirname, '..', '..');
export const COMPILED_MAIN = 'dist/main.js';

let built = false;
let probeUrl: string | null = null;

/** `npm run build` (scripts/start.mjs --build-only: compiles only when a source is newer than dist/) */
export function ensureBuilt(): void {
  if (built) return;
  const r = spawnSync(process.execPath, [join(ROOT, 'scripts', 'start.mjs'), '--build-only'], { cwd: ROOT, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`the bench runs eldergate compiled, and \`npm run build\` failed (exit ${r.status}): ${(r.stderr || r.stdout).trim().split('\n').slice(-5).join(' | ')}`);
  built = true;
}

/** bench/lib/probe.ts as plain JavaScript, for `node --import` into the compiled gateway */
export function probeModuleUrl(): string {
  if (probeUrl) return probeUrl;
  const src = readFileSync(join(ROOT, 'bench', 'lib', 'probe.ts'), 'utf8');
  const out = ts.transpileModule(src, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText;
  const file = join(mkdtempSync(join(tmpdir(), 'eldergate-bench-probe-')), 'probe.mjs');
  writeFileSync(file, out);
  probeUrl = pathToFileURL(file).href;
  return probeUrl;
}
