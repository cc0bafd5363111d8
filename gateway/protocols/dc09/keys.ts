// Per-account AES keys of encrypted DC-09 lines. Kept like the gateway's other secrets: in a file of their own
// (`protocols.dc09.keysFile`, JSON `{ "<account>": "<hex key>" }`) that only the gateway's user may read — start-up
// is refused otherwise — and never written to a log, an error, a metric or the rejects table. Every message names
// the account and the file, never a key. The file is read again when it changes (checked at most every few seconds,
// on a miss), so a technician adding a panel does not restart the receiving centre; a changed file that is invalid
// is ignored with an error and the keys already loaded stay in use.
import { readFileSync, statSync } from 'node:fs';
import { ConfigError } from '../../../core/errors.js';

/** A configuration error: start-up stops with exit 78 and this message (main.ts), as for any bad setting. */
export class Dc09KeyError extends ConfigError {
  constructor(problem: string) {
    super([problem]);
  }
}

const ACCOUNT = /^[0-9A-F]{3,16}$/;
const KEY = /^(?:[0-9A-F]{32}|[0-9A-F]{48}|[0-9A-F]{64})$/;
const RECHECK_MS = 5000;

export interface KeyStore {
  /** the account's key, or undefined when its line is not encrypted */
  get(account: string): Buffer | undefined;
  /** accounts with a key (for start-up notes; never the keys) */
  size(): number;
  /** read the file again if it changed (a key that does not decrypt may have been replaced) */
  refresh(): void;
}

/** Read and check the file: mode, JSON shape, each account and key. Throws Dc09KeyError naming what to fix. */
export function readKeysFile(path: string): Map<string, Buffer> {
  let st;
  try {
    st = statSync(path);
  } catch (err) {
    throw new Dc09KeyError(`protocols.dc09.keysFile: cannot read "${path}" (${(err as NodeJS.ErrnoException).code ?? 'error'}): create it (JSON { "<account>": "<hex key>" }, mode 600) or unset the setting`);
  }
  if (!st.isFile()) throw new Dc09KeyError(`protocols.dc09.keysFile: "${path}" is not a file`);
  if ((st.mode & 0o077) !== 0) {
    throw new Dc09KeyError(
      `protocols.dc09.keysFile: "${path}" is readable or writable by group or others (mode ${(st.mode & 0o777).toString(8)}); ` +
        `the AES keys of the alarm lines must be readable by the gateway's user only: chmod 600 "${path}"`,
    );
  }
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    // the parser's message may quote the file's content: a key must not reach the log
    throw new Dc09KeyError(`protocols.dc09.keysFile: "${path}" is not valid JSON; expected { "<account>": "<hex key>" }`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    throw new Dc09KeyError(`protocols.dc09.keysFile: "${path}" must hold one JSON object { "<account>": "<hex key>" }`);
  }
  const keys = new Map<string, Buffer>();
  const problems: string[] = [];
  for (const [acct, key] of Object.entries(doc)) {
    const account = acct.toUpperCase();
    if (!ACCOUNT.test(account)) {
      problems.push(`account "${acct.slice(0, 20)}" is not 3-16 hex digits`);
      continue;
    }
    if (typeof key !== 'string' || !KEY.test(key.toUpperCase())) {
      problems.push(`the key of account ${account} is not 32, 48 or 64 hex digits (AES-128/192/256)`);
      continue;
    }
    if (keys.has(account)) problems.push(`account ${account} is listed twice`);
    keys.set(account, Buffer.from(key, 'hex'));
  }
  if (problems.length) throw new Dc09KeyError(`protocols.dc09.keysFile "${path}": ${problems.join('; ')}`);
  return keys;
}

export function emptyKeyStore(): KeyStore {
  return { get: () => undefined, size: () => 0, refresh: () => undefined };
}

/**
 * The keys of `path`, read now (throws Dc09KeyError: start-up stops with that message) and again when the file
 * changes. `onReloadError` hears why a changed file was not taken (message only, no key).
 */
export function loadKeyStore(path: string, now: () => number, onReload: (info: { ok: boolean; message: string; accounts: number }) => void): KeyStore {
  let keys = readKeysFile(path);
  let stamp = stampOf(path);
  let checkedAt = now();
  const refresh = () => {
    if (now() - checkedAt < RECHECK_MS) return;
    checkedAt = now();
    const s = stampOf(path);
    if (s === stamp) return;
    stamp = s;
    try {
      keys = readKeysFile(path);
      onReload({ ok: true, message: `keys file changed: ${keys.size} accounts`, accounts: keys.size });
    } catch (err) {
      onReload({ ok: false, message: `${(err as Error).message}; the keys loaded before stay in use`, accounts: keys.size });
    }
  };
  return {
    get(account) {
      const k = keys.get(account.toUpperCase());
      if (k) return k;
      refresh();
      return keys.get(account.toUpperCase());
    },
    size: () => keys.size,
    refresh,
  };
}

function stampOf(path: string): string {
  try {
    const s = statSync(path);
    return `${s.mtimeMs}:${s.size}:${s.ino}`;
  } catch {
    return 'missing';
  }
}
