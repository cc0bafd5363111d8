import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };

/** Secrets never reach the logs. Paths are fixed here, never taken from users. */
export const REDACT_PATHS = [
  'password',
  'secret',
  'token',
  '*.password',
  '*.secret',
  '*.token',
  '*.passwordHash',
  '*.secretHash',
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  'req.query.token',
  'body.password',
  'body.secret',
];

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'eldergate' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
}
