// The password policy: long enough, and not one an attacker tries first. Refused: shorter than 12 characters, one
// character or a short pattern repeated, a keyboard/alphabet/digit run, the username (or the username plus a few
// characters), and the ~49,000 most common passwords of the breach corpora that zxcvbn-ts ships
// (@zxcvbn-ts/language-common, 'passwords-common'). Length, not composition rules, is what makes a password
// strong (NIST SP 800-63B §5.1.1.2): no "one digit, one capital" rules here.
import { dictionary } from '@zxcvbn-ts/language-common';

export const PASSWORD_MIN = 12;
export const PASSWORD_MAX = 256;

let common: Set<string> | undefined;
/** Loaded on first use (the list is ~380 kB compressed). */
function commonPasswords(): Set<string> {
  common ??= new Set(dictionary['passwords-common'].map((p) => p.toLowerCase()));
  return common;
}

const RUNS = ['abcdefghijklmnopqrstuvwxyz', '0123456789', 'qwertyuiop', 'asdfghjkl', 'zxcvbnm', '1qaz2wsx3edc4rfv5tgb'];

/** A run of the alphabet, the digits or a keyboard row, forwards or backwards, possibly repeated ("1234567890123"). */
function isRun(pw: string): boolean {
  const lower = pw.toLowerCase();
  for (const run of RUNS) {
    for (const seq of [run, [...run].reverse().join('')]) {
      const start = seq.indexOf(lower[0]!);
      if (start < 0) continue;
      let ok = true;
      for (let i = 0; i < lower.length && ok; i++) ok = lower[i] === seq[(start + i) % seq.length];
      if (ok) return true;
    }
  }
  return false;
}

/** The shortest unit the password repeats ("abcabcabcabc" → 3), or its length if it repeats none. */
function period(pw: string): number {
  for (let p = 1; p <= pw.length / 2; p++) {
    let ok = true;
    for (let i = p; i < pw.length && ok; i++) ok = pw[i] === pw[i - p];
    if (ok) return p;
  }
  return pw.length;
}

/**
 * Why this password is refused, as a sentence saying what to do; undefined if it is acceptable. `username` is the
 * account's own name (a password containing it plus a few characters is the first guess against that account).
 */
export function passwordProblem(password: string, username?: string): string | undefined {
  const advice = 'choose a passphrase of several unrelated words, or let a password manager generate one';
  if (password.length < PASSWORD_MIN) return `it must be at least ${PASSWORD_MIN} characters long (it has ${password.length}): ${advice}`;
  if (password.length > PASSWORD_MAX) return `it must be at most ${PASSWORD_MAX} characters long`;
  const p = period(password);
  if (p === 1) return `it is one character repeated: ${advice}`;
  if (p <= 4) return `it is a short pattern ("${password.slice(0, p)}") repeated: ${advice}`;
  if (isRun(password)) return `it is a run of the alphabet, the digits or a keyboard row: ${advice}`;
  if (username && username.length >= 3) {
    const lower = password.toLowerCase();
    const name = username.toLowerCase();
    if (lower === name) return `it is the username: ${advice}`;
    if (lower.includes(name) && lower.split(name).join('').length < 8) {
      return `it is the username with only a few characters added: ${advice}`;
    }
  }
  if (commonPasswords().has(password.toLowerCase())) {
    return `it is on the list of the most common passwords found in breaches, the first ones an attacker tries: ${advice}`;
  }
  return undefined;
}
