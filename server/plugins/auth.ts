// Authentication and roles for every API route: `app.authenticate` reads the bearer token, `requireRole` checks the
// role. Routes declare both in their options, so a route without them is visible in review.
import { createHash, timingSafeEqual } from 'node:crypto';
import fp from 'fastify-plugin';
import type { FastifyReply, FastifyRequest, onRequestHookHandler } from 'fastify';
import type { Role } from '../../core/contracts.js';
import { ForbiddenError, UnauthorizedError } from '../../core/errors.js';
import type { AuthUser, Users } from '../../core/users.js';

declare module 'fastify' {
  interface FastifyRequest {
    user: AuthUser;
  }
  interface FastifyInstance {
    authenticate: onRequestHookHandler;
  }
}

export function bearerToken(req: FastifyRequest): string | undefined {
  const h = req.headers.authorization;
  if (h?.startsWith('Bearer ')) return h.slice(7).trim();
  return undefined;
}

export const authPlugin = fp(
  async (app, opts: { users: Users }) => {
    app.decorateRequest('user', null as unknown as AuthUser);
    app.decorate('authenticate', async (req: FastifyRequest, _reply: FastifyReply) => {
      const token = bearerToken(req);
      if (!token) throw new UnauthorizedError();
      req.user = opts.users.verify(token);
      // the user's share of the API (server/plugins/api-admission.ts), once it is known whose request this is
      await app.apiBudget(req);
    });
  },
  { name: 'eldergate-auth' },
);

/**
 * For what may be public by a setting (/metrics, /docs/json): open when `isPublic`, else an admin's bearer token or,
 * if given, a token of its own (a Prometheus scraper's bearer_token), compared in constant time.
 */
export function publicOrAdmin(app: { authenticate: onRequestHookHandler }, isPublic: boolean, what: string, staticToken?: string): onRequestHookHandler {
  const expected = staticToken ? createHash('sha256').update(staticToken).digest() : undefined;
  return async function (this: unknown, req, reply) {
    if (isPublic) return;
    const token = bearerToken(req);
    if (!token) throw new UnauthorizedError(`${what} needs a token: send Authorization: Bearer <an admin's token${expected ? ' or the configured scrape token' : ''}>`);
    if (expected && timingSafeEqual(createHash('sha256').update(token).digest(), expected)) return;
    await (app.authenticate as (req: FastifyRequest, reply: FastifyReply) => Promise<void>)(req, reply);
    if (req.user.role !== 'admin') throw new ForbiddenError(`${what} needs the role admin; you are ${req.user.role}`);
  };
}

/** preHandlers: authenticated, and one of these roles. */
export function requireRole(app: { authenticate: onRequestHookHandler }, ...roles: Role[]): onRequestHookHandler[] {
  const check: onRequestHookHandler = async (req) => {
    if (!req.user) throw new UnauthorizedError();
    if (!roles.includes(req.user.role)) {
      throw new ForbiddenError(`this needs the role ${roles.join(' or ')}; you are ${req.user.role}`);
    }
  };
  return [app.authenticate, check];
}
