// A base error with a stable `code`, one subclass per failure; `cause` is kept (undici style).

export class EldergateError extends Error {
  /** HTTP status the API answers with */
  readonly status: number;
  constructor(
    readonly code: string,
    message: string,
    options: { status?: number; cause?: unknown; details?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = new.target.name;
    this.status = options.status ?? 500;
    this.details = options.details;
  }
  readonly details: unknown;
}

export class ConfigError extends EldergateError {
  constructor(readonly problems: string[]) {
    super(
      'CONFIG_INVALID',
      `the configuration has ${problems.length} problem(s):\n  - ${problems.join('\n  - ')}\n` +
        'Fix them (environment variables ELDERGATE_*, or the JSON file in ELDERGATE_CONFIG) and start again.',
    );
  }
}

export class ValidationError extends EldergateError {
  constructor(message: string, details?: unknown) {
    super('BAD_REQUEST', message, { status: 400, details });
  }
}

export class UnauthorizedError extends EldergateError {
  constructor(message = 'log in first: send Authorization: Bearer <token> from POST /api/auth/login') {
    super('UNAUTHORIZED', message, { status: 401 });
  }
}

export class ForbiddenError extends EldergateError {
  constructor(message: string) {
    super('FORBIDDEN', message, { status: 403 });
  }
}

export class NotFoundError extends EldergateError {
  constructor(what: string, id: string) {
    super('NOT_FOUND', `${what} "${id}" does not exist`, { status: 404 });
  }
}

/** Over a rate: the answer is 429 with Retry-After (seconds), set by the API's error handler from `retryAfterS`. */
export class TooManyRequestsError extends EldergateError {
  constructor(message: string, readonly retryAfterS: number) {
    super('TOO_MANY_REQUESTS', message, { status: 429 });
  }
}

export class ConflictError extends EldergateError {
  constructor(message: string, details?: unknown) {
    super('CONFLICT', message, { status: 409, details });
  }
}
