// Accounts: login (throttled, server/plugins/login-throttle.ts), renewal, logout, password change, and the admin's
// user management. Logout, a password change or reset, disabling a user and changing their role or unit each revoke
// every token of that user at once (core/users.ts, the token generation), on the API and on open WebSockets.
import type { FastifyInstance } from 'fastify';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { ROLES } from '../../core/contracts.js';
import { auditActor } from '../../core/audit.js';
import { UnauthorizedError, ValidationError } from '../../core/errors.js';
import { PASSWORD_MAX, PASSWORD_MIN } from '../../core/password-policy.js';
import type { AppDeps } from '../deps.js';
import { requireRole } from '../plugins/auth.js';
import { loginThrottle } from '../plugins/login-throttle.js';
import { ErrorBody, IdParam } from './common.js';

const UserBody = Type.Object({
  id: Type.String(),
  username: Type.String(),
  role: Type.Union(ROLES.map((r) => Type.Literal(r))),
  unitId: Type.Union([Type.String(), Type.Null()]),
  displayName: Type.Union([Type.String(), Type.Null()]),
});
const UserRecordBody = Type.Object({ ...UserBody.properties, disabled: Type.Boolean() });
const Session = Type.Object({ token: Type.String(), expiresAt: Type.Integer(), ttlMs: Type.Integer(), user: UserBody });
const Password = Type.String({ minLength: PASSWORD_MIN, maxLength: PASSWORD_MAX, description: `${PASSWORD_MIN}–${PASSWORD_MAX} characters; not the username, one character repeated, a run or a common password` });

export const authRoutes: FastifyPluginAsyncTypebox<{ deps: AppDeps }> = async (app, { deps }) => {
  const throttle = loginThrottle(app as unknown as FastifyInstance, deps.config.auth);
  app.post('/api/auth/login', {
    schema: {
      tags: ['auth'],
      summary: 'Log in: returns a bearer token',
      body: Type.Object({ username: Type.String({ minLength: 1, maxLength: 64 }), password: Type.String({ minLength: 1, maxLength: 256 }) }),
      response: { 200: Session, 400: ErrorBody, 401: ErrorBody, 429: ErrorBody },
    },
    onRequest: throttle.perAddress,
    preHandler: throttle.beforeLogin,
  }, async (req) => {
    let out;
    try {
      out = await deps.users.login(req.body.username, req.body.password);
    } catch (err) {
      if (err instanceof UnauthorizedError) await throttle.failed(req);
      throw err;
    }
    throttle.succeeded(req);
    req.log.info({ username: out.user.username, role: out.user.role }, 'logged in');
    return { ...out, ttlMs: deps.users.ttlMs };
  });

  app.post('/api/auth/logout', {
    schema: {
      tags: ['auth'],
      summary: 'Log out: every token of this user stops working at once (all their consoles and open streams)',
      response: { 204: Type.Null(), 401: ErrorBody },
    },
    onRequest: app.authenticate,
  }, async (req, reply) => {
    await deps.store.write(() => {
      deps.users.revokeTokens(req.user.id);
      deps.audit.record({ actor: auditActor(req), action: 'user.logout', target: { type: 'user', id: req.user.id }, details: { sessionsRevoked: true } });
    });
    req.log.info({ username: req.user.username }, 'logged out: tokens revoked');
    return reply.status(204).send(null);
  });

  app.post('/api/auth/password', {
    schema: {
      tags: ['auth'],
      summary: 'Change your own password (with the current one): every other session of yours ends; the answer is a new session',
      body: Type.Object({ oldPassword: Type.String({ minLength: 1, maxLength: PASSWORD_MAX }), newPassword: Password }, { additionalProperties: false }),
      response: { 200: Session, 400: ErrorBody, 401: ErrorBody },
    },
    onRequest: app.authenticate,
  }, async (req) => {
    const out = await deps.users.changePassword(req.user.id, req.body.oldPassword, req.body.newPassword);
    await deps.audit.append({ actor: auditActor(req), action: 'user.password-change', target: { type: 'user', id: req.user.id }, details: { sessionsRevoked: true } }, req.log);
    req.log.info({ username: req.user.username }, 'password changed: other sessions revoked');
    return { ...out, ttlMs: deps.users.ttlMs };
  });

  app.post('/api/auth/renew', {
    schema: {
      tags: ['auth'],
      summary: 'Renew the session: a new token with a fresh expiry, for the user of the current (still valid) token',
      response: { 200: Type.Object({ token: Type.String(), expiresAt: Type.Integer(), ttlMs: Type.Integer(), user: UserBody }), 401: ErrorBody },
    },
    // renewal needs a token that still verifies (generation, disabled, expiry): it can never outlive a revocation
    onRequest: app.authenticate,
  }, async (req) => {
    const out = deps.users.issue(req.user);
    req.log.debug({ username: out.user.username }, 'session renewed');
    return { ...out, ttlMs: deps.users.ttlMs };
  });

  app.get('/api/auth/me', {
    schema: { tags: ['auth'], summary: 'Who the token belongs to: username and role', response: { 200: UserBody, 401: ErrorBody } },
    onRequest: app.authenticate,
  }, async (req) => req.user);

  app.post('/api/users', {
    schema: {
      tags: ['users'],
      summary: 'Create a user (admin)',
      body: Type.Object({
        username: Type.String({ minLength: 3, maxLength: 64 }),
        password: Password,
        role: Type.Union(ROLES.map((r) => Type.Literal(r))),
        unitId: Type.Optional(Type.Union([Type.String(), Type.Null()])),
        displayName: Type.Optional(Type.String({ maxLength: 100 })),
      }, { additionalProperties: false }),
      response: { 201: UserBody, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 409: ErrorBody },
    },
    onRequest: requireRole(app, 'admin'),
  }, async (req, reply) => {
    // a user bound to a unit that does not exist would see nothing at all
    const unitId = req.body.unitId;
    const requireUnit = () => { if (unitId != null) deps.scope.requireUnit('unitId', unitId); };
    requireUnit();
    // and again in the write's own transaction (the password's hashing comes between)
    const user = await deps.users.create(req.body, requireUnit);
    await deps.audit.append({ actor: auditActor(req), action: 'user.create', target: { type: 'user', id: user.id }, details: { username: user.username, role: user.role, unitId: user.unitId } }, req.log);
    reply.status(201);
    return user;
  });

  app.get('/api/users', {
    schema: { tags: ['users'], summary: 'List the accounts (admin)', response: { 200: Type.Object({ items: Type.Array(UserRecordBody) }), 401: ErrorBody, 403: ErrorBody } },
    onRequest: requireRole(app, 'admin'),
  }, async () => ({ items: deps.users.list() }));

  app.patch('/api/users/:id', {
    schema: {
      tags: ['users'],
      summary: 'Change a user (admin): role, unit, display name, disabled. A change of role, unit or disabled ends their sessions at once',
      params: IdParam,
      body: Type.Object({
        role: Type.Optional(Type.Union(ROLES.map((r) => Type.Literal(r)))),
        unitId: Type.Optional(Type.Union([Type.String({ maxLength: 64 }), Type.Null()], { description: 'a unit that exists, or null for none (sees everything)' })),
        displayName: Type.Optional(Type.Union([Type.String({ maxLength: 100 }), Type.Null()])),
        disabled: Type.Optional(Type.Boolean()),
      }, { additionalProperties: false, minProperties: 1 }),
      response: { 200: UserRecordBody, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 409: ErrorBody },
    },
    onRequest: requireRole(app, 'admin'),
  }, async (req) => {
    // "" is not "no unit": a user with no unit sees everything, so that must be said with null, on purpose
    if (req.body.unitId === '') throw new ValidationError('unitId: empty; give the id of a unit, or null for none (sees every unit)', { field: 'unitId' });
    const { user, changed, revoked } = await deps.store.write(() => {
      // checked in the write's own transaction: the unit cannot be deleted between the check and the change
      if (typeof req.body.unitId === 'string') deps.scope.requireUnit('unitId', req.body.unitId);
      const before = deps.users.record(req.params.id);
      const out = deps.users.update(req.params.id, req.body);
      if (out.changed.length) {
        const pick = (u: typeof before) => Object.fromEntries(out.changed.map((k) => [k, u[k as keyof typeof u]]));
        // a disable or enable is its own verb (the one an investigator looks for); other changes ride along in details
        const action = out.changed.includes('disabled') ? (out.user.disabled ? 'user.disable' : 'user.enable') : 'user.update';
        deps.audit.record({ actor: auditActor(req), action, target: { type: 'user', id: out.user.id }, details: { username: out.user.username, before: pick(before), after: pick(out.user), sessionsRevoked: out.revoked } });
      }
      return out;
    });
    if (changed.length) req.log.info({ by: req.user.username, username: user.username, changed, revoked }, 'user changed');
    return user;
  });

  app.post('/api/users/:id/reset-password', {
    schema: {
      tags: ['users'],
      summary: "Set a user's password (admin): every session of that user ends at once",
      params: IdParam,
      body: Type.Object({ password: Password }, { additionalProperties: false }),
      response: { 200: UserRecordBody, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody },
    },
    onRequest: requireRole(app, 'admin'),
  }, async (req) => {
    const user = await deps.users.resetPassword(req.params.id, req.body.password);
    await deps.audit.append({ actor: auditActor(req), action: 'user.password-reset', target: { type: 'user', id: user.id }, details: { username: user.username, sessionsRevoked: true } }, req.log);
    req.log.info({ by: req.user.username, username: user.username }, 'password reset: sessions revoked');
    return user;
  });
};
