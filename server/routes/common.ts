import { Type } from '@sinclair/typebox';
import { MAX_PAGE_ROWS } from '../../core/limits.js';

export const ErrorBody = Type.Object({
  code: Type.String(),
  message: Type.String(),
  details: Type.Optional(Type.Unknown()),
});

/**
 * The deepest page a list goes to. Numbers from a query string become doubles and then SQLite 64-bit integers: an
 * offset of 2^63 or more cannot be bound (it was a 500), and above 2^53 a double is not even the number sent. Beyond
 * ten million rows, narrow the filter instead.
 */
export const MAX_OFFSET = 10_000_000;

export const Paging = {
  limit: Type.Integer({ minimum: 1, maximum: MAX_PAGE_ROWS, default: 100 }),
  offset: Type.Integer({ minimum: 0, maximum: MAX_OFFSET, default: 0, description: `at most ${MAX_OFFSET}` }),
};

/** A row id or epoch-ms from a query string: an integer a double holds exactly (≤ 2^53 − 1). */
export const SafeInteger = (opts: { minimum?: number; description?: string } = {}) =>
  Type.Integer({ minimum: opts.minimum ?? 0, maximum: Number.MAX_SAFE_INTEGER, ...(opts.description ? { description: opts.description } : {}) });

export const IdParam = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) });

export const LatLon = Type.Object({
  lat: Type.Number({ minimum: -90, maximum: 90 }),
  lon: Type.Number({ minimum: -180, maximum: 180 }),
});

/** One entry of the audit log (core/audit.ts). */
export const AuditEntryBody = Type.Object({
  id: Type.Integer(),
  at: Type.Integer(),
  actorId: Type.String(),
  actor: Type.String(),
  role: Type.Union([Type.String(), Type.Null()]),
  ip: Type.Union([Type.String(), Type.Null()]),
  action: Type.String(),
  targetType: Type.String(),
  targetId: Type.String(),
  details: Type.Object({}, { additionalProperties: true }),
});
