// The simulator's own errors: a stable `code`, a message that says what was wrong and what to do.
// firmware-sim drives eldergate from outside, so it does not share the gateway's error classes.

export class SimError extends Error {
  constructor(
    readonly code: string,
    message: string,
    options: { cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = new.target.name;
  }
}

/** Bad command-line usage: the CLI prints the message and the command's help, exit code 2. */
export class UsageError extends SimError {
  constructor(message: string) {
    super('SIM_USAGE', message);
  }
}

/** The gateway's HTTP API answered with an error (or could not be reached). */
export class ApiError extends SimError {
  constructor(
    readonly status: number,
    readonly method: string,
    readonly path: string,
    readonly body: unknown,
    message: string,
    options: { cause?: unknown } = {},
  ) {
    super('SIM_API', message, options);
  }
}

/** A credentials file that cannot be used. */
export class CredentialsError extends SimError {
  constructor(message: string) {
    super('SIM_CREDENTIALS', message);
  }
}

export interface ScenarioProblem {
  /** 1-based line and column in the scenario file; 0 when the problem has no place (e.g. an empty file) */
  line: number;
  col: number;
  /** JSON pointer of the offending value, e.g. /timeline/3/for */
  path: string;
  message: string;
}

/** A scenario file with problems: every problem is listed at once, each with its line. */
export class ScenarioError extends SimError {
  constructor(
    readonly file: string,
    readonly problems: ScenarioProblem[],
  ) {
    super(
      'SIM_SCENARIO_INVALID',
      `${file}: ${problems.length} problem(s):\n` +
        problems.map((p) => `  ${file}:${p.line}:${p.col} ${p.path || '/'}: ${p.message}`).join('\n') +
        '\nFix them and run again (docs/simulator.md describes the format).',
    );
  }
}
