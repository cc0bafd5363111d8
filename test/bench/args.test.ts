// The bench's command line: a wrong option says what to use (fast; the smoke run itself is `npm run bench:smoke`).
import { describe, it, expect } from 'vitest';
import { parseArgs } from '../../bench/run.js';

describe('npm run bench options', () => {
  it('refuses unknown options with a message that says what to use', () => {
    expect(() => parseArgs(['--fast'])).toThrow(/unknown option --fast: use --full/);
    expect(() => parseArgs(['--only=7'])).toThrow(/figure numbers 1–6/);
    expect(() => parseArgs(['--systems=emqx'])).toThrow(/unknown emqx/);
  });
});
