// A password read from a file only its owner can read (a service account's: it opens every queue of the cluster, or
// every table of the shared store). Never from the configuration itself, never logged.
import { readFileSync, statSync } from 'node:fs';
import { ConfigError } from './errors.js';

/** `setting`: the configuration key that named the file; `what`: whose password it holds */
export function readSecretFile(file: string, setting: string, what: string): string {
  let mode: number;
  try {
    mode = statSync(file).mode;
  } catch (err) {
    throw new ConfigError([`${setting}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); create it holding ${what}, mode 0600`]);
  }
  if (mode & 0o077) {
    throw new ConfigError([`${setting}: ${file} is readable by others (mode ${(mode & 0o777).toString(8)}); chmod 600 ${file}`]);
  }
  const password = readFileSync(file, 'utf8').trim();
  if (!password) throw new ConfigError([`${setting}: ${file} is empty; write ${what} into it`]);
  return password;
}
