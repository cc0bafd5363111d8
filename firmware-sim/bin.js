#!/usr/bin/env node
// `eldergate-sim` (package.json "bin"): the simulator is TypeScript source, so load tsx's ESM hooks in this
// process and import the CLI. Works from any directory: tsx and the CLI resolve next to this file.
import { register } from 'tsx/esm/api';

register();
await import('./cli.ts');
