// One error handler: `{ code, message }` below 500, a generic message above (details are in the log, not the answer).
import type { FastifyError, FastifyInstance } from 'fastify';
import { EldergateError, TooManyRequestsError } from '../../core/errors.js';

export function installErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError | EldergateError | Error, request, reply) => {
    if (err instanceof EldergateError && err.status < 500) {
      if (err instanceof TooManyRequestsError) reply.header('retry-after', String(err.retryAfterS));
      if (err.status >= 400 && err.status !== 404) request.log.info({ code: err.code, reason: err.message }, 'request refused');
      return reply.status(err.status).send({ code: err.code, message: err.message, ...(err.details ? { details: err.details } : {}) });
    }
    // "try again": said as it is (the writer thread restarting), so a console retries instead of reporting a fault
    if (err instanceof EldergateError && err.status === 503) {
      request.log.warn({ code: err.code, reason: err.message }, 'request refused for now');
      return reply.status(503).header('retry-after', '2').send({ code: err.code, message: err.message });
    }
    const fe = err as FastifyError;
    if (fe.validation) {
      const problems = oneLinePerChoice(fe.validation);
      const first = problems[0];
      const field = first
        ? (first.instancePath?.replace(/^\//, '').replace(/\//g, '.') ||
            (first.params as { missingProperty?: string; additionalProperty?: string })?.missingProperty ||
            (first.params as { additionalProperty?: string })?.additionalProperty ||
            fe.validationContext)
        : fe.validationContext;
      const message = `${fe.validationContext ?? 'request'}${field && field !== fe.validationContext ? ` field "${field}"` : ''}: ${first?.message ?? fe.message}`;
      return reply.status(400).send({
        code: 'BAD_REQUEST',
        message,
        details: problems.map((v) => ({ field: v.instancePath || (v.params as { missingProperty?: string })?.missingProperty, message: v.message })),
      });
    }
    if (fe.statusCode && fe.statusCode < 500) {
      return reply.status(fe.statusCode).send({ code: fe.code ?? 'BAD_REQUEST', message: fe.message });
    }
    request.log.error({ err }, 'request failed');
    return reply.status(500).send({ code: 'INTERNAL', message: 'internal error: the details are in the gateway log' });
  });
  app.setNotFoundHandler((request, reply) => {
    reply.status(404).send({ code: 'NOT_FOUND', message: `no route ${request.method} ${request.url.split('?')[0]}: see /docs/json for the API` });
  });
}

type ValidationProblem = NonNullable<FastifyError['validation']>[number];

/**
 * A choice among fixed values (a union of literals: a device kind, a status) fails as one `const` error per value and
 * an `anyOf` — "must be equal to constant" nine times. Said once instead, naming the values that are allowed.
 */
function oneLinePerChoice(problems: readonly ValidationProblem[]): ValidationProblem[] {
  const byField = new Map<string, ValidationProblem[]>();
  for (const p of problems) byField.set(p.instancePath, [...(byField.get(p.instancePath) ?? []), p]);
  const out: ValidationProblem[] = [];
  for (const [, group] of byField) {
    const consts = group.filter((p) => p.keyword === 'const');
    const isChoice = consts.length > 0 && group.every((p) => p.keyword === 'const' || p.keyword === 'anyOf');
    if (!isChoice) {
      out.push(...group.map((p) => (p.keyword === 'enum' ? { ...p, message: `must be one of: ${allowed(p).join(', ')}` } : p)));
      continue;
    }
    const values = consts.map((p) => (p.params as { allowedValue?: unknown }).allowedValue);
    out.push({ ...consts[0]!, keyword: 'enum', message: `must be one of: ${values.map(String).join(', ')}` });
  }
  return out;
}

const allowed = (p: ValidationProblem): string[] => ((p.params as { allowedValues?: unknown[] }).allowedValues ?? []).map(String);
