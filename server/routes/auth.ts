import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { ROLES } from '../../core/contracts.js';
import type { AppDeps } from '../deps.js';
import { requireRole } from '../plugins/auth.js';
import { ErrorBody } from './common.js';

const UserBody = Type.Object({
  id: Type.String(),
  username: Type.String(),
  role: Type.Union(ROLES.map((r) => Type.Literal(r))),
  unitId: Type.Union([Type.String(), Type.Null()]),
  displayName: Type.Union([Type.String(), Type.Null()]),
});

export const authRoutes: FastifyPluginAsyncTypebox<{ deps: AppDeps }> = async (app, { deps }) => {
  app.post('/api/auth/login', {
    schema: {
      tags: ['auth'],
      summary: 'Log in: returns a bearer token',
      body: Type.Object({ username: Type.String({ minLength: 1, maxLength: 64 }), password: Type.String({ minLength: 1, maxLength: 256 }) }),
      response: { 200: Type.Object({ token: Type.String(), expiresAt: Type.Integer(), ttlMs: Type.Integer(), user: UserBody }), 400: ErrorBody, 401: ErrorBody },
    },
    config: { rateLimited: true },
  }, async (req) => {
    const out = await deps.users.login(req.body.username, req.body.password);
    req.log.info({ username: out.user.username, role: out.user.role }, 'logged in');
    return { ...out, ttlMs: deps.users.ttlMs };
  });

  app.post('/api/auth/renew', {
    schema: {
      tags: ['auth'],
      summary: 'Renew the session: a new token with a fresh expiry, for the user of the current (still valid) token',
      response: { 200: Type.Object({ token: Type.String(), expiresAt: Type.Integer(), ttlMs: Type.Integer(), user: UserBody }), 401: ErrorBody },
    },
    onRequest: app.authenticate,
  }, async (req) => {
    const out = deps.users.issue(req.user);
    req.log.debug({ username: out.user.username }, 'session renewed');
    return { ...out, ttlMs: deps.users.ttlMs };
  });

  app.get('/api/auth/me', {
    schema: { tags: ['auth'], response: { 200: UserBody, 401: ErrorBody } },
    onRequest: app.authenticate,
  }, async (req) => req.user);

  app.post('/api/users', {
    schema: {
      tags: ['users'],
      summary: 'Create a user (admin)',
      body: Type.Object({
        username: Type.String({ minLength: 3, maxLength: 64 }),
        password: Type.String({ minLength: 12, maxLength: 256 }),
        role: Type.Union(ROLES.map((r) => Type.Literal(r))),
        unitId: Type.Optional(Type.Union([Type.String(), Type.Null()])),
        displayName: Type.Optional(Type.String({ maxLength: 100 })),
      }, { additionalProperties: false }),
      response: { 201: UserBody, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 409: ErrorBody },
    },
    onRequest: requireRole(app, 'admin'),
  }, async (req, reply) => {
    // a user bound to a unit that does not exist would see nothing at all
    if (req.body.unitId != null) deps.scope.requireUnit('unitId', req.body.unitId);
    const user = await deps.users.create(req.body);
    reply.status(201);
    return user;
  });

  app.get('/api/users', {
    schema: { tags: ['users'], response: { 200: Type.Object({ items: Type.Array(UserBody) }), 401: ErrorBody, 403: ErrorBody } },
    onRequest: requireRole(app, 'admin'),
  }, async () => ({ items: deps.users.list() }));
};
