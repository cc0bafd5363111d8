import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type, type TSchema } from '@sinclair/typebox';
import { auditActor } from '../../core/audit.js';
import { ForbiddenError } from '../../core/errors.js';
import type { AuthUser } from '../../core/users.js';
import type { AppDeps } from '../deps.js';
import { requireRole } from '../plugins/auth.js';
import { requireChannel } from '../../response/notifiers/channels.js';
import { ErrorBody, IdParam, LatLon, Paging } from './common.js';

const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);

const Contact = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 100 }),
  relation: Type.Optional(Type.String({ maxLength: 50 })),
  phone: Type.Optional(Type.String({ maxLength: 30 })),
  // a notification channel's name (an admin configures channels, notifiers.channels), checked in the handler so
  // that the 400 can list the channels there are; a URL is refused (docs/security.md, "Notification channels")
  webhook: Type.Optional(Type.String({ maxLength: 500, description: 'name of a configured notification channel' })),
  /** the contact's id at the channel's receiver (e.g. the family app's user id); sent in the JSON, not a URL */
  recipient: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
}, { additionalProperties: false });

const SafeZone = Type.Union([
  Type.Object({ type: Type.Literal('circle'), center: LatLon, radiusM: Type.Number({ minimum: 10, maximum: 100000 }) }, { additionalProperties: false }),
  Type.Object({ type: Type.Literal('polygon'), points: Type.Array(LatLon, { minItems: 3, maxItems: 200 }) }, { additionalProperties: false }),
]);

const ResidentFields = {
  name: Type.String({ minLength: 1, maxLength: 200 }),
  address: Type.Optional(Nullable(Type.String({ maxLength: 500 }))),
  unitId: Type.Optional(Nullable(Type.String({ maxLength: 64 }))),
  contacts: Type.Optional(Type.Array(Contact, { maxItems: 20 })),
  safeZone: Type.Optional(Nullable(SafeZone)),
  home: Type.Optional(Nullable(LatLon)),
  noMovementSeconds: Type.Optional(Nullable(Type.Integer({ minimum: 60, maximum: 7 * 86400 }))),
  checkInBy: Type.Optional(Nullable(Type.String({ pattern: '^([01][0-9]|2[0-3]):[0-5][0-9]$' }))),
  notes: Type.Optional(Nullable(Type.String({ maxLength: 5000 }))),
};

export const ResidentBody = Type.Object({
  id: Type.String(),
  name: Type.String(),
  address: Nullable(Type.String()),
  unitId: Nullable(Type.String()),
  contacts: Type.Array(Contact),
  safeZone: Nullable(SafeZone),
  home: Nullable(LatLon),
  noMovementSeconds: Nullable(Type.Integer()),
  checkInBy: Nullable(Type.String()),
  notes: Nullable(Type.String()),
  test: Type.Boolean({ description: 'created by a test run (firmware-sim): not a person in care' }),
  createdAt: Type.Integer(),
  updatedAt: Type.Integer(),
});

export const residentRoutes: FastifyPluginAsyncTypebox<{ deps: AppDeps }> = async (app, { deps }) => {
  const { registry } = deps;
  const writers = requireRole(app, 'admin', 'technician', 'operator');
  const readers = requireRole(app, 'admin', 'technician', 'operator', 'steward');

  // the same rule as for incidents: whoever may see an incident may see its resident and her contacts
  const checkUnit = (user: AuthUser, unitId: string | null | undefined) => {
    if (!deps.scope.canSee(user, unitId)) throw new ForbiddenError(`unit ${unitId ?? '(none)'} is outside your units`);
  };
  // a resident placed in a unit that does not exist would raise alarms nobody below the admin may see
  const knownUnit = (unitId: string | null | undefined) => {
    if (unitId != null) deps.scope.requireUnit('unitId', unitId);
  };
  // notifications go only to channels an admin configured: never to a URL an operator typed
  const knownChannels = (contacts: { webhook?: string | undefined }[] | undefined) => {
    contacts?.forEach((c, i) => requireChannel(deps.config, `contacts[${i}].webhook`, c.webhook));
  };

  app.post('/api/residents', {
    schema: {
      tags: ['residents'], summary: 'Register a resident',
      body: Type.Object({
        ...ResidentFields,
        test: Type.Optional(Type.Boolean({ description: "a test run's resident (admin or technician only); set only here" })),
      }, { additionalProperties: false }),
      response: { 201: ResidentBody, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody },
    },
    onRequest: writers,
  }, async (req, reply) => {
    // every check and write below in one turn, once the write lock is free (core/db.ts whenFree)
    await deps.store.whenFree();
    knownUnit(req.body.unitId);
    checkUnit(req.user, req.body.unitId);
    knownChannels(req.body.contacts);
    // a test run's resident is a technician's or admin's doing: an operator registers people in care only
    if (req.body.test && req.user.role !== 'admin' && req.user.role !== 'technician') {
      throw new ForbiddenError('only an admin or a technician may register a test resident ("test": true); leave "test" out for a person in care');
    }
    const r = registry.createResident(req.body);
    req.log.info({ residentId: r.id, unitId: r.unitId, by: req.user.username }, 'resident created');
    // the names of the fields set, not their values: the audit log is not a second copy of a resident's file
    await deps.audit.append({ actor: auditActor(req), action: 'resident.create', target: { type: 'resident', id: r.id }, details: { unitId: r.unitId, fields: Object.keys(req.body), ...(r.test ? { test: true } : {}) } }, req.log);
    reply.status(201);
    return r;
  });

  app.get('/api/residents', {
    schema: {
      tags: ['residents'], summary: 'List residents, searched by name, a page at a time',
      querystring: Type.Object({ q: Type.Optional(Type.String({ maxLength: 100 })), ...Paging }),
      response: { 200: Type.Object({ items: Type.Array(ResidentBody), total: Type.Integer() }), 401: ErrorBody },
    },
    onRequest: readers,
  }, async (req) => {
    const page = await registry.listResidents({ ...req.query, scope: deps.scope.of(req.user) });
    // The scope was applied when the page's ids were read; a resident moved out of it since (a few ms ago at most,
    // the rows being read a slice at a time) is left out rather than shown as she is now
    return req.user.unitId ? { ...page, items: page.items.filter((r) => deps.scope.canSee(req.user, r.unitId)) } : page;
  });

  app.get('/api/residents/:id', {
    schema: { tags: ['residents'], summary: 'One resident with her contacts, safe zone and check-in settings', params: IdParam, response: { 200: ResidentBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody } },
    onRequest: readers,
  }, async (req) => {
    const r = registry.getResident(req.params.id);
    checkUnit(req.user, r.unitId);
    return r;
  });

  app.patch('/api/residents/:id', {
    schema: {
      tags: ['residents'], summary: "Change a resident's details",
      params: IdParam,
      body: Type.Partial(Type.Object(ResidentFields), { additionalProperties: false }),
      response: { 200: ResidentBody, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody },
    },
    onRequest: writers,
  }, async (req) => {
    await deps.store.whenFree();
    const before = registry.getResident(req.params.id);
    checkUnit(req.user, before.unitId);
    if (req.body.unitId !== undefined) {
      knownUnit(req.body.unitId);
      checkUnit(req.user, req.body.unitId);
    }
    knownChannels(req.body.contacts);
    const r = registry.updateResident(req.params.id, req.body);
    await deps.audit.append({
      actor: auditActor(req), action: 'resident.update', target: { type: 'resident', id: r.id },
      details: { fields: Object.keys(req.body), ...(req.body.unitId !== undefined ? { unitId: { before: before.unitId, after: r.unitId } } : {}) },
    }, req.log);
    return r;
  });
};
